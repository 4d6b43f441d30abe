"""Tests of lmcourse.generate: HF parity, KV cache, batching, stops, sliding window, streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from lmcourse.generate import GenerationOutput, generate, stream
from lmcourse.hf import from_hf_gpt2
from lmcourse.model import GPT
from lmcourse.sampling import SamplingConfig, process_logits

GREEDY = SamplingConfig(temperature=0)
V = 50


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run fastest on one thread


@pytest.fixture(scope="module")
def hf_and_ours():
    """A random small HF GPT-2 and the same weights in an lmcourse GPT.

    Weights are drawn wider than GPT-2's init (std 0.02) so that the logits are well
    separated and greedy choices are not decided by rounding noise.
    """
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=64, n_embd=32, n_layer=2, n_head=4))
    with torch.no_grad():
        for p in hf.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.3)
    hf.eval()
    ours = from_hf_gpt2(hf).eval()
    return hf, ours


@pytest.fixture(scope="module")
def small(tiny_gpt):
    """A GPT with a short block_size (16) to exercise the sliding window."""
    model = tiny_gpt(1, vocab_size=V, block_size=16)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.3)
    return model


class CharTokenizer:
    """Token i decodes to a 1- or 2-letter string, so stop strings can span tokens."""

    def decode(self, ids):
        return "".join(chr(97 + i % 26) * (1 + i % 2) for i in ids)


PROMPTS = [[1, 2, 3, 4, 5], [7, 8], [9, 10, 11, 12, 13, 14, 15, 16], [3]]


# ---- correctness against transformers --------------------------------------------------


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_equals_hf_generate(hf_and_ours, prompt):
    hf, ours = hf_and_ours
    n = 20
    expected = hf.generate(
        torch.tensor([prompt]), do_sample=False, max_new_tokens=n, min_new_tokens=n, pad_token_id=0
    )[0].tolist()
    out = generate(ours, prompt, n, sampling=GREEDY)
    assert out.sequences[0] == expected
    assert out.new_tokens[0] == expected[len(prompt) :]
    assert out.finish_reasons == ["length"]


def test_cache_and_no_cache_identical(hf_and_ours):
    _, model = hf_and_ours
    a = generate(model, PROMPTS, 30, sampling=GREEDY, use_cache=True)
    b = generate(model, PROMPTS, 30, sampling=GREEDY, use_cache=False)
    assert a.sequences == b.sequences
    # sampling too, with the same seed
    cfg = SamplingConfig(temperature=0.9, top_k=10)
    a = generate(model, PROMPTS, 20, cfg, use_cache=True, generator=torch.Generator().manual_seed(3))
    b = generate(model, PROMPTS, 20, cfg, use_cache=False, generator=torch.Generator().manual_seed(3))
    assert a.sequences == b.sequences


def test_batched_ragged_prompts_equal_one_by_one(hf_and_ours):
    _, model = hf_and_ours
    batch = generate(model, PROMPTS, 15, sampling=GREEDY)
    for i, p in enumerate(PROMPTS):
        alone = generate(model, p, 15, sampling=GREEDY)
        assert batch.sequences[i] == alone.sequences[0]
        assert len(batch.sequences[i]) == len(p) + 15  # no padding in the output


def test_prompt_formats(hf_and_ours):
    _, model = hf_and_ours
    p = [4, 5, 6]
    ref = generate(model, p, 5, GREEDY).sequences
    assert generate(model, torch.tensor(p), 5, GREEDY).sequences == ref
    assert generate(model, torch.tensor([p, p]), 5, GREEDY).sequences == ref * 2
    assert generate(model, [p], 5, GREEDY).sequences == ref


def test_same_seed_same_output_and_logprobs(hf_and_ours):
    _, model = hf_and_ours
    cfg = SamplingConfig(temperature=1.2, top_p=0.9)
    a = generate(model, PROMPTS, 12, cfg, generator=torch.Generator().manual_seed(0), return_logprobs=True)
    b = generate(model, PROMPTS, 12, cfg, generator=torch.Generator().manual_seed(0), return_logprobs=True)
    c = generate(model, PROMPTS, 12, cfg, generator=torch.Generator().manual_seed(1))
    assert a == b and a.sequences != c.sequences and c.logprobs is None
    assert all(len(lp) == len(t) for lp, t in zip(a.logprobs, a.new_tokens))
    assert all(x <= 0 for row in a.logprobs for x in row)


def test_logprobs_are_those_of_the_processed_distribution(hf_and_ours):
    _, model = hf_and_ours
    prompt = [1, 2, 3]
    out = generate(model, prompt, 3, GREEDY, return_logprobs=True)
    seq = torch.tensor([out.sequences[0]])
    logits, _ = model(seq)
    expected = torch.log_softmax(logits[0, len(prompt) - 1 : -1], -1)
    expected = expected.gather(-1, torch.tensor(out.new_tokens[0]).unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(torch.tensor(out.logprobs[0]), expected, atol=1e-5, rtol=1e-5)
    top1 = generate(model, prompt, 4, SamplingConfig(top_k=1), return_logprobs=True)
    assert top1.logprobs[0] == [0.0] * 4  # a single surviving token has probability 1


# ---- stop conditions ------------------------------------------------------------------


def test_eos_stops_each_row_alone(hf_and_ours):
    _, model = hf_and_ours
    free = generate(model, PROMPTS, 15, GREEDY)
    eos = free.new_tokens[0][3]  # the 4th token of row 0 becomes an end-of-sequence id
    out = generate(model, PROMPTS, 15, GREEDY, eos_token_id=[eos, 10_000 % V])
    for i in range(len(PROMPTS)):
        row = free.new_tokens[i]
        cut = next((j for j, t in enumerate(row) if t in (eos, 10_000 % V)), None)
        if cut is None:
            assert out.new_tokens[i] == row and out.finish_reasons[i] == "length"
        else:
            assert out.new_tokens[i] == row[: cut + 1] and out.finish_reasons[i] == "eos"
    assert out.finish_reasons[0] == "eos" and len(out.new_tokens[0]) <= 4
    assert generate(model, PROMPTS[0], 15, GREEDY, eos_token_id=eos).finish_reasons == ["eos"]


def test_stop_string_spanning_tokens(hf_and_ours):
    _, model = hf_and_ours
    tok = CharTokenizer()
    free = generate(model, PROMPTS[0], 12, GREEDY, tokenizer=tok)
    ids = free.new_tokens[0]
    # a string made of the end of token 4's text and the start of token 5's
    before = tok.decode(ids[:5])
    stop = before[-1] + tok.decode([ids[5]])[0]
    first_hit = next(j for j in range(1, 13) if stop in tok.decode(ids[:j]))
    out = generate(model, PROMPTS[0], 12, GREEDY, stop_strings=[stop], tokenizer=tok)
    assert out.finish_reasons == ["stop"]
    assert out.new_tokens[0] == ids[:first_hit]
    assert out.text == [tok.decode(ids[:first_hit])] and stop in out.text[0]
    assert free.text == [tok.decode(ids)]


def test_stop_strings_need_a_tokenizer(hf_and_ours):
    _, model = hf_and_ours
    with pytest.raises(ValueError, match="tokenizer"):
        generate(model, [1], 3, stop_strings=["x"])


def test_max_new_tokens_zero(hf_and_ours):
    _, model = hf_and_ours
    out = generate(model, [[1, 2], [3]], 0)
    assert out == GenerationOutput([[1, 2], [3]], [[], []], ["length", "length"])


# ---- sliding window past block_size ---------------------------------------------------


def reference_sliding_window(model: GPT, prompt: list[int], n: int) -> list[int]:
    """The documented rule, written naively: recompute the window, slide to block // 2."""
    block = model.config.block_size
    ctx, start = list(prompt), max(0, len(prompt) - block)
    for _ in range(n):
        if len(ctx) - start > block:
            start = len(ctx) - block // 2
        logits, _ = model(torch.tensor([ctx[start:]]))
        ctx.append(int(logits[0, -1].argmax()))
    return ctx


@pytest.mark.parametrize("prompt", [[1, 2, 3], list(range(20))])  # short, and longer than block
def test_sliding_window_past_block_size(small, prompt):
    n = 45  # several slides with block_size 16
    ref = reference_sliding_window(small, prompt, n)
    cached = generate(small, prompt, n, GREEDY, use_cache=True)
    uncached = generate(small, prompt, n, GREEDY, use_cache=False)
    assert cached.sequences[0] == ref == uncached.sequences[0]


def test_sliding_window_batched_cache_equals_no_cache(small):
    prompts = [[1, 2, 3], list(range(10)), [5] * 14]
    a = generate(small, prompts, 30, GREEDY, use_cache=True)
    b = generate(small, prompts, 30, GREEDY, use_cache=False)
    assert a.sequences == b.sequences and all(len(t) == 30 for t in a.new_tokens)


# ---- streaming and callback -----------------------------------------------------------


def test_stream_matches_generate(hf_and_ours):
    _, model = hf_and_ours
    tok = CharTokenizer()
    out = generate(model, PROMPTS[1], 10, GREEDY, tokenizer=tok, eos_token_id=49)
    pieces = list(stream(model, PROMPTS[1], 10, GREEDY, tokenizer=tok, eos_token_id=49))
    assert [t for t, _ in pieces] == out.new_tokens[0]
    assert "".join(p for _, p in pieces) == out.text[0]
    plain = generate(model, PROMPTS[1], 10, GREEDY).new_tokens[0]
    assert [(t, p) for t, p in stream(model, PROMPTS[1], 10, GREEDY)] == [(t, None) for t in plain]
    with pytest.raises(ValueError, match="one prompt"):
        list(stream(model, PROMPTS, 3))
    assert torch.is_grad_enabled()


def test_callback_sees_every_step(hf_and_ours):
    _, model = hf_and_ours
    seen = []
    out = generate(model, PROMPTS[:2], 6, GREEDY, callback=lambda step, ids: seen.append((step, ids)))
    assert [s for s, _ in seen] == list(range(6))
    assert [ids[0] for _, ids in seen] == out.new_tokens[0]
    assert [ids[1] for _, ids in seen] == out.new_tokens[1]


def test_restores_training_mode(small):
    small.train()
    try:
        generate(small, [1, 2], 3)
        assert small.training
    finally:
        small.eval()


# ---- argument checking ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(prompt_ids=[], max_new_tokens=3), ValueError, "prompt_ids"),
        (dict(prompt_ids=[[1], []], max_new_tokens=3), ValueError, "prompt_ids"),
        (dict(prompt_ids=[1, V], max_new_tokens=3), ValueError, "prompt_ids"),
        (dict(prompt_ids=torch.zeros(1, 2, 3, dtype=torch.long), max_new_tokens=3), ValueError, "prompt_ids"),
        (dict(prompt_ids=[1.0, 2.0], max_new_tokens=3), TypeError, "prompt_ids"),
        (dict(prompt_ids=torch.tensor([1.0, 2.0]), max_new_tokens=3), TypeError, "prompt_ids"),
        (dict(prompt_ids=None, max_new_tokens=3), TypeError, "prompt_ids"),
        (dict(prompt_ids=7, max_new_tokens=3), TypeError, "prompt_ids"),
        (dict(prompt_ids="hello", max_new_tokens=3), TypeError, "tokenizer"),
        (dict(prompt_ids=[1, True], max_new_tokens=3), TypeError, "prompt_ids"),
        (dict(prompt_ids=np.array([1.5]), max_new_tokens=3), TypeError, "prompt_ids"),
        (dict(prompt_ids=[torch.tensor(1), torch.tensor(2)], max_new_tokens=3), ValueError, "1-D"),
        (dict(prompt_ids=[1], max_new_tokens=-1), ValueError, "max_new_tokens"),
        (dict(prompt_ids=[1], max_new_tokens=2.5), TypeError, "max_new_tokens"),
        (dict(prompt_ids=[1], max_new_tokens="5"), TypeError, "max_new_tokens"),
        (dict(prompt_ids=[1], max_new_tokens=True), TypeError, "max_new_tokens"),
        (dict(prompt_ids=[1], max_new_tokens=3, eos_token_id=-2), ValueError, "eos_token_id"),
        (dict(prompt_ids=[1], max_new_tokens=3, eos_token_id=V), ValueError, "eos_token_id"),
        (dict(prompt_ids=[1], max_new_tokens=3, eos_token_id=[1, V + 5]), ValueError, "eos_token_id"),
        (dict(prompt_ids=[1], max_new_tokens=3, eos_token_id="3"), TypeError, "eos_token_id"),
        (dict(prompt_ids=[1], max_new_tokens=3, eos_token_id=True), TypeError, "eos_token_id"),
        (dict(prompt_ids=[1], max_new_tokens=3, sampling=0.5), TypeError, "sampling"),
        (dict(prompt_ids=[1], max_new_tokens=3, use_cache="no"), TypeError, "use_cache"),
        (dict(prompt_ids=[1], max_new_tokens=3, generator=0), TypeError, "generator"),
        (dict(prompt_ids=[1], max_new_tokens=3, record_steps=1), TypeError, "record_steps"),
        (dict(prompt_ids=[1], max_new_tokens=3, stop_strings=[""], tokenizer=CharTokenizer()), ValueError,
         "stop_strings"),
        (dict(prompt_ids=[1], max_new_tokens=3, callback=3), TypeError, "callback"),
    ],
)
def test_invalid_arguments(small, kwargs, error, name):
    with pytest.raises(error, match=name):
        generate(small, **kwargs)


def test_numpy_and_tuple_prompts_are_token_ids(small):
    ref = generate(small, [[1, 2, 3], [4]], 4, GREEDY).sequences
    assert generate(small, [np.array([1, 2, 3]), (4,)], 4, GREEDY).sequences == ref
    assert generate(small, [np.int64(1), np.int32(2), 3], 4, GREEDY).sequences == ref[:1]
    assert generate(small, np.array([[1, 2], [3, 4]]), 4, GREEDY).sequences == generate(
        small, torch.tensor([[1, 2], [3, 4]]), 4, GREEDY
    ).sequences


def test_nan_logits_raise_instead_of_token_zero(small):
    broken = GPT(small.config).eval()
    broken.load_state_dict(small.state_dict())
    with torch.no_grad():
        broken.lm_head.weight.fill_(float("nan"))
    for cfg in (GREEDY, SamplingConfig()):
        with pytest.raises(ValueError, match="NaN"):
            generate(broken, [1, 2], 3, cfg)


@pytest.mark.parametrize("kwargs", [dict(temperature=1e-40), dict(repetition_penalty=1e-40)])
def test_overflowing_temperature_or_penalty_is_a_clear_error(small, kwargs):
    with pytest.raises(ValueError, match="temperature=0 for greedy"):
        generate(small, [1, 2, 1], 3, SamplingConfig(**kwargs), generator=torch.Generator().manual_seed(0))


def test_huge_temperature_is_uniform_sampling(small):
    out = generate(small, [1, 2], 5, SamplingConfig(temperature=1e300), record_steps=True,
                   generator=torch.Generator().manual_seed(0))
    probs = out.steps[0].probs
    torch.testing.assert_close(probs, torch.full_like(probs, 1 / V))


# ---- step recording (the book's tracing consumes it) ----------------------------------


@pytest.mark.parametrize("cfg", [GREEDY, SamplingConfig(temperature=0.8, top_k=7, repetition_penalty=1.3)])
def test_recorded_steps_are_the_loop(hf_and_ours, cfg):
    _, model = hf_and_ours
    prompts = [[1, 2, 3, 4], [5, 6]]
    n = 6
    out = generate(model, prompts, n, cfg, record_steps=True, generator=torch.Generator().manual_seed(2))
    plain = generate(model, prompts, n, cfg, generator=torch.Generator().manual_seed(2))
    assert out.sequences == plain.sequences and plain.steps is None
    assert [s.position for s in out.steps] == list(range(n))
    for i in range(len(prompts)):
        assert [int(s.token[i]) for s in out.steps] == out.new_tokens[i]
    assert out.steps[0].input_ids.shape == (2, 4)  # prefill: the left-padded prompts
    assert all(s.input_ids.shape == (2, 1) for s in out.steps[1:])  # decode: one token per row
    assert [s.cache_len for s in out.steps] == list(range(4, 4 + n))  # one position per step
    for t, s in enumerate(out.steps):
        torch.testing.assert_close(s.probs, torch.softmax(s.processed_logits, dim=-1))
        previous = [seq[: len(p) + t] for seq, p in zip(out.sequences, prompts)]
        torch.testing.assert_close(s.processed_logits, process_logits(s.logits, cfg, previous))
        for i, seq in enumerate(out.sequences):  # raw logits = an uncached forward of the row
            context = seq[: len(prompts[i]) + t]
            with torch.no_grad():
                full, _ = model(torch.tensor([context]))
            torch.testing.assert_close(s.logits[i], full[0, -1], atol=1e-4, rtol=1e-4)
    uncached = generate(model, prompts, n, cfg, record_steps=True, use_cache=False,
                        generator=torch.Generator().manual_seed(2))
    assert all(s.cache_len == 0 for s in uncached.steps)
    assert [s.input_ids.shape[1] for s in uncached.steps] == list(range(4, 4 + n))  # whole window


# ---- the bench-generate command (smoke test, tiny sizes; not a timing test) -----------

TINY_BENCH = ["bench-generate", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--vocab-size", "64",
              "--block-size", "32", "--prompt-len", "4", "--prefill-len", "16", "--new-tokens", "3", "6",
              "--threads", "1"]


def test_bench_generate_cli_smoke(capsys):
    from lmcourse.__main__ import main

    assert main(TINY_BENCH + ["--stop-bench", "--stop-rows", "2", "--stop-tokens", "4", "8"]) == 0
    out = capsys.readouterr().out
    assert "KV cache" in out and "no cache" in out and "prefill" in out and "transformers" in out
    assert "ms/step stops" in out and "speculative" in out and "differs" not in out
    for bad in (["--new-tokens", "100"], ["--spec-tokens", "-5"], ["--device", "nope"], ["--threads", "0"]):
        with pytest.raises(SystemExit) as exc:
            main(TINY_BENCH + bad)
        assert exc.value.code == 2


# ---- stop strings are checked incrementally, with the whole-text answer ----------------


class ByteTokenizer:
    """Tokens are bytes, some of them halves of 2-byte UTF-8 characters (é, ß, ...), so a
    decoded window can start inside a character."""

    TABLE = [bytes([97 + i]) for i in range(26)] + [bytes([b]) for b in (0xC3, 0xA9, 0xC3, 0x9F, 0xC3, 0xB6)] * 4

    def decode(self, ids):
        return b"".join(self.TABLE[i] for i in ids).decode("utf-8", errors="replace")


@pytest.mark.parametrize("tok", [CharTokenizer(), ByteTokenizer()])
def test_incremental_stop_strings_equal_whole_text_search(small, tok):
    n = 40
    prompts = [[1, 2], [30, 5, 26], [7]]
    cfg = SamplingConfig(temperature=1.0)
    free = generate(small, prompts, n, cfg, generator=torch.Generator().manual_seed(0))
    texts = [tok.decode(t) for t in free.new_tokens]
    g = torch.Generator().manual_seed(1)
    stops = []
    for text in texts:  # stop strings of 1 to 6 characters taken from the texts
        for _ in range(2):
            length = int(torch.randint(1, 7, (), generator=g))
            start = int(torch.randint(0, max(1, len(text) - length), (), generator=g))
            piece = text[start : start + length]
            if piece and "\ufffd" not in piece:
                stops.append(piece)
    out = generate(small, prompts, n, cfg, stop_strings=stops, tokenizer=tok,
                   generator=torch.Generator().manual_seed(0))
    for i, row in enumerate(free.new_tokens):
        hit = next((j for j in range(1, n + 1) if any(s in tok.decode(row[:j]) for s in stops)), None)
        expected = row if hit is None else row[:hit]
        assert out.new_tokens[i] == expected
        assert out.finish_reasons[i] == ("length" if hit is None else "stop")
    assert "stop" in out.finish_reasons


@pytest.mark.parametrize("tok", [CharTokenizer(), ByteTokenizer()])
def test_stream_pieces_join_to_the_text(small, tok):
    cfg = SamplingConfig()
    out = generate(small, [30, 1], 25, cfg, tokenizer=tok, generator=torch.Generator().manual_seed(4))
    pieces = list(stream(small, [30, 1], 25, cfg, tokenizer=tok, generator=torch.Generator().manual_seed(4)))
    assert [t for t, _ in pieces] == out.new_tokens[0]
    assert "".join(p for _, p in pieces) == out.text[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_generator_with_cuda_model(small):
    cfg = SamplingConfig(temperature=0.8)
    on_gpu = GPT(small.config).cuda().eval()
    on_gpu.load_state_dict(small.state_dict())
    a = generate(on_gpu, [1, 2, 3], 10, cfg, generator=torch.Generator().manual_seed(0))
    b = generate(on_gpu, [1, 2, 3], 10, cfg, generator=torch.Generator().manual_seed(0))
    c = generate(on_gpu, [1, 2, 3], 10, cfg, generator=torch.Generator(device="cuda").manual_seed(0))
    assert a == b and len(c.new_tokens[0]) == 10
