# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-1", "locked": true, "schema_version": 3, "solution": false}
# # HW6: Decoding
#
# A language model gives a distribution over the next token; a *decoding strategy* turns it
# into text. In this homework you rebuild the strategies of
# [Chapter 8, *Decoding strategies*](https://lmcourse-org.github.io/lmcourse/book/08_decoding.html) and, as a bonus, the
# acceptance rule of speculative decoding from
# [Chapter 11, *Fast inference*](https://lmcourse-org.github.io/lmcourse/book/11_fast_inference.html):
#
# 1. `apply_temperature(logits, temperature)` (1 point);
# 2. `top_k_filter(logits, k)` (2 points);
# 3. `top_p_filter(logits, p)`, the nucleus rule of Hugging Face `transformers` (3 points);
# 4. `apply_repetition_penalty(logits, previous_ids, penalty)` (2 points);
# 5. `beam_search(model, prompt_ids, num_beams, max_new_tokens, length_penalty, eos_token_id)`
#    (4 points);
# 6. **bonus**: `accept_or_resample(p, q, draft_token, generator)` (2 points; your instructor
#    may count them as extra credit).
#
# Open this notebook on Colab: [https://colab.research.google.com/github/lmcourse-org/lmcourse/blob/main/assignments/hw6_decoding/hw6_decoding.ipynb](https://colab.research.google.com/github/lmcourse-org/lmcourse/blob/main/assignments/hw6_decoding/hw6_decoding.ipynb).
#
# Write your code between the `# YOUR CODE HERE` lines only and do not edit the test cells.
# Every filter takes logits of shape `(..., V)` and returns **new** logits of the same shape
# and dtype in which removed tokens are `-inf` (so softmax gives them probability 0) and kept
# tokens are unchanged. Each test cell shows some checks; more (hidden) checks run when the
# homework is graded, on other shapes, dtypes and seeds, **with the `lmcourse` reference
# disabled**: calling it (or `transformers`) instead of writing the code scores 0. Run all
# cells (*Runtime / Run all*) before you submit; the last cell prints a summary.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false} tags=["setup"]
# The course setup cell (SETUP_CELL of scripts/new_chapter.py) is put here by scripts/build_homework.py.

# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false}
import math

import torch

VISIBLE_TESTS = {}  # name -> function re-run by the summary cell at the end


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-2", "locked": true, "schema_version": 3, "solution": false}
# ## 1. Temperature
#
# Dividing the logits by a temperature $\tau > 0$ gives
# $p_i \propto \exp(z_i / \tau)$: $\tau < 1$ sharpens the distribution, $\tau > 1$ flattens
# it, and $\tau \to 0$ tends to greedy decoding. $\tau = 0$ itself is not a division (it is
# the argmax), so a temperature that is not $> 0$ must raise a `ValueError` whose message
# names `temperature`.

# %% nbgrader={"grade": false, "grade_id": "temperature", "locked": false, "schema_version": 3, "solution": true}
def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """(..., V) logits divided by temperature > 0; ValueError naming `temperature` otherwise."""
    ### BEGIN SOLUTION
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    return logits / temperature
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_temperature", "locked": true, "points": 1, "schema_version": 3, "solution": false}
import lmcourse.sampling as ref
from lmcourse.grading import check_tensor


def _logits(seed, *shape, dtype=torch.float32, scale=3.0):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_temperature_visible():
    z = _logits(0, 2, 7)
    for t in (0.5, 1.0, 2.0):  # exact: one division
        check_tensor("apply_temperature", apply_temperature(z, t), ref.apply_temperature(z, t), 0, 0, on=f"temperature={t}")
    hot, cold = torch.softmax(apply_temperature(z, 5.0), -1), torch.softmax(apply_temperature(z, 0.2), -1)
    assert bool((hot.amax(-1) < cold.amax(-1)).all()), "a higher temperature must flatten the distribution"
    try:
        apply_temperature(z, 0.0)
    except ValueError as e:
        assert "temperature" in str(e), f"the error message should name `temperature`: {e}"
    else:
        raise AssertionError("apply_temperature(logits, 0.0) must raise ValueError")
    return True


VISIBLE_TESTS["apply_temperature"] = test_temperature_visible
### BEGIN HIDDEN TESTS
_cases = [(_logits(1, 5), 0.7), (_logits(2, 3, 4, 11, dtype=torch.float64), 1.3), (_logits(3, 1, 65), 1e-3)]
_got = [apply_temperature(z, t) for z, t in _cases]
_raised = 0
for _bad in (-1.0, 0):
    try:
        apply_temperature(_cases[0][0], _bad)
    except ValueError:
        _raised += 1
for (z, t), g in zip(_cases, _got):
    check_tensor("apply_temperature", g, ref.apply_temperature(z, t), 0, 0, on=f"shape {tuple(z.shape)}, {z.dtype}, temperature={t}")
assert _raised == 2, "temperature -1.0 and 0 must both raise ValueError"
### END HIDDEN TESTS
assert test_temperature_visible()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-3", "locked": true, "schema_version": 3, "solution": false}
# ## 2. Top-k
#
# Keep the $k$ most likely tokens and remove the rest. Precisely: keep every token whose
# logit is **greater than or equal to** the $k$-th largest logit of its row (so tokens tied
# with the $k$-th are all kept, as in `transformers`); a $k$ larger than the vocabulary keeps
# everything; $k < 1$ raises a `ValueError` naming `k`. Rows are independent.

# %% nbgrader={"grade": false, "grade_id": "top_k", "locked": false, "schema_version": 3, "solution": true}
def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """(..., V) logits with every token below the k-th largest of its row set to -inf."""
    ### BEGIN SOLUTION
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k!r}")
    k = min(k, logits.size(-1))
    kth = logits.sort(dim=-1, descending=True).values[..., k - 1 : k]  # (..., 1)
    return torch.where(logits >= kth, logits, torch.full_like(logits, float("-inf")))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_top_k", "locked": true, "points": 2, "schema_version": 3, "solution": false}
def test_top_k_visible():
    z = _logits(0, 3, 10)
    for k in (1, 3, 10):
        check_tensor("top_k_filter", top_k_filter(z, k), ref.top_k_filter(z, k), 0, 0, on=f"seed 0, (3, 10), k={k}")
    kept = torch.isfinite(top_k_filter(z, 4)).sum(-1)
    assert kept.tolist() == [4, 4, 4], f"k=4 must keep 4 tokens per row, kept {kept.tolist()}"
    tied = torch.tensor([[1.0, 3.0, 2.0, 3.0, 0.5]])
    check_tensor("top_k_filter", top_k_filter(tied, 1), ref.top_k_filter(tied, 1), 0, 0, on="ties: [1, 3, 2, 3, 0.5], k=1 keeps both 3s")
    return True


VISIBLE_TESTS["top_k_filter"] = test_top_k_visible
### BEGIN HIDDEN TESTS
_cases = [
    (_logits(4, 65), 5),
    (_logits(5, 2, 3, 12, dtype=torch.float64), 4),
    (_logits(6, 4, 9), 50),
    (torch.tensor([[2.0, 2.0, 2.0, 1.0], [0.0, -1.0, -1.0, -1.0]]), 2),
]
_got = [top_k_filter(z, k) for z, k in _cases]
try:
    top_k_filter(_cases[0][0], 0)
    _raised = False
except ValueError:
    _raised = True
for (z, k), g in zip(_cases, _got):
    check_tensor("top_k_filter", g, ref.top_k_filter(z, k), 0, 0, on=f"shape {tuple(z.shape)}, {z.dtype}, k={k}")
assert _raised, "k=0 must raise ValueError"
### END HIDDEN TESTS
assert test_top_k_visible()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-4", "locked": true, "schema_version": 3, "solution": false}
# ## 3. Top-p (nucleus)
#
# Keep the smallest set of most likely tokens whose probability mass reaches $p$
# (Holtzman et al. 2020). Implement exactly the rule of Hugging Face `transformers`, which
# decides ties and the token that crosses the threshold:
#
# 1. `probs = softmax(logits)`; sort each row in **ascending** order with
#    `torch.sort(..., stable=True)` (tied tokens keep their vocabulary order);
# 2. accumulate the sorted probabilities (`cumsum`);
# 3. **remove** every token whose cumulative probability is `<= 1 - p` (the unlikely tail
#    that holds at most $1 - p$ of the mass). The token at which the sum crosses $1 - p$ is
#    therefore kept, and the most likely token is always kept (force it);
# 4. scatter the decision back to vocabulary order and set removed logits to `-inf`.
#
# $p$ must be in $(0, 1]$ (a `ValueError` naming `p` otherwise); $p = 1$ keeps everything.

# %% nbgrader={"grade": false, "grade_id": "top_p", "locked": false, "schema_version": 3, "solution": true}
def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """(..., V) logits with the tail of cumulative probability <= 1 - p set to -inf."""
    ### BEGIN SOLUTION
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {p!r}")
    probs = torch.softmax(logits, dim=-1)
    sorted_probs, order = torch.sort(probs, dim=-1, stable=True)  # ascending
    remove_sorted = sorted_probs.cumsum(dim=-1) <= 1 - p
    remove_sorted[..., -1] = False  # the most likely token always stays
    remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_top_p", "locked": true, "points": 3, "schema_version": 3, "solution": false}
def test_top_p_visible():
    z = _logits(0, 4, 12)
    for p in (0.5, 0.9, 1.0):
        check_tensor("top_p_filter", top_p_filter(z, p), ref.top_p_filter(z, p), 0, 0, on=f"seed 0, (4, 12), p={p}")
    # probabilities 0.5, 0.3, 0.15, 0.05 and p = 0.75: the tail 0.05 + 0.15 = 0.2 <= 0.25 goes,
    # 0.3 crosses 0.25 and stays
    z2 = torch.log(torch.tensor([0.15, 0.5, 0.05, 0.3]))
    check_tensor("top_p_filter", top_p_filter(z2, 0.75), ref.top_p_filter(z2, 0.75), 0, 0, on="probs [0.15, 0.5, 0.05, 0.3], p=0.75")
    kept = torch.isfinite(top_p_filter(z2, 0.01))
    assert kept.tolist() == [False, True, False, False], f"a tiny p keeps only the top token, kept {kept.tolist()}"
    return True


VISIBLE_TESTS["top_p_filter"] = test_top_p_visible
### BEGIN HIDDEN TESTS
_cases = [
    (_logits(7, 65, scale=2.0), 0.8),
    (_logits(8, 2, 3, 10, dtype=torch.float64), 0.6),
    (torch.log(torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.2, 0.5]])), 0.6),  # ties at the cut
    (_logits(9, 5, 7, scale=0.1), 0.3),  # nearly flat rows
    # exact boundaries: uniform rows, so the cumulative sum equals 1 - p exactly at a token
    # (`<=` removes that token, `<` keeps it), and tied tokens go in vocabulary order
    (torch.zeros(2, 4), 0.75),
    (torch.zeros(3, 8, dtype=torch.float64), 0.5),
    (torch.tensor([[0.0, 0.0, math.log(2.0), -math.inf]]), 0.75),  # probs 1/4, 1/4, 1/2, 0
]
_got = [top_p_filter(z, p) for z, p in _cases]
_raised = 0
for _bad in (0.0, 1.5):
    try:
        top_p_filter(_cases[0][0], _bad)
    except ValueError:
        _raised += 1
for (z, p), g in zip(_cases, _got):
    check_tensor("top_p_filter", g, ref.top_p_filter(z, p), 0, 0, on=f"shape {tuple(z.shape)}, {z.dtype}, p={p}")
assert _raised == 2, "p=0 and p=1.5 must raise ValueError"
### END HIDDEN TESTS
assert test_top_p_visible()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-5", "locked": true, "schema_version": 3, "solution": false}
# ## 4. Repetition penalty
#
# The CTRL penalty (Keskar et al. 2019) makes every token that already appeared less likely:
# for each token id in `previous_ids[b]` (counted once, however often it appeared), a
# positive logit is **divided** by `penalty` and a negative one **multiplied** by it, so the
# token always moves down when `penalty > 1`. `logits` has shape `(B, V)`, `previous_ids`
# is a `(B, S)` LongTensor; negative ids are padding and ignored. `penalty` must be `> 0`
# (a `ValueError` naming `penalty` otherwise).

# %% nbgrader={"grade": false, "grade_id": "repetition_penalty", "locked": false, "schema_version": 3, "solution": true}
def apply_repetition_penalty(logits: torch.Tensor, previous_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """(B, V) logits with tokens seen in previous_ids (B, S) penalised (CTRL rule)."""
    ### BEGIN SOLUTION
    if not penalty > 0:
        raise ValueError(f"penalty must be > 0, got {penalty!r}")
    out = logits.clone()
    for b in range(logits.size(0)):
        for t in set(previous_ids[b].tolist()):
            if t < 0:
                continue
            x = out[b, t]
            out[b, t] = x * penalty if x < 0 else x / penalty
    return out
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_repetition_penalty", "locked": true, "points": 2, "schema_version": 3, "solution": false}
def test_repetition_penalty_visible():
    z = _logits(0, 2, 8)
    prev = torch.tensor([[1, 1, 5], [0, 7, -1]])
    for pen in (1.0, 1.3, 0.8):
        check_tensor("apply_repetition_penalty", apply_repetition_penalty(z, prev, pen),
                     ref.apply_repetition_penalty(z, prev, pen), 1e-6, 1e-6, on=f"seed 0, prev {prev.tolist()}, penalty={pen}")
    out = apply_repetition_penalty(z, prev, 2.0)
    assert bool((out[0, 1] < z[0, 1]) and (out[1, 7] < z[1, 7])), "seen tokens must move down when penalty > 1"
    assert torch.equal(out[0, 2], z[0, 2]), "unseen tokens must not change"
    return True


VISIBLE_TESTS["apply_repetition_penalty"] = test_repetition_penalty_visible
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(11)
_cases = [
    (_logits(12, 3, 65), torch.randint(65, (3, 20), generator=_g), 1.2),
    (_logits(13, 2, 9, dtype=torch.float64), torch.tensor([[3, 3, 3, -1], [8, 0, -1, -1]]), 1.5),
    (torch.tensor([[0.0, -2.0, 2.0, 1.0]]), torch.tensor([[0, 1, 2]]), 4.0),
]
_got = [apply_repetition_penalty(z, prev, pen) for z, prev, pen in _cases]
try:
    apply_repetition_penalty(_cases[0][0], _cases[0][1], 0.0)
    _raised = False
except ValueError:
    _raised = True
for (z, prev, pen), g in zip(_cases, _got):
    check_tensor("apply_repetition_penalty", g, ref.apply_repetition_penalty(z, prev, pen), 1e-6, 1e-6,
                 on=f"shape {tuple(z.shape)}, {z.dtype}, penalty={pen}")
assert _raised, "penalty=0 must raise ValueError"
### END HIDDEN TESTS
assert test_repetition_penalty_visible()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-6", "locked": true, "schema_version": 3, "solution": false}
# ## 5. Beam search with a length penalty
#
# Beam search keeps the `num_beams` ($N$) most likely partial sequences instead of one.
# Implement the algorithm of `transformers` (and of `lmcourse.beam`), so that your best
# sequence and score equal the reference's. Scores are sums of log-probabilities
# (`torch.log_softmax` of the last position's logits, in float32). At every step
# $s = 1, 2, \dots$ (the number of generated tokens after the step):
#
# 1. every running beam proposes every token; a candidate's score is the beam's score plus
#    the token's log-probability. At the first step there is one running beam (the prompt);
# 2. keep the $2N$ best candidates, best first;
# 3. walk through them in order: a candidate that **finished** (its token is
#    `eos_token_id`, or $s$ = `max_new_tokens`) becomes a *hypothesis* with the
#    length-normalised score $\text{score} / s^{\,\text{length\_penalty}}$, but only if it
#    is among the $N$ best candidates (rank $< N$); an unfinished candidate becomes a running
#    beam while there are fewer than $N$;
# 4. keep the $N$ best hypotheses;
# 5. stop after the step at $s$ = `max_new_tokens`, or as soon as there are $N$ hypotheses
#    and the best running beam's normalised score (its score $/ s^{\text{length\_penalty}}$)
#    is **not greater** than the worst hypothesis' score.
#
# Return `(sequence, score)` of the best hypothesis: the prompt followed by the generated
# tokens (ending with EOS when it finished with it) as a list of ints, and its normalised
# score as a float. `model(idx)` with `idx` of shape `(n, t)` returns `(logits, loss)`,
# logits of shape `(n, t, V)`; run it without gradients (`torch.no_grad()`); you do not need a
# KV cache. `length_penalty > 0` favours longer hypotheses, `< 0` shorter ones.

# %% nbgrader={"grade": false, "grade_id": "beam_search", "locked": false, "schema_version": 3, "solution": true}
@torch.no_grad()
def beam_search(model, prompt_ids, num_beams, max_new_tokens, length_penalty=1.0, eos_token_id=None):
    """Best (sequence, normalised score) of beam search over `model` from `prompt_ids` (list of ints)."""
    ### BEGIN SOLUTION
    N = num_beams
    running = [(0.0, list(prompt_ids))]  # (sum of log-probs, tokens)
    hypotheses = []  # (normalised score, tokens), best first
    for s in range(1, max_new_tokens + 1):
        batch = torch.tensor([seq for _, seq in running])  # (n, t)
        logits, _ = model(batch)
        logp = torch.log_softmax(logits[:, -1, :].float(), dim=-1)  # (n, V)
        candidates = [
            (score + float(logp[i, tok]), seq + [tok])
            for i, (score, seq) in enumerate(running)
            for tok in range(logp.size(1))
        ]
        candidates.sort(key=lambda c: c[0], reverse=True)
        next_running = []
        for rank, (score, seq) in enumerate(candidates[: 2 * N]):
            if s == max_new_tokens or seq[-1] == eos_token_id:
                if rank < N:
                    hypotheses.append((score / s**length_penalty, seq))
            elif len(next_running) < N:
                next_running.append((score, seq))
        hypotheses = sorted(hypotheses, key=lambda h: h[0], reverse=True)[:N]
        if s == max_new_tokens:
            break
        running = next_running
        if len(hypotheses) == N and running[0][0] / s**length_penalty <= hypotheses[-1][0]:
            break
    score, seq = hypotheses[0]
    return seq, score
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_beam_search", "locked": true, "points": 4, "schema_version": 3, "solution": false} lmcourse={"allow": ["lmcourse.model"]}
import lmcourse.beam as ref_beam
import lmcourse.model as ref_model


def _tiny_gpt(seed, vocab_size=9, n_layer=1):
    """A seeded tiny GPT with large random weights (peaked, tie-free distributions)."""
    torch.manual_seed(seed)
    model = ref_model.GPT(ref_model.GPTConfig(vocab_size=vocab_size, block_size=32, n_layer=n_layer,
                                              n_head=2, n_embd=16, dropout=0.0))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.4, generator=torch.Generator().manual_seed(seed + p.numel()))
    return model.eval()


def _check_beam(model, prompt, n, m, lp, eos, desc):
    got = beam_search(model, prompt, n, m, lp, eos)
    exp = ref_beam.beam_search(model, prompt, n, m, length_penalty=lp, eos_token_id=eos)
    assert isinstance(got, tuple) and len(got) == 2, f"return (sequence, score), got {type(got).__name__}"
    seq, score = got
    assert isinstance(seq, list) and all(type(t) is int for t in seq), "the sequence must be a list of ints"
    assert seq == exp.sequences[0], f"{desc}: expected the best sequence {exp.sequences[0]}, got {seq}"
    check_float("score", score, exp.scores[0], 1e-4, 1e-4, on=desc)


from lmcourse.grading import check_float  # noqa: E402


def test_beam_search_visible():
    m = _tiny_gpt(0)
    _check_beam(m, [1, 2], 1, 6, 1.0, None, "1 beam (greedy), 6 new tokens, no EOS")
    _check_beam(m, [3], 3, 5, 1.0, 0, "3 beams, 5 new tokens, EOS=0, length_penalty=1")
    _check_beam(m, [4, 4, 1], 2, 7, 0.0, 2, "2 beams, 7 new tokens, EOS=2, length_penalty=0")
    return True


VISIBLE_TESTS["beam_search"] = test_beam_search_visible
### BEGIN HIDDEN TESTS
_runs = [  # (model seed, layers, V, prompt, beams, new tokens, length penalty, eos)
    (21, 1, 9, [5], 4, 8, 1.0, 3),
    (22, 2, 11, [1, 0, 2], 3, 6, 2.0, 7),
    (23, 1, 8, [2, 6], 2, 9, -0.5, 1),
    (24, 2, 10, [9], 4, 4, 1.0, None),
]
_models = {seed: _tiny_gpt(seed, V, L) for seed, L, V, *_ in _runs}
_got = [beam_search(_models[s], pr, n, m, lp, eos) for s, L, V, pr, n, m, lp, eos in _runs]
for (s, L, V, pr, n, m, lp, eos), (seq, score) in zip(_runs, _got):
    exp = ref_beam.beam_search(_models[s], pr, n, m, length_penalty=lp, eos_token_id=eos)
    desc = f"model seed {s}, V={V}, prompt {pr}, {n} beams, {m} new, length_penalty={lp}, eos={eos}"
    assert type(seq) is list and seq == exp.sequences[0], f"{desc}: expected {exp.sequences[0]}, got {seq}"
    check_float("score", score, exp.scores[0], 1e-4, 1e-4, on=desc)
### END HIDDEN TESTS
assert test_beam_search_visible()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-7", "locked": true, "schema_version": 3, "solution": false}
# ## 6. Bonus: the speculative-decoding acceptance rule
#
# A cheap draft model proposed token $x$, sampled from its distribution $q$; the target
# model's distribution is $p$ (both vectors of shape `(V,)` summing to 1). Accept $x$ with
# probability $\min(1, p(x)/q(x))$ (draw one uniform number from `generator`); on rejection,
# return a token drawn from the residual distribution
# $\operatorname{normalise}(\max(0, p - q))$. The returned token is then distributed
# **exactly** as $p$ (Leviathan et al. 2023; Chen et al. 2023), which is what makes
# speculative decoding lossless.
#
# Return `(accepted, token)`: a bool and an int. The tests draw thousands of proposals
# with a fixed seed and compare the distribution of your tokens with $p$ (total variation
# distance below 0.03) and the acceptance rate with $\sum_x \min(p(x), q(x))$.

# %% nbgrader={"grade": false, "grade_id": "accept_or_resample", "locked": false, "schema_version": 3, "solution": true}
def accept_or_resample(p: torch.Tensor, q: torch.Tensor, draft_token: int, generator=None):
    """(accepted, token): accept draft_token with prob min(1, p/q), else sample normalise(max(0, p - q))."""
    ### BEGIN SOLUTION
    px, qx = float(p[draft_token]), float(q[draft_token])
    if float(torch.rand((), generator=generator)) < min(1.0, px / qx):
        return True, int(draft_token)
    residual = (p - q).clamp(min=0)
    return False, int(torch.multinomial(residual / residual.sum(), 1, generator=generator))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_accept_or_resample", "locked": true, "points": 2, "schema_version": 3, "solution": false}
from lmcourse.grading import call_many


def _speculate(p, q, n, seed):
    """Run n proposals x ~ q through accept_or_resample; (token counts, acceptance rate)."""
    g = torch.Generator().manual_seed(seed)
    drafts = torch.multinomial(q, n, replacement=True, generator=g).tolist()
    counts, accepted = torch.zeros(p.numel(), dtype=torch.float64), 0
    for x, (ok, tok) in zip(drafts, call_many(accept_or_resample, [((p, q, x, g), {}) for x in drafts])):
        assert type(tok) is int and isinstance(ok, bool), "return (bool, int)"
        assert ok == (tok == x) or not ok, "an accepted draft returns the draft token"
        counts[tok] += 1
        accepted += int(ok)
    return counts / n, accepted / n


def _tv(a, b):
    return 0.5 * float((a - b.double()).abs().sum())


def test_accept_or_resample_visible():
    p = torch.tensor([0.5, 0.2, 0.2, 0.1])
    q = torch.tensor([0.1, 0.1, 0.3, 0.5])
    freq, rate = _speculate(p, q, 4000, seed=0)
    # 4000 draws with a fixed seed: a correct rule lands within 0.03 (total variation) of p
    # (about 0.01 expected from sampling noise); wrong rules are 0.1 or more away
    assert _tv(freq, p) < 0.03, f"tokens must be distributed as p={p.tolist()}, got {freq.tolist()}"
    expected_rate = float(torch.minimum(p, q).sum())
    assert abs(rate - expected_rate) < 0.03, f"acceptance rate should be sum(min(p, q)) = {expected_rate:.3f}, got {rate:.3f}"
    ok, tok = accept_or_resample(p, p, 2, torch.Generator().manual_seed(1))
    assert ok and tok == 2, "when p == q every draft is accepted"
    return True


VISIBLE_TESTS["accept_or_resample (bonus)"] = test_accept_or_resample_visible
### BEGIN HIDDEN TESTS
_pairs = [
    (torch.tensor([0.05, 0.05, 0.3, 0.6]), torch.tensor([0.4, 0.4, 0.1, 0.1]), 3),
    (torch.softmax(torch.randn(8, generator=torch.Generator().manual_seed(5)) * 2, -1),
     torch.softmax(torch.randn(8, generator=torch.Generator().manual_seed(6)) * 2, -1), 4),
    (torch.tensor([0.0, 0.5, 0.5]), torch.tensor([0.6, 0.2, 0.2]), 7),  # p(0) = 0: never accept token 0
]
_res = [_speculate(p, q, 4000, seed) for p, q, seed in _pairs]
_zero = call_many(accept_or_resample, [((_pairs[2][0], _pairs[2][1], 0, torch.Generator().manual_seed(i)), {}) for i in range(200)])
_always = [ok for ok, _ in call_many(accept_or_resample, [((_pairs[0][0], _pairs[0][1], 3, torch.Generator().manual_seed(i)), {}) for i in range(200)])]
for (p, q, seed), (freq, rate) in zip(_pairs, _res):
    assert _tv(freq, p) < 0.03, f"p={p.tolist()}, q={q.tolist()}: tokens must follow p, got {freq.tolist()}"
    assert abs(rate - float(torch.minimum(p, q).sum())) < 0.03, f"acceptance rate {rate:.3f} for p={p.tolist()}, q={q.tolist()}"
assert all(not ok and tok in (1, 2) for ok, tok in _zero), "a draft the target gives probability 0 must be rejected and resampled from the residual"
assert all(_always), "a draft with p(x) >= q(x) must always be accepted"
### END HIDDEN TESTS
assert test_accept_or_resample_visible()

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-8", "locked": true, "schema_version": 3, "solution": false}
# ## Summary
#
# The cell below re-runs every visible test. When everything passes, save the notebook and
# submit it (on Colab: *File / Download / Download .ipynb*, then upload it to the course LMS).

# %% nbgrader={"grade": false, "grade_id": "summary", "locked": true, "schema_version": 3, "solution": false}
# Run every visible test again and print a summary (hidden tests run only when graded).
_results = {}
for _name, _test in VISIBLE_TESTS.items():
    try:
        _test()
        _results[_name] = "passed"
    except NotImplementedError:
        _results[_name] = "not implemented yet"
    except Exception as _e:  # noqa: BLE001 - report any failure
        _results[_name] = f"FAILED: {type(_e).__name__}: {_e}"
for _name, _r in _results.items():
    print(f"{_name:32s} {_r}")
_n = sum(r == "passed" for r in _results.values())
print(f"{_n}/{len(_results)} visible test groups passed; hidden tests run when the homework is graded.")
