"""Tests for lmcourse.metrics against torch.nn.functional and hand-computed values."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lmcourse import metrics as M
from lmcourse.model import GPT, GPTConfig


def test_log_softmax_matches_torch_and_is_stable():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 7, 11, generator=g, dtype=torch.float64) * 5
    assert torch.allclose(M.log_softmax(z), F.log_softmax(z, -1), atol=1e-12)
    assert torch.allclose(M.log_softmax(z, dim=1), F.log_softmax(z, 1), atol=1e-12)
    huge = torch.tensor([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4]])
    out = M.log_softmax(huge)
    assert torch.isfinite(out[:, :2]).all()
    assert torch.allclose(out, F.log_softmax(huge, -1))
    assert torch.allclose(out[1], torch.full((3,), -math.log(3)))
    masked = torch.tensor([0.0, float("-inf"), 0.0])
    assert torch.allclose(M.log_softmax(masked), torch.tensor([-math.log(2), float("-inf"), -math.log(2)]))


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=8),
    st.floats(-1e4, 1e4, allow_nan=False),
)
def test_log_softmax_property(values, shift):
    z = torch.tensor(values, dtype=torch.float64)
    out = M.log_softmax(z)
    assert torch.isfinite(out).all() and (out <= 0).all()
    assert abs(float(out.exp().sum()) - 1) < 1e-9
    assert torch.allclose(out, F.log_softmax(z, -1), atol=1e-9)
    assert torch.allclose(M.log_softmax(z + shift), out, atol=1e-6)  # shift invariance


def test_cross_entropy_matches_torch_with_ignore_index():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 5, 13, generator=g)
    targets = torch.randint(13, (3, 5), generator=g)
    targets[0, :2] = -100
    targets[2, 4] = -100
    want = F.cross_entropy(logits.view(-1, 13), targets.view(-1), ignore_index=-100)
    assert torch.allclose(M.cross_entropy(logits, targets), want, atol=1e-6)
    t2 = targets.clone()
    t2[t2 == -100] = 0
    assert torch.allclose(M.cross_entropy(logits, t2, ignore_index=0),
                          F.cross_entropy(logits.view(-1, 13), t2.view(-1), ignore_index=0), atol=1e-6)
    big = logits * 1e4
    assert torch.allclose(M.cross_entropy(big, targets), F.cross_entropy(big.view(-1, 13), targets.view(-1)),
                          rtol=1e-5)
    assert math.isclose(M.perplexity(logits, targets), math.exp(float(want)), rel_tol=1e-5)


def test_hand_computed_values():
    # p(target) = 0.9 and 0.01
    logits = torch.log(torch.tensor([[0.9, 0.1], [0.01, 0.99]]))
    targets = torch.tensor([0, 0])
    lp = M.sequence_log_prob(logits, targets)
    assert math.isclose(float(lp), math.log(0.9) + math.log(0.01), rel_tol=1e-6)
    assert math.isclose(M.surprisal(0.9, unit="nats"), 0.10536, rel_tol=1e-4)
    assert math.isclose(M.surprisal(0.01, unit="nats"), 4.60517, rel_tol=1e-5)
    assert math.isclose(M.surprisal(0.9), 0.15200, rel_tol=1e-4)  # bits
    assert math.isclose(M.surprisal(0.01), 6.64386, rel_tol=1e-5)
    assert math.isclose(M.surprisal(log_prob=math.log(0.01), unit="bits"), 6.64386, rel_tol=1e-5)
    assert M.surprisal(1.0) == 0.0
    bits = M.sequence_log_prob(logits, targets, unit="bits")
    assert math.isclose(float(bits), math.log2(0.9) + math.log2(0.01), rel_tol=1e-6)
    assert math.isclose(M.perplexity(math.log(4)), 4.0)
    assert math.isclose(M.bits_per_byte(8 * math.log(2), 8), 1.0)
    assert math.isclose(M.bits_per_byte(torch.tensor(100.0), 50), 2 / math.log(2), rel_tol=1e-6)


def test_sequence_log_prob_chain_rule_and_ignore():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 6, 9, generator=g, dtype=torch.float64)
    targets = torch.randint(9, (2, 6), generator=g)
    lp = F.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
    assert torch.allclose(M.sequence_log_prob(logits, targets), lp.sum(-1))
    targets[1, 3:] = -100
    got = M.sequence_log_prob(logits, targets)
    assert torch.isclose(got[1], lp[1, :3].sum())


def test_entropy():
    uniform = torch.zeros(3, 8)
    assert torch.allclose(M.entropy(uniform), torch.full((3,), 3.0))
    assert torch.allclose(M.entropy(uniform, unit="nats"), torch.full((3,), math.log(8)))
    certain = torch.tensor([1e4, 0.0, -1e4, float("-inf")])
    assert float(M.entropy(certain)) == pytest.approx(0.0, abs=1e-6)
    p = torch.tensor([0.5, 0.25, 0.25])
    assert float(M.entropy(p.log())) == pytest.approx(1.5)


def test_errors():
    with pytest.raises(ValueError, match="unit"):
        M.entropy(torch.zeros(3), unit="dits")
    with pytest.raises(ValueError, match="shape"):
        M.cross_entropy(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        M.cross_entropy(torch.zeros(2, 4), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="exactly one"):
        M.surprisal()
    with pytest.raises(ValueError, match="prob"):
        M.surprisal(1.5)
    with pytest.raises(ValueError, match="n_bytes"):
        M.bits_per_byte(1.0, 0)


@pytest.fixture(scope="module")
def tiny_gpt():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16)
    return GPT(cfg).eval()


def test_sliding_window_stride_equals_block_is_chunks(tiny_gpt):
    ids = torch.randint(11, (30,), generator=torch.Generator().manual_seed(0))
    ppl, nll, n = M.sliding_window_perplexity(tiny_gpt, ids, block_size=8, stride=8, return_nll=True)
    want_nll, want_n = 0.0, 0
    with torch.no_grad():
        for begin in range(0, 30, 8):
            chunk = ids[begin : begin + 8][None]
            logits, _ = tiny_gpt(chunk)
            want_nll += -float(M.sequence_log_prob(logits[:, :-1], chunk[:, 1:]).sum())
            want_n += chunk.shape[1] - 1
    assert n == want_n and math.isclose(nll, want_nll, rel_tol=1e-5)
    assert math.isclose(ppl, math.exp(want_nll / want_n), rel_tol=1e-5)


def test_sliding_window_scores_every_token_once(tiny_gpt):
    ids = torch.randint(11, (18,), generator=torch.Generator().manual_seed(1))
    for stride in (3, 7):
        _, nll, n = M.sliding_window_perplexity(tiny_gpt, ids, block_size=8, stride=stride, return_nll=True)
        assert n == 17
    # stride 1 = full context for every token: compare with token-by-token scoring
    _, nll1, _ = M.sliding_window_perplexity(tiny_gpt, ids, 8, 1, return_nll=True)
    want = 0.0
    with torch.no_grad():
        for p in range(1, 18):
            ctx = ids[max(0, p - 7) : p][None]
            logits, _ = tiny_gpt(ctx)
            want += -float(M.log_softmax(logits[0, -1])[ids[p]])
    assert math.isclose(nll1, want, rel_tol=1e-5)
    # a text that fits in one window is scored like a single forward pass
    short = ids[:8]
    with torch.no_grad():
        logits, _ = tiny_gpt(short[None])
    want_short = math.exp(float(M.cross_entropy(logits[0, :-1], short[1:])))
    assert math.isclose(M.sliding_window_perplexity(tiny_gpt, short, 8, 4), want_short, rel_tol=1e-5)
    with pytest.raises(ValueError, match="stride"):
        M.sliding_window_perplexity(tiny_gpt, ids, 8, 9)


def test_distinct_n():
    from lmcourse.metrics import distinct_n

    assert distinct_n(["abab"], 2) == pytest.approx(2 / 3)
    assert distinct_n([["a", "b"], ["a", "b"]], 2) == pytest.approx(0.5)
    assert distinct_n(["abcd"], 1) == 1.0
    assert distinct_n(["a"], 2) == 0.0
    with pytest.raises(ValueError):
        distinct_n(["ab"], 0)
    with pytest.raises(TypeError, match="n must be"):
        distinct_n(["ab"], 2.0)
