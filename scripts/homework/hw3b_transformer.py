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
# # HW3b: your GPT, and its Llama block
#
# Open this notebook on Colab: <https://colab.research.google.com/github/lmcourse-org/lmcourse/blob/main/assignments/hw3b_transformer/hw3b_transformer.ipynb>
#
# In HW3 you wrote causal attention. Here you build the whole model around it, from tensor
# operations, and prove it is the model of the book: your GPT loads the weights of an
# `lmcourse.model.GPT` and gives the same logits, first on random configurations, then on
# the shipped `shakespeare-char` model. Then you change five parts and get the Llama-style
# model of the same `lmcourse.model.GPTConfig`. It follows
# [Chapter 5b, *The transformer, piece by piece*](https://lmcourse-org.github.io/lmcourse/book/05b_transformer.html)
# (part 1) and
# [Chapter 5c, *Modern architecture: the Llama block*](https://lmcourse-org.github.io/lmcourse/book/05c_modern_architecture.html)
# (part 2). HW4 trains the GPT you write here.
#
# | part | what you write | points |
# |---|---|---|
# | 1.1 | `LayerNorm` from the mean and variance | 2 |
# | 1.2 | `MLP`: C → 4C → GELU → C | 1 |
# | 1.3 | `CausalSelfAttention` (multi-head, causal) | 1 |
# | 1.4 | `Block`: the pre-norm residual block | 1 |
# | 1.5 | `GPT`: token and position embeddings, blocks, final norm, tied LM head, `load_reference` | 4 |
# | 2.1 | `RMSNorm` | 1 |
# | 2.2 | `apply_rope`: rotary position embeddings | 1.5 |
# | 2.3 | `SwiGLU`: the gated MLP | 1 |
# | 2.4 | `GroupedQueryAttention` with RoPE | 1.5 |
# | 2.5 | `LlamaBlock` and `LlamaGPT` | 2 |
# | | **total** | **16** |
#
# Every test cell is split into named checks with their own points (partial credit). Each
# shows some checks; more (hidden) checks run when the homework is graded, on other
# configurations, seeds and dtypes.
#
# **Forbidden** (these PyTorch operators raise an error while grading; calling them scores 0
# on every check that needs them): the built-in normalisations `nn.LayerNorm`,
# `F.layer_norm` (ATen `layer_norm`, `native_layer_norm`), `nn.RMSNorm`, `F.rms_norm`
# (`rms_norm`, `_fused_rms_norm`), and the group, instance and batch norms that could
# stand in for them; the fused attention `F.scaled_dot_product_attention` (and its ATen
# kernels), and `torch.baddbmm`, through which `nn.MultiheadAttention` computes its masked
# scores (its other paths are the fused kernels): PyTorch's attention module is HW3's
# answer, not yours. The reference `lmcourse.model` (and every other `lmcourse` module) is
# **absent** while your code is graded: importing it fails.
#
# **Available:** `torch` and its tensor operations (`mean`, `var`, `rsqrt`, `softmax`,
# `masked_fill`, `@`, `einsum`, `cat`, `chunk`, `repeat_interleave`, ...), the layers
# `nn.Linear` and `nn.Embedding` (a lookup table and a matrix product, nothing more),
# `nn.ModuleList` / `nn.ModuleDict`, the activations `F.gelu` and `F.silu` (or write them
# out), the standard library, `numpy`, `tqdm` and `matplotlib`; no `lmcourse` module.
#
# **Conventions the tests fix**, and why:
# - **GELU, tanh form** (`F.gelu(x, approximate="tanh")`), because GPT-2 and the
#   `shakespeare-char` model were trained with it and their weights only give their logits
#   with the same function. The exact (erf) form is a correct GELU too, but it differs from
#   the tanh form by up to 5e-4, which moves `shakespeare-char`'s logits by about 8e-3,
#   far beyond the tolerance.
# - **LayerNorm divides by the biased variance** (the mean of the squared deviations, over
#   C, not C - 1): that is LayerNorm's definition, not a convention.
# - **RoPE**: `lmcourse` pairs dimension i with i + D/2 ("rotate half", as GPT-NeoX and
#   transformers' Llama do); the RoFormer paper pairs neighbours (2i, 2i+1). Both are
#   correct and the `apply_rope` test **accepts either**. The models must give the
#   reference's logits from the reference's weights, so with the paper's pairing your
#   `load_reference` permutes the query and key rows of each head (section 2.2 shows how).
# - **RMSNorm's epsilon** sits inside the square root, `x / sqrt(mean(x²) + eps)`, as in
#   Llama; `x / (sqrt(mean(x²)) + eps)` (the RMSNorm paper's code) is accepted too: the
#   tests feed the norms vectors of mean square about 1, where the two agree within float32
#   tolerance. (They differ where activations are tiny, as in a freshly initialised model
#   with embeddings of std 0.02; a checkpoint expects the placement it was trained with.)
# - **Grouped-query heads**: query head h reads key/value head `h // (n_head // n_kv_head)`
#   (consecutive query heads share one key/value head), as in Llama and `lmcourse`.
#
# Tolerances: float32 `atol=1e-5, rtol=1e-4` for one layer, `atol=1e-4, rtol=1e-4` for whole
# models and for RoPE (its angles reach 100 radians, where float32 keeps 5 or 6 digits);
# float64 `atol=1e-10, rtol=1e-8`.
#
# Write your code between the `# YOUR CODE HERE` lines only and do not edit the test cells.
# Run all cells (*Runtime / Run all*) before you submit; the last cell prints a summary.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false} tags=["setup"]
# The course setup cell (SETUP_CELL of scripts/new_chapter.py) is put here by scripts/build_homework.py.

# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false}
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

VISIBLE_TESTS = {}  # name -> function re-run by the summary cell at the end


class RefModule(nn.Module):
    """``nn.Module`` plus ``load_reference(state_dict)``: take the weights of the matching
    ``lmcourse.model`` module (its ``state_dict()``).

    The default copies them by name: each child module loads the entries under its own
    name (``"ln_1.weight"`` goes to ``self.ln_1`` as ``"weight"``), through the child's own
    ``load_reference`` when the child is a ``RefModule``, and this module's own parameters
    take the entries of the same name. That is right when your names and shapes equal the
    reference's. Override it in any class where you chose other names or layouts: that
    override is your *name map*, and the classes around it keep using it.
    """

    def load_reference(self, state_dict: dict) -> None:
        load_by_name(self, dict(state_dict))


def load_by_name(module: nn.Module, state_dict: dict) -> None:
    """Copy ``state_dict`` into ``module`` by name (see ``RefModule``); buffers are left alone."""
    children = dict(module.named_children())
    own = dict(module.named_parameters(recurse=False))
    for key in state_dict:
        if key.split(".", 1)[0] not in children and key not in own:
            raise KeyError(f"{type(module).__name__} has no parameter or child for the reference weight {key!r}")
    for name, child in children.items():
        part = {k[len(name) + 1:]: v for k, v in state_dict.items() if k.startswith(name + ".")}
        if isinstance(child, RefModule):
            child.load_reference(part)
        else:
            load_by_name(child, part)
    with torch.no_grad():
        for name, p in own.items():
            if name not in state_dict:
                raise KeyError(f"the reference weights have no {name!r} for {type(module).__name__}")
            if tuple(state_dict[name].shape) != tuple(p.shape):
                raise ValueError(f"{type(module).__name__}.{name}: reference shape {tuple(state_dict[name].shape)}, yours {tuple(p.shape)}")
            p.copy_(state_dict[name])


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-2", "locked": true, "schema_version": 3, "solution": false}
# ## Part 1: the GPT
#
# Every class below subclasses `RefModule` (the cell above) and is tested the same way: the
# test builds the matching `lmcourse.model` module with random weights, calls
# `yours.load_reference(reference.state_dict())`, and compares the outputs. Name your
# parameters as the reference does (given in each section) and the default
# `load_reference` works; choose your own names and write `load_reference` yourself.
#
# ### 1.1 LayerNorm
#
# For each vector $x \in \mathbb{R}^C$ (the last dimension):
#
# $$\operatorname{LN}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta,
# \qquad \mu = \frac{1}{C}\sum_i x_i, \quad \sigma^2 = \frac{1}{C}\sum_i (x_i - \mu)^2 .$$
#
# `LayerNorm(dim, eps=1e-5, bias=True)` has the parameters `weight` ($\gamma$, ones at
# the start) and `bias` ($\beta$, zeros; `None` when `bias=False`, as
# `nn.LayerNorm(dim, bias=False)`). Inputs of any shape `(..., dim)` and dtype; the output
# has the input's shape and dtype. Do not use `nn.LayerNorm` or `F.layer_norm` (blocked).

# %% nbgrader={"grade": false, "grade_id": "layernorm", "locked": false, "schema_version": 3, "solution": true}
class LayerNorm(RefModule):
    """(..., dim) -> (..., dim): normalise each vector to mean 0, variance 1, then scale and shift."""

    def __init__(self, dim: int, eps: float = 1e-5, bias: bool = True):
        super().__init__()
        self.eps = eps
        ### BEGIN SOLUTION
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        mu = x.mean(dim=-1, keepdim=True)
        var = ((x - mu) ** 2).mean(dim=-1, keepdim=True)  # biased: divide by C
        y = (x - mu) / torch.sqrt(var + self.eps) * self.weight
        return y if self.bias is None else y + self.bias
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_layernorm", "locked": true, "points": 2, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["native_layer_norm", "layer_norm", "rms_norm", "_fused_rms_norm", "group_norm", "native_group_norm", "instance_norm", "batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training", "_batch_norm_impl_index", "_batch_norm_with_update", "_batch_norm_no_update", "cudnn_batch_norm", "miopen_batch_norm", "scaled_dot_product_attention", "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention", "_native_multi_head_attention", "baddbmm"]}
# Shared by every test cell: the reference modules, random weights, tolerances.
import lmcourse.model as ref
from lmcourse.grading import check, check_tensor, checks_done, run_visible

_TOL = {torch.float32: (1e-5, 1e-4), torch.float64: (1e-10, 1e-8)}  # one layer
_TOL_MODEL = {torch.float32: (1e-4, 1e-4), torch.float64: (1e-10, 1e-8)}  # whole models, RoPE


def _randomize(module, seed):
    """Random weights on the reference (not the init): gains near 1, biases near 0, embedding
    rows of mean square 1 (the norms then see inputs of scale 1), matrices ~ 1/sqrt(fan_in)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
            if name.endswith(("wte.weight", "wpe.weight")):
                p.copy_(noise)
            elif p.dim() == 1:
                p.copy_(0.3 * noise if name.endswith("bias") else 1.0 + 0.3 * noise)
            else:
                p.copy_(noise / math.sqrt(p.shape[-1]))
    return module.eval()


def _rand(seed, *shape, dtype=torch.float32, scale=1.0):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _loaded(mine, reference):
    """Your module, with the reference's weights loaded through your load_reference, in eval mode."""
    mine.load_reference(dict(reference.state_dict()))  # a plain dict of tensors
    return mine.eval()


def _same(name, got, reference_out, on, tol=_TOL):
    atol, rtol = tol[reference_out.dtype]
    check_tensor(name, got, reference_out, atol, rtol, on=on)


def _matches(name, reference, mine, x, on, dtype=None, tol=_TOL):
    """Your module with the reference's weights (both then in ``dtype``, when given) gives
    the reference's output on ``x``; returns True."""
    if dtype is not None:
        reference = reference.to(dtype)
    mine = _loaded(mine, reference)
    if dtype is not None:
        mine = mine.to(dtype)
    with torch.no_grad():
        _same(name, mine(x), reference(x), on, tol)
    return True


def test_layernorm_visible():
    reference = _randomize(nn.LayerNorm(16), 0)
    mine = _loaded(LayerNorm(16), reference)
    x = _rand(1, 2, 5, 16, scale=3.0) + 2.0
    with torch.no_grad():
        _same("LayerNorm(16)", mine(x), reference(x), "x (2, 5, 16), seed 1")
        plain = LayerNorm(8)(x[..., :8])  # weight 1, bias 0: every vector has mean 0 and variance 1
    assert torch.allclose(plain.mean(-1), torch.zeros(2, 5), atol=1e-5), "each output vector must have mean 0"
    assert torch.allclose(plain.var(-1, unbiased=False), torch.ones(2, 5), atol=1e-3), (
        "each output vector must have (biased) variance 1: divide by sqrt(var + eps), var over C, not C - 1"
    )
    return True


run_visible({"LayerNorm equals nn.LayerNorm; outputs have mean 0, variance 1": (0.5, test_layernorm_visible)}, VISIBLE_TESTS, "LayerNorm")
### BEGIN HIDDEN TESTS
with check("LayerNorm: other widths, eps and input shapes (float32)", 0.5):
    for seed, C, eps, shape in ((10, 3, 1e-5, (7, 3)), (11, 64, 1e-6, (2, 3, 4, 64)), (12, 33, 1e-2, (1, 33))):
        _matches("LayerNorm", _randomize(nn.LayerNorm(C, eps=eps), seed), LayerNorm(C, eps=eps),
                 _rand(seed + 1, *shape, scale=2.0) - 1.0, f"C={C}, eps={eps}, x {shape}")
with check("LayerNorm: float64", 0.5):
    _matches("LayerNorm (float64)", _randomize(nn.LayerNorm(24), 13), LayerNorm(24),
             _rand(14, 3, 6, 24, dtype=torch.float64, scale=5.0), "C=24, x (3, 6, 24) float64", torch.float64)
with check("LayerNorm: bias=False", 0.5):
    _matches("LayerNorm(bias=False)", _randomize(nn.LayerNorm(20, bias=False), 15), LayerNorm(20, bias=False),
             _rand(16, 4, 20), "C=20, bias=False")
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-3", "locked": true, "schema_version": 3, "solution": false}
# ### 1.2 The MLP
#
# Position by position: a Linear layer `c_fc` (C → F, F = `hidden`, default 4C), GELU in
# its **tanh form**, a Linear layer `c_proj` (F → C); `bias` says whether the two Linear
# layers have biases. This is `lmcourse.model.MLP` with `mlp="gelu"` (no dropout).
#
# $$\operatorname{GELU}_{\tanh}(u) = \tfrac12 u \left(1 + \tanh\!\left(\sqrt{2/\pi}\,(u + 0.044715\,u^3)\right)\right)$$

# %% nbgrader={"grade": false, "grade_id": "mlp", "locked": false, "schema_version": 3, "solution": true}
class MLP(RefModule):
    """(B, T, C) -> (B, T, C): c_fc, GELU (tanh form), c_proj."""

    def __init__(self, n_embd: int, hidden: int = None, bias: bool = True):
        super().__init__()
        hidden = 4 * n_embd if hidden is None else hidden
        ### BEGIN SOLUTION
        self.c_fc = nn.Linear(n_embd, hidden, bias=bias)
        self.c_proj = nn.Linear(hidden, n_embd, bias=bias)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_mlp", "locked": true, "points": 1, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["native_layer_norm", "layer_norm", "rms_norm", "_fused_rms_norm", "group_norm", "native_group_norm", "instance_norm", "batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training", "_batch_norm_impl_index", "_batch_norm_with_update", "_batch_norm_no_update", "cudnn_batch_norm", "miopen_batch_norm", "scaled_dot_product_attention", "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention", "_native_multi_head_attention", "baddbmm"]}
def _cfg(**kw):
    """A reference GPTConfig; unspecified fields keep small values."""
    base = dict(vocab_size=32, block_size=64, n_layer=1, n_head=2, n_embd=16, dropout=0.0)
    base.update(kw)
    return ref.GPTConfig(**base)


def test_mlp_visible():
    return _matches("MLP(16)", _randomize(ref.MLP(_cfg(n_embd=16)), 20), MLP(16), _rand(21, 2, 5, 16),
                    "n_embd=16, x (2, 5, 16)")


run_visible({"MLP equals lmcourse.model.MLP": (0.5, test_mlp_visible)}, VISIBLE_TESTS, "MLP")
### BEGIN HIDDEN TESTS
with check("MLP: other widths, hidden sizes, no bias, float64", 0.5):
    for seed, C, hidden, bias, dtype in ((22, 8, None, False, torch.float32), (23, 24, 40, True, torch.float32),
                                         (24, 12, None, True, torch.float64)):
        _matches("MLP", _randomize(ref.MLP(_cfg(n_embd=C, n_head=1, bias=bias, mlp_hidden=hidden)), seed),
                 MLP(C, hidden=hidden, bias=bias), _rand(seed + 1, 3, 4, C, dtype=dtype, scale=2.0),
                 f"n_embd={C}, hidden={hidden}, bias={bias}, {dtype}", dtype)
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-4", "locked": true, "schema_version": 3, "solution": false}
# ### 1.3 Causal self-attention
#
# HW3's multi-head causal self-attention, once more (write it here; this notebook imports
# nothing from HW3). One Linear `c_attn` (C → 3C) gives queries, keys and values, in that
# order along the last dimension; each is split into `n_head` heads of size D = C / n_head
# (shape `(B, n_head, T, D)`); every head runs
# $\operatorname{softmax}\big(q k^\top / \sqrt{D}$, with $-\infty$ above the diagonal$\big)\, v$;
# the heads go back side by side (`(B, T, C)`) and a Linear `c_proj` (C → C) mixes them.
# A helper function for the attention itself, usable again in part 2, is a good idea.

# %% nbgrader={"grade": false, "grade_id": "attention", "locked": false, "schema_version": 3, "solution": true}
def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal attention: softmax(q k^T / sqrt(D), -inf on the future) v; (B, H, T, D) each -> (B, H, T, D)."""
    ### BEGIN SOLUTION
    T = q.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    return torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1) @ v
    ### END SOLUTION


class CausalSelfAttention(RefModule):
    """(B, T, C) -> (B, T, C): multi-head causal self-attention, parameters c_attn, c_proj."""

    def __init__(self, n_embd: int, n_head: int, bias: bool = True):
        super().__init__()
        self.n_head = n_head
        ### BEGIN SOLUTION
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.c_attn(x).split(C, dim=-1))  # (B, H, T, D)
        return self.c_proj(attend(q, k, v).transpose(1, 2).reshape(B, T, C))
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_attention", "locked": true, "points": 1, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["native_layer_norm", "layer_norm", "rms_norm", "_fused_rms_norm", "group_norm", "native_group_norm", "instance_norm", "batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training", "_batch_norm_impl_index", "_batch_norm_with_update", "_batch_norm_no_update", "cudnn_batch_norm", "miopen_batch_norm", "scaled_dot_product_attention", "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention", "_native_multi_head_attention", "baddbmm"]}
def test_attention_visible():
    reference = _randomize(ref.CausalSelfAttention(_cfg(n_embd=32, n_head=4)), 30)
    mine = _loaded(CausalSelfAttention(32, 4), reference)
    x = _rand(31, 2, 7, 32)
    x2 = x.clone()
    x2[:, 5:] = _rand(32, 2, 2, 32)  # change the future tokens 5 and 6
    with torch.no_grad():
        y, y2 = mine(x), mine(x2)
        _same("CausalSelfAttention(32, 4)", y, reference(x), "n_embd=32, n_head=4, x (2, 7, 32)")
    assert torch.allclose(y[:, :5], y2[:, :5], atol=1e-6), "changing tokens 5, 6 changed the outputs at 0..4"
    return True


run_visible({"attention equals the reference; the future is masked": (0.5, test_attention_visible)}, VISIBLE_TESTS, "CausalSelfAttention")
### BEGIN HIDDEN TESTS
with check("attention: other head counts, lengths, no bias, float64", 0.5):
    for seed, C, H, bias, (B, T), dtype in ((33, 48, 6, False, (3, 9), torch.float32), (34, 16, 1, True, (1, 1), torch.float32),
                                            (35, 64, 8, True, (2, 20), torch.float32), (36, 24, 3, True, (2, 6), torch.float64)):
        _matches("CausalSelfAttention", _randomize(ref.CausalSelfAttention(_cfg(n_embd=C, n_head=H, bias=bias)), seed),
                 CausalSelfAttention(C, H, bias=bias), _rand(seed + 1, B, T, C, dtype=dtype),
                 f"n_embd={C}, n_head={H}, bias={bias}, (B, T)={(B, T)}, {dtype}", dtype)
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-5", "locked": true, "schema_version": 3, "solution": false}
# ### 1.4 The block
#
# The pre-norm residual block: normalise, transform, add back to the residual stream.
#
# $$x \leftarrow x + \operatorname{attn}(\operatorname{LN}_1(x)), \qquad x \leftarrow x + \operatorname{mlp}(\operatorname{LN}_2(x)).$$
#
# `Block(n_embd, n_head, bias=True, eps=1e-5)` holds `ln_1`, `attn`, `ln_2`, `mlp` (your
# `LayerNorm`, `CausalSelfAttention`, `LayerNorm` and `MLP`); the reference is
# `lmcourse.model.Block`, whose state_dict names are `ln_1.weight`, `attn.c_attn.weight`,
# ..., `mlp.c_proj.bias`.

# %% nbgrader={"grade": false, "grade_id": "block", "locked": false, "schema_version": 3, "solution": true}
class Block(RefModule):
    """(B, T, C) -> (B, T, C): x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, n_embd: int, n_head: int, bias: bool = True, eps: float = 1e-5):
        super().__init__()
        ### BEGIN SOLUTION
        self.ln_1 = LayerNorm(n_embd, eps, bias)
        self.attn = CausalSelfAttention(n_embd, n_head, bias)
        self.ln_2 = LayerNorm(n_embd, eps, bias)
        self.mlp = MLP(n_embd, bias=bias)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_block", "locked": true, "points": 1, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["native_layer_norm", "layer_norm", "rms_norm", "_fused_rms_norm", "group_norm", "native_group_norm", "instance_norm", "batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training", "_batch_norm_impl_index", "_batch_norm_with_update", "_batch_norm_no_update", "cudnn_batch_norm", "miopen_batch_norm", "scaled_dot_product_attention", "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention", "_native_multi_head_attention", "baddbmm"]}
def test_block_visible():
    return _matches("Block(32, 4)", _randomize(ref.Block(_cfg(n_embd=32, n_head=4)), 40), Block(32, 4),
                    _rand(41, 2, 6, 32), "n_embd=32, n_head=4, x (2, 6, 32)")


run_visible({"Block equals lmcourse.model.Block": (0.5, test_block_visible)}, VISIBLE_TESTS, "Block")
### BEGIN HIDDEN TESTS
with check("Block: other sizes, eps, no bias, float64", 0.5):
    for seed, C, H, bias, eps, dtype in ((42, 16, 1, False, 1e-5, torch.float32), (43, 48, 4, True, 1e-3, torch.float32),
                                         (44, 24, 2, True, 1e-5, torch.float64)):
        _matches("Block", _randomize(ref.Block(_cfg(n_embd=C, n_head=H, bias=bias, layer_norm_eps=eps)), seed),
                 Block(C, H, bias=bias, eps=eps), _rand(seed + 1, 2, 9, C, dtype=dtype),
                 f"n_embd={C}, n_head={H}, bias={bias}, eps={eps}, {dtype}", dtype)
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-6", "locked": true, "schema_version": 3, "solution": false}
# ### 1.5 The GPT
#
# `GPT(vocab_size, block_size, n_layer, n_head, n_embd, bias=True, tie_weights=True, eps=1e-5)`
# turns token ids `idx` of shape `(B, T)` (int64, `T <= block_size`) into logits of shape
# `(B, T, vocab_size)`:
#
# $$x_0 = W_E[\text{idx}] + W_P[0, 1, \dots, T-1], \qquad x_\ell = \operatorname{Block}_\ell(x_{\ell-1}), \qquad
# \text{logits} = \operatorname{LN}_f(x_L)\, W_{\text{head}}^\top .$$
#
# - `W_E` (`vocab_size × n_embd`) and `W_P` (`block_size × n_embd`) are the token and
#   position embeddings; build the positions on `idx.device`.
# - The head has no bias. With **weight tying** (`tie_weights=True`) it *is* the token
#   embedding matrix: one `nn.Parameter` used twice, not a copy (the test checks that your
#   model holds that matrix once).
# - The logits come in the dtype of your parameters (float64 after `.double()`).
#
# `load_reference(state_dict)` takes the `state_dict()` of an `lmcourse.model.GPT` of the
# same configuration. Its names (the **name map** you must serve; in the reference the
# tied `lm_head.weight` is the same tensor as `transformer.wte.weight`):
#
# | reference name | shape |
# |---|---|
# | `transformer.wte.weight` | `(vocab_size, n_embd)` |
# | `transformer.wpe.weight` | `(block_size, n_embd)` |
# | `transformer.h.{i}.ln_1.weight`, `.ln_1.bias` | `(n_embd,)` |
# | `transformer.h.{i}.attn.c_attn.weight`, `.bias` | `(3 n_embd, n_embd)`, `(3 n_embd,)` |
# | `transformer.h.{i}.attn.c_proj.weight`, `.bias` | `(n_embd, n_embd)`, `(n_embd,)` |
# | `transformer.h.{i}.ln_2.weight`, `.ln_2.bias` | `(n_embd,)` |
# | `transformer.h.{i}.mlp.c_fc.weight`, `.bias` | `(4 n_embd, n_embd)`, `(4 n_embd,)` |
# | `transformer.h.{i}.mlp.c_proj.weight`, `.bias` | `(n_embd, 4 n_embd)`, `(n_embd,)` |
# | `transformer.ln_f.weight`, `.bias` | `(n_embd,)` |
# | `lm_head.weight` | `(vocab_size, n_embd)` |
#
# (no `.bias` entries when `bias=False`). With the same attribute names (`self.transformer`
# an `nn.ModuleDict` of `wte`, `wpe`, `h`, `ln_f`; `self.lm_head`) the default
# `load_reference` is all you need. Initialise the weights as GPT-2 does (normal, std 0.02;
# biases 0): the tests load weights, but HW4 trains this model from your initialisation.

# %% nbgrader={"grade": false, "grade_id": "gpt", "locked": false, "schema_version": 3, "solution": true}
class GPT(RefModule):
    """idx (B, T) int64 -> logits (B, T, vocab_size): embeddings, n_layer blocks, final norm, head."""

    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int,
                 bias: bool = True, tie_weights: bool = True, eps: float = 1e-5):
        super().__init__()
        self.block_size = block_size
        ### BEGIN SOLUTION
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd),
            wpe=nn.Embedding(block_size, n_embd),
            h=nn.ModuleList([Block(n_embd, n_head, bias, eps) for _ in range(n_layer)]),
            ln_f=LayerNorm(n_embd, eps, bias),
        ))
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, mean=0.0, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        if tie_weights:
            self.lm_head.weight = self.transformer.wte.weight  # one matrix, two uses
        ### END SOLUTION

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        B, T = idx.shape
        if T > self.block_size:
            raise ValueError(f"idx has {T} positions; block_size is {self.block_size}")
        positions = torch.arange(T, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(positions)  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))  # (B, T, V)
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_gpt", "locked": true, "points": 4, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["native_layer_norm", "layer_norm", "rms_norm", "_fused_rms_norm", "group_norm", "native_group_norm", "instance_norm", "batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training", "_batch_norm_impl_index", "_batch_norm_with_update", "_batch_norm_no_update", "cudnn_batch_norm", "miopen_batch_norm", "scaled_dot_product_attention", "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention", "_native_multi_head_attention", "baddbmm"]}
import lmcourse

_GPT_KEYS = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "bias", "tie_weights")


def _gpt_pair(seed, make, **kw):
    """(yours, reference): the reference GPT with random weights, yours built by ``make`` and loaded."""
    cfg = _cfg(**kw)
    reference = _randomize(ref.GPT(cfg), seed)
    mine = make(**{k: getattr(cfg, k) for k in _GPT_KEYS}, eps=cfg.layer_norm_eps)
    return _loaded(mine, reference), reference


def _logits(model, idx):
    with torch.no_grad():
        out = model(idx)
    return out[0] if isinstance(out, tuple) else out  # the reference returns (logits, loss)


def _ids(seed, B, T, V):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def _n_copies_of_embedding(model, V, C):
    """How many distinct (V, C) or (C, V) matrices your model holds (in state_dict(keep_vars=True))."""
    entries, storages = model.state_dict(keep_vars=True), set()
    while True:  # popitem: works on your model's own dict, wherever it lives
        try:
            _, p = entries.popitem()
        except KeyError:
            return len(storages)
        if p.dim() == 2 and sorted((p.size(0), p.size(1))) == sorted((V, C)):
            storages.add(p.data_ptr())


def test_gpt_shapes():
    mine, _ = _gpt_pair(50, GPT, vocab_size=23, block_size=16, n_layer=2, n_head=2, n_embd=16)
    logits = _logits(mine, _ids(51, 3, 10, 23))
    assert type(logits) is torch.Tensor, f"forward must return the logits tensor, got {type(logits).__name__}"
    assert tuple(logits.shape) == (3, 10, 23), f"logits of idx (3, 10) must have shape (3, 10, 23), got {tuple(logits.shape)}"
    assert logits.dtype == torch.float32, f"logits must be float32 like the parameters, got {logits.dtype}"
    return True


def test_gpt_tying():
    mine = GPT(vocab_size=23, block_size=16, n_layer=1, n_head=2, n_embd=16)
    n = _n_copies_of_embedding(mine, 23, 16)
    assert n == 1, f"with tie_weights=True the head and the token embedding must be one Parameter; found {n} matrices"
    return True


def test_gpt_causal():
    mine, _ = _gpt_pair(52, GPT, vocab_size=29, block_size=32, n_layer=2, n_head=4, n_embd=32)
    idx = _ids(53, 2, 12, 29)
    idx2 = idx.clone()
    idx2[:, 8:] = (idx2[:, 8:] + 1) % 29  # change the tokens at positions 8..11
    a, b = _logits(mine, idx), _logits(mine, idx2)
    assert torch.allclose(a[:, :8], b[:, :8], atol=1e-6), "changing tokens 8..11 changed the logits at positions 0..7"
    assert not torch.allclose(a[:, 8:], b[:, 8:]), "changing tokens 8..11 must change the logits from position 8 on"
    return True


def test_gpt_shakespeare():
    reference, tok = lmcourse.load_pretrained("shakespeare-char")
    c = reference.config
    mine = GPT(c.vocab_size, c.block_size, c.n_layer, c.n_head, c.n_embd, c.bias, c.tie_weights, c.layer_norm_eps)
    mine = _loaded(mine, reference)
    text = "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun."
    idx = torch.tensor([tok.encode(text)])
    _same("logits of shakespeare-char", _logits(mine, idx), _logits(reference, idx), "a line of Romeo and Juliet", _TOL_MODEL)
    return True


run_visible({"GPT: logits shape and dtype": (0.5, test_gpt_shapes),
             "GPT: weight tying (one matrix for the embedding and the head)": (0.5, test_gpt_tying),
             "GPT: changing a future token never changes past logits": (0.5, test_gpt_causal),
             "GPT: loads shakespeare-char and gives its logits": (1, test_gpt_shakespeare)}, VISIBLE_TESTS, "GPT")
### BEGIN HIDDEN TESTS
with check("GPT: other configurations (depth, widths, eps, no bias, untied head)", 0.5):
    for seed, kw, (B, T) in (
        (54, dict(vocab_size=37, block_size=24, n_layer=3, n_head=3, n_embd=24), (2, 24)),
        (55, dict(vocab_size=50, block_size=12, n_layer=2, n_head=4, n_embd=32, bias=False), (3, 7)),
        (56, dict(vocab_size=19, block_size=8, n_layer=1, n_head=1, n_embd=8, tie_weights=False), (1, 1)),
        (57, dict(vocab_size=64, block_size=40, n_layer=2, n_head=2, n_embd=16, layer_norm_eps=1e-3), (2, 33)),
    ):
        mine, reference = _gpt_pair(seed, GPT, **kw)
        idx = _ids(seed + 1, B, T, kw["vocab_size"])
        _same("logits", _logits(mine, idx), _logits(reference, idx), f"configuration {kw}, (B, T)={(B, T)}", _TOL_MODEL)
with check("GPT: weight tying in another configuration; its own head when tie_weights=False", 0.5):
    tied = GPT(vocab_size=37, block_size=24, n_layer=3, n_head=3, n_embd=24)
    assert _n_copies_of_embedding(tied, 37, 24) == 1, "weight tying lost in another configuration"
    untied = GPT(vocab_size=19, block_size=8, n_layer=1, n_head=1, n_embd=8, tie_weights=False)
    assert _n_copies_of_embedding(untied, 19, 8) == 2, "with tie_weights=False the head must be its own matrix"
with check("GPT: float64", 0.5):
    mine, reference = _gpt_pair(58, GPT, vocab_size=31, block_size=16, n_layer=2, n_head=2, n_embd=16)
    mine, reference = mine.double(), reference.double()
    idx = _ids(59, 2, 16, 31)
    _same("logits (float64)", _logits(mine, idx), _logits(reference, idx), "a float64 model", _TOL_MODEL)
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-7", "locked": true, "schema_version": 3, "solution": false}
# Your model is now the model of the book: the next cell, not graded, lets the loaded
# `shakespeare-char` weights write through your code (200 characters sampled at
# temperature 0.8, seeded).

# %% nbgrader={"grade": false, "grade_id": "demo_shakespeare", "locked": true, "schema_version": 3, "solution": false} tags=["demo"]
if __name__ == "__main__":  # runs in your notebook; skipped while grading
    _reference, _tok = lmcourse.load_pretrained("shakespeare-char")
    _c = _reference.config
    _yours = GPT(_c.vocab_size, _c.block_size, _c.n_layer, _c.n_head, _c.n_embd)
    _yours.load_reference(_reference.state_dict())
    _yours.eval()
    _idx = torch.tensor([_tok.encode("ROMEO:\n")])
    _g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(200):
            _probs = torch.softmax(_yours(_idx[:, -_c.block_size:])[:, -1] / 0.8, dim=-1)
            _idx = torch.cat([_idx, torch.multinomial(_probs, 1, generator=_g)], dim=1)
    print(_tok.decode(_idx[0].tolist()))

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-8", "locked": true, "schema_version": 3, "solution": false}
# ## Part 2: the Llama block
#
# A Llama-style model keeps the skeleton (embeddings, pre-norm residual blocks, final norm,
# head) and changes five parts: RMSNorm instead of LayerNorm, rotary position embeddings
# instead of the position table, a gated SwiGLU MLP, grouped-query attention, and (by
# default) no biases and an untied head. The reference is `lmcourse.model.GPT` with
#
# ```python
# GPTConfig(pos_emb="rope", norm="rmsnorm", mlp="swiglu", bias=False, tie_weights=False,
#           n_kv_head=..., layer_norm_eps=1e-6, mlp_hidden=...)
# ```
#
# ### 2.1 RMSNorm
#
# $$\operatorname{RMSNorm}(x) = \gamma \odot \frac{x}{\sqrt{\frac{1}{C}\sum_i x_i^2 + \epsilon}}$$
#
# No centring and no bias. `RMSNorm(dim, eps=1e-6)` has one parameter, `weight` ($\gamma$,
# ones at the start). Any input shape `(..., dim)`; the output has the input's shape.
# Do not use `nn.RMSNorm` or `F.rms_norm` (blocked).

# %% nbgrader={"grade": false, "grade_id": "rmsnorm", "locked": false, "schema_version": 3, "solution": true}
class RMSNorm(RefModule):
    """(..., dim) -> (..., dim): divide by the root mean square, then scale."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        ### BEGIN SOLUTION
        self.weight = nn.Parameter(torch.ones(dim))
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps))
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_rmsnorm", "locked": true, "points": 1, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["native_layer_norm", "layer_norm", "rms_norm", "_fused_rms_norm", "group_norm", "native_group_norm", "instance_norm", "batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training", "_batch_norm_impl_index", "_batch_norm_with_update", "_batch_norm_no_update", "cudnn_batch_norm", "miopen_batch_norm", "scaled_dot_product_attention", "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention", "_native_multi_head_attention", "baddbmm"]}
# The reference RMSNorm computes in float32 (as transformers' Llama does), so a float64
# input is compared with float32 tolerances; only the output dtype must be float64.
def test_rmsnorm_visible():
    reference = _randomize(ref.RMSNorm(16), 60)
    mine = _loaded(RMSNorm(16), reference)
    x = _rand(61, 2, 5, 16, scale=3.0)
    with torch.no_grad():
        _same("RMSNorm(16)", mine(x), reference(x), "x (2, 5, 16)")
        plain = RMSNorm(8)(x[..., :8])
    rms = plain.pow(2).mean(-1).sqrt()
    assert torch.allclose(rms, torch.ones(2, 5), atol=1e-4), "with weight 1 every output vector must have root mean square 1"
    return True


run_visible({"RMSNorm equals the reference; outputs have RMS 1": (0.5, test_rmsnorm_visible)}, VISIBLE_TESTS, "RMSNorm")
### BEGIN HIDDEN TESTS
with check("RMSNorm: other widths, eps, shapes, float64", 0.5):
    for seed, C, eps, shape, dtype in ((62, 4, 1e-6, (9, 4), torch.float32), (63, 64, 1e-5, (2, 3, 4, 64), torch.float32),
                                       (64, 24, 1e-6, (3, 24), torch.float64)):
        _matches("RMSNorm", _randomize(ref.RMSNorm(C, eps=eps), seed), RMSNorm(C, eps=eps),
                 _rand(seed + 1, *shape, dtype=dtype, scale=2.0) + 0.5, f"C={C}, eps={eps}, x {shape}, {dtype}",
                 dtype, {dtype: _TOL[torch.float32]})
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-9", "locked": true, "schema_version": 3, "solution": false}
# ### 2.2 Rotary position embeddings (RoPE)
#
# RoPE gives attention the positions by rotating queries and keys. A head vector of size D
# is split into D/2 pairs; pair $i$ at position $m$ is rotated, as a point in the plane, by
# the angle $m\,\theta_i$ with $\theta_i = \text{theta}^{-2i/D}$:
#
# $$(a, b) \mapsto (a\cos m\theta_i - b\sin m\theta_i,\; b\cos m\theta_i + a\sin m\theta_i).$$
#
# The score $q_m \cdot k_n$ of two rotated vectors then depends on $m - n$ only.
#
# `apply_rope(x, positions, theta=10000.0)`: `x` of shape `(B, H, T, D)` (D even),
# `positions` an int64 tensor of shape `(T,)` (the position of each of the T rows, not
# necessarily 0..T-1); returns the rotated `x`, same shape and dtype. Compute the angles in
# float32 or float64, as you like.
#
# **Which dimensions form pair i** is a convention. `lmcourse` (and transformers' Llama)
# pairs dimension $i$ with $i + D/2$ ("rotate half": with `x1, x2 = x.chunk(2, -1)` the
# rotated vector is `x * cos + cat(-x2, x1) * sin`, the D/2 angles repeated twice); the
# RoFormer paper pairs $2i$ with $2i + 1$ ("interleaved"). The test accepts either.
# The two are the same model up to a reordering of each head's query and key rows: if
# you interleave, your `GroupedQueryAttention.load_reference` must reorder the rows of
# the reference's `c_attn` for the query and key heads, within each head of size D, from
# `[0, 1, ..., D/2 - 1, D/2, ..., D - 1]` to `[0, D/2, 1, D/2 + 1, ...]`.

# %% nbgrader={"grade": false, "grade_id": "rope", "locked": false, "schema_version": 3, "solution": true}
def apply_rope(x: torch.Tensor, positions: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """Rotate the pairs of dimensions of x (B, H, T, D) by their angles at ``positions`` (T,)."""
    ### BEGIN SOLUTION
    D = x.size(-1)
    inv_freq = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float32, device=x.device) / D)  # (D/2,)
    angles = positions.to(device=x.device, dtype=torch.float32)[:, None] * inv_freq[None, :]  # (T, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, D): dims i and i + D/2 share an angle
    x1, x2 = x.chunk(2, dim=-1)
    return x * angles.cos().to(x.dtype) + torch.cat([-x2, x1], dim=-1) * angles.sin().to(x.dtype)
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_rope", "locked": true, "points": 1.5, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["native_layer_norm", "layer_norm", "rms_norm", "_fused_rms_norm", "group_norm", "native_group_norm", "instance_norm", "batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training", "_batch_norm_impl_index", "_batch_norm_with_update", "_batch_norm_no_update", "cudnn_batch_norm", "miopen_batch_norm", "scaled_dot_product_attention", "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention", "_native_multi_head_attention", "baddbmm"]}
from lmcourse.grading import call_many


def _rope_references(x, positions, theta):
    """The reference rotation in both pairings: (rotate half, interleaved)."""
    H, D = x.size(1), x.size(-1)
    cfg = _cfg(n_embd=H * D, n_head=H, pos_emb="rope", rope_theta=float(theta),
               block_size=int(positions.max()) + 1)
    cos, sin = ref.RotaryEmbedding(cfg).to(x.dtype)(positions.unsqueeze(0))
    half = ref.apply_rotary(x, cos, sin)
    halves = torch.cat([x[..., 0::2], x[..., 1::2]], dim=-1)  # interleaved pairs -> halves
    rotated = ref.apply_rotary(halves, cos, sin)
    inter = torch.stack([rotated[..., : D // 2], rotated[..., D // 2:]], dim=-1).flatten(-2)
    return half, inter


def _check_rope(cases, results):
    """Every result equals the rotate-half reference, or every result the interleaved one."""
    refs = [_rope_references(x, p, th) for x, p, th in cases]
    atol, rtol = _TOL_MODEL[torch.float32]
    errors = {}
    for style, which in (("rotate-half", 0), ("interleaved", 1)):
        try:
            for (x, p, th), got, r in zip(cases, results, refs):
                check_tensor("apply_rope", got, r[which].to(x.dtype), atol, rtol,
                             on=f"x {tuple(x.shape)} {x.dtype}, positions {p[0].item()}..{p[-1].item()}, theta={th}")
            return style
        except AssertionError as e:
            errors[style] = str(e)
    raise AssertionError(f"neither pairing matches: {errors['rotate-half']}")


def test_rope_visible():
    cases = [(_rand(70, 2, 3, 5, 8), torch.arange(5), 10000.0), (_rand(71, 1, 2, 4, 16), torch.arange(10, 14), 500.0)]
    _check_rope(cases, call_many(apply_rope, [((x, p, th), {}) for x, p, th in cases]))
    return True


def test_rope_relative():
    q, k = _rand(72, 1, 1, 1, 16), _rand(73, 1, 1, 1, 16)
    pairs = [(3, 1), (10, 8), (52, 50)]  # the same distance 2, at three places
    calls = [((q, torch.tensor([m]), 10000.0), {}) for m, _ in pairs] + [((k, torch.tensor([n]), 10000.0), {}) for _, n in pairs]
    out = call_many(apply_rope, calls)
    scores = [float((out[i] * out[i + 3]).sum()) for i in range(3)]
    assert max(scores) - min(scores) < 1e-4, f"q.k must depend on m - n only: scores at distance 2 were {scores}"
    norms = [float(o.norm()) for o in out[:3]]
    assert max(abs(n - float(q.norm())) for n in norms) < 1e-4, "a rotation must keep the length of each vector"
    return True


run_visible({"apply_rope equals the reference (either pairing)": (0.5, test_rope_visible),
             "apply_rope: scores depend on relative positions; lengths kept": (0.5, test_rope_relative)}, VISIBLE_TESTS, "apply_rope")
### BEGIN HIDDEN TESTS
with check("apply_rope: other shapes, positions, theta, float64", 0.5):
    _cases = [(_rand(74, 3, 4, 9, 32), torch.arange(9), 10000.0), (_rand(75, 2, 1, 1, 2), torch.tensor([7]), 10000.0),
              (_rand(76, 1, 2, 6, 64), torch.tensor([0, 5, 17, 30, 63, 100]), 1e6),
              (_rand(77, 2, 2, 7, 8, dtype=torch.float64), torch.arange(3, 10), 10000.0)]
    _check_rope(_cases, call_many(apply_rope, [((x, p, th), {}) for x, p, th in _cases]))
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-10", "locked": true, "schema_version": 3, "solution": false}
# ### 2.3 SwiGLU
#
# The gated MLP of Llama (Shazeer 2020): with a gate $g = x W_1$ and a value $u = x W_3$,
# both of width F,
#
# $$\operatorname{SwiGLU}(x) = \big(\operatorname{silu}(g) \odot u\big) W_2, \qquad \operatorname{silu}(g) = g\,\sigma(g).$$
#
# `SwiGLU(n_embd, hidden, bias=False)`. The reference stores $W_1$ and $W_3$ stacked in one
# Linear `c_fc` (C → 2F: the gate is the first F outputs, the value the last F) and $W_2$
# as `c_proj` (F → C). Keep that layout, or use two Linear layers and split `c_fc` in
# `load_reference`.

# %% nbgrader={"grade": false, "grade_id": "swiglu", "locked": false, "schema_version": 3, "solution": true}
class SwiGLU(RefModule):
    """(B, T, C) -> (B, T, C): (silu(x W1) * (x W3)) W2."""

    def __init__(self, n_embd: int, hidden: int, bias: bool = False):
        super().__init__()
        ### BEGIN SOLUTION
        self.c_fc = nn.Linear(n_embd, 2 * hidden, bias=bias)
        self.c_proj = nn.Linear(hidden, n_embd, bias=bias)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        gate, value = self.c_fc(x).chunk(2, dim=-1)
        return self.c_proj(F.silu(gate) * value)
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_swiglu", "locked": true, "points": 1, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["native_layer_norm", "layer_norm", "rms_norm", "_fused_rms_norm", "group_norm", "native_group_norm", "instance_norm", "batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training", "_batch_norm_impl_index", "_batch_norm_with_update", "_batch_norm_no_update", "cudnn_batch_norm", "miopen_batch_norm", "scaled_dot_product_attention", "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention", "_native_multi_head_attention", "baddbmm"]}
def _llama_cfg(**kw):
    base = dict(pos_emb="rope", norm="rmsnorm", mlp="swiglu", bias=False, tie_weights=False, layer_norm_eps=1e-6)
    base.update(kw)
    return _cfg(**base)


def test_swiglu_visible():
    return _matches("SwiGLU(16, 24)", _randomize(ref.MLP(_llama_cfg(n_embd=16, mlp_hidden=24)), 80), SwiGLU(16, 24),
                    _rand(81, 2, 5, 16), "n_embd=16, hidden=24, x (2, 5, 16)")


run_visible({"SwiGLU equals the reference": (0.5, test_swiglu_visible)}, VISIBLE_TESTS, "SwiGLU")
### BEGIN HIDDEN TESTS
with check("SwiGLU: other widths, with bias, float64", 0.5):
    for seed, C, hidden, bias, dtype in ((82, 8, 8, False, torch.float32), (83, 32, 88, True, torch.float32),
                                         (84, 12, 20, False, torch.float64)):
        _matches("SwiGLU", _randomize(ref.MLP(_llama_cfg(n_embd=C, n_head=1, mlp_hidden=hidden, bias=bias)), seed),
                 SwiGLU(C, hidden, bias=bias), _rand(seed + 1, 3, 4, C, dtype=dtype, scale=2.0),
                 f"n_embd={C}, hidden={hidden}, bias={bias}, {dtype}", dtype)
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-11", "locked": true, "schema_version": 3, "solution": false}
# ### 2.4 Grouped-query attention with RoPE
#
# `GroupedQueryAttention(n_embd, n_head, n_kv_head, bias=False, rope_theta=10000.0)`: there
# are `n_head` query heads but only `n_kv_head` key/value heads (a divisor of `n_head`; 1 is
# multi-query attention, `n_head` is ordinary multi-head attention), each of size
# D = n_embd / n_head. One Linear `c_attn` (C → (n_head + 2 n_kv_head) D) gives, along its
# outputs, the queries (n_head D), then the keys (n_kv_head D), then the values
# (n_kv_head D); `c_proj` (C → C) mixes the heads. Rotate the queries and keys with your
# `apply_rope` at positions 0, 1, ..., T-1 (not the values); then query head h attends with
# key/value head `h // (n_head // n_kv_head)`, causally, and the heads go back side by side.

# %% nbgrader={"grade": false, "grade_id": "gqa", "locked": false, "schema_version": 3, "solution": true}
class GroupedQueryAttention(RefModule):
    """(B, T, C) -> (B, T, C): causal attention with n_kv_head key/value heads and RoPE."""

    def __init__(self, n_embd: int, n_head: int, n_kv_head: int, bias: bool = False, rope_theta: float = 10000.0):
        super().__init__()
        self.n_head, self.n_kv_head, self.rope_theta = n_head, n_kv_head, rope_theta
        ### BEGIN SOLUTION
        D = n_embd // n_head
        self.c_attn = nn.Linear(n_embd, (n_head + 2 * n_kv_head) * D, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        B, T, C = x.shape
        H, Hk, D = self.n_head, self.n_kv_head, C // self.n_head
        q, k, v = self.c_attn(x).split([H * D, Hk * D, Hk * D], dim=-1)
        q = q.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, Hk, D).transpose(1, 2)  # (B, Hk, T, D)
        v = v.view(B, T, Hk, D).transpose(1, 2)
        positions = torch.arange(T, device=x.device)
        q, k = apply_rope(q, positions, self.rope_theta), apply_rope(k, positions, self.rope_theta)
        k = k.repeat_interleave(H // Hk, dim=1)  # query head h reads key/value head h // (H // Hk)
        v = v.repeat_interleave(H // Hk, dim=1)
        y = attend(q, k, v).transpose(1, 2).reshape(B, T, C)
        return self.c_proj(y)
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_gqa", "locked": true, "points": 1.5, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["native_layer_norm", "layer_norm", "rms_norm", "_fused_rms_norm", "group_norm", "native_group_norm", "instance_norm", "batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training", "_batch_norm_impl_index", "_batch_norm_with_update", "_batch_norm_no_update", "cudnn_batch_norm", "miopen_batch_norm", "scaled_dot_product_attention", "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention", "_native_multi_head_attention", "baddbmm"]}
class _WithRope(nn.Module):
    """A reference attention or block run at positions 0..T-1 (the reference takes the angles as an argument)."""

    def __init__(self, module, cfg):
        super().__init__()
        self.inner, self.rotary = module, ref.RotaryEmbedding(cfg)

    def forward(self, x):
        cos, sin = self.rotary(torch.arange(x.size(1)).unsqueeze(0))
        return self.inner(x, None, None, (cos.to(x.dtype), sin.to(x.dtype)))


def _gqa_pair(seed, C, H, Hk, bias=False, theta=10000.0, dtype=torch.float32):
    cfg = _llama_cfg(n_embd=C, n_head=H, n_kv_head=Hk, bias=bias, rope_theta=theta)
    reference = _randomize(ref.CausalSelfAttention(cfg), seed).to(dtype)
    mine = GroupedQueryAttention(C, H, Hk, bias=bias, rope_theta=theta)
    mine.load_reference(dict(reference.state_dict()))
    return mine.to(dtype).eval(), _WithRope(reference, cfg).eval()


def test_gqa_visible():
    mine, reference = _gqa_pair(90, 32, 4, 2)
    x = _rand(91, 2, 7, 32)
    x2 = x.clone()
    x2[:, 5:] = _rand(92, 2, 2, 32)
    with torch.no_grad():
        y, y2 = mine(x), mine(x2)
        _same("GroupedQueryAttention(32, 4, 2)", y, reference(x), "n_embd=32, n_head=4, n_kv_head=2", _TOL_MODEL)
    assert torch.allclose(y[:, :5], y2[:, :5], atol=1e-6), "changing tokens 5, 6 changed the outputs at 0..4"
    return True


run_visible({"GQA (4 query heads, 2 key/value heads) equals the reference; causal": (0.5, test_gqa_visible)}, VISIBLE_TESTS, "GroupedQueryAttention")
### BEGIN HIDDEN TESTS
with check("GQA: multi-query and other groupings", 0.5):
    for seed, C, H, Hk, (B, T) in ((93, 48, 6, 1, (2, 9)), (94, 64, 8, 2, (1, 12)), (95, 24, 6, 3, (3, 5))):
        mine, reference = _gqa_pair(seed, C, H, Hk)
        x = _rand(seed + 1, B, T, C)
        with torch.no_grad():
            _same("GroupedQueryAttention", mine(x), reference(x), f"n_embd={C}, n_head={H}, n_kv_head={Hk}, (B, T)={(B, T)}", _TOL_MODEL)
with check("GQA: multi-head (n_kv_head = n_head), bias, theta, float64", 0.5):
    for seed, C, H, Hk, bias, theta, dtype in ((96, 32, 4, 4, True, 10000.0, torch.float32), (97, 16, 2, 1, False, 500.0, torch.float32),
                                               (98, 32, 4, 2, False, 10000.0, torch.float64)):
        mine, reference = _gqa_pair(seed, C, H, Hk, bias, theta, dtype)
        x = _rand(seed + 1, 2, 11, C, dtype=dtype)
        with torch.no_grad():
            _same("GroupedQueryAttention", mine(x), reference(x).to(dtype),
                  f"n_embd={C}, n_head={H}, n_kv_head={Hk}, bias={bias}, theta={theta}, {dtype}", {dtype: _TOL_MODEL[torch.float32]})
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-12", "locked": true, "schema_version": 3, "solution": false}
# ### 2.5 The Llama block and the Llama-style GPT
#
# `LlamaBlock(n_embd, n_head, n_kv_head, hidden, bias=False, eps=1e-6, rope_theta=10000.0)`
# is the pre-norm block with `ln_1` and `ln_2` your `RMSNorm`, `attn` your
# `GroupedQueryAttention`, `mlp` your `SwiGLU` (reference: `lmcourse.model.Block`).
#
# `LlamaGPT(vocab_size, block_size, n_layer, n_head, n_kv_head, n_embd, hidden=None,
# bias=False, tie_weights=False, eps=1e-6, rope_theta=10000.0)` is the GPT of part 1
# with these blocks, an `RMSNorm` as final norm and **no position table** (the positions
# enter through RoPE). `hidden=None` means the reference's default width
# `8 * math.ceil(2 * 4 * n_embd / 3 / 8)` (2/3 of 4C rounded up to a multiple of 8: the
# parameter count of a GELU MLP). The head is its own matrix unless `tie_weights=True`.
# The reference state_dict names are those of part 1 without `transformer.wpe.weight` and
# without the norms' biases: `transformer.wte.weight`, `transformer.h.{i}.ln_1.weight`,
# `.attn.c_attn.weight`, `.attn.c_proj.weight`, `.ln_2.weight`, `.mlp.c_fc.weight`,
# `.mlp.c_proj.weight` (and the Linear biases when `bias=True`), `transformer.ln_f.weight`,
# `lm_head.weight`.

# %% nbgrader={"grade": false, "grade_id": "llama", "locked": false, "schema_version": 3, "solution": true}
class LlamaBlock(RefModule):
    """(B, T, C) -> (B, T, C): x + attn(rmsnorm_1(x)), then x + swiglu(rmsnorm_2(x))."""

    def __init__(self, n_embd: int, n_head: int, n_kv_head: int, hidden: int, bias: bool = False,
                 eps: float = 1e-6, rope_theta: float = 10000.0):
        super().__init__()
        ### BEGIN SOLUTION
        self.ln_1 = RMSNorm(n_embd, eps)
        self.attn = GroupedQueryAttention(n_embd, n_head, n_kv_head, bias, rope_theta)
        self.ln_2 = RMSNorm(n_embd, eps)
        self.mlp = SwiGLU(n_embd, hidden, bias)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))
        ### END SOLUTION


class LlamaGPT(RefModule):
    """idx (B, T) int64 -> logits (B, T, vocab_size): the Llama-style GPT."""

    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_kv_head: int, n_embd: int,
                 hidden: int = None, bias: bool = False, tie_weights: bool = False, eps: float = 1e-6,
                 rope_theta: float = 10000.0):
        super().__init__()
        self.block_size = block_size
        hidden = 8 * math.ceil(2 * 4 * n_embd / 3 / 8) if hidden is None else hidden
        ### BEGIN SOLUTION
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd),
            h=nn.ModuleList([LlamaBlock(n_embd, n_head, n_kv_head, hidden, bias, eps, rope_theta) for _ in range(n_layer)]),
            ln_f=RMSNorm(n_embd, eps),
        ))
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        for module in self.modules():  # part 1's initialisation, module by module
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        if tie_weights:
            self.lm_head.weight = self.transformer.wte.weight
        ### END SOLUTION

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        if idx.size(1) > self.block_size:
            raise ValueError(f"idx has {idx.size(1)} positions; block_size is {self.block_size}")
        x = self.transformer.wte(idx)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_llama", "locked": true, "points": 2, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["native_layer_norm", "layer_norm", "rms_norm", "_fused_rms_norm", "group_norm", "native_group_norm", "instance_norm", "batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training", "_batch_norm_impl_index", "_batch_norm_with_update", "_batch_norm_no_update", "cudnn_batch_norm", "miopen_batch_norm", "scaled_dot_product_attention", "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention", "_native_multi_head_attention", "baddbmm"]}
_LLAMA_KEYS = ("vocab_size", "block_size", "n_layer", "n_head", "n_kv_head", "n_embd", "bias", "tie_weights")


def _llama_pair(seed, **kw):
    cfg = _llama_cfg(**kw)
    reference = _randomize(ref.GPT(cfg), seed)
    args = {k: getattr(cfg, k) for k in _LLAMA_KEYS}
    mine = LlamaGPT(**args, hidden=kw.get("mlp_hidden"), eps=cfg.layer_norm_eps, rope_theta=cfg.rope_theta)
    return _loaded(mine, reference), reference


def test_llama_block_visible():
    cfg = _llama_cfg(n_embd=32, n_head=4, n_kv_head=2, mlp_hidden=48)
    reference = _WithRope(_randomize(ref.Block(cfg), 100), cfg).eval()
    mine = LlamaBlock(32, 4, 2, 48)
    mine.load_reference(dict(reference.inner.state_dict()))
    x = _rand(101, 2, 6, 32)
    with torch.no_grad():
        _same("LlamaBlock(32, 4, 2, 48)", mine.eval()(x), reference(x), "n_embd=32, n_head=4, n_kv_head=2, hidden=48", _TOL_MODEL)
    return True


def test_llama_visible():
    mine, reference = _llama_pair(102, vocab_size=41, block_size=32, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, mlp_hidden=64)
    idx = _ids(103, 2, 20, 41)
    _same("LlamaGPT logits", _logits(mine, idx), _logits(reference, idx), "n_layer=2, n_head=4, n_kv_head=2, n_embd=32", _TOL_MODEL)
    return True


run_visible({"LlamaBlock equals the reference block": (0.5, test_llama_block_visible),
             "LlamaGPT gives the reference's logits": (0.5, test_llama_visible)}, VISIBLE_TESTS, "LlamaGPT")
### BEGIN HIDDEN TESTS
with check("LlamaGPT: other configurations (MQA, MHA, default width, tied, bias, theta)", 0.5):
    for seed, kw, (B, T) in (
        (104, dict(vocab_size=30, block_size=16, n_layer=3, n_head=6, n_kv_head=1, n_embd=48), (2, 16)),
        (105, dict(vocab_size=50, block_size=12, n_layer=1, n_head=2, n_kv_head=2, n_embd=16, tie_weights=True, mlp_hidden=24), (3, 5)),
        (106, dict(vocab_size=20, block_size=24, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, bias=True, rope_theta=500.0, layer_norm_eps=1e-5), (1, 24)),
    ):
        mine, reference = _llama_pair(seed, **kw)
        idx = _ids(seed + 1, B, T, kw["vocab_size"])
        _same("LlamaGPT logits", _logits(mine, idx), _logits(reference, idx), f"configuration {kw}, (B, T)={(B, T)}", _TOL_MODEL)
with check("LlamaGPT: changing a future token never changes past logits", 0.5):
    mine, _ = _llama_pair(108, vocab_size=29, block_size=32, n_layer=2, n_head=4, n_kv_head=1, n_embd=32)
    idx = _ids(109, 2, 15, 29)
    idx2 = idx.clone()
    idx2[:, 9:] = (idx2[:, 9:] + 3) % 29
    a, b = _logits(mine, idx), _logits(mine, idx2)
    assert torch.allclose(a[:, :9], b[:, :9], atol=1e-6), "changing tokens 9.. changed the logits at positions 0..8"
    assert not torch.allclose(a[:, 9:], b[:, 9:]), "changing tokens 9.. must change the later logits"
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks
