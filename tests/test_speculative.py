"""Tests of lmcourse.speculative: exactness of greedy output and of the sampled distribution.

Statistical tests use Pearson's chi-square goodness of fit at significance level
ALPHA = 0.001, with seeded generators (so they are deterministic). The statistic is
computed here; the critical value is the chi-square table value for df = 4
(18.467) or, for other df, the Wilson-Hilferty approximation
df * (1 - 2/(9 df) + z * sqrt(2/(9 df)))**3 with z = 3.0902 (the 0.999 normal quantile).
"""

from __future__ import annotations

import math

import pytest
import torch

from lmcourse.generate import generate
from lmcourse.model import GPT, GPTConfig
from lmcourse.sampling import SamplingConfig, process_logits
from lmcourse.speculative import (
    accept_or_resample,
    expected_tokens_per_round,
    speculative_generate,
    speed_report,
)

ALPHA = 0.001
Z_999 = 3.0902  # standard normal quantile at 1 - ALPHA
CHI2_CRIT_DF4 = 18.467  # chi-square critical value, df = 4, ALPHA = 0.001


def chi2_critical(df: int) -> float:
    """Critical value of chi-square(df) at ALPHA (Wilson-Hilferty approximation)."""
    if df == 4:
        return CHI2_CRIT_DF4
    a = 2 / (9 * df)
    return df * (1 - a + Z_999 * math.sqrt(a)) ** 3


def chi2_statistic(counts: torch.Tensor, probs: torch.Tensor) -> tuple[float, int]:
    """Pearson's statistic; cells with expected count < 5 are pooled into one. Returns (stat, df)."""
    n = float(counts.sum())
    expected = probs.double() * n
    small = expected < 5
    obs = counts.double()
    if small.any():
        obs = torch.cat([obs[~small], obs[small].sum().view(1)])
        expected = torch.cat([expected[~small], expected[small].sum().view(1)])
    assert float(obs[expected == 0].sum()) == 0  # nothing where the target has probability 0
    obs, expected = obs[expected > 0], expected[expected > 0]
    stat = float(((obs - expected) ** 2 / expected).sum())
    return stat, obs.numel() - 1


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run fastest on one thread


def tiny_gpt(
    seed: int, vocab: int = 50, scale: float = 1.0, n_layer: int = 2, tied: bool = True
) -> GPT:
    torch.manual_seed(seed)
    config = GPTConfig(
        vocab_size=vocab, block_size=48, n_layer=n_layer, n_head=2, n_embd=16, tie_weights=tied
    )
    model = GPT(config)
    with torch.no_grad():  # larger scale: peakier distributions
        (model.transformer.wte if tied else model.lm_head).weight.mul_(scale)
    return model.eval()


@torch.no_grad()
def greedy_reference(model: GPT, prompt: list[int], n: int, config: SamplingConfig) -> list[int]:
    """Plain greedy decoding: argmax of the processed logits, no cache."""
    seq = list(prompt)
    for _ in range(n):
        logits, _ = model(torch.tensor([seq]))
        seq.append(int(process_logits(logits[0, -1], config, seq).argmax()))
    return seq[len(prompt) :]


# ---- the acceptance rule -------------------------------------------------------------


def test_accept_or_resample_gives_target_distribution():
    p = torch.tensor([0.40, 0.25, 0.20, 0.10, 0.05])
    q = torch.tensor([0.10, 0.10, 0.30, 0.20, 0.30])
    g = torch.Generator().manual_seed(1234)
    N = 20000
    drafts = torch.multinomial(q, N, replacement=True, generator=g).tolist()
    counts = torch.zeros(5)
    rejected = 0
    for x in drafts:
        ok, token = accept_or_resample(p, q, x, g)
        counts[token] += 1
        rejected += not ok
        assert not ok or token == x
    stat, df = chi2_statistic(counts, p)
    assert df == 4
    assert stat < chi2_critical(df), f"chi2={stat:.2f} >= {chi2_critical(df)}"
    # P(reject) = total variation distance between p and q = 0.45
    tv = float((q - p).clamp(min=0).sum())
    assert abs(rejected / N - tv) < 4 * math.sqrt(tv * (1 - tv) / N)


def test_accept_or_resample_cases():
    p = torch.tensor([0.5, 0.5, 0.0])
    q = torch.tensor([0.2, 0.3, 0.5])
    assert accept_or_resample(p, q, 0) == (True, 0)  # p >= q: always accepted
    ok, token = accept_or_resample(p, q, 2)  # p = 0: always rejected, resampled where p > q
    assert not ok and token in (0, 1)
    one_hot = torch.tensor([0.0, 1.0, 0.0])
    assert accept_or_resample(one_hot, torch.tensor([1.0, 0.0, 0.0]), 0) == (False, 1)  # greedy
    with pytest.raises(ValueError, match="draft_token"):
        accept_or_resample(p, q, 3)
    with pytest.raises(ValueError, match="q\\[draft_token\\]"):
        accept_or_resample(p, torch.tensor([0.0, 1.0, 0.0]), 0)
    with pytest.raises(ValueError, match="shape"):
        accept_or_resample(p, q[:2], 0)


# ---- greedy: exactly the target's greedy output --------------------------------------


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize(
    "config", [SamplingConfig(temperature=0), SamplingConfig(temperature=0, repetition_penalty=1.5)]
)
def test_greedy_equals_target_greedy(k, config):
    target, draft = tiny_gpt(0, scale=20), tiny_gpt(1, scale=20, n_layer=1)
    prompt = [3, 14, 15]
    n = 25
    out = speculative_generate(target, draft, prompt, n, num_draft_tokens=k, sampling=config)
    assert out.tokens == greedy_reference(target, prompt, n, config)
    assert out.tokens == generate(target, prompt, n, sampling=config).new_tokens[0]
    assert 0.0 <= out.acceptance_rate < 1.0  # the draft really gets rejected sometimes
    assert out.num_drafted > 0
    assert out.target_forward_passes == out.rounds < n  # one target pass per round


def test_draft_equal_to_target_accepts_everything():
    target = tiny_gpt(0, scale=20)
    out = speculative_generate(
        target, target, [1, 2], 21, num_draft_tokens=4, sampling=SamplingConfig(temperature=0)
    )
    assert out.acceptance_rate == 1.0
    assert len(out.tokens) == 21
    assert out.target_forward_passes == math.ceil(21 / 5)  # k + 1 tokens per pass
    report = speed_report(out, draft_cost=0.0)
    assert report["tokens_per_target_pass"] == pytest.approx(21 / 5)


def test_eos_stops_generation():
    target, draft = tiny_gpt(0, scale=20), tiny_gpt(1, scale=20, n_layer=1)
    full = greedy_reference(target, [3, 14, 15], 20, SamplingConfig(temperature=0))
    eos = full[6]
    out = speculative_generate(
        target, draft, [3, 14, 15], 20, num_draft_tokens=3,
        sampling=SamplingConfig(temperature=0), eos_token_id=eos,
    )
    assert out.tokens == full[: full.index(eos) + 1]


# ---- sampling: the target's distribution ---------------------------------------------


@pytest.mark.parametrize(
    "config, seed",
    [(SamplingConfig(), 0), (SamplingConfig(temperature=0.7, top_k=4), 1)],
)
def test_sampled_tokens_follow_target_distribution(config, seed):
    """Joint law of the first two generated tokens (k = 1: the first one is a checked draft
    token, the second a resample-free bonus or the token after a resample) vs exact target."""
    V = 6
    # untied random LM heads: target and draft disagree (acceptance well below 1)
    target = tiny_gpt(10 + seed, vocab=V, scale=40, tied=False)
    draft = tiny_gpt(20 + seed, vocab=V, scale=40, tied=False)
    prompt = [2]

    # exact target probabilities of (t1, t2)
    def dist(seq: list[int]) -> torch.Tensor:
        with torch.no_grad():
            logits, _ = target(torch.tensor([seq]))
        return torch.softmax(process_logits(logits[0, -1], config, seq), dim=-1)

    p1 = dist(prompt)
    joint = torch.stack([p1[a] * dist(prompt + [a]) for a in range(V)]).reshape(-1)  # (V*V,)

    g = torch.Generator().manual_seed(seed)
    N = 1200
    counts = torch.zeros(V * V)
    accepted = drafted = 0
    for _ in range(N):
        out = speculative_generate(target, draft, prompt, 2, num_draft_tokens=1, sampling=config, generator=g)
        counts[out.tokens[0] * V + out.tokens[1]] += 1
        accepted += out.num_accepted
        drafted += out.num_drafted
    assert 0.2 < accepted / drafted < 0.95  # both branches (accept and resample) are exercised
    stat, df = chi2_statistic(counts, joint)
    assert stat < chi2_critical(df), f"chi2={stat:.2f} >= {chi2_critical(df):.2f} (df={df})"


def test_argument_validation():
    target, draft = tiny_gpt(0), tiny_gpt(1, vocab=40)
    with pytest.raises(ValueError, match="2 prompts"):  # a (2, T) tensor is never flattened
        speculative_generate(target, target, torch.tensor([[1, 2], [3, 4]]), 5)
    with pytest.raises(TypeError, match="prompt_ids"):
        speculative_generate(target, target, [1.5], 5)
    with pytest.raises(TypeError, match="max_new_tokens"):
        speculative_generate(target, target, [1], "5")
    with pytest.raises(ValueError, match="eos_token_id"):
        speculative_generate(target, target, [1], 5, eos_token_id=50)
    with pytest.raises(TypeError, match="draft"):
        speculative_generate(target, "draft", [1], 5)
    with pytest.raises(TypeError, match="generator"):
        speculative_generate(target, target, [1], 5, generator=1)
    with pytest.raises(ValueError, match="vocab_size"):
        speculative_generate(target, draft, [1], 5)
    with pytest.raises(ValueError, match="max_new_tokens"):
        speculative_generate(target, target, [1], 0)
    with pytest.raises(ValueError, match="num_draft_tokens"):
        speculative_generate(target, target, [1], 5, num_draft_tokens=0)
    with pytest.raises(ValueError, match="block_size"):
        speculative_generate(target, target, [1] * 40, 20)
    with pytest.raises(ValueError, match="prompt_ids"):
        speculative_generate(target, target, [], 5)
    with pytest.raises(ValueError, match="draft_cost"):
        speed_report(speculative_generate(target, target, [1], 3), draft_cost=2.0)


def test_prompt_forms_and_eval_mode():
    target, draft = tiny_gpt(0, scale=20), tiny_gpt(1, scale=20, n_layer=1)
    greedy = SamplingConfig(temperature=0)
    ref = speculative_generate(target, draft, [3, 14, 15], 10, sampling=greedy).tokens
    assert speculative_generate(target, draft, torch.tensor([[3, 14, 15]]), 10, sampling=greedy).tokens == ref
    assert speculative_generate(target, draft, (3, 14, 15), 10, sampling=greedy).tokens == ref
    # models with dropout, left in training mode: run in eval mode, then restored
    noisy_t, noisy_d = (GPT(GPTConfig(**{**m.config.to_dict(), "dropout": 0.5})) for m in (target, draft))
    noisy_t.load_state_dict(target.state_dict())
    noisy_d.load_state_dict(draft.state_dict())
    noisy_t.train(), noisy_d.train()
    assert speculative_generate(noisy_t, noisy_d, [3, 14, 15], 10, sampling=greedy).tokens == ref
    assert noisy_t.training and noisy_d.training


def test_seeded_sampling_is_reproducible():
    target, draft = tiny_gpt(0, scale=3), tiny_gpt(1, scale=3, n_layer=1)
    cfg = SamplingConfig(temperature=0.9, top_p=0.9)
    runs = [speculative_generate(target, draft, [1, 2], 20, 3, cfg, torch.Generator().manual_seed(s)) for s in (7, 7, 8)]
    assert runs[0] == runs[1] and runs[0].tokens != runs[2].tokens


@pytest.mark.parametrize("alpha, k", [(0.3, 1), (0.8, 4), (0.6, 6)])
def test_expected_tokens_per_round_matches_simulation(alpha, k):
    """Simulate rounds: each draft accepted independently with probability alpha, the round
    ends at the first rejection and adds one token (resample or bonus)."""
    g = torch.Generator().manual_seed(0)
    N = 20000
    accepted = (torch.rand(N, k, generator=g) < alpha).int().cumprod(dim=1).sum(dim=1)  # (N,)
    tokens = (accepted + 1).double()
    stderr = float(tokens.std()) / math.sqrt(N)
    assert abs(float(tokens.mean()) - expected_tokens_per_round(alpha, k)) < 4 * stderr
    assert expected_tokens_per_round(1.0, k) == k + 1 and expected_tokens_per_round(0.0, k) == 1.0
    with pytest.raises(ValueError, match="alpha"):
        expected_tokens_per_round(1.5, k)
    with pytest.raises(ValueError, match="k"):
        expected_tokens_per_round(alpha, -1)
