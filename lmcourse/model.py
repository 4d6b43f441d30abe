"""The GPT: a decoder-only transformer, written to be read top to bottom.

Chapter 5 (causal masking & the decoder) and chapter 7 (KV cache) teach this file.

Shapes used in the comments:
    B  batch size            T  number of new positions in this call
    L  positions already in the KV cache (0 without a cache)
    S  = L + T, key/value length
    C  n_embd                H  n_head        Hk  n_kv_head       D  head_dim = C // H
    F  hidden width of the MLP                V  vocab_size

By default the model is GPT-2 in structure (Radford et al. 2019; the layout follows
Karpathy's nanoGPT): learned positions, pre-LayerNorm blocks, a GELU MLP, a LM head tied
to the token embeddings. Options of the same :class:`GPTConfig` turn it into a Llama-style
model (Touvron et al. 2023): rotary position embeddings (``pos_emb="rope"``, Su et al.,
RoFormer), RMSNorm (``norm="rmsnorm"``, Zhang & Sennrich 2019), a SwiGLU MLP
(``mlp="swiglu"``, Shazeer 2020), no biases (``bias=False``), an untied head
(``tie_weights=False``) and grouped-query attention (``n_kv_head < n_head``, Ainslie et
al. 2023). :mod:`lmcourse.hf` loads the weights of the ``transformers`` models of those two
families with equal logits.

Every building block can also be used alone, built from its own sizes
(``MLP(384, activation="swiglu")``, ``RotaryEmbedding(64, theta=10000.0, max_len=2048)``,
``CausalSelfAttention(384, 6, rotary=...)``) or from a :class:`GPTConfig` (``Block(config,
layer_idx)``, ``MLP(config)``). This file imports nothing from lmcourse.

The forward pass, in the named steps the book uses::

    x = embed(idx, positions)           # (B, T, C)  token (+ learned position) vectors
    x = run_blocks(x, positions, ...)    # (B, T, C)  n_layer x [attention, MLP], residual
    x = transformer.ln_f(x)             # (B, T, C)  final norm
    logits = lm_head(x)                 # (B, T, V)  a score for every next token
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterator, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "GPTConfig",
    "GPT",
    "KVCache",
    "CausalSelfAttention",
    "MLP",
    "Block",
    "RMSNorm",
    "RotaryEmbedding",
    "apply_rotary",
    "make_norm",
    "default_hidden_dim",
    "causal_mask",
    "padded_causal_mask",
    "eval_mode",
    "scaled_dot_product_attention",
]

IGNORE_INDEX = -100  # a target with this value contributes nothing to the loss (padding)


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------

_CHOICES = {
    "attn_impl": ("sdpa", "explicit"),
    "pos_emb": ("learned", "rope"),
    "norm": ("layernorm", "rmsnorm"),
    "mlp": ("gelu", "swiglu"),
}


@dataclass
class GPTConfig:
    """Hyper-parameters of a GPT. Validated on construction (TypeError for a wrong type,
    ValueError for a wrong value, naming the field).

    The defaults describe GPT-2; a Llama-style model is, for example,
    ``GPTConfig(pos_emb="rope", norm="rmsnorm", mlp="swiglu", bias=False,
    tie_weights=False, n_kv_head=2, layer_norm_eps=1e-6)``.

    Args:
        vocab_size: number of token ids V.
        block_size: longest context the model can see (number of positions).
        n_layer: number of transformer blocks.
        n_head: number of query heads.
        n_kv_head: number of key/value heads. ``None`` means ``n_head`` (multi-head
            attention); 1 is multi-query attention (MQA); anything in between that divides
            ``n_head`` is grouped-query attention (GQA).
        n_embd: width of the residual stream C; must be divisible by ``n_head``.
        dropout: dropout probability on attention weights and residual branches.
        bias: whether Linear layers and LayerNorms have a bias.
        tie_weights: share the token embedding matrix with the LM head.
        attn_impl: ``"sdpa"`` (fused ``F.scaled_dot_product_attention``, FlashAttention on
            GPU) or ``"explicit"`` (builds the mask and the T x T weights; same result).
        layer_norm_eps: epsilon of every normalisation layer (GPT-2 uses 1e-5, Llama 1e-6).
        pos_emb: ``"learned"`` (a trained vector per position, added to the token vector)
            or ``"rope"`` (rotary embeddings: queries and keys are rotated by an angle
            proportional to their position; no parameters).
        rope_theta: base of the rotary frequencies (10000 in RoFormer and Llama 2).
        rope_scaling: position interpolation factor: positions are divided by it before
            the rotation, so a model trained on ``block_size`` positions can be run on
            ``rope_scaling * block_size`` (transformers' ``"linear"`` rope scaling).
        norm: ``"layernorm"`` or ``"rmsnorm"``.
        mlp: ``"gelu"`` (C -> F -> GELU -> C) or ``"swiglu"`` (gated: silu(x W1) * (x W3),
            then W2).
        mlp_hidden: hidden width F; ``None`` gives 4C for GELU and, for SwiGLU, 2/3 of
            that rounded up to a multiple of 8 (about the same number of parameters).
    """

    vocab_size: int = 65
    block_size: int = 256
    n_layer: int = 6
    n_head: int = 6
    n_kv_head: Optional[int] = None
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True
    attn_impl: str = "sdpa"
    layer_norm_eps: float = 1e-5
    pos_emb: str = "learned"
    rope_theta: float = 10000.0
    rope_scaling: float = 1.0
    norm: str = "layernorm"
    mlp: str = "gelu"
    mlp_hidden: Optional[int] = None

    def __post_init__(self) -> None:
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        ints = ("vocab_size", "block_size", "n_layer", "n_head", "n_kv_head", "n_embd")
        for name in ints + (("mlp_hidden",) if self.mlp_hidden is not None else ()):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"GPTConfig.{name} must be a positive integer, got {type(value).__name__} {value!r}")
            if value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        for name in ("bias", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"GPTConfig.{name} must be True or False, got {getattr(self, name)!r}")
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"GPTConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("dropout", "layer_norm_eps", "rope_theta", "rope_scaling"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"GPTConfig.{name} must be a finite number, got {type(value).__name__} {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"GPTConfig.{name} must be a finite number, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
            )
        if self.n_head % self.n_kv_head != 0:
            raise ValueError(
                f"GPTConfig.n_head ({self.n_head}) must be divisible by n_kv_head "
                f"({self.n_kv_head}); allowed n_kv_head are the divisors of n_head"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"GPTConfig.layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")
        if not self.rope_theta > 1:
            raise ValueError(f"GPTConfig.rope_theta must be > 1, got {self.rope_theta!r}")
        if not self.rope_scaling >= 1:
            raise ValueError(f"GPTConfig.rope_scaling must be >= 1 (1 = no scaling), got {self.rope_scaling!r}")
        if self.pos_emb == "rope" and self.head_dim % 2 != 0:
            raise ValueError(
                f"GPTConfig: pos_emb='rope' rotates pairs of dimensions, so head_dim "
                f"(n_embd // n_head = {self.head_dim}) must be even"
            )
        if self.pos_emb != "rope" and (self.rope_theta != 10000.0 or self.rope_scaling != 1.0):
            raise ValueError("GPTConfig.rope_theta and rope_scaling only apply with pos_emb='rope'")

    @property
    def head_dim(self) -> int:
        """Size D of one attention head."""
        return self.n_embd // self.n_head

    @property
    def hidden_dim(self) -> int:
        """Hidden width F of the MLP (``mlp_hidden``, or the default of the MLP kind)."""
        if self.mlp_hidden is not None:
            return self.mlp_hidden
        return default_hidden_dim(self.n_embd, self.mlp)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (what checkpoints store)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPTConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise a clear error.

        Fields missing from ``d`` (e.g. a checkpoint written before an option existed) take
        their defaults, which describe GPT-2.
        """
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown GPTConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

# --------------------------------------------------------------------------------------
# Attention building blocks: masks, attention, the KV cache
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block with ``model`` in eval mode (no dropout), then restore its previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def causal_mask(T: int, S: Optional[int] = None, device: Optional[torch.device] = None) -> torch.Tensor:
    """Boolean causal mask: ``mask[i, j]`` is True when query i may attend to key j.

    With ``S`` keys and ``T`` queries (S >= T, the queries being the *last* T positions,
    as after a KV-cache prefill) query i sits at absolute position ``S - T + i`` and may
    see keys ``j <= S - T + i``. With ``S = T`` this is the lower-triangular matrix.
    """
    S = T if S is None else S
    if T < 0 or S < T:
        raise ValueError(f"causal_mask needs 0 <= T <= S, got T={T}, S={S}")
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    dropout_p: float = 0.0,
    training: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention written out: softmax(q k^T / sqrt(D), masked with -inf) v.

    Args:
        q: (..., T, D) queries.  k, v: (..., S, D) keys and values.
        mask: boolean, broadcastable to (..., T, S); True where attending is allowed.
    Returns:
        ``(out, weights)`` with out (..., T, D) and the attention weights (..., T, S).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # each row sums to 1 over the visible keys
    if dropout_p > 0.0 and training:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


def padded_causal_mask(attention_mask: torch.Tensor, T: int) -> torch.Tensor:
    """Causal mask that also hides padding keys: (B, S) 0/1 padding mask -> (B, 1, T, S).

    ``attention_mask[b, j]`` is 1 for a real token and 0 for padding (left-padded
    batches); the T queries are the last T of the S positions. A padding query would see
    no key at all (the softmax of a row of -inf is NaN), so it is allowed to see itself;
    its output is never used.
    """
    B, S = attention_mask.shape
    device = attention_mask.device
    keep = causal_mask(T, S, device=device).unsqueeze(0)  # (1, T, S)
    keep = keep & attention_mask.bool().unsqueeze(1)  # (B, T, S): no padding keys
    itself = torch.zeros(T, S, dtype=torch.bool, device=device)
    itself[torch.arange(T), torch.arange(S - T, S)] = True  # query i is key S - T + i
    return (keep | itself).unsqueeze(1)  # (B, 1, T, S), broadcast over heads


class KVCache:
    """Preallocated keys and values of every layer, for prefill + one-token decode.

    ``k[layer]`` and ``v[layer]`` have shape (B, n_kv_head, max_len, head_dim); the first
    ``length`` positions are filled. ``GPT.forward(idx, kv_cache=cache)`` writes the new
    positions and then advances ``length``. With rotary embeddings the cached keys are
    already rotated by the angle of their own position.
    """

    def __init__(
        self,
        n_layer: int,
        batch_size: int,
        n_kv_head: int,
        max_len: int,
        head_dim: int,
        device: Optional[Union[str, torch.device]] = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        shape = self.buffer_shape(n_layer, batch_size, n_kv_head, max_len, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.max_len = max_len
        self.length = 0

    @staticmethod
    def buffer_shape(n_layer: int, batch_size: int, n_kv_head: int, max_len: int, head_dim: int) -> tuple[int, ...]:
        """The checked (B, n_kv_head, max_len, head_dim) shape of one layer's keys (or values).

        Every size must be a positive integer (TypeError for another type, ValueError for
        < 1). ``fastgen.StaticKVCache`` uses the same check.
        """
        for name, value in (("n_layer", n_layer), ("batch_size", batch_size), ("n_kv_head", n_kv_head),
                            ("max_len", max_len), ("head_dim", head_dim)):
            _require_size(name, value)
        return (batch_size, n_kv_head, max_len, head_dim)

    @property
    def batch_size(self) -> int:
        """Number of sequences B held in the cache."""
        return self.k[0].size(0)

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new (B, Hk, T, D) keys/values of ``layer``; return all (B, Hk, L+T, D)."""
        start, end = self.length, self.length + k.size(2)
        if end > self.max_len:
            raise ValueError(
                f"KV cache is full: it holds {self.length} of max_len={self.max_len} positions "
                f"and {k.size(2)} more were given; create a larger cache (max_len) or crop it"
            )
        if k.size(0) != self.batch_size:
            raise ValueError(f"batch size {k.size(0)} does not match the cache's {self.batch_size}")
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def advance(self, n: int) -> None:
        """Mark ``n`` more positions as filled (called once per forward, after all layers)."""
        self.length += n

    def crop(self, length: int) -> None:
        """Forget every position from ``length`` on (speculative decoding rolls back this way)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"crop length must be in [0, {self.length}], got {length}")
        self.length = length

    def reset(self) -> None:
        """Empty the cache without freeing its memory."""
        self.length = 0

    def reorder(self, index: torch.Tensor) -> None:
        """Select/reorder rows of the batch (beam search keeps the surviving beams)."""
        self.k = [t.index_select(0, index) for t in self.k]
        self.v = [t.index_select(0, index) for t in self.v]

    def nbytes(self) -> int:
        """Bytes actually allocated by the key and value tensors."""
        return sum(t.numel() * t.element_size() for t in self.k + self.v)


# --------------------------------------------------------------------------------------
# Rotary position embeddings (RoPE)
# --------------------------------------------------------------------------------------


class RotaryEmbedding(nn.Module):
    """The rotation angles of RoPE (Su et al., RoFormer), one table for the whole model.

    RoPE splits each query and key vector (size D) into D/2 pairs of numbers and rotates
    pair i, seen as a point in the plane, by the angle ``m * theta_i`` at position m, with
    frequencies ``theta_i = theta ** (-2i / D)`` (fast for the first pairs, slow for the
    last). The score of query m and key n then depends on ``m - n`` only: rotating both by
    their own angles and taking the dot product leaves the angle difference.

    Pairing: the paper pairs neighbouring dimensions (2i, 2i+1); we pair dimension i with
    i + D/2 ("rotate half", as GPT-NeoX and transformers' Llama do). Any fixed pairing is
    the same model up to a permutation of the query/key projection rows; this one lets
    Llama weights load unchanged.

    Position interpolation (Chen et al. 2023): with ``scaling = s`` position m is rotated
    as if it were m / s, so s times more positions fit in the angles seen in training.
    Holds no parameters: the tables are non-persistent buffers.

    Args:
        head_dim: size D of one head (even); or a :class:`GPTConfig`, which gives
            ``head_dim``, ``rope_theta``, ``block_size`` and ``rope_scaling``.
        theta: base of the frequencies (10000 in RoFormer and Llama 2).
        max_len: number of positions in the table (positions 0 .. max_len - 1).
        scaling: position interpolation factor >= 1 (1: none).
    """

    def __init__(
        self,
        head_dim: Union[int, GPTConfig],
        theta: float = 10000.0,
        max_len: int = 2048,
        scaling: float = 1.0,
    ) -> None:
        super().__init__()
        if isinstance(head_dim, GPTConfig):
            c = head_dim
            head_dim, theta, max_len, scaling = c.head_dim, c.rope_theta, c.block_size, c.rope_scaling
        _require_size("head_dim", head_dim)
        _require_size("max_len", max_len)
        if head_dim % 2:
            raise ValueError(f"RotaryEmbedding rotates pairs of dimensions: head_dim must be even, got {head_dim}")
        if not theta > 1 or not scaling >= 1:
            raise ValueError(f"RotaryEmbedding needs theta > 1 and scaling >= 1, got {theta!r}, {scaling!r}")
        D = head_dim
        inv_freq = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float32) / D)  # (D/2,)
        positions = torch.arange(max_len, dtype=torch.float32) / scaling  # (max_len,)
        angles = torch.outer(positions, inv_freq)  # (max_len, D/2): angle of pair i at position m
        angles = torch.cat([angles, angles], dim=-1)  # (max_len, D): dims i and i + D/2 share it
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        self.head_dim, self.max_len = head_dim, max_len

    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B or 1, T) positions -> ``(cos, sin)``, each (B or 1, 1, T, D) (broadcast over heads).

        (T,) positions are taken as (1, T).
        """
        if position_ids.dim() == 1:
            position_ids = position_ids.unsqueeze(0)
        return self.cos[position_ids].unsqueeze(1), self.sin[position_ids].unsqueeze(1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate every pair (x_i, x_{i+D/2}) of x (B, heads, T, D) by its angle.

    A rotation by a: (a1, a2) -> (a1 cos - a2 sin, a2 cos + a1 sin), written for all pairs
    at once with ``rotate_half(x) = (-x2, x1)``.
    """
    x1, x2 = x.chunk(2, dim=-1)  # (B, heads, T, D/2) each: the two halves of every pair
    rotate_half = torch.cat([-x2, x1], dim=-1)  # (B, heads, T, D)
    return x * cos.to(x.dtype) + rotate_half * sin.to(x.dtype)


# --------------------------------------------------------------------------------------
# The transformer block: normalisation, attention, MLP
#
# Each block is built from its own sizes (``MLP(384, activation="swiglu")``), or from a
# GPTConfig (``MLP(config)``, ``Block(config, layer_idx)``), which is what GPT does.
# --------------------------------------------------------------------------------------


def _require_size(name: str, value: object) -> int:
    """A positive integer size (this file imports nothing from lmcourse, so it checks here)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be a positive integer, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _require_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def _require_in(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value  # type: ignore[return-value]


class RMSNorm(nn.Module):
    """Root-mean-square norm (Zhang & Sennrich 2019): x / rms(x) * weight, no centring, no bias.

    LayerNorm subtracts the mean and divides by the standard deviation; RMSNorm only
    divides by sqrt(mean(x^2) + eps). Computed in float32, as transformers' Llama does.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        _require_size("dim", dim)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., C) -> (..., C)."""
        x32 = x.float()
        inv_rms = torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., 1)
        return self.weight * (x32 * inv_rms).to(x.dtype)


def make_norm(kind: Union[str, GPTConfig], dim: Optional[int] = None, eps: float = 1e-5, bias: bool = True) -> nn.Module:
    """A normalisation layer over ``dim`` channels: ``"layernorm"`` or ``"rmsnorm"``.

    ``make_norm(config)`` is the one a config asks for (``norm``, ``n_embd``,
    ``layer_norm_eps``, ``bias``).
    """
    if isinstance(kind, GPTConfig):
        kind, dim, eps, bias = kind.norm, kind.n_embd, kind.layer_norm_eps, kind.bias
    _require_in("norm", kind, _CHOICES["norm"])
    _require_size("dim", dim)
    _require_flag("bias", bias)
    if kind == "rmsnorm":
        return RMSNorm(dim, eps=eps)
    return nn.LayerNorm(dim, eps=eps, bias=bias)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with optional grouped-query heads, RoPE and KV cache.

    One Linear ``c_attn`` produces queries (H heads) and keys/values (Hk heads each);
    ``c_proj`` mixes the heads back into the residual stream.

    Args:
        n_embd: width C of the input and output (or a :class:`GPTConfig`; then the second
            positional argument is ``layer_idx``, as in ``CausalSelfAttention(config, 3)``).
        n_head: number H of query heads; must divide ``n_embd``.
        n_kv_head: key/value heads Hk dividing ``n_head`` (None: ``n_head``; 1 is MQA).
        bias: biases on the two Linear layers.
        dropout: on the attention weights and the output.
        attn_impl: ``"sdpa"`` (fused kernel) or ``"explicit"`` (the T x S weights written out).
        rotary: rotary embeddings (a :class:`RotaryEmbedding` of this head size), or
            ``True`` when the caller passes the ``(cos, sin)`` of the positions itself
            (the GPT computes them once for all layers), or None for no rotation.
        layer_idx: which layer of a KV cache this attention writes.
    """

    def __init__(
        self,
        n_embd: Union[int, GPTConfig],
        n_head: Optional[int] = None,
        n_kv_head: Optional[int] = None,
        *,
        bias: bool = True,
        dropout: float = 0.0,
        attn_impl: str = "sdpa",
        rotary: Union[RotaryEmbedding, bool, None] = None,
        layer_idx: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(n_embd, GPTConfig):
            c = n_embd
            layer_idx = layer_idx if n_head is None else n_head  # CausalSelfAttention(config, layer_idx)
            n_embd, n_head, n_kv_head = c.n_embd, c.n_head, c.n_kv_head
            bias, dropout, attn_impl, rotary = c.bias, c.dropout, c.attn_impl, c.pos_emb == "rope"
        _require_size("n_embd", n_embd)
        _require_size("n_head", n_head)
        _require_flag("bias", bias)
        n_kv_head = n_head if n_kv_head is None else _require_size("n_kv_head", n_kv_head)
        if n_embd % n_head or n_head % n_kv_head:
            raise ValueError(
                f"n_head ({n_head}) must divide n_embd ({n_embd}) and n_kv_head ({n_kv_head}) must divide n_head"
            )
        _require_in("attn_impl", attn_impl, _CHOICES["attn_impl"])
        self.n_head, self.n_kv_head = n_head, n_kv_head
        self.head_dim = n_embd // n_head
        if isinstance(rotary, RotaryEmbedding) and rotary.head_dim != self.head_dim:
            raise ValueError(f"rotary has head_dim {rotary.head_dim}, this attention {self.head_dim}")
        self.layer_idx = layer_idx
        self.attn_impl = attn_impl
        self.dropout = dropout
        self.uses_rope = rotary is not None and rotary is not False
        self.rotary = rotary if isinstance(rotary, RotaryEmbedding) else None
        qkv_out = (n_head + 2 * n_kv_head) * self.head_dim
        self.c_attn = nn.Linear(n_embd, qkv_out, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)
        self.record_weights = False  # set by GPT.attention_maps
        self.last_weights: Optional[torch.Tensor] = None

    def forward(
        self,
        x: torch.Tensor,
        kv_cache: Optional[KVCache] = None,
        mask: Optional[torch.Tensor] = None,
        rope: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
        positions: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """x: (..., T, C) -> (..., T, C); the leading dimensions are one batch B.

        ``mask``: (B or 1, 1, T, S) bool, or None for plain causal attention.
        ``rope``: the ``(cos, sin)`` of the T positions (from :class:`RotaryEmbedding`).
        ``positions``: (T,) or (B, T) token positions, used with this attention's own
        ``rotary`` table when ``rope`` is not given (default: the T positions after those
        already in ``kv_cache``).
        """
        *lead, T, C = x.shape
        x = x.reshape(-1, T, C)  # (B, T, C)
        B = x.size(0)
        H, Hk, D = self.n_head, self.n_kv_head, self.head_dim
        q, k, v = self.c_attn(x).split([H * D, Hk * D, Hk * D], dim=2)
        q = q.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, Hk, D).transpose(1, 2)  # (B, Hk, T, D)
        v = v.view(B, T, Hk, D).transpose(1, 2)  # (B, Hk, T, D)
        if self.uses_rope:
            if rope is None:
                rope = self._rope(T, kv_cache, positions, x.device)
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)  # rotated by their positions
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer_idx, k, v)  # (B, Hk, S, D), S = L + T
        if Hk != H:  # grouped-query: each group of H // Hk query heads shares one k/v head
            k = k.repeat_interleave(H // Hk, dim=1)  # (B, H, S, D)
            v = v.repeat_interleave(H // Hk, dim=1)
        S = k.size(2)
        dropout_p = self.dropout if self.training else 0.0
        if self.attn_impl == "explicit" or self.record_weights:
            if mask is None:
                mask = causal_mask(T, S, device=x.device)
            y, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p, self.training)
            if self.record_weights:
                self.last_weights = weights.detach()
        elif mask is None and S == T:  # no cache, no padding: the fused causal kernel
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        elif mask is None and T == 1:  # one-token decode sees every cached key
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        else:
            if mask is None:
                mask = causal_mask(T, S, device=x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, H*D): heads side by side
        return self.resid_dropout(self.c_proj(y)).view(*lead, T, C)

    def _rope(
        self, T: int, kv_cache: Optional[KVCache], positions: Optional[torch.Tensor], device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cos, sin)`` of the T positions from this attention's own table."""
        if self.rotary is None:
            raise ValueError(
                "this attention uses rotary embeddings: pass rope=(cos, sin), or build it with "
                "rotary=RotaryEmbedding(head_dim, theta, max_len) and pass positions"
            )
        if positions is None:
            start = 0 if kv_cache is None else kv_cache.length
            positions = torch.arange(start, start + T, device=device)
        if positions.shape[-1] != T:
            raise ValueError(f"positions must have T={T} entries in their last dimension, got {tuple(positions.shape)}")
        if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= self.rotary.max_len):
            raise ValueError(f"positions must be in [0, {self.rotary.max_len - 1}] (the rotary table's max_len)")
        return self.rotary(positions.reshape(-1, T))


def default_hidden_dim(n_embd: int, activation: str = "gelu") -> int:
    """The MLP's default hidden width F: 4C for GELU; for SwiGLU 2/3 of that, rounded up to
    a multiple of 8 (about the same number of parameters, as in Llama)."""
    if activation == "swiglu":
        return 8 * math.ceil(2 * 4 * n_embd / 3 / 8)
    return 4 * n_embd


class MLP(nn.Module):
    """Position-wise feed-forward network.

    ``activation="gelu"`` (GPT-2): C -> F -> GELU (tanh form) -> C.
    ``activation="swiglu"`` (Shazeer 2020, Llama): ``c_fc`` computes the gate x W1 and the
    value x W3 side by side (C -> 2F); the output is (silu(gate) * value) W2 (F -> C).

    Args:
        n_embd: width C of input and output (or a :class:`GPTConfig`, which gives every size).
        hidden_dim: hidden width F (None: :func:`default_hidden_dim`).
        bias: biases on the Linear layers.  activation: ``"gelu"`` or ``"swiglu"``.
        dropout: on the output.
    """

    def __init__(
        self,
        n_embd: Union[int, GPTConfig],
        hidden_dim: Optional[int] = None,
        *,
        bias: bool = True,
        activation: str = "gelu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if isinstance(n_embd, GPTConfig):
            c = n_embd
            n_embd, hidden_dim, bias, activation, dropout = c.n_embd, c.hidden_dim, c.bias, c.mlp, c.dropout
        _require_size("n_embd", n_embd)
        _require_flag("bias", bias)
        _require_in("activation", activation, _CHOICES["mlp"])
        F_ = default_hidden_dim(n_embd, activation) if hidden_dim is None else _require_size("hidden_dim", hidden_dim)
        self.gated = activation == "swiglu"
        self.c_fc = nn.Linear(n_embd, 2 * F_ if self.gated else F_, bias=bias)
        self.c_proj = nn.Linear(F_, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., C) -> (..., C)."""
        if self.gated:
            gate, value = self.c_fc(x).chunk(2, dim=-1)  # (..., F) each
            h = F.silu(gate) * value  # (..., F)
        else:
            h = F.gelu(self.c_fc(x), approximate="tanh")  # (..., F)
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x)).

    Built from its sizes (``Block(64, 4, norm="rmsnorm", mlp="swiglu")``, the keywords of
    :class:`CausalSelfAttention` and :class:`MLP`), or from a config: ``Block(config,
    layer_idx)``.
    """

    def __init__(
        self,
        n_embd: Union[int, GPTConfig],
        n_head: Optional[int] = None,
        n_kv_head: Optional[int] = None,
        *,
        hidden_dim: Optional[int] = None,
        bias: bool = True,
        dropout: float = 0.0,
        norm: str = "layernorm",
        eps: float = 1e-5,
        mlp: str = "gelu",
        attn_impl: str = "sdpa",
        rotary: Union[RotaryEmbedding, bool, None] = None,
        layer_idx: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(n_embd, GPTConfig):
            c = n_embd
            layer_idx = layer_idx if n_head is None else n_head  # Block(config, layer_idx)
            self.ln_1, self.ln_2 = make_norm(c), make_norm(c)
            self.attn = CausalSelfAttention(c, layer_idx=layer_idx)
            self.mlp = MLP(c)
            return
        self.ln_1 = make_norm(norm, n_embd, eps, bias)
        self.attn = CausalSelfAttention(
            n_embd, n_head, n_kv_head, bias=bias, dropout=dropout, attn_impl=attn_impl, rotary=rotary, layer_idx=layer_idx
        )
        self.ln_2 = make_norm(norm, n_embd, eps, bias)
        self.mlp = MLP(n_embd, hidden_dim, bias=bias, activation=mlp, dropout=dropout)

    def forward(
        self,
        x: torch.Tensor,
        kv_cache: Optional[KVCache] = None,
        mask: Optional[torch.Tensor] = None,
        rope: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
        positions: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """(..., T, C) -> (..., T, C); see :meth:`CausalSelfAttention.forward`."""
        x = x + self.attn(self.ln_1(x), kv_cache, mask, rope, positions)
        x = x + self.mlp(self.ln_2(x))
        return x


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


class GPT(nn.Module):
    """Decoder-only transformer language model.

    ``forward(idx, targets)`` returns ``(logits, loss)``: logits (B, T, V) for the next
    token at every position, and the mean cross-entropy against ``targets`` (positions with
    target -100 are ignored, e.g. padding); loss is None without targets.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        modules = dict(wte=nn.Embedding(config.vocab_size, config.n_embd))  # token embeddings
        if config.pos_emb == "learned":
            modules["wpe"] = nn.Embedding(config.block_size, config.n_embd)  # learned positions
        modules.update(
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
            ln_f=make_norm(config),
        )
        self.transformer = nn.ModuleDict(modules)
        self.rotary = RotaryEmbedding(config) if config.pos_emb == "rope" else None
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight  # one matrix, two uses
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections by 1/sqrt(2 * n_layer) so that the
        # variance of the residual stream does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    # ---- forward, in named steps ------------------------------------------------------

    def forward(
        self,
        idx: torch.Tensor,
        targets: Optional[torch.Tensor] = None,
        kv_cache: Optional[KVCache] = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Run the model on token ids.

        Args:
            idx: (B, T) token ids in [0, V).
            targets: optional (B, T) next-token ids in [0, V); -100 marks positions to ignore.
            kv_cache: optional :class:`KVCache`; the T new positions are appended to it and
                attend to everything already cached (prefill when empty, decode when T=1).
            attention_mask: optional (B, S) with S = cached + T; 1 for real tokens, 0 for
                padding (left-padded batches). Padding keys are never attended to.
            position_ids: optional (B, T) positions; default continues from the cache
                length (L, L+1, ..., L+T-1).
        Returns:
            ``(logits, loss)``: logits (B, T, V); loss a scalar or None.

        Ids out of range raise a ValueError naming the argument. The range check reads a
        value back from the device, so it runs whenever that is free or already paid for:
        tensors on the CPU, and eval mode (generation, evaluation) on any device. A
        training step on an accelerator is not checked (the check would synchronise every
        step); neither is code traced by ``torch.compile``.
        """
        self._check_inputs(idx, targets)
        logits = self._checked_logits(idx, kv_cache, attention_mask, position_ids)  # (B, T, V)
        loss = None if targets is None else self.loss(logits, targets)
        return logits, loss

    def step(
        self,
        idx: torch.Tensor,
        kv_cache: Optional[KVCache] = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
        last: int = 1,
    ) -> torch.Tensor:
        """The decoders' model step: feed ``idx`` (B, T) through the cache, return the
        logits of the last ``last`` positions, (B, last, V).

        Arguments as in :meth:`forward`. Only the last positions go through the LM head
        (the prefill of a long prompt needs one row of logits, not T). Every decoder of
        lmcourse (generate, beam search, speculative decoding) calls this.
        """
        self._check_inputs(idx, None)
        if not 1 <= last <= idx.size(1):
            raise ValueError(f"last must be in [1, T={idx.size(1)}], got {last!r}")
        return self._checked_logits(idx, kv_cache, attention_mask, position_ids, last)

    def logits(
        self,
        idx: torch.Tensor,
        positions: torch.Tensor,
        kv_cache: Any = None,
        mask: Optional[torch.Tensor] = None,
        last: Optional[int] = None,
    ) -> torch.Tensor:
        """The forward pass itself, without checks: ids (B, T) at ``positions`` -> logits.

        ``kv_cache`` is anything with ``update(layer, k, v) -> (k, v)`` (the cache is not
        advanced here); ``mask`` (B or 1, 1, T, S) or None (causal). With ``last`` only
        the last ``last`` positions get logits: (B, last, V); otherwise (B, T, V).
        :meth:`forward`, :meth:`step` and the static cache of :mod:`lmcourse.fastgen` run
        through it.
        """
        x = self.embed(idx, positions)  # (B, T, C)
        x = self.run_blocks(x, positions, kv_cache, mask)  # (B, T, C)
        if last is not None:
            x = x[:, -last:]  # (B, last, C)
        x = self.transformer.ln_f(x)  # final norm
        return self.lm_head(x)  # (B, T or last, V)

    def _checked_logits(
        self,
        idx: torch.Tensor,
        kv_cache: Optional[KVCache],
        attention_mask: Optional[torch.Tensor],
        position_ids: Optional[torch.Tensor],
        last: Optional[int] = None,
    ) -> torch.Tensor:
        """Positions and mask from the cache and the padding, then :meth:`logits`; advance the cache."""
        L = 0 if kv_cache is None else kv_cache.length
        positions = self._positions(idx, L, position_ids)  # (B or 1, T)
        mask = self._mask(idx, L, attention_mask)  # (B, 1, T, S), or None: plain causal
        logits = self.logits(idx, positions, kv_cache, mask, last)
        if kv_cache is not None:
            kv_cache.advance(idx.size(1))
        return logits

    @property
    def device(self) -> torch.device:
        """The device of the model's weights (where its inputs must be)."""
        return self.transformer.wte.weight.device

    def embed(self, idx: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Token vectors, plus learned position vectors: (B, T) ids -> (B, T, C).

        With rotary embeddings nothing is added here: positions enter in the attention.
        """
        x = self.transformer.wte(idx)  # (B, T, C)
        if self.config.pos_emb == "learned":
            x = x + self.transformer.wpe(positions)  # (B or 1, T, C) broadcast over rows
        return self.transformer.drop(x)

    def run_blocks(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        kv_cache: Any = None,
        mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """The n_layer transformer blocks: (B, T, C) -> (B, T, C).

        ``positions`` (B or 1, T) give the rotary angles (unused with learned positions);
        ``kv_cache`` is anything with ``update(layer, k, v) -> (k, v)``.
        """
        rope = None if self.rotary is None else self.rotary(positions)  # (cos, sin)
        for block in self.transformer.h:
            x = block(x, kv_cache, mask, rope)  # (B, T, C)
        return x

    @staticmethod
    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of (B, T, V) logits against (B, T) targets (-100 ignored)."""
        return F.cross_entropy(
            logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX
        )

    def _positions(
        self, idx: torch.Tensor, L: int, position_ids: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """Absolute positions of the T new tokens: (1, T) ``L .. L+T-1``, or the given (B, T)."""
        T = idx.size(1)
        if position_ids is None:
            if L + T > self.config.block_size:
                raise ValueError(
                    f"sequence of {L + T} positions exceeds block_size={self.config.block_size}; "
                    "crop the context to the last block_size tokens (lmcourse.generate does this)"
                )
            return torch.arange(L, L + T, device=idx.device).unsqueeze(0)  # (1, T)
        if position_ids.shape not in ((1, T), (idx.size(0), T)):
            raise ValueError(f"position_ids must have shape (B, T) = {tuple(idx.shape)}, got {tuple(position_ids.shape)}")
        if int(position_ids.max()) >= self.config.block_size or int(position_ids.min()) < 0:
            raise ValueError(f"position_ids must be in [0, {self.config.block_size - 1}]")
        return position_ids

    @staticmethod
    def _mask(idx: torch.Tensor, L: int, attention_mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """The (B, 1, T, S) mask of a padded batch, or None (plain causal attention)."""
        if attention_mask is None:
            return None
        B, T = idx.shape
        if attention_mask.shape != (B, L + T):
            raise ValueError(
                f"attention_mask must have shape (B, cached + T) = {(B, L + T)}, got {tuple(attention_mask.shape)}"
            )
        return padded_causal_mask(attention_mask, T)

    def _check_inputs(self, idx: torch.Tensor, targets: Optional[torch.Tensor]) -> None:
        """Shapes and dtypes always; id ranges where reading them back costs nothing (see forward)."""
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2:
            raise ValueError(f"idx must be a (B, T) tensor of token ids, got {getattr(idx, 'shape', type(idx))}")
        if idx.dtype.is_floating_point or idx.dtype.is_complex or idx.dtype == torch.bool:
            raise ValueError(f"idx must hold integer token ids, got dtype {idx.dtype}")
        if targets is not None and (not isinstance(targets, torch.Tensor) or targets.shape != idx.shape):
            raise ValueError(
                f"targets must have the shape of idx {tuple(idx.shape)}, got {getattr(targets, 'shape', type(targets))}"
            )
        if torch.compiler.is_compiling() or (self.training and idx.device.type != "cpu"):
            return
        V = self.config.vocab_size
        if idx.numel() and bool(((idx < 0) | (idx >= V)).any()):
            raise ValueError(
                f"idx must hold token ids in [0, {V - 1}] (vocab_size={V}), "
                f"got values from {int(idx.min())} to {int(idx.max())}"
            )
        if targets is not None and targets.numel():
            bad = ((targets < 0) | (targets >= V)) & (targets != IGNORE_INDEX)
            if bool(bad.any()):
                raise ValueError(
                    f"targets must be token ids in [0, {V - 1}] or {IGNORE_INDEX} (ignored), "
                    f"got {int(targets[bad][0])}"
                )

    # ---- KV cache --------------------------------------------------------------------

    def new_kv_cache(self, batch_size: int, max_len: Optional[int] = None) -> KVCache:
        """An empty :class:`KVCache` on the model's device and dtype (max_len defaults to block_size)."""
        max_len = self.config.block_size if max_len is None else max_len
        if not 1 <= max_len <= self.config.block_size:
            raise ValueError(f"max_len must be in [1, block_size={self.config.block_size}], got {max_len}")
        return KVCache(
            self.config.n_layer,
            batch_size,
            self.config.n_kv_head,
            max_len,
            self.config.head_dim,
            device=self.device,
            dtype=self.transformer.wte.weight.dtype,
        )

    # ---- inspection ------------------------------------------------------------------

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights of every layer for ``idx`` (B, T): a list of (B, H, T, T) tensors.

        Runs the explicit attention path (the one that materialises the T x T weights).
        """
        blocks = [b.attn for b in self.transformer.h]
        for a in blocks:
            a.record_weights = True
        try:
            self.forward(idx)
            return [a.last_weights for a in blocks]
        finally:
            for a in blocks:
                a.record_weights = False
                a.last_weights = None

    def num_params(self, exclude_embeddings: bool = False) -> int:
        """Number of parameters (a tied matrix counts once).

        With ``exclude_embeddings`` the token and position embedding matrices are left out
        (the "non-embedding" count N of the scaling-law papers).
        """
        _require_flag("exclude_embeddings", exclude_embeddings)
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a tied matrix once
        if exclude_embeddings:
            n -= sum(e.weight.numel() for name, e in self.transformer.items() if name in ("wte", "wpe"))
        return n

    def flops_per_token(self, seq_len: Optional[int] = None) -> int:
        """Training FLOPs per token (forward + backward): 6N + 12 * n_layer * n_embd * T.

        N is the non-embedding parameter count plus the LM head's matmul; the second term is
        the attention scores and weighted sum (the PaLM appendix / nanoGPT MFU estimate).
        """
        T = self.config.block_size if seq_len is None else seq_len
        cfg = self.config
        n = self.num_params(exclude_embeddings=True) + cfg.vocab_size * cfg.n_embd  # + lm head
        return 6 * n + 12 * cfg.n_layer * cfg.n_embd * T
