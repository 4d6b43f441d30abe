"""Tests of lmcourse.beam, with transformers' ``generate(num_beams=...)`` as the oracle."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from lmcourse.beam import beam_search
from lmcourse.hf import from_hf_gpt2
from lmcourse.model import GPT

V = 50


@pytest.fixture(scope="module")
def models() -> tuple[GPT2LMHeadModel, GPT]:
    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=V, n_positions=64, n_embd=32, n_layer=2, n_head=4,
        bos_token_id=0, eos_token_id=None,
    )
    hf = GPT2LMHeadModel(cfg).eval()
    # Larger weights give peaked distributions, so EOS actually wins some beams.
    with torch.no_grad():
        hf.transformer.wte.weight.mul_(20)
    ours = from_hf_gpt2(hf).eval()
    return hf, ours


def hf_beam(hf, prompt, **kw):
    out = hf.generate(
        torch.tensor([prompt]),
        attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
        pad_token_id=kw.get("eos_token_id") or 0,
        **kw,
    )
    return out.sequences.tolist(), out.sequences_scores.tolist()


def check_same(hf, ours, prompt, eos, **kw):
    hf_kw = dict(kw)
    hf_kw["eos_token_id"] = eos
    hf.generation_config.eos_token_id = eos
    seqs, scores = hf_beam(hf, prompt, **hf_kw)
    res = beam_search(ours, prompt, eos_token_id=eos, **kw)
    assert len(res.sequences) == kw.get("num_return_sequences", 1)
    for mine, theirs in zip(res.sequences, seqs):
        assert mine == theirs[: len(mine)]
        # HF pads shorter hypotheses after their EOS; nothing else follows
        assert all(t == (eos if eos is not None else 0) for t in theirs[len(mine) :])
    assert res.scores == pytest.approx(scores, abs=1e-4)
    return res


@pytest.mark.parametrize("num_beams", [2, 4])  # HF runs greedy search for 1 beam
@pytest.mark.parametrize("length_penalty", [1.0, 0.0, -0.5])
def test_matches_hf_without_eos(models, num_beams, length_penalty):
    hf, ours = models
    check_same(
        hf, ours, [3, 7, 1], None,
        num_beams=num_beams, max_new_tokens=6, length_penalty=length_penalty,
        num_return_sequences=num_beams,
    )


@pytest.mark.parametrize(
    "num_beams, length_penalty, early_stopping",
    [
        (2, 1.0, False),
        (3, 0.0, True),
        (5, 2.0, "never"),
        (3, -1.0, False),
        (2, 2.0, False),
        (4, -0.5, "never"),
        (4, 1.0, True),
        (3, 1.0, "never"),
    ],
)
def test_matches_hf_with_eos(models, num_beams, length_penalty, early_stopping):
    hf, ours = models
    finished_early = 0
    for prompt in ([5], [11, 2, 9]):
        # pick as EOS the model's 2nd most likely next token, so that it shows up
        with torch.no_grad():
            logits, _ = ours(torch.tensor([prompt]))
        eos = int(logits[0, -1].topk(2).indices[1])
        res = check_same(
            hf, ours, prompt, eos,
            num_beams=num_beams, max_new_tokens=8, length_penalty=length_penalty,
            early_stopping=early_stopping, num_return_sequences=min(2, num_beams),
        )
        finished_early += any(s[-1] == eos for s in res.sequences)
    assert finished_early > 0  # the test really exercises EOS


def test_best_first_and_scores(models):
    _, ours = models
    res = beam_search(ours, [1, 2], num_beams=4, max_new_tokens=5, num_return_sequences=4)
    assert res.scores == sorted(res.scores, reverse=True)
    # score of the best hypothesis = its sum of log-probs / generated length
    seq = res.sequences[0]
    with torch.no_grad():
        logits, _ = ours(torch.tensor([seq[:-1]]))
    logp = torch.log_softmax(logits[0], -1)
    total = sum(float(logp[i, seq[i + 1]]) for i in range(1, len(seq) - 1))
    assert res.scores[0] == pytest.approx(total / 5, abs=1e-5)


def test_one_beam_is_greedy(models):
    _, ours = models
    res = beam_search(ours, [4, 8], num_beams=1, max_new_tokens=6)
    seq = [4, 8]
    with torch.no_grad():
        for _ in range(6):
            logits, _ = ours(torch.tensor([seq]))
            seq.append(int(logits[0, -1].argmax()))
    assert res.sequences == [seq]


def test_argument_validation(models):
    _, ours = models
    with pytest.raises(ValueError, match="num_beams"):
        beam_search(ours, [1], num_beams=0, max_new_tokens=3)
    with pytest.raises(ValueError, match="max_new_tokens"):
        beam_search(ours, [1], num_beams=2, max_new_tokens=0)
    with pytest.raises(ValueError, match="num_return_sequences"):
        beam_search(ours, [1], num_beams=2, max_new_tokens=3, num_return_sequences=3)
    with pytest.raises(ValueError, match="block_size"):
        beam_search(ours, [1] * 60, num_beams=2, max_new_tokens=10)
    with pytest.raises(ValueError, match="eos_token_id"):
        beam_search(ours, [1], num_beams=2, max_new_tokens=3, eos_token_id=V)
    with pytest.raises(ValueError, match="prompt_ids"):
        beam_search(ours, [], num_beams=2, max_new_tokens=3)
    with pytest.raises(ValueError, match="early_stopping"):
        beam_search(ours, [1], num_beams=2, max_new_tokens=3, early_stopping="sometimes")


def test_eval_mode_makes_beams_deterministic_and_mode_is_restored(models):
    _, ours = models
    dropout = GPT(ours.config.__class__(**{**ours.config.to_dict(), "dropout": 0.5}))
    dropout.load_state_dict(ours.state_dict())
    dropout.train()
    a = beam_search(dropout, [3, 1], num_beams=3, max_new_tokens=5, num_return_sequences=3)
    b = beam_search(dropout, [3, 1], num_beams=3, max_new_tokens=5, num_return_sequences=3)
    assert dropout.training  # restored
    assert a == b == beam_search(ours, [3, 1], num_beams=3, max_new_tokens=5, num_return_sequences=3)


def test_prompt_contract(models):
    _, ours = models
    ref = beam_search(ours, [4, 8], num_beams=2, max_new_tokens=3)
    assert beam_search(ours, torch.tensor([[4, 8]]), num_beams=2, max_new_tokens=3) == ref
    assert beam_search(ours, (4, 8), num_beams=2, max_new_tokens=3) == ref
    with pytest.raises(ValueError, match="2 prompts"):  # never flattened into one prompt
        beam_search(ours, torch.tensor([[4, 8], [1, 2]]), num_beams=2, max_new_tokens=3)
    with pytest.raises(TypeError, match="prompt_ids"):
        beam_search(ours, [4.0, 8.0], num_beams=2, max_new_tokens=3)
    with pytest.raises(TypeError, match="num_beams"):
        beam_search(ours, [4], num_beams=True, max_new_tokens=3)
    with pytest.raises(TypeError, match="length_penalty"):
        beam_search(ours, [4], num_beams=2, max_new_tokens=3, length_penalty="1")
    with pytest.raises(TypeError, match="early_stopping"):
        beam_search(ours, [4], num_beams=2, max_new_tokens=3, early_stopping=1)
