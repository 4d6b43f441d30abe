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
# [Chapter 8, *Decoding strategies*](https://lmcourse-org.github.io/lmcourse/book/08_decoding.html) and
# speculative decoding from
# [Chapter 11, *Fast inference*](https://lmcourse-org.github.io/lmcourse/book/11_fast_inference.html):
#
# 1. `apply_temperature(logits, temperature)` (1 point);
# 2. `top_k_filter(logits, k)` (2 points);
# 3. `top_p_filter(logits, p)`, the nucleus rule (3 points);
# 4. `apply_repetition_penalty(logits, previous_ids, penalty)` (2 points);
# 5. `beam_search(model, prompt_ids, num_beams, max_new_tokens, length_penalty, eos_token_id)`,
#    the textbook algorithm stated in part 5 (4 points);
# 6. **bonus**: `accept_or_resample(p, q, draft_token, generator)`, the acceptance rule of
#    speculative decoding (2 points; your instructor may count them as extra credit);
# 7. `speculative_generate(target, draft, prompt_ids, max_new_tokens, k, temperature, generator)`,
#    the full speculative-decoding loop (4 points; it may use your part 6).
#
# Open this notebook on Colab: [https://colab.research.google.com/github/lmcourse-org/lmcourse/blob/main/assignments/hw6_decoding/hw6_decoding.ipynb](https://colab.research.google.com/github/lmcourse-org/lmcourse/blob/main/assignments/hw6_decoding/hw6_decoding.ipynb).
#
# Write your code between the `# YOUR CODE HERE` lines only and do not edit the test cells.
# Every filter takes logits of shape `(..., V)` and returns **new** logits of the same shape
# and dtype in which removed tokens are `-inf` (so softmax gives them probability 0) and kept
# tokens are unchanged; no function may change its inputs (tensors, lists, models) in place.
#
# **Forbidden while graded** (every part): the references `lmcourse.sampling`,
# `lmcourse.beam`, `lmcourse.speculative`, `lmcourse.generate` (and every other `lmcourse`
# module except the one named below) and `transformers` are not installed, so importing
# them fails and the part scores 0. No PyTorch operator is disabled.
#
# **Available while graded:** torch, numpy, the Python standard library, tqdm and
# matplotlib, your own functions from the earlier parts, and `lmcourse.model` in parts 5 and
# 7 (the test models are `lmcourse` GPTs).
#
# Each test cell is split into named checks, each worth part of the cell's points; it shows
# some checks, and more (hidden) checks run when the homework is graded, on other shapes,
# dtypes, models and seeds. Floating-point results are compared within tolerances that fit
# the dtype (stated in each part), so `logits * (1 / T)` is as good as `logits / T`. Run all
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
# Tolerances (one rounding of a division or of a multiplication by 1 / T):
# float32 atol=1e-6, rtol=1e-6; float64 atol=1e-12, rtol=1e-12.
import lmcourse.sampling as ref
from lmcourse.grading import call_many, check, check_float, check_tensor, checks_done, run_visible

TOL = {torch.float32: (1e-6, 1e-6), torch.float64: (1e-12, 1e-12)}  # (atol, rtol)


def _logits(seed, *shape, dtype=torch.float32, scale=3.0):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _temperature_values():
    z = _logits(0, 2, 7)
    for t in (0.5, 1.0, 2.0):
        check_tensor("apply_temperature", apply_temperature(z, t), ref.apply_temperature(z, t), *TOL[z.dtype], on=f"temperature={t}")
    hot, cold = torch.softmax(apply_temperature(z, 5.0), -1), torch.softmax(apply_temperature(z, 0.2), -1)
    assert bool((hot.amax(-1) < cold.amax(-1)).all()), "a higher temperature must flatten the distribution"
    return True


def _temperature_errors():
    z = _logits(0, 2, 7)
    try:
        apply_temperature(z, 0.0)
    except ValueError as e:
        assert "temperature" in str(e), f"the error message should name `temperature`: {e}"
    else:
        raise AssertionError("apply_temperature(logits, 0.0) must raise ValueError")
    return True


_VISIBLE = {"values and flattening (visible)": (0.25, _temperature_values), "temperature 0 raises (visible)": (0.25, _temperature_errors)}
run_visible(_VISIBLE, VISIBLE_TESTS, "apply_temperature")
### BEGIN HIDDEN TESTS
with check("other shapes, float64, tiny temperature", 0.3):
    for z, t in [(_logits(1, 5), 0.7), (_logits(2, 3, 4, 11, dtype=torch.float64), 1.3), (_logits(3, 1, 65), 1e-3)]:
        z0 = z.clone()
        check_tensor("apply_temperature", apply_temperature(z, t), ref.apply_temperature(z0, t), *TOL[z.dtype],
                     on=f"shape {tuple(z.shape)}, {z.dtype}, temperature={t}")
with check("negative and zero temperatures raise ValueError", 0.2):
    _z = _logits(1, 5)  # and a valid temperature works (an answer that always raises earns nothing here)
    check_tensor("apply_temperature", apply_temperature(_z, 2.0), ref.apply_temperature(_z.clone(), 2.0), *TOL[_z.dtype])
    for _bad in (-1.0, 0):
        try:
            apply_temperature(_logits(1, 5), _bad)
        except ValueError:
            continue
        raise AssertionError(f"temperature {_bad} must raise ValueError")
### END HIDDEN TESTS
checks_done()


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
# Exact comparison: top-k only selects (kept logits are copied, removed ones are -inf).
def _top_k_values():
    z = _logits(0, 3, 10)
    for k in (1, 3, 10):
        check_tensor("top_k_filter", top_k_filter(z, k), ref.top_k_filter(z, k), 0, 0, on=f"seed 0, (3, 10), k={k}")
    kept = torch.isfinite(top_k_filter(z, 4)).sum(-1)
    assert kept.tolist() == [4, 4, 4], f"k=4 must keep 4 tokens per row, kept {kept.tolist()}"
    return True


def _top_k_ties():
    tied = torch.tensor([[1.0, 3.0, 2.0, 3.0, 0.5]])
    check_tensor("top_k_filter", top_k_filter(tied, 1), ref.top_k_filter(tied, 1), 0, 0, on="ties: [1, 3, 2, 3, 0.5], k=1 keeps both 3s")
    return True


_VISIBLE = {"values for k = 1, 3, 10 (visible)": (0.5, _top_k_values), "ties with the k-th are kept (visible)": (0.25, _top_k_ties)}
run_visible(_VISIBLE, VISIBLE_TESTS, "top_k_filter")
### BEGIN HIDDEN TESTS
with check("other shapes and float64", 0.5):
    for z, k in [(_logits(4, 65), 5), (_logits(5, 2, 3, 12, dtype=torch.float64), 4)]:
        check_tensor("top_k_filter", top_k_filter(z, k), ref.top_k_filter(z, k), 0, 0, on=f"shape {tuple(z.shape)}, {z.dtype}, k={k}")
with check("k larger than the vocabulary", 0.25):
    z = _logits(6, 4, 9)
    check_tensor("top_k_filter", top_k_filter(z, 50), ref.top_k_filter(z, 50), 0, 0, on="k > V")
with check("ties at the k-th logit", 0.25):
    z = torch.tensor([[2.0, 2.0, 2.0, 1.0], [0.0, -1.0, -1.0, -1.0]])
    check_tensor("top_k_filter", top_k_filter(z, 2), ref.top_k_filter(z, 2), 0, 0, on="ties")
with check("k = 0 raises ValueError", 0.25):
    _z = _logits(4, 65)  # and a valid k works
    check_tensor("top_k_filter", top_k_filter(_z, 3), ref.top_k_filter(_z.clone(), 3), 0, 0)
    try:
        top_k_filter(_logits(4, 65), 0)
    except ValueError:
        pass
    else:
        raise AssertionError("k=0 must raise ValueError")
### END HIDDEN TESTS
checks_done()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-4", "locked": true, "schema_version": 3, "solution": false}
# ## 3. Top-p (nucleus)
#
# Keep the smallest set of most likely tokens whose probability mass reaches $p$
# (Holtzman et al. 2020; Chapter 8). Precisely, with `probs = softmax(logits)` per row, the
# set $K$ of kept tokens is right when
#
# 1. **no more likely token is removed:** every token whose logit is strictly greater than
#    the smallest kept logit is kept;
# 2. **the kept mass reaches $p$:** $\sum_{i \in K} \text{probs}_i \ge p$;
# 3. **$K$ is minimal:** without its least likely token, the mass of $K$ is below $p$.
#
# Tokens tied at the cut (equal logits) may be kept in any way that satisfies 1–3: with
# probabilities `[0.1, 0.2, 0.2, 0.5]` and $p = 0.6$ you keep 0.5 and **either** 0.2. The
# tests check exactly these properties, with masses computed in float64 and compared up to
# `1e-5` for float32 logits (`1e-10` for float64), so a mass that equals $p$ up to rounding
# counts as reaching it. Two correct ways: sort descending and keep each token while the mass
# *before* it is below $p$; or the rule of Hugging Face `transformers` (sort ascending, remove
# every token whose cumulative probability is $\le 1 - p$, always keep the most likely one).
# $p$ must be in $(0, 1]$ (a `ValueError` naming `p` otherwise); $p = 1$ keeps every token.

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
def nucleus_problem(logits, p, out):
    """Why `out` is not a valid top-p filtering of `logits` (rules 1-3 of the text), or None."""
    if type(out) is not torch.Tensor:
        return f"expected a torch.Tensor, got {type(out).__name__}"
    if tuple(out.shape) != tuple(logits.shape) or out.dtype != logits.dtype:
        return f"expected shape {tuple(logits.shape)} and dtype {logits.dtype}, got {tuple(out.shape)} and {out.dtype}"
    eps = 1e-10 if logits.dtype == torch.float64 else 1e-5
    z, o = logits.reshape(-1, logits.size(-1)), torch.Tensor.detach(out).reshape(-1, logits.size(-1))
    probs = torch.softmax(z.double(), dim=-1)
    for r in range(z.size(0)):
        kept = (o[r] != float("-inf")) & (z[r] != float("-inf"))
        if not torch.equal(o[r][kept], z[r][kept]) or bool((o[r][~kept] != float("-inf")).any()):
            return f"row {r}: kept logits must be unchanged and removed ones -inf"
        if not bool(kept.any()):
            return f"row {r}: no token kept"
        cut = z[r][kept].min()
        if bool(((z[r] > cut) & ~kept).any()):
            return f"row {r}: a token more likely than a kept token was removed (rule 1)"
        mass = float(probs[r][kept].sum())
        if mass < p - eps:
            return f"row {r}: kept mass {mass:.6f} is below p={p} (rule 2)"
        if mass - float(probs[r][kept].min()) >= p + eps:
            return f"row {r}: not minimal, the kept mass reaches p={p} without its least likely token (rule 3)"
        if p == 1.0 and bool(((z[r] != float("-inf")) & ~kept).any()):
            return f"row {r}: p=1 must keep every token"
    return None


def _check_nucleus(z, p, on):
    problem = nucleus_problem(z, p, top_p_filter(z, p))
    assert problem is None, f"top_p_filter (on input {on}): {problem}"


def _top_p_values():
    z = _logits(0, 4, 12)
    for p in (0.5, 0.9, 1.0):
        _check_nucleus(z, p, f"seed 0, (4, 12), p={p}")
    # probabilities 0.5, 0.3, 0.15, 0.05 and p = 0.75: 0.5 + 0.3 reaches it
    z2 = torch.log(torch.tensor([0.15, 0.5, 0.05, 0.3]))
    kept = torch.isfinite(top_p_filter(z2, 0.75))
    assert kept.tolist() == [False, True, False, True], f"p=0.75 on [0.15, 0.5, 0.05, 0.3] keeps 0.5 and 0.3, kept {kept.tolist()}"
    kept = torch.isfinite(top_p_filter(z2, 0.01))
    assert kept.tolist() == [False, True, False, False], f"a tiny p keeps only the top token, kept {kept.tolist()}"
    return True


def _top_p_ties():
    z = torch.log(torch.tensor([[0.1, 0.2, 0.2, 0.5]]))
    _check_nucleus(z, 0.6, "probs [0.1, 0.2, 0.2, 0.5], p=0.6: 0.5 and either 0.2")
    return True


def _top_p_errors():
    _z = _logits(0, 4, 12)  # a valid p works (an answer that always raises earns nothing here)
    assert isinstance(top_p_filter(_z, 0.5), torch.Tensor), "top_p_filter(logits, 0.5) must return a tensor"
    for bad in (0.0, 1.5):
        try:
            top_p_filter(_logits(0, 4, 12), bad)
        except ValueError as e:
            assert "p" in str(e), f"the error message should name `p`: {e}"
        else:
            raise AssertionError(f"p={bad} must raise ValueError")
    return True


_VISIBLE = {"a valid nucleus, p = 0.5, 0.9, 1 (visible)": (0.5, _top_p_values),
            "ties at the cut (visible)": (0.5, _top_p_ties), "p outside (0, 1] raises (visible)": (0.25, _top_p_errors)}
run_visible(_VISIBLE, VISIBLE_TESTS, "top_p_filter")
### BEGIN HIDDEN TESTS
with check("other shapes and float64", 0.5):
    _check_nucleus(_logits(7, 65, scale=2.0), 0.8, "(65,), p=0.8")
    _check_nucleus(_logits(8, 2, 3, 10, dtype=torch.float64), 0.6, "(2, 3, 10) float64, p=0.6")
    _check_nucleus(_logits(9, 5, 7, scale=0.1), 0.3, "nearly flat rows, p=0.3")
with check("ties at the cut, several rows", 0.75):
    _check_nucleus(torch.log(torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.2, 0.5], [0.3, 0.1, 0.3, 0.3]])), 0.6, "ties")
    _check_nucleus(torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.0, 2.0]], dtype=torch.float64), 0.5, "four tied tokens, float64")
with check("mass exactly p at a token", 0.25):
    _check_nucleus(torch.zeros(2, 4), 0.75, "uniform over 4, p=0.75")
    _check_nucleus(torch.zeros(3, 8, dtype=torch.float64), 0.5, "uniform over 8 float64, p=0.5")
    _check_nucleus(torch.tensor([[0.0, 0.0, math.log(2.0), -math.inf]]), 0.75, "probs 1/4, 1/4, 1/2, 0")
with check("p = 1 and a tiny p", 0.25):
    _check_nucleus(_logits(10, 3, 9, dtype=torch.float64), 1.0, "(3, 9) float64, p=1")
    _check_nucleus(_logits(11, 2, 30), 1e-6, "(2, 30), p=1e-6")
### END HIDDEN TESTS
checks_done()


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
# Tolerances as for the temperature (multiplying by 1 / penalty is as good as dividing).
def _penalty_values():
    z = _logits(0, 2, 8)
    prev = torch.tensor([[1, 1, 5], [0, 7, -1]])
    for pen in (1.0, 1.3, 0.8):
        check_tensor("apply_repetition_penalty", apply_repetition_penalty(z, prev, pen),
                     ref.apply_repetition_penalty(z, prev, pen), *TOL[z.dtype], on=f"seed 0, prev {prev.tolist()}, penalty={pen}")
    return True


def _penalty_direction():
    z = _logits(0, 2, 8)
    prev = torch.tensor([[1, 1, 5], [0, 7, -1]])
    out = apply_repetition_penalty(z, prev, 2.0)
    assert bool((out[0, 1] < z[0, 1]) and (out[1, 7] < z[1, 7])), "seen tokens must move down when penalty > 1"
    assert torch.equal(out[0, 2], z[0, 2]), "unseen tokens must not change"
    return True


_VISIBLE = {"values at three penalties (visible)": (0.5, _penalty_values), "seen tokens move down, others stay (visible)": (0.25, _penalty_direction)}
run_visible(_VISIBLE, VISIBLE_TESTS, "apply_repetition_penalty")
### BEGIN HIDDEN TESTS
with check("long histories, float64, repeated ids and padding", 0.75):
    _g = torch.Generator().manual_seed(11)
    for z, prev, pen in [
        (_logits(12, 3, 65), torch.randint(65, (3, 20), generator=_g), 1.2),
        (_logits(13, 2, 9, dtype=torch.float64), torch.tensor([[3, 3, 3, -1], [8, 0, -1, -1]]), 1.5),
    ]:
        check_tensor("apply_repetition_penalty", apply_repetition_penalty(z, prev, pen), ref.apply_repetition_penalty(z, prev, pen),
                     *TOL[z.dtype], on=f"shape {tuple(z.shape)}, {z.dtype}, penalty={pen}")
with check("zero, negative and positive logits", 0.25):
    z, prev = torch.tensor([[0.0, -2.0, 2.0, 1.0]]), torch.tensor([[0, 1, 2]])
    check_tensor("apply_repetition_penalty", apply_repetition_penalty(z, prev, 4.0), ref.apply_repetition_penalty(z, prev, 4.0), *TOL[z.dtype], on="signs")
with check("penalty 0 raises ValueError", 0.25):
    _z, _prev = _logits(12, 3, 65), torch.tensor([[1], [2], [3]])  # and a valid penalty works
    check_tensor("apply_repetition_penalty", apply_repetition_penalty(_z, _prev, 1.5),
                 ref.apply_repetition_penalty(_z.clone(), _prev, 1.5), *TOL[_z.dtype])
    try:
        apply_repetition_penalty(_logits(12, 3, 65), torch.tensor([[1], [2], [3]]), 0.0)
    except ValueError:
        pass
    else:
        raise AssertionError("penalty=0 must raise ValueError")
### END HIDDEN TESTS
checks_done()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-6", "locked": true, "schema_version": 3, "solution": false}
# ## 5. Beam search with a length penalty
#
# Beam search (Chapter 8) keeps the $N$ = `num_beams` best partial sequences instead of one.
# Implement the **textbook** algorithm (as in Jurafsky & Martin, *Speech and Language
# Processing*, chapter on machine translation), precisely:
#
# - A *beam* is a sequence (the prompt plus the tokens generated so far) with a **score**:
#   the sum of the log-probabilities of its generated tokens, each taken from
#   `log_softmax` of the model's logits at the last position (float32 or float64, as you
#   like: the tests allow `1e-4`).
# - Start with one running beam: the prompt, score 0. No hypothesis is finished yet.
# - At each step $s = 1, 2, \dots,$ `max_new_tokens`: every running beam proposes every
#   token of the vocabulary, and a candidate's score is its beam's score plus the token's
#   log-probability. Of all candidates keep the $W$ best, where $W = N - $ (the number of
#   finished hypotheses), so the beam narrows as hypotheses finish. A kept candidate whose
#   last token is `eos_token_id`, and at the last step $s$ = `max_new_tokens` every kept
#   candidate, is **finished**: it leaves the beam and becomes a hypothesis with the
#   length-normalised score $\text{score} / s^{\alpha}$, $\alpha$ = `length_penalty`
#   ($s$ counts its generated tokens, EOS included). The other kept candidates are the
#   running beams of the next step.
# - Stop when no beam is running, or after step `max_new_tokens`. There are then exactly
#   $N$ hypotheses.
#
# Return the $N$ hypotheses as a list of `(sequence, score)` pairs, **best normalised score
# first**: `sequence` is the prompt followed by the generated tokens (ending with EOS when it
# finished with it) as a list of ints, `score` its normalised score as a float.
# `eos_token_id=None` means no EOS. $N = 1$ is greedy decoding. The tests use $N \le V$ and
# random tiny models without ties between candidates. `model(idx)` with `idx` of shape
# `(n, t)` returns `(logits, loss)`, logits of shape `(n, t, V)`; run it without gradients
# (`torch.no_grad()`), do not change it, and you do not need a KV cache.
# $\alpha > 0$ favours longer hypotheses, $\alpha < 0$ shorter ones.

# %% nbgrader={"grade": false, "grade_id": "beam_search", "locked": false, "schema_version": 3, "solution": true}
@torch.no_grad()
def beam_search(model, prompt_ids, num_beams, max_new_tokens, length_penalty=1.0, eos_token_id=None):
    """The num_beams hypotheses [(sequence, normalised score), ...] of textbook beam search, best first."""
    ### BEGIN SOLUTION
    running = [(0.0, list(prompt_ids))]  # (sum of log-probs, tokens)
    hypotheses = []  # (tokens, normalised score)
    for s in range(1, max_new_tokens + 1):
        logits, _ = model(torch.tensor([seq for _, seq in running]))  # (n, t, V)
        logp = torch.log_softmax(logits[:, -1, :].double(), dim=-1)  # (n, V)
        candidates = [
            (score + float(logp[i, tok]), seq + [tok])
            for i, (score, seq) in enumerate(running)
            for tok in range(logp.size(1))
        ]
        candidates.sort(key=lambda c: c[0], reverse=True)
        running = []
        for score, seq in candidates[: num_beams - len(hypotheses)]:
            if seq[-1] == eos_token_id or s == max_new_tokens:
                hypotheses.append((seq, score / s**length_penalty))
            else:
                running.append((score, seq))
        if not running:
            break
    return sorted(hypotheses, key=lambda h: h[1], reverse=True)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_beam_search", "locked": true, "points": 4, "schema_version": 3, "solution": false} lmcourse={"allow": ["lmcourse.model"]}
import copy

import lmcourse.model as ref_model


def _tiny_gpt(seed, vocab_size=9, n_layer=1, std=0.4, block_size=32, n_head=2, n_embd=16):
    """A seeded tiny GPT with large random weights (peaked, tie-free distributions)."""
    torch.manual_seed(seed)
    model = ref_model.GPT(ref_model.GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer,
                                              n_head=n_head, n_embd=n_embd, dropout=0.0))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, std, generator=torch.Generator().manual_seed(seed + p.numel()))
    return model.eval()


@torch.no_grad()
def _model_score(model, prompt, seq, length_penalty):
    """log P(seq[len(prompt):] | prompt) / (number of generated tokens) ** length_penalty, float64."""
    logp = torch.log_softmax(model(torch.tensor([seq]))[0][0].double(), dim=-1)  # (t, V)
    n = len(seq) - len(prompt)
    return sum(float(logp[t - 1, seq[t]]) for t in range(len(prompt), len(seq))) / n**length_penalty


def _beam_problem(model, prompt, n, m, lp, eos, desc, expected):
    """Run the student's beam search; None if right, else what is wrong. `expected` is the
    list of hypotheses' sequences, best first, that the specification gives."""
    pristine = copy.deepcopy(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    got = beam_search(model, list(prompt), n, m, lp, eos)
    after = model.state_dict()
    if any(not torch.equal(before[k], after[k]) for k in before):
        return f"{desc}: beam_search changed the model's weights"
    if not isinstance(got, list) or len(got) != n or not all(isinstance(h, tuple) and len(h) == 2 for h in got):
        return f"{desc}: expected a list of {n} (sequence, score) pairs"
    for seq, score in got:
        if not isinstance(seq, list) or not all(type(t) is int for t in seq) or seq[: len(prompt)] != list(prompt):
            return f"{desc}: each sequence must be a list of ints starting with the prompt"
        if not isinstance(score, float) or abs(score - _model_score(pristine, prompt, seq, lp)) > 1e-4 * (1 + abs(score)):
            return f"{desc}: a hypothesis' score is not its log-probability / length ** length_penalty"
    if any(a[1] < b[1] for a, b in zip(got, got[1:])):
        return f"{desc}: hypotheses must come best first"
    if [s for s, _ in got] != expected:
        return f"{desc}: expected the hypotheses {expected}, got {[s for s, _ in got]}"
    return None


def _check_beams(runs):
    for args in runs:
        problem = _beam_problem(*args)
        assert problem is None, problem


def _beam_greedy():
    m = _tiny_gpt(0)
    prompt, seq = [1, 2], [1, 2]
    with torch.no_grad():
        for _ in range(6):
            seq.append(int(m(torch.tensor([seq]))[0][0, -1].argmax()))
    got = beam_search(m, prompt, 1, 6, 1.0, None)
    assert isinstance(got, list) and len(got) == 1 and got[0][0] == seq, f"1 beam must be greedy decoding {seq}, got {got}"
    return True


def _beam_visible():
    m = _tiny_gpt(0)
    # the hypotheses the specification gives on these two runs (checked by the reference)
    _check_beams([(m, [3], 3, 5, 1.0, 7, "3 beams, 5 new tokens, EOS=7, length_penalty=1",
                   [[3, 3, 3, 7], [3, 3, 7], [3, 7]]),
                  (m, [4, 4, 1], 2, 7, 0.0, 2, "2 beams, 7 new tokens, EOS=2, length_penalty=0",
                   [[4, 4, 1, 7, 7, 7, 7, 7, 7, 7], [4, 4, 1, 7, 7, 7, 7, 3, 7, 7]])])
    return True


_VISIBLE = {"one beam is greedy decoding (visible)": (0.5, _beam_greedy), "the specification on two runs (visible)": (1, _beam_visible)}
run_visible(_VISIBLE, VISIBLE_TESTS, "beam_search")
### BEGIN HIDDEN TESTS
@torch.no_grad()
def textbook_beam_search(model, prompt_ids, num_beams, max_new_tokens, length_penalty=1.0, eos_token_id=None):
    """The specification of part 5, in float64: [(sequence, normalised score), ...], best first."""
    running, finished = [(0.0, list(prompt_ids))], []
    for s in range(1, max_new_tokens + 1):
        logp = torch.log_softmax(model(torch.tensor([seq for _, seq in running]))[0][:, -1].double(), dim=-1)
        candidates = sorted(((score + float(logp[i, t]), seq + [t]) for i, (score, seq) in enumerate(running)
                             for t in range(logp.size(1))), key=lambda c: -c[0])
        kept = candidates[: num_beams - len(finished)]
        done = [seq[-1] == eos_token_id or s == max_new_tokens for _, seq in kept]
        finished += [(seq, score / s**length_penalty) for (score, seq), d in zip(kept, done) if d]
        running = [c for c, d in zip(kept, done) if not d]
        if not running:
            break
    return sorted(finished, key=lambda h: -h[1])




def _with_reference(runs):
    """Add the reference's hypotheses (computed on a copy, before the student's call) to each run."""
    return [(*r, [s for s, _ in textbook_beam_search(copy.deepcopy(r[0]), *r[1:6])]) for r in runs]


assert [s for s, _ in textbook_beam_search(_tiny_gpt(0), [3], 3, 5, 1.0, 7)] == [[3, 3, 3, 7], [3, 3, 7], [3, 7]]
_models = {s: _tiny_gpt(s, V, L) for s, L, V in [(21, 1, 9), (22, 2, 11), (23, 1, 8), (24, 2, 10), (25, 1, 6)]}
with check("frequent EOS, several beams", 0.75):
    _check_beams(_with_reference([(_models[21], [5], 4, 8, 1.0, 1, "4 beams, 8 new, EOS frequent"),
                  (_models[25], [0], 5, 6, 1.0, 1, "5 beams, 6 new, V=6")]))
with check("length penalty 2 and -0.5", 0.75):
    _check_beams(_with_reference([(_models[22], [1, 0, 2], 3, 6, 2.0, 10, "3 beams, length_penalty=2"),
                  (_models[23], [2, 6], 2, 9, -0.5, 2, "2 beams, length_penalty=-0.5")]))
with check("no EOS: every hypothesis has max_new_tokens tokens", 0.5):
    _check_beams(_with_reference([(_models[24], [9], 4, 4, 1.0, None, "4 beams, no EOS")]))
with check("the model is left unchanged (and the search is right)", 0.5):
    _m = _tiny_gpt(26, 7)
    _before = {k: v.clone() for k, v in _m.state_dict().items()}
    _runs = _with_reference([(_m, [2], 3, 4, 1.0, 0, "3 beams, 4 new")])
    _check_beams(_runs)
    assert all(torch.equal(_before[k], v) for k, v in _m.state_dict().items()), "beam_search changed the model's weights"
### END HIDDEN TESTS
checks_done()


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
# Return `(accepted, token)`: a bool and an int. The tests draw 2000 proposals per pair
# $(p, q)$ with a fixed seed and compare the distribution of your tokens with $p$ (total
# variation distance below the bound $\tau$ of part 7, about 0.07) and the acceptance rate
# with $\sum_x \min(p(x), q(x))$ (within $\sqrt{\ln(2 \cdot 10^4)/(2n)} \approx 0.05$, Hoeffding's
# bound); a correct rule fails either with probability below $10^{-4}$, whatever order you
# draw your random numbers in.

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
def _speculate(p, q, n, seed):
    """Run n proposals x ~ q through accept_or_resample; (token counts, acceptance rate)."""
    g = torch.Generator().manual_seed(seed)
    drafts = torch.multinomial(q, n, replacement=True, generator=g).tolist()
    counts, accepted = torch.zeros(p.numel(), dtype=torch.float64), 0
    for x, (ok, tok) in zip(drafts, call_many(accept_or_resample, [((p, q, x, g), {}) for x in drafts])):
        assert type(tok) is int and isinstance(ok, bool), "return (bool, int)"
        assert tok == x or not ok, "an accepted draft returns the draft token"
        counts[tok] += 1
        accepted += int(ok)
    return counts / n, accepted / n


def _tv(a, b):
    return 0.5 * float((a - b.double()).abs().sum())


def tv_threshold(probs, n, delta=1e-4):
    """A bound that the total variation distance between n exact samples' frequencies and
    `probs` exceeds with probability below `delta`: the bound on its expectation,
    0.5 * sum(sqrt(p (1 - p) / n)), plus McDiarmid's deviation sqrt(ln(1 / delta) / (2 n))."""
    return 0.5 * sum(math.sqrt(x * (1 - x) / n) for x in probs) + math.sqrt(math.log(1 / delta) / (2 * n))


def _check_rule(p, q, seed, n=2000):
    freq, rate = _speculate(p, q, n, seed)
    # a correct rule fails either assertion with probability below 1e-4 (fixed seed: deterministic);
    # wrong rules (always accepting, resampling from p) are 0.15 or more away
    tau = tv_threshold(p.tolist(), n)
    assert _tv(freq, p) < tau, f"tokens must be distributed as p={p.tolist()}, got {freq.tolist()} (total variation above {tau:.3f})"
    expected_rate = float(torch.minimum(p, q).sum())
    tol = math.sqrt(math.log(2e4) / (2 * n))  # Hoeffding, probability below 1e-4
    assert abs(rate - expected_rate) < tol, f"acceptance rate should be sum(min(p, q)) = {expected_rate:.3f}, got {rate:.3f}"


def _rule_visible():
    _check_rule(torch.tensor([0.5, 0.2, 0.2, 0.1]), torch.tensor([0.1, 0.1, 0.3, 0.5]), 0)
    return True


def _rule_same():
    ok, tok = accept_or_resample(torch.tensor([0.5, 0.2, 0.2, 0.1]), torch.tensor([0.5, 0.2, 0.2, 0.1]), 2, torch.Generator().manual_seed(1))
    assert ok and tok == 2, "when p == q every draft is accepted"
    return True


_VISIBLE = {"tokens follow p, acceptance rate (visible)": (0.5, _rule_visible), "p == q accepts (visible)": (0.25, _rule_same)}
run_visible(_VISIBLE, VISIBLE_TESTS, "accept_or_resample (bonus)")
### BEGIN HIDDEN TESTS
_pairs = [
    (torch.tensor([0.05, 0.05, 0.3, 0.6]), torch.tensor([0.4, 0.4, 0.1, 0.1]), 3),
    (torch.softmax(torch.randn(8, generator=torch.Generator().manual_seed(5)) * 2, -1),
     torch.softmax(torch.randn(8, generator=torch.Generator().manual_seed(6)) * 2, -1), 4),
    (torch.tensor([0.0, 0.5, 0.5]), torch.tensor([0.6, 0.2, 0.2]), 7),  # p(0) = 0: never accept token 0
]
with check("tokens follow p on three other pairs", 0.75):
    for p, q, seed in _pairs:
        _check_rule(p, q, seed)
with check("a draft of target probability 0 is resampled", 0.25):
    _zero = call_many(accept_or_resample, [((_pairs[2][0], _pairs[2][1], 0, torch.Generator().manual_seed(i)), {}) for i in range(200)])
    assert all(not ok and tok in (1, 2) for ok, tok in _zero), "a draft the target gives probability 0 must be rejected and resampled from the residual"
with check("a draft with p(x) >= q(x) is always accepted", 0.25):
    _always = [ok for ok, _ in call_many(accept_or_resample, [((_pairs[0][0], _pairs[0][1], 3, torch.Generator().manual_seed(i)), {}) for i in range(200)])]
    assert all(_always), "a draft with p(x) >= q(x) must always be accepted"
### END HIDDEN TESTS
checks_done()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-7b", "locked": true, "schema_version": 3, "solution": false}
# ## 7. The speculative-decoding loop
#
# Now the whole algorithm of Chapter 11 (Leviathan et al. 2023; Chen et al. 2023). Write
# `speculative_generate(target, draft, prompt_ids, max_new_tokens, k, temperature=1.0, generator=None)`.
# Both models are called like `model(idx)` with `idx` of shape `(1, t)` and return
# `(logits, loss)`, logits of shape `(1, t, V)`; run them without gradients and do not change
# them. With $T$ = `temperature`, a model's distribution at a position is
# `softmax(logits / T)`. One **round**, from the current sequence $x$ (prompt plus the tokens
# generated so far):
#
# 1. **draft** $k$ tokens one by one: $q_i$ = the draft's distribution after
#    $x, x_1, \dots, x_{i-1}$, and $x_i \sim q_i$ (drawn with `generator`);
# 2. **verify** with **one** forward pass of the target on $x, x_1, \dots, x_k$: its
#    distributions at the last $k + 1$ positions are $p_1, \dots, p_{k+1}$ ($p_i$ is the
#    target's distribution for the token $x_i$);
# 3. **accept or resample** for $i = 1, \dots, k$: accept $x_i$ with probability
#    $\min(1, p_i(x_i) / q_i(x_i))$; at the first rejection append a token drawn from
#    $\operatorname{normalise}(\max(0, p_i - q_i))$ and end the round (your part 6 does this);
# 4. **bonus**: if all $k$ drafts were accepted, append a token drawn from $p_{k+1}$.
#
# A round adds between 1 and $k + 1$ tokens and calls the target once. Stop when
# `max_new_tokens` tokens have been added (drop the extra tokens of the last round) and
# return the prompt followed by exactly `max_new_tokens` new tokens, as a list of ints.
# `temperature=0` means greedy: every distribution is one-hot at its argmax, so a draft is
# accepted exactly when it is the target's argmax, and the output equals greedy decoding of
# the target. The order in which you draw random numbers from `generator` is yours.
#
# **How it is checked.** The output must be distributed exactly as sampling from the target
# at temperature $T$. The tests run your loop many times (tiny models, a vocabulary of 3, a few
# new tokens, fixed seeds, so the result is deterministic), and compare the frequencies of the
# generated continuations with the target's exact probabilities $P$ (computed by enumerating
# all continuations): the total variation distance must be below
# $\tau = \tfrac12\sum_y \sqrt{P(y)(1 - P(y))/n} + \sqrt{\ln(10^4)/(2n)}$ for $n$ runs. The first
# term bounds the expected distance of $n$ exact samples, the second is McDiarmid's bound,
# so a correct loop fails with probability below $10^{-4}$; sampling from the draft instead
# of the target is many times farther. The tests also check that temperature 0 equals greedy
# decoding of the target, and that when the draft is the target itself (every draft accepted),
# `max_new_tokens` $= r(k + 1)$ takes exactly $r$ target calls (one pass per round, bonus
# tokens included).

# %% nbgrader={"grade": false, "grade_id": "speculative_generate", "locked": false, "schema_version": 3, "solution": true}
@torch.no_grad()
def speculative_generate(target, draft, prompt_ids, max_new_tokens, k, temperature=1.0, generator=None):
    """The prompt plus max_new_tokens tokens distributed as the target's samples, drafting k per round."""
    ### BEGIN SOLUTION
    def distribution(logits):  # (V,) -> (V,) probabilities at this temperature
        if temperature == 0:
            return torch.nn.functional.one_hot(logits.argmax(), logits.numel()).float()
        return torch.softmax(logits.float() / temperature, dim=-1)

    seq = list(prompt_ids)
    end = len(seq) + max_new_tokens
    while len(seq) < end:
        drafted, qs = [], []
        for _ in range(k):
            q = distribution(draft(torch.tensor([seq + drafted]))[0][0, -1])
            drafted.append(int(torch.multinomial(q, 1, generator=generator)))
            qs.append(q)
        rows = target(torch.tensor([seq + drafted]))[0][0, len(seq) - 1 :]  # (k + 1, V)
        ps = [distribution(row) for row in rows]
        n_accepted = 0
        for x, p, q in zip(drafted, ps, qs):
            accepted, token = accept_or_resample(p, q, x, generator)
            seq.append(token)
            if not accepted:
                break
            n_accepted += 1
        if n_accepted == k:  # every draft accepted: the bonus token, from p_{k+1}
            seq.append(int(torch.multinomial(ps[k], 1, generator=generator)))
    return seq[:end]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_speculative_generate", "locked": true, "points": 4, "schema_version": 3, "solution": false} lmcourse={"allow": ["lmcourse.model"]}
import itertools


def _small_gpt(seed, std=1.0, vocab_size=3):
    """A seeded tiny GPT over a vocabulary of 3 with distinct, not too peaked distributions."""
    return _tiny_gpt(seed, vocab_size, std=std, block_size=16, n_head=1, n_embd=8)  # _tiny_gpt: part 5's test


@torch.no_grad()
def _greedy(model, prompt, m):
    seq = list(prompt)
    for _ in range(m):
        seq.append(int(model(torch.tensor([seq]))[0][0, -1].argmax()))
    return seq


@torch.no_grad()
def exact_continuations(model, prompt, m, temperature):
    """{continuation (tuple of m ids): its probability under `model` at `temperature`}, float64."""
    conts = list(itertools.product(range(model.config.vocab_size), repeat=m))
    seqs = torch.tensor([list(prompt) + list(c) for c in conts])
    logp = torch.log_softmax(model(seqs)[0].double() / temperature, dim=-1)
    t0 = len(prompt) - 1
    total = sum(logp[:, t0 + j].gather(1, seqs[:, t0 + j + 1 : t0 + j + 2]).squeeze(1) for j in range(m))
    return {c: float(v) for c, v in zip(conts, total.exp())}


def _check_distribution(target, draft, prompt, m, k, temperature, n, seed):
    """n seeded runs: the TV distance to the target's exact distribution must be below tau."""
    P = exact_continuations(target, prompt, m, temperature)
    before = [{key: v.clone() for key, v in mod.state_dict().items()} for mod in (target, draft)]
    g = torch.Generator().manual_seed(seed)
    outs = call_many(speculative_generate, [((target, draft, list(prompt), m, k, temperature, g), {}) for _ in range(n)])
    for mod, sd in zip((target, draft), before):
        assert all(torch.equal(sd[key], v) for key, v in mod.state_dict().items()), "speculative_generate changed a model's weights"
    counts = {}
    for out in outs:
        assert isinstance(out, list) and len(out) == len(prompt) + m and out[: len(prompt)] == list(prompt), (
            f"return the prompt followed by exactly {m} new tokens, as a list of ints; got {out!r}")
        counts[tuple(out[len(prompt):])] = counts.get(tuple(out[len(prompt):]), 0) + 1
    assert set(counts) <= set(P), "generated a token outside the vocabulary"
    tv = 0.5 * sum(abs(counts.get(c, 0) / n - P[c]) for c in P)
    tau = tv_threshold(list(P.values()), n)
    assert tv < tau, (f"k={k}, temperature={temperature}: the generated continuations are {tv:.3f} (total variation) "
                      f"from the target's distribution; a correct loop is within {tau:.3f} with {n} runs")


class CountedModel:
    """Wraps a model and counts its calls (the test's view of how often your loop runs it)."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __call__(self, idx):
        self.calls += 1
        with torch.no_grad():
            return self.model(idx)


def _spec_greedy():
    t, d = _small_gpt(1, vocab_size=9), _small_gpt(2, vocab_size=9)
    for k, m in ((1, 5), (3, 8)):
        expected = _greedy(t, [0, 4], m)
        got = speculative_generate(t, d, [0, 4], m, k, 0.0, torch.Generator().manual_seed(0))
        assert got == expected, f"temperature 0, k={k}: expected greedy decoding of the target {expected}, got {got}"
    return True


def _spec_rounds():
    base = _small_gpt(1)
    t, d = CountedModel(base), CountedModel(base)
    out = speculative_generate(t, d, [0], 6, 2, 0.7, torch.Generator().manual_seed(0))
    assert isinstance(out, list) and len(out) == 7, f"expected the prompt and 6 new tokens, got {out!r}"
    assert t.calls == 2, f"the draft is the target, k=2, 6 new tokens: 2 rounds of 3 tokens, so 2 target calls; got {t.calls}"
    return True


def _spec_distribution():
    _check_distribution(_small_gpt(1, 0.4), _small_gpt(2, 0.4), [0], 2, 1, 1.0, 200, seed=0)
    return True


_VISIBLE = {"temperature 0 is greedy decoding of the target (visible)": (0.75, _spec_greedy),
            "one target pass per round, bonus token (visible)": (0.5, _spec_rounds),
            "the target's distribution, k=1, 2 new tokens (visible)": (0.75, _spec_distribution)}
run_visible(_VISIBLE, VISIBLE_TESTS, "speculative_generate")
### BEGIN HIDDEN TESTS
with check("temperature 0 on other models and k", 0.5):
    _t, _d = _small_gpt(31, vocab_size=7), _small_gpt(32, vocab_size=7)
    for _k, _m in ((2, 7), (4, 9)):
        _expected = _greedy(_t, [3], _m)
        _got = speculative_generate(_t, _d, [3], _m, _k, 0.0, torch.Generator().manual_seed(1))
        assert _got == _expected, f"temperature 0, k={_k}: expected greedy decoding of the target"
with check("k larger than max_new_tokens", 0.25):
    _t, _d = _small_gpt(31, vocab_size=7), _small_gpt(32, vocab_size=7)
    _expected = _greedy(_t, [3, 1], 2)
    _got = speculative_generate(_t, _d, [3, 1], 2, 5, 0.0, torch.Generator().manual_seed(2))
    assert _got == _expected, "k=5, 2 new tokens: expected exactly 2 greedy tokens"
with check("the target's distribution, k=2, 3 new tokens, temperature 0.6", 0.75):
    _check_distribution(_small_gpt(3, 0.6), _small_gpt(4, 0.6), [0], 3, 2, 0.6, 200, seed=1)
with check("the models are left unchanged (and the output is right)", 0.5):
    _t, _d = _small_gpt(5, vocab_size=7), _small_gpt(6, vocab_size=7)
    _before = [{key: v.clone() for key, v in mod.state_dict().items()} for mod in (_t, _d)]
    _expected = _greedy(_t, [1], 4)
    assert speculative_generate(_t, _d, [1], 4, 2, 0.0, torch.Generator().manual_seed(3)) == _expected, (
        "temperature 0: expected greedy decoding of the target")
    for _mod, _sd in zip((_t, _d), _before):
        assert all(torch.equal(_sd[key], v) for key, v in _mod.state_dict().items()), "speculative_generate changed a model's weights"
### END HIDDEN TESTS
checks_done()
