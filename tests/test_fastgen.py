"""lmcourse.fastgen: the static-cache path gives the tokens of the eager loop (lmcourse.generate)."""

import os

import pytest
import torch

from lmcourse.fastgen import StaticKVCache, fast_generate, forward_static, static_decode_step
from lmcourse.generate import generate
from lmcourse.model import GPT, GPTConfig
from lmcourse.sampling import SamplingConfig

ARCHS = {
    "gpt2": {},
    "llama": dict(pos_emb="rope", norm="rmsnorm", mlp="swiglu", bias=False, tie_weights=False, n_kv_head=2),
}


def _model(arch, seed=0):
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=41, block_size=48, n_layer=2, n_head=4, n_embd=32, **ARCHS[arch])
    model = GPT(cfg).eval()
    with torch.no_grad():  # spread the weights so that the distributions are not near uniform
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.15)
    return model


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_static_cache_logits_equal_the_uncached_forward(arch):
    model = _model(arch)
    idx = torch.randint(0, 41, (3, 20))
    full, _ = model(idx)
    cache = StaticKVCache.for_model(model, 3)
    with torch.no_grad():
        pieces = [forward_static(model, cache, idx[:, :9], torch.arange(9))]
        for t in range(9, 20):
            pieces.append(static_decode_step(model, cache, idx[:, t : t + 1], torch.tensor([t])).unsqueeze(1))
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("B, temperature, top_k", [(1, 0.0, None), (3, 0.0, None), (3, 1.0, None), (1, 0.8, 5)])
def test_fast_generate_equals_generate(arch, B, temperature, top_k):
    model = _model(arch, seed=B)
    prompt = torch.randint(0, 41, (B, 7))
    sampling = SamplingConfig(temperature=temperature, top_k=top_k)
    ref = generate(model, prompt, 20, sampling, generator=torch.Generator().manual_seed(5))
    got = fast_generate(
        model, prompt, 20, temperature=temperature, top_k=top_k, generator=torch.Generator().manual_seed(5)
    )
    assert got.shape == (B, 27)
    assert got.tolist() == ref.sequences
    if temperature > 0:  # the draws really are random: another seed gives other tokens
        other = fast_generate(model, prompt, 20, temperature=temperature, top_k=top_k,
                              generator=torch.Generator().manual_seed(6))
        assert other.tolist() != got.tolist()


def test_reused_cache_with_stale_slots_gives_the_same_tokens():
    model = _model("llama")
    long_prompt, short_prompt = torch.randint(0, 41, (2, 30)), torch.randint(0, 41, (2, 3))
    fast_generate(model, long_prompt, 15)  # fills 45 slots of the model's cache
    got = fast_generate(model, short_prompt, 10)  # same cache, stale slots 13..44
    ref = generate(model, short_prompt, 10, SamplingConfig(temperature=0))
    assert got.tolist() == ref.sequences


def test_fast_generate_checks_its_arguments():
    model = _model("gpt2")
    with pytest.raises(ValueError, match="block_size"):
        fast_generate(model, torch.zeros(1, 40, dtype=torch.long), 9)
    with pytest.raises(ValueError, match="prompt_ids must be token ids"):
        fast_generate(model, torch.full((1, 3), 41), 2)
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        fast_generate(model, torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="max_new_tokens"):
        fast_generate(model, torch.zeros(1, 3, dtype=torch.long), -1)
    with pytest.raises(ValueError, match="temperature"):
        fast_generate(model, torch.zeros(1, 3, dtype=torch.long), 2, temperature=-1.0)
    prompt = torch.randint(0, 41, (2, 4))
    assert torch.equal(fast_generate(model, prompt, 0), prompt)


@pytest.mark.skipif(not os.environ.get("LMCOURSE_TEST_COMPILE"), reason="compiling takes minutes on a CPU; "
                    "set LMCOURSE_TEST_COMPILE=1 (on a GPU this checks the CUDA-graph path)")
def test_compiled_decode_step_gives_the_same_tokens():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = _model("llama").to(device)
    prompt = torch.randint(0, 41, (2, 5), device=device)
    for temperature in (0.0, 1.0):
        eager = fast_generate(model, prompt, 12, temperature=temperature,
                              generator=torch.Generator(device).manual_seed(0))
        compiled = fast_generate(model, prompt, 12, temperature=temperature,
                                 generator=torch.Generator(device).manual_seed(0), compile=True)
        assert compiled.tolist() == eager.tolist()
