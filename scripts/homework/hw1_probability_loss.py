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
# # HW1: Probability & loss
#
# Open this notebook on Colab: <https://colab.research.google.com/github/lmcourse-org/lmcourse/blob/main/assignments/hw1_probability_loss/hw1_probability_loss.ipynb>
#
# Everything a language model reports about itself (how likely a text is, its training loss,
# its perplexity, how unsure it is) is computed from its **logits** by a handful of small
# functions. In this homework you write them yourself, following
# [Chapter 1, *Language modeling and the chain rule*](https://lmcourse-org.github.io/lmcourse/book/01_chain_rule.html) and
# [Chapter 3, *Logits, softmax and information*](https://lmcourse-org.github.io/lmcourse/book/03_logits_softmax.html):
#
# 1. `log_softmax(logits, dim)`: a numerically stable log-softmax (2 points);
# 2. `sequence_log_prob(logits, ids)`: the log-probability of a sequence by the chain rule (2 points);
# 3. `cross_entropy(logits, targets, ignore_index)`: the training loss, with padding (2 points);
# 4. `perplexity(logits, targets, ignore_index)`: the exponentiated loss (1 point);
# 5. `entropy(logits, dim)`: the uncertainty of a next-token distribution, in bits (2 points);
# 6. `surprisal(p)`: the information in one outcome, in bits (1 point).
#
# Write your code between the `# YOUR CODE HERE` lines only and do not edit the test cells.
# Each test cell is split into named checks, each worth part of the cell's points; it shows
# some checks, and more (hidden) checks run when the homework is graded, on other shapes,
# dtypes, seeds and edge cases.
#
# **Forbidden while graded** (every part): the module `lmcourse.metrics` is not installed,
# and these PyTorch operators are disabled, so a call that reaches them raises a
# `RuntimeError` and the check scores 0: `aten::log_softmax`, `aten::_log_softmax`,
# `aten::special_log_softmax` (`F.log_softmax`, `torch.log_softmax`, `Tensor.log_softmax`),
# `aten::cross_entropy_loss`, `aten::nll_loss`, `aten::nll_loss_nd`, `aten::nll_loss2d`,
# `aten::nll_loss_forward` (`F.cross_entropy`, `F.nll_loss`), `aten::logsumexp`,
# `aten::special_logsumexp` (`torch.logsumexp`, `Tensor.logsumexp`) and `aten::special_entr`
# (`torch.special.entr`). They still work in your own notebook, where the visible tests cannot
# tell, so do not use them.
#
# **Available while graded:** torch (everything else: `amax`, `exp`, `log`, `sum`,
# `gather`, `torch.where`, `torch.softmax`, ...), numpy, the Python standard library, tqdm and
# matplotlib, and your own functions from the earlier parts. Run all cells
# (*Runtime / Run all*) before you submit; the last cell prints a summary.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false} tags=["setup"]
# The course setup cell (SETUP_CELL of scripts/new_chapter.py) is put here by scripts/build_homework.py.

# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false}
import math

import torch

VISIBLE_TESTS = {}  # name -> function re-run by the summary cell at the end


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-2", "locked": true, "schema_version": 3, "solution": false}
# ## 1. A numerically stable log-softmax
#
# The softmax turns a vector of logits $z \in \mathbb{R}^V$ into probabilities,
# $p_i = e^{z_i} / \sum_j e^{z_j}$, and its logarithm is
# $\log p_i = z_i - \log \sum_j e^{z_j}$. Written like that it breaks on real logits: in
# float32, $e^{z}$ overflows to `inf` for $z$ above about 88 and underflows to 0 below about
# $-104$, giving `inf - inf = nan` or `log 0 = -inf`. The cure (Chapter 3) uses the fact that
# adding a constant $c$ to every logit changes nothing:
#
# $$\log p_i = (z_i - m) - \log \sum_j e^{z_j - m}, \qquad m = \max_j z_j .$$
#
# Now the largest exponent is $e^0 = 1$, so nothing overflows and the sum is at least 1.
#
# Write `log_softmax(logits, dim=-1)` for a tensor of any shape, normalising along `dim`.
# It must return a tensor of the same shape and dtype, agree with `torch.nn.functional.log_softmax`
# (float32: within `atol=1e-5, rtol=1e-5`; float64: within `atol=1e-12, rtol=1e-10`; for huge
# logits `atol` grows to four roundings at the logits' magnitude, $4\,\varepsilon \max|z|$, so
# computing `z - m - log(sum(exp(z - m)))` in any order passes), and stay
# finite for logits as large as $\pm 10^4$. Some entries may be `-inf` (a token that is
# ruled out, as after masking): their log-probability is `-inf` and the rest of the row is
# unaffected. (Rows where *every* entry is `-inf` are not tested.)

# %% nbgrader={"grade": false, "grade_id": "log_softmax", "locked": false, "schema_version": 3, "solution": true}
def log_softmax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Stable log-softmax of ``logits`` along ``dim``; same shape and dtype as ``logits``."""
    ### BEGIN SOLUTION
    top = logits.amax(dim=dim, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # keep -inf rows finite-safe
    shifted = logits - top
    return shifted - shifted.exp().sum(dim=dim, keepdim=True).log()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_log_softmax", "locked": true, "points": 2, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["log_softmax", "_log_softmax", "special_log_softmax", "cross_entropy_loss", "nll_loss", "nll_loss_nd", "nll_loss2d", "nll_loss_forward", "logsumexp", "special_logsumexp", "special_entr"]}
import torch.nn.functional as F

import lmcourse.metrics as ref
from lmcourse.grading import all_visible, check, check_float, check_tensor, checks_done, run_visible

TOL = {torch.float32: (1e-5, 1e-5), torch.float64: (1e-12, 1e-10)}  # (atol, rtol)


def _tol(z, terms=1):
    """(atol, rtol) for results computed from the logits z: TOL, widened to a few roundings at
    the logits' own magnitude (log_softmax computed as z - logsumexp(z) rounds at |z|, not at
    the result's size), times the number of terms summed."""
    atol, rtol = TOL[z.dtype]
    finite = z[torch.isfinite(z)]
    big = float(finite.abs().max()) if finite.numel() else 0.0
    return max(atol, 4 * torch.finfo(z.dtype).eps * big * terms), rtol


def _logits(seed, *shape, dtype=torch.float32, scale=3.0):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _lsm_values():
    z = _logits(0, 2, 3, 7)
    check_tensor("log_softmax(z)", log_softmax(z), F.log_softmax(z, dim=-1), *_tol(z), on="seed 0, (2, 3, 7), dim=-1")
    check_tensor("log_softmax(z, dim=1)", log_softmax(z, dim=1), F.log_softmax(z, dim=1), *_tol(z), on="seed 0, (2, 3, 7), dim=1")
    return True


def _lsm_big():
    big = torch.tensor([[1e4, 0.0, -1e4], [-1e4, -1e4 + 1.0, -1e4 + 2.0]])
    got = log_softmax(big)
    assert bool(torch.isfinite(got).all()), f"log_softmax of logits +-1e4 must be finite, got {got}"
    check_tensor("log_softmax(big)", got, F.log_softmax(big, dim=-1), *_tol(big), on="logits +-1e4")
    return True


def _lsm_properties():
    z = _logits(0, 2, 3, 7)
    check_tensor("exp(log_softmax(z)).sum(-1)", log_softmax(z).exp().sum(-1), torch.ones(2, 3), 1e-5, 1e-5, on="seed 0: probabilities sum to 1")
    check_tensor("log_softmax(z + 100)", log_softmax(z + 100.0), log_softmax(z), 1e-4, 1e-5, on="shift invariance")
    return True


_VISIBLE = {"matches F.log_softmax on two dims (visible)": (0.5, _lsm_values),
            "finite at logits +-1e4 (visible)": (0.25, _lsm_big),
            "sums to one, shift invariance (visible)": (0.25, _lsm_properties)}
VISIBLE_TESTS["log_softmax"] = all_visible(_VISIBLE)
run_visible(_VISIBLE)
### BEGIN HIDDEN TESTS
_masked = _logits(4, 3, 6)
_masked[0, 2] = _masked[1, 0] = _masked[1, 5] = float("-inf")
_groups = {  # check name -> (points, [(description, logits, dim)])
    "other shapes and dims": (0.25, [("seed 1, (5,), dim=0", _logits(1, 5), 0), ("seed 3, (2, 5, 3, 4), dim=2", _logits(3, 2, 5, 3, 4), 2),
                                     ("one logit per row", _logits(7, 4, 1), -1)]),
    "float64": (0.25, [("seed 2, (4, 9) float64, dim=-1", _logits(2, 4, 9, dtype=torch.float64), -1)]),
    "huge logits": (0.25, [("logits +-3e4 float32", _logits(5, 3, 11, scale=3e4), -1),
                           ("logits +-1e300 float64", _logits(6, 2, 8, dtype=torch.float64, scale=1e300), -1)]),
    "-inf entries": (0.25, [("rows with -inf entries", _masked, -1)]),
}
for _name, (_pts, _cases) in _groups.items():
    with check(_name, _pts):
        for desc, z, d in _cases:
            check_tensor("log_softmax", log_softmax(z.clone(), dim=d), F.log_softmax(z, dim=d), *_tol(z), on=desc)
### END HIDDEN TESTS
checks_done()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-3", "locked": true, "schema_version": 3, "solution": false}
# ## 2. The log-probability of a sequence: the chain rule
#
# By the chain rule a language model gives a sequence $x_1, \dots, x_T$ the probability
# $P(x_1, \dots, x_T) = \prod_t P(x_t \mid x_{<t})$, so its log-probability is a **sum**
# of per-token log-probabilities (Chapter 1 explains why we always work in log space).
#
# A model run on the ids `ids` of shape `(B, T)` returns logits of shape `(B, T, V)`, and
# **`logits[:, t]` is the distribution of the *next* token, `ids[:, t + 1]`**, because
# position $t$ has seen only `ids[:, :t + 1]`. So the first token is never predicted (it is
# the given start, e.g. a newline or `<|bos|>`), and the last position's logits predict a
# token that is not in `ids`:
#
# $$\texttt{sequence\_log\_prob}(\text{logits}, \text{ids}) =
# \sum_{t=1}^{T-1} \log \operatorname{softmax}(\text{logits}_{t-1})[\text{ids}_t]
# = \log P(x_2, \dots, x_T \mid x_1).$$
#
# Write `sequence_log_prob(logits, ids)` for logits `(B, T, V)` with ids `(B, T)` (return
# `(B,)`), or logits `(T, V)` with ids `(T,)` (return a 0-d tensor), in the dtype of the
# logits. Use your `log_softmax` and `gather`; mind the shift by one. A sequence of one
# token has log-probability 0 (nothing is predicted).
#
# **Mind the convention: this function takes the model's logits and the ids it was run on,
# and does the shift itself. The book's `lmcourse.metrics.sequence_log_prob(pred, targets)`
# takes aligned inputs instead (`pred[..., t, :]` scores `targets[..., t]`), so the
# `sequence_log_prob(logits, ids)` asked for here equals
# `metrics.sequence_log_prob(logits[..., :-1, :], ids[..., 1:])`.**

# %% nbgrader={"grade": false, "grade_id": "sequence_log_prob", "locked": false, "schema_version": 3, "solution": true}
def sequence_log_prob(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """log P(ids[..., 1:] | ids[..., :1]): sum over t >= 1 of log softmax(logits[..., t - 1, :])[ids[..., t]]."""
    ### BEGIN SOLUTION
    predicted = log_softmax(logits[..., :-1, :])  # row t - 1 predicts token t
    following = ids[..., 1:]
    return predicted.gather(-1, following.unsqueeze(-1)).squeeze(-1).sum(-1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_sequence_log_prob", "locked": true, "points": 2, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["log_softmax", "_log_softmax", "special_log_softmax", "cross_entropy_loss", "nll_loss", "nll_loss_nd", "nll_loss2d", "nll_loss_forward", "logsumexp", "special_logsumexp", "special_entr"]}
# Tolerances: float32 atol=1e-5, rtol=1e-5; float64 atol=1e-12, rtol=1e-10 (atol widened for huge logits, see _tol).
import itertools

from lmcourse.model import GPT, GPTConfig


def _ids(seed, *shape, V):
    return torch.randint(0, V, shape, generator=torch.Generator().manual_seed(seed))


def _tiny_model(seed, V):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=V, block_size=8, n_layer=1, n_head=1, n_embd=8, dropout=0.0)).eval()


def _slp_values():
    z, x = _logits(0, 2, 6, 5), _ids(1, 2, 6, V=5)
    expected = ref.sequence_log_prob(z[:, :-1], x[:, 1:])  # logits[:, t] predicts ids[:, t + 1]
    check_tensor("sequence_log_prob", sequence_log_prob(z, x), expected, *_tol(z, z.size(-2)), on="seed 0, logits (2, 6, 5)")
    check_tensor("sequence_log_prob", sequence_log_prob(z[1], x[1]), expected[1], *_tol(z, z.size(-2)), on="seed 0, one sequence (6, 5)")
    return True


def _slp_chain_rule():
    # the chain rule on a tiny model: the probabilities of all 3**3 continuations of token 0 sum to 1
    model = _tiny_model(0, V=3)
    seqs = torch.tensor([[0, *rest] for rest in itertools.product(range(3), repeat=3)])  # (27, 4)
    with torch.no_grad():
        logits, _ = model(seqs)
    total = torch.Tensor.exp(sequence_log_prob(logits, seqs)).sum()
    check_float("sum over all 27 continuations of P(x_2, x_3, x_4 | x_1)", total, 1.0, 1e-5, 1e-5, on="tiny GPT, V=3, T=4")
    # and log P(a, b) = log P(a) + log P(b | a): split after the first 3 tokens
    full = sequence_log_prob(logits, seqs)
    parts = sequence_log_prob(logits[:, :3], seqs[:, :3]) + sequence_log_prob(logits[:, 2:], seqs[:, 2:])
    check_tensor("log P(prefix) + log P(rest | prefix)", parts, full, 1e-5, 1e-5, on="tiny GPT, split after token 3")
    return True


_VISIBLE = {"matches the chain rule on random logits (visible)": (0.5, _slp_values),
            "continuations sum to one; prefix + rest (visible)": (0.5, _slp_chain_rule)}
VISIBLE_TESTS["sequence_log_prob"] = all_visible(_VISIBLE)
run_visible(_VISIBLE)
### BEGIN HIDDEN TESTS
_groups = {  # check name -> (points, [(description, logits, ids)])
    "other shapes, float64": (0.25, [("seed 2, (3, 9, 17)", _logits(2, 3, 9, 17), _ids(3, 3, 9, V=17)),
                                      ("seed 4, (4, 5, 6) float64", _logits(4, 4, 5, 6, dtype=torch.float64), _ids(5, 4, 5, V=6))]),
    "huge logits": (0.25, [("seed 6, (12, 50), logits +-1e4", _logits(6, 12, 50, scale=1e4), _ids(7, 12, V=50))]),
    "one token: nothing predicted": (0.25, [("one token", _logits(8, 2, 1, 7), _ids(9, 2, 1, V=7))]),
}
for _name, (_pts, _cases) in _groups.items():
    with check(_name, _pts):
        for desc, z, x in _cases:
            check_tensor("sequence_log_prob", sequence_log_prob(z, x), ref.sequence_log_prob(z[..., :-1, :], x[..., 1:]), *_tol(z, z.size(-2)), on=desc)
with check("continuations of a float64 model sum to one", 0.25):
    _model = _tiny_model(3, V=4)
    _all = torch.tensor([[2, *rest] for rest in itertools.product(range(4), repeat=3)])  # (64, 4)
    with torch.no_grad():
        _all_logits = _model(_all)[0].double()
    check_float("sum of P over all 64 continuations", torch.Tensor.exp(sequence_log_prob(_all_logits, _all)).sum(), 1.0, 1e-10, 1e-10, on="tiny GPT, V=4, float64")
### END HIDDEN TESTS
checks_done()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-4", "locked": true, "schema_version": 3, "solution": false}
# ## 3. Cross-entropy with padding
#
# Training minimises the **cross-entropy**: the mean, over every predicted token, of the
# negative log-probability of the true next token,
# $\mathcal{L} = -\frac{1}{N} \sum_{n} \log p_n[y_n]$.
#
# Batches of sequences of different lengths are padded to a common length, and the padded
# positions must not count. By convention their target is set to `ignore_index` (`-100`
# by default, as in PyTorch): they are left out of the sum **and** of the count $N$. If
# *every* position is ignored the mean is $0/0$, and like PyTorch you return `nan`.
#
# Write `cross_entropy(logits, targets, ignore_index=-100)` for logits `(..., V)` and integer
# targets `(...)` (for example `(B, T, V)` and `(B, T)`; here logits and targets are already
# aligned: `logits[..., n, :]` scores `targets[..., n]`). Return a 0-d tensor in the dtype of
# the logits, equal to
# `F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=ignore_index)`.
# Careful: the ignored targets are not valid indices, so do not `gather` at them directly.

# %% nbgrader={"grade": false, "grade_id": "cross_entropy", "locked": false, "schema_version": 3, "solution": true}
def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean of -log softmax(logits)[target] over positions whose target != ignore_index (0-d tensor)."""
    ### BEGIN SOLUTION
    n_vocab = logits.size(-1)
    flat_logits, flat_targets = logits.reshape(-1, n_vocab), targets.reshape(-1)
    scored = flat_targets != ignore_index
    safe_targets = torch.where(scored, flat_targets, torch.zeros_like(flat_targets))
    token_nll = -log_softmax(flat_logits).gather(1, safe_targets.unsqueeze(1)).squeeze(1)
    token_nll = torch.where(scored, token_nll, torch.zeros_like(token_nll))
    return token_nll.sum() / scored.sum()
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_cross_entropy", "locked": true, "points": 2, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["log_softmax", "_log_softmax", "special_log_softmax", "cross_entropy_loss", "nll_loss", "nll_loss_nd", "nll_loss2d", "nll_loss_forward", "logsumexp", "special_logsumexp", "special_entr"]}
# Tolerances: float32 atol=1e-5, rtol=1e-5; float64 atol=1e-12, rtol=1e-10 (atol widened for huge logits, see _tol).


def _F_ce(z, y, ignore_index=-100):
    return F.cross_entropy(z.reshape(-1, z.size(-1)), y.reshape(-1), ignore_index=ignore_index)


def _ce_values():
    z, y = _logits(0, 2, 5, 11), _ids(1, 2, 5, V=11)
    check_tensor("cross_entropy", cross_entropy(z, y), _F_ce(z, y), *_tol(z), on="seed 0, (2, 5, 11), no padding")
    return True


def _ce_padding():
    z, y = _logits(0, 2, 5, 11), _ids(1, 2, 5, V=11)
    y_pad = y.clone()
    y_pad[0, 3:] = -100  # the first sequence is 3 tokens long, the rest is padding
    check_tensor("cross_entropy", cross_entropy(z, y_pad), _F_ce(z, y_pad), *_tol(z), on="seed 0, 2 padded targets (-100)")
    y0 = y.clone()
    y0[:, -1] = 0
    check_tensor("cross_entropy", cross_entropy(z, y0, ignore_index=0), _F_ce(z, y0, ignore_index=0), *_tol(z), on="ignore_index=0")
    return True


def _ce_all_ignored():
    z, y = _logits(0, 2, 5, 11), _ids(1, 2, 5, V=11)
    everything_ignored = cross_entropy(z, torch.full_like(y, -100))
    assert type(everything_ignored) is torch.Tensor and bool(torch.isnan(everything_ignored)), (
        f"every target ignored: expected a nan tensor (0/0, like PyTorch), got {everything_ignored!r}"
    )
    return True


_VISIBLE = {"matches F.cross_entropy (visible)": (0.5, _ce_values), "padding and ignore_index (visible)": (0.25, _ce_padding),
            "every target ignored gives nan (visible)": (0.25, _ce_all_ignored)}
VISIBLE_TESTS["cross_entropy"] = all_visible(_VISIBLE)
run_visible(_VISIBLE)
### BEGIN HIDDEN TESTS
_y = _ids(3, 4, 7, V=13)
_y[_ids(4, 4, 7, V=3) == 0] = -100
_y2 = _ids(5, 3, 6, V=9)
_y2[:, 4:] = 8
_groups = {  # check name -> (points, [(description, logits, targets, ignore_index)])
    "random padding, other shapes": (0.25, [("seed 2, (4, 7, 13), random padding", _logits(2, 4, 7, 13), _y, -100),
                                            ("seed 7, (10, 4): one flat batch", _logits(7, 10, 4), _ids(8, 10, V=4), -100)]),
    "float64 with another ignore_index": (0.25, [("seed 6, (3, 6, 9) float64, ignore_index=8", _logits(6, 3, 6, 9, dtype=torch.float64), _y2, 8)]),
    "huge logits": (0.25, [("logits +-1e4", _logits(10, 3, 20, scale=1e4), _ids(11, 3, V=20), -100)]),
    "one scored target; none scored (float64)": (0.25, [
        ("one scored target", _logits(12, 2, 3, 5), torch.tensor([[-100, -100, 4], [-100, -100, -100]]), -100),
        ("every target ignored", _logits(13, 2, 3, 5, dtype=torch.float64), torch.full((2, 3), -100), -100)]),
}
for _name, (_pts, _cases) in _groups.items():
    with check(_name, _pts):
        for desc, z, y, i in _cases:
            check_tensor("cross_entropy", cross_entropy(z, y, ignore_index=i), _F_ce(z, y, i), *_tol(z), on=desc)
### END HIDDEN TESTS
checks_done()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-5", "locked": true, "schema_version": 3, "solution": false}
# ## 4. Perplexity
#
# The **perplexity** is the exponentiated mean negative log-likelihood (in nats),
# $\mathrm{PPL} = e^{\mathcal{L}}$. It reads as an effective number of choices: a model
# that spreads its probability uniformly over $k$ tokens has $\mathcal{L} = \log k$ and
# perplexity exactly $k$.
#
# Write `perplexity(logits, targets, ignore_index=-100)` returning a Python `float`
# (`nan` when every target is ignored), using your `cross_entropy`. Tolerance: `rtol=1e-5`.

# %% nbgrader={"grade": false, "grade_id": "perplexity", "locked": false, "schema_version": 3, "solution": true}
def perplexity(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> float:
    """exp(mean NLL in nats) over the non-ignored targets, as a Python float."""
    ### BEGIN SOLUTION
    return math.exp(float(cross_entropy(logits, targets, ignore_index)))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_perplexity", "locked": true, "points": 1, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["log_softmax", "_log_softmax", "special_log_softmax", "cross_entropy_loss", "nll_loss", "nll_loss_nd", "nll_loss2d", "nll_loss_forward", "logsumexp", "special_logsumexp", "special_entr"]}
def _ppl_uniform():
    for k in (2, 10, 65):  # uniform over k tokens: perplexity k
        got = perplexity(torch.zeros(3, 4, k), _ids(k, 3, 4, V=k))
        assert type(got) is float, f"perplexity must return a Python float, got {type(got).__name__}"
        check_float("perplexity", got, float(k), 1e-6, 1e-5, on=f"uniform logits over k={k} tokens")
    return True


def _ppl_values():
    z, y = _logits(0, 2, 5, 11), _ids(1, 2, 5, V=11)
    y[1, :2] = -100
    check_float("perplexity", perplexity(z, y), ref.perplexity(z, y), 1e-6, 1e-5, on="seed 0, (2, 5, 11), 2 padded")
    return True


_VISIBLE = {"uniform logits over k tokens give k (visible)": (0.25, _ppl_uniform), "random logits with padding (visible)": (0.25, _ppl_values)}
VISIBLE_TESTS["perplexity"] = all_visible(_VISIBLE)
run_visible(_VISIBLE)
### BEGIN HIDDEN TESTS
_half = torch.full((2, 6, 10), float("-inf"))
_half[..., :5] = 1.5  # uniform over 5 of 10 tokens
_groups = {  # check name -> (points, [(description, logits, targets, ignore_index)])
    "float64, other ignore_index": (0.25, [("seed 2, (3, 8, 30) float64", _logits(2, 3, 8, 30, dtype=torch.float64), _ids(3, 3, 8, V=30), -100),
                                           ("seed 5, ignore_index=2", _logits(5, 4, 9, 6), _ids(6, 4, 9, V=6), 2)]),
    "-inf logits and certainty": (0.125, [("uniform over 5 of 10 tokens", _half, _ids(4, 2, 6, V=5), -100),
                                          ("one token predicted with certainty", torch.tensor([[0.0, 1e4, 0.0]]), torch.tensor([1]), -100)]),
}
for _name, (_pts, _cases) in _groups.items():
    with check(_name, _pts):
        for desc, z, y, i in _cases:
            g = perplexity(z, y, ignore_index=i)
            assert type(g) is float, f"perplexity must return a Python float, got {type(g).__name__} (on input {desc})"
            check_float("perplexity", g, ref.perplexity(z, y, i), 1e-6, 1e-5, on=desc)
with check("every target ignored gives nan", 0.125):
    _nan = perplexity(torch.zeros(1, 2, 3), torch.full((1, 2), -100))
    assert type(_nan) is float and math.isnan(_nan), f"every target ignored: expected nan, got {_nan!r}"
### END HIDDEN TESTS
checks_done()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-6", "locked": true, "schema_version": 3, "solution": false}
# ## 5. Entropy, in bits
#
# The **entropy** of a next-token distribution $p$ is its expected surprisal,
# $H(p) = -\sum_i p_i \log_2 p_i$ bits: 0 when the model is certain, $\log_2 V$ when it
# is uniform over all $V$ tokens. A token with probability 0 (logit `-inf`) contributes 0,
# the limit of $p \log p$ as $p \to 0$ (careful: in floating point `0 * -inf` is `nan`).
#
# Write `entropy(logits, dim=-1)` returning one entropy in **bits** per distribution (the
# shape of `logits` without `dim`), in the dtype of the logits. Use your `log_softmax`;
# tolerances as in part 1.

# %% nbgrader={"grade": false, "grade_id": "entropy", "locked": false, "schema_version": 3, "solution": true}
def entropy(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Entropy in bits of softmax(logits) along ``dim``; zero-probability entries add 0."""
    ### BEGIN SOLUTION
    logp = log_softmax(logits, dim=dim)
    probs = logp.exp()
    terms = torch.where(probs > 0, probs * logp, torch.zeros_like(probs))
    return -terms.sum(dim=dim) / math.log(2.0)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_entropy", "locked": true, "points": 2, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["log_softmax", "_log_softmax", "special_log_softmax", "cross_entropy_loss", "nll_loss", "nll_loss_nd", "nll_loss2d", "nll_loss_forward", "logsumexp", "special_logsumexp", "special_entr"]}
def _ent_values():
    z = _logits(0, 3, 4, 9)
    check_tensor("entropy", entropy(z), ref.entropy(z, unit="bits"), *_tol(z), on="seed 0, (3, 4, 9)")
    check_tensor("entropy", entropy(z, dim=1), ref.entropy(z, unit="bits", dim=1), *_tol(z), on="seed 0, dim=1")
    return True


def _ent_special():
    check_tensor("entropy", entropy(torch.zeros(2, 8)), torch.full((2,), 3.0), 1e-6, 1e-6, on="uniform over 8 tokens: 3 bits")
    certain = torch.tensor([[0.0, float("-inf"), float("-inf")], [5.0, 5.0, float("-inf")]])
    check_tensor("entropy", entropy(certain), torch.tensor([0.0, 1.0]), 1e-6, 1e-6, on="one possible token (0 bits); two equal tokens (1 bit)")
    return True


_VISIBLE = {"matches the reference, two dims (visible)": (0.5, _ent_values), "uniform, certain, -inf entries (visible)": (0.5, _ent_special)}
VISIBLE_TESTS["entropy"] = all_visible(_VISIBLE)
run_visible(_VISIBLE)
### BEGIN HIDDEN TESTS
_masked = _logits(4, 5, 12, dtype=torch.float64)
_masked[:, 3:7] = float("-inf")
_groups = {  # check name -> (points, [(description, logits, dim)])
    "other shapes, float64, dim=0": (0.25, [("seed 1, (17,)", _logits(1, 17), -1), ("seed 2, (2, 3, 5) float64, dim=0", _logits(2, 2, 3, 5, dtype=torch.float64), 0),
                                            ("uniform over 65 tokens", torch.zeros(3, 65), -1)]),
    "huge logits": (0.25, [("logits +-1e4: nearly one-hot", _logits(3, 4, 6, scale=1e4), -1)]),
    "-inf entries, float64": (0.5, [("-inf entries, float64", _masked, -1)]),
}
for _name, (_pts, _cases) in _groups.items():
    with check(_name, _pts):
        for desc, z, d in _cases:
            check_tensor("entropy", entropy(z, dim=d), ref.entropy(z, unit="bits", dim=d), *_tol(z), on=desc)
### END HIDDEN TESTS
checks_done()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-7", "locked": true, "schema_version": 3, "solution": false}
# ## 6. Surprisal, in bits
#
# The **surprisal** of an outcome of probability $p$ is $s(p) = -\log_2 p$ bits: 0 for a
# certain outcome, 1 bit for a fair coin flip, and $+\infty$ for an outcome the model gave
# probability 0. Surprisals of independent outcomes add up, because probabilities multiply.
#
# Write `surprisal(p)`: for a Python `float` $p \in [0, 1]$ return a Python `float`
# (`math.inf` for $p = 0$; note that `math.log2(0.0)` raises an error); for a tensor of
# probabilities return a tensor of the same shape and dtype. Tolerance: `atol=1e-6, rtol=1e-6`.

# %% nbgrader={"grade": false, "grade_id": "surprisal", "locked": false, "schema_version": 3, "solution": true}
def surprisal(p):
    """-log2(p): a float for a float p (inf for p = 0), a tensor of the same dtype for a tensor."""
    ### BEGIN SOLUTION
    if isinstance(p, torch.Tensor):
        return -torch.log2(p)
    return -math.log2(p) if p > 0 else math.inf
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_surprisal", "locked": true, "points": 1, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["log_softmax", "_log_softmax", "special_log_softmax", "cross_entropy_loss", "nll_loss", "nll_loss_nd", "nll_loss2d", "nll_loss_forward", "logsumexp", "special_logsumexp", "special_entr"]}
def _sur_floats():
    for p, bits in ((1.0, 0.0), (0.5, 1.0), (0.25, 2.0), (0.01, -math.log2(0.01))):
        got = surprisal(p)
        assert type(got) is float, f"surprisal of a float must be a float, got {type(got).__name__}"
        check_float("surprisal", got, bits, 1e-6, 1e-6, on=f"p={p}")
    zero = surprisal(0.0)
    assert type(zero) is float and zero == math.inf, f"surprisal(0.0) must be math.inf, got {zero!r}"
    check_float("surprisal(0.3 * 0.6)", surprisal(0.3 * 0.6), surprisal(0.3) + surprisal(0.6), 1e-6, 1e-6, on="independent outcomes add")
    return True


def _sur_tensor():
    p = torch.tensor([0.5, 0.125, 0.9])
    check_tensor("surprisal", surprisal(p), ref.surprisal(p, unit="bits").float(), 1e-6, 1e-6, on="tensor [0.5, 0.125, 0.9]")
    return True


_VISIBLE = {"floats, p = 0 gives inf (visible)": (0.25, _sur_floats), "a float32 tensor (visible)": (0.25, _sur_tensor)}
VISIBLE_TESTS["surprisal"] = all_visible(_VISIBLE)
run_visible(_VISIBLE)
### BEGIN HIDDEN TESTS
with check("tensors: float32 and float64 with 0 and tiny p", 0.25):
    _p32 = torch.rand(4, 5, generator=torch.Generator().manual_seed(1))
    _p64 = torch.tensor([[1.0, 0.0], [1e-300, 0.75]], dtype=torch.float64)
    check_tensor("surprisal", surprisal(_p32.clone()), ref.surprisal(_p32, unit="bits").to(_p32.dtype), 1e-6, 1e-6, on="seed 1, (4, 5) float32")
    check_tensor("surprisal", surprisal(_p64.clone()), ref.surprisal(_p64, unit="bits").to(_p64.dtype), 1e-12, 1e-10, on="[[1, 0], [1e-300, 0.75]] float64")
with check("more floats", 0.25):
    for p in [0.999, 1e-12, 0.3, 1 / 3]:
        g = surprisal(p)
        assert type(g) is float, f"surprisal of a float must be a float, got {type(g).__name__} (on input p={p})"
        check_float("surprisal", g, ref.surprisal(p, unit="bits"), 1e-6, 1e-6, on=f"p={p}")
### END HIDDEN TESTS
checks_done()
