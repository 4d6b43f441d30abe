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
# # HW3: Causal attention
#
# Open this notebook on Colab: <https://colab.research.google.com/github/lmcourse-org/lmcourse/blob/main/assignments/hw3_causal_attention/hw3_causal_attention.ipynb>
#
# In this homework you rebuild the heart of the decoder from
# [Chapter 5, *Causal masking & the decoder*](https://lmcourse-org.github.io/lmcourse/book/05_causal_masking.html):
#
# 1. `causal_mask(T)`: the lower-triangular boolean mask (2 points);
# 2. `masked_attention(q, k, v, mask)`: masked scaled dot-product attention (3 points);
# 3. `MultiHeadCausalSelfAttention`: multi-head causal self-attention whose weights load
#    from the reference `lmcourse.model.CausalSelfAttention` (3 points).
#
# Write your code between the `# YOUR CODE HERE` lines only and do not edit the test cells.
# Each test cell is split into named checks, each worth part of the cell's points; it shows
# some checks, and more (hidden) checks run when the homework is graded, on other shapes,
# dtypes and seeds.
#
# **Forbidden while graded** (every part): the `lmcourse` package (the reference
# `lmcourse.model`) is not installed, and these PyTorch operators are disabled, so a call
# that reaches them raises a `RuntimeError` and the check scores 0:
# `aten::scaled_dot_product_attention`, `aten::_scaled_dot_product_attention_math`,
# `aten::_scaled_dot_product_flash_attention`, `aten::_scaled_dot_product_flash_attention_for_cpu`,
# `aten::_scaled_dot_product_efficient_attention`, `aten::_scaled_dot_product_cudnn_attention`
# (`F.scaled_dot_product_attention`), `aten::_native_multi_head_attention` and `aten::baddbmm`
# (`nn.MultiheadAttention`, `F.multi_head_attention_forward`, `torch.baddbmm`). They still
# work in your own notebook, where the visible tests cannot tell, so do not use them.
#
# **Available while graded:** torch (`@`, `torch.matmul`, `torch.softmax`, `masked_fill`,
# `torch.tril`, `nn.Linear`, ...), numpy, the Python standard library, tqdm and matplotlib,
# and your own functions from the earlier parts. Run all cells (*Runtime / Run all*) before
# you submit; the last cell prints a summary.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false} tags=["setup"]
# The course setup cell (SETUP_CELL of scripts/new_chapter.py) is put here by scripts/build_homework.py.

# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false}
import math

import torch
import torch.nn as nn

VISIBLE_TESTS = {}  # name -> function re-run by the summary cell at the end


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-2", "locked": true, "schema_version": 3, "solution": false}
# ## 1. The causal mask
#
# A decoder trained on whole sequences at once must not let position $i$ look at tokens after
# $i$. The mask $M \in \{\text{True}, \text{False}\}^{T \times T}$ says which key $j$ query $i$ may
# attend to: $M_{ij} = (j \le i)$, a lower-triangular matrix including the diagonal.
#
# Return a `torch.bool` tensor of shape `(T, T)` on the CPU.

# %% nbgrader={"grade": false, "grade_id": "causal_mask", "locked": false, "schema_version": 3, "solution": true}
def causal_mask(T: int) -> torch.Tensor:
    """(T, T) boolean mask, True where query i may attend to key j, i.e. j <= i."""
    ### BEGIN SOLUTION
    return torch.tril(torch.ones(T, T, dtype=torch.bool))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_causal_mask", "locked": true, "points": 2, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["scaled_dot_product_attention", "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention", "_native_multi_head_attention", "baddbmm"]}
import lmcourse.model as ref
from lmcourse.grading import all_visible, check, check_tensor, checks_done, run_visible


def _mask_values():
    for T in (1, 4, 7):  # exact comparison with the reference (boolean: no tolerance)
        check_tensor("causal_mask", causal_mask(T), ref.causal_mask(T), on=f"T={T}")
    return True


def _mask_properties():
    m = causal_mask(5)
    assert bool(m[3, 2]) and not bool(m[2, 3]), "query 3 sees key 2, query 2 must not see key 3"
    assert int(causal_mask(6).sum()) == 21, "T=6 has 6*7/2 = 21 allowed pairs"
    return True


_VISIBLE = {"T = 1, 4, 7 (visible)": (0.5, _mask_values), "past visible, future hidden (visible)": (0.5, _mask_properties)}
VISIBLE_TESTS["causal_mask"] = all_visible(_VISIBLE)
run_visible(_VISIBLE)
### BEGIN HIDDEN TESTS
with check("small and odd sizes", 0.5):
    for T in (2, 3):
        check_tensor("causal_mask", causal_mask(T), ref.causal_mask(T), on=f"T={T}")
with check("larger sizes", 0.5):
    for T in (16, 33):
        check_tensor("causal_mask", causal_mask(T), ref.causal_mask(T), on=f"T={T}")
### END HIDDEN TESTS
checks_done()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-3", "locked": true, "schema_version": 3, "solution": false}
# ## 2. Masked scaled dot-product attention
#
# For queries $q$ of shape `(..., T, D)` and keys and values $k, v$ of shape `(..., S, D)`:
#
# $$\text{scores} = \frac{q k^\top}{\sqrt{D}}, \qquad
# \text{weights} = \operatorname{softmax}\big(\text{scores with } -\infty \text{ where the mask is False}\big), \qquad
# \text{out} = \text{weights}\, v.$$
#
# `mask` is boolean and broadcastable to `(..., T, S)` (True = may attend), or `None` for
# no mask. Return the pair `(out, weights)`: shapes `(..., T, D)` and `(..., T, S)`, in the
# dtype of `q`. Do not use `torch.nn.functional.scaled_dot_product_attention` (see above).

# %% nbgrader={"grade": false, "grade_id": "masked_attention", "locked": false, "schema_version": 3, "solution": true}
def masked_attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(D), -inf where ~mask) v; returns (out, weights)."""
    ### BEGIN SOLUTION
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_masked_attention", "locked": true, "points": 3, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["scaled_dot_product_attention", "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention", "_native_multi_head_attention", "baddbmm"]}
# Tolerances: float32 atol=1e-5, rtol=1e-4; float64 atol=1e-10, rtol=1e-8.


def _qkv(seed, shape_q, shape_kv, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*shape_q, generator=g, dtype=dtype)
    k = torch.randn(*shape_kv, generator=g, dtype=dtype)
    v = torch.randn(*shape_kv, generator=g, dtype=dtype)
    return q, k, v


def _attn_causal():
    q, k, v = _qkv(0, (2, 3, 5, 4), (2, 3, 5, 4))
    mask = ref.causal_mask(5)
    out, w = masked_attention(q, k, v, mask)
    exp_out, exp_w = ref.scaled_dot_product_attention(q, k, v, mask)
    check_tensor("out", out, exp_out, 1e-5, 1e-4, on="seed 0, (2,3,5,4), causal mask")
    check_tensor("weights", w, exp_w, 1e-5, 1e-4, on="seed 0, (2,3,5,4), causal mask")
    assert torch.allclose(w.sum(-1), torch.ones(2, 3, 5)), "each row of weights must sum to 1"
    assert bool((w.triu(1) == 0).all()), "weights above the diagonal (the future) must be 0"
    return True


def _attn_no_mask():
    q, k, v = _qkv(0, (2, 3, 5, 4), (2, 3, 5, 4))
    out, w = masked_attention(q, k, v)  # no mask: every key visible
    check_tensor("out", out, ref.scaled_dot_product_attention(q, k, v)[0], 1e-5, 1e-4, on="mask=None")
    return True


def _attn_future():
    # future tokens cannot change past outputs: edit the last key/value, rows 0..3 stay
    q, k, v = _qkv(0, (2, 3, 5, 4), (2, 3, 5, 4))
    mask = ref.causal_mask(5)
    k2, v2 = k.clone(), v.clone()
    k2[..., -1, :] += 10.0
    v2[..., -1, :] -= 10.0
    out2, _ = masked_attention(q, k2, v2, mask)
    out1, _ = masked_attention(q, k, v, mask)
    check_tensor("out[..., :-1, :] after changing the last key and value", out2[..., :-1, :], out1[..., :-1, :], 1e-6, 1e-6)
    return True


_VISIBLE = {"causal mask: output and weights (visible)": (0.75, _attn_causal), "no mask (visible)": (0.25, _attn_no_mask),
            "the future does not change the past (visible)": (0.5, _attn_future)}
VISIBLE_TESTS["masked_attention"] = all_visible(_VISIBLE)
run_visible(_VISIBLE)
### BEGIN HIDDEN TESTS
_cases = {  # check name -> (points, [(seed, q shape, kv shape, mask, dtype, atol, rtol)])
    "one head, T = 9": (0.25, [(1, (1, 1, 9, 8), (1, 1, 9, 8), ref.causal_mask(9), torch.float32, 1e-5, 1e-4)]),
    "more keys than queries": (0.25, [(2, (3, 2, 4, 16), (3, 2, 11, 16), ref.causal_mask(4, 11), torch.float32, 1e-5, 1e-4)]),
    "float64": (0.5, [(3, (2, 4, 6, 8), (2, 4, 6, 8), ref.causal_mask(6), torch.float64, 1e-10, 1e-8)]),
    "a broadcast padding mask": (0.25, [(4, (2, 1, 5, 4), (2, 1, 5, 4), torch.tensor([[True] * 5, [True, True, True, False, False]]).view(2, 1, 1, 5) & ref.causal_mask(5), torch.float32, 1e-5, 1e-4)]),
}
for _name, (_pts, _runs) in _cases.items():
    with check(_name, _pts):
        for s, a, b, m, dt, atol, rtol in _runs:
            q, k, v = _qkv(s, a, b, dt)
            out, w = masked_attention(q, k, v, m)
            exp_out, exp_w = ref.scaled_dot_product_attention(q, k, v, m)
            check_tensor("out", out, exp_out, atol, rtol, on=f"seed {s}, q {a}, kv {b}, {dt}")
            check_tensor("weights", w, exp_w, atol, rtol, on=f"seed {s}, q {a}, kv {b}, {dt}")
with check("the future does not change the past (float64)", 0.25):
    (_q, _k, _v), _m6 = _qkv(3, (2, 4, 6, 8), (2, 4, 6, 8), torch.float64), ref.causal_mask(6)
    _k2, _v2 = _k.clone(), _v.clone()
    _k2[..., 3:, :], _v2[..., 3:, :] = torch.randn_like(_k2[..., 3:, :]), torch.randn_like(_v2[..., 3:, :])
    check_tensor("out[:3] after changing tokens 3..5", masked_attention(_q, _k2, _v2, _m6)[0][..., :3, :],
                 masked_attention(_q, _k, _v, _m6)[0][..., :3, :], 1e-12, 1e-12)
### END HIDDEN TESTS
checks_done()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-4", "locked": true, "schema_version": 3, "solution": false}
# ## 3. Multi-head causal self-attention
#
# Chapter 5's `CausalSelfAttention` projects the input $x$ of shape `(B, T, C)` with one
# Linear layer `c_attn` (C → 3C) into queries, keys and values (in that order along the last
# dimension), splits each into `n_head` heads of size `D = C // n_head` (shape
# `(B, n_head, T, D)`), runs causal masked attention in every head, puts the heads back side
# by side (`(B, T, C)`) and mixes them with a second Linear layer `c_proj` (C → C).
#
# Write `MultiHeadCausalSelfAttention(n_embd, n_head, bias=True)` with exactly the
# parameters `c_attn` and `c_proj`, so that
# `mine.load_state_dict(reference.state_dict())` works and both give the same output. Use
# your `causal_mask` and `masked_attention`, not `nn.MultiheadAttention` or
# `F.multi_head_attention_forward`: the module's parameters (its `state_dict`) must be exactly
# those of the reference. (No dropout, no KV cache, `n_kv_head == n_head`.)

# %% nbgrader={"grade": false, "grade_id": "mhsa", "locked": false, "schema_version": 3, "solution": true}
class MultiHeadCausalSelfAttention(nn.Module):
    """(B, T, C) -> (B, T, C): multi-head causal self-attention, parameters c_attn, c_proj."""

    def __init__(self, n_embd: int, n_head: int, bias: bool = True):
        super().__init__()
        assert n_embd % n_head == 0, "n_embd must be divisible by n_head"
        self.n_head = n_head
        ### BEGIN SOLUTION
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        B, T, C = x.shape
        H, D = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, H, D).transpose(1, 2)
        k = k.view(B, T, H, D).transpose(1, 2)
        v = v.view(B, T, H, D).transpose(1, 2)
        y, _ = masked_attention(q, k, v, causal_mask(T))
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.c_proj(y)
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_mhsa", "locked": true, "points": 3, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["scaled_dot_product_attention", "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention", "_native_multi_head_attention", "baddbmm"]}
# Tolerance: float32 atol=1e-5, rtol=1e-4.


def _pair(seed, n_embd, n_head, bias=True):
    torch.manual_seed(seed)
    cfg = ref.GPTConfig(n_embd=n_embd, n_head=n_head, bias=bias, dropout=0.0, block_size=64)
    reference = ref.CausalSelfAttention(cfg).eval()
    mine = MultiHeadCausalSelfAttention(n_embd, n_head, bias=bias).eval()
    names = sorted(mine.state_dict())
    assert names == sorted(reference.state_dict()), f"the parameters must be exactly {sorted(reference.state_dict())}, got {names}"
    mine.load_state_dict(reference.state_dict())  # same names and shapes: c_attn, c_proj
    return mine, reference


def _mhsa_values():
    mine, reference = _pair(0, 32, 4)
    x = torch.randn(2, 7, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y, y_ref = mine(x), reference(x)
    check_tensor("output", y, y_ref, 1e-5, 1e-4, on="seed 0, n_embd=32, n_head=4, x (2,7,32)")
    return True


def _mhsa_future():
    mine, _ = _pair(0, 32, 4)
    x = torch.randn(2, 7, 32, generator=torch.Generator().manual_seed(1))
    x2 = x.clone()
    x2[:, 4:] = torch.randn(2, 3, 32)  # change the future tokens 4..6
    with torch.no_grad():
        y, y2 = mine(x), mine(x2)
    check_tensor("output[:, :4] after changing tokens 4..6", y2[:, :4], y[:, :4], 1e-6, 1e-5)
    return True


_VISIBLE = {"parameters load from the reference, same output (visible)": (1, _mhsa_values),
            "the future does not change the past (visible)": (0.5, _mhsa_future)}
VISIBLE_TESTS["MultiHeadCausalSelfAttention"] = all_visible(_VISIBLE)
run_visible(_VISIBLE)
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(5)
_configs = {  # check name -> (points, (seed, C, H, bias, (B, T)))
    "no bias, 6 heads": (0.5, (10, 48, 6, False, (3, 9))),
    "one head, one token": (0.25, (11, 16, 1, True, (1, 1))),
    "8 heads, 20 tokens": (0.5, (12, 64, 8, True, (2, 20))),
}
for _name, (_pts, (seed, C, H, bias, (B, T))) in _configs.items():
    with check(_name, _pts):
        mine, reference = _pair(seed, C, H, bias)
        x = torch.randn(B, T, C, generator=_g)
        with torch.no_grad():
            check_tensor("output", mine(x), reference(x), 1e-5, 1e-4, on=f"(seed, C, H, bias, B, T)={(seed, C, H, bias, B, T)}")
with check("the future does not change the past, 8 heads", 0.25):
    mine, _ = _pair(12, 64, 8, True)
    x = torch.randn(2, 20, 64, generator=_g)
    x2 = x.clone()
    x2[:, 11:] = torch.randn(2, 9, 64, generator=_g)
    with torch.no_grad():
        check_tensor("output[:, :11] after changing tokens 11..19", mine(x2)[:, :11], mine(x)[:, :11], 1e-6, 1e-5)
### END HIDDEN TESTS
checks_done()
