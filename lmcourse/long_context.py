"""What a long context costs, and the attention patterns that make it cheaper.

Chapter 7 (KV memory), chapter 10 (sparse attention patterns) and chapter 10b (long
contexts) teach this file. The cost model (KV memory, attention FLOPs, ring attention) is
arithmetic on a model's shape; the masks are the sparse patterns of chapter 10. Nothing
here runs a model.

Notation: n tokens of context, L layers, H query heads and Hk key/value heads of size D
(so the model width is C = H * D), P parameters, G devices.

* KV cache: 2 (keys and values) * L * Hk * D * n * bytes per element
  (:func:`kv_cache_bytes`; :func:`format_bytes` prints it).
* Attention work per decode step t (:func:`attention_ops`): without a cache the whole
  prefix is recomputed, 1 + 2 + ... + t = t(t+1)/2 query-key dot products per head and
  layer; with a cache only the newest query meets the t cached keys: t dot products.
* Prefill FLOPs (the forward pass over the prompt): 2 * P * n for the weights
  (a multiply and an add per weight per token) plus the attention matmuls
  QK^T and AV: 2 * 2 * L * H * D * n^2 / 2 with the causal mask halving them.
* Ring attention (Liu et al. 2023): the sequence is split into G blocks, one per device.
  Each device keeps its queries and passes its key/value block around a ring, G - 1 hops,
  so every query block meets every key/value block while a device never holds more than
  two KV blocks. Per device: KV memory 1/G of the total (plus the block in flight),
  attention FLOPs 1/G of the total, and each device sends (G - 1) KV blocks per layer.
  The transfer of the next block hides behind the attention on the current one when
  computing a block takes longer than sending it: per layer, a block pair costs
  4 * H * D * b^2 FLOPs (b tokens per block, no mask) and sending a KV block
  2 * Hk * D * b * bytes, so the block must hold at least
  b >= 2 * Hk * bytes * flops_per_s / (4 * H * bytes_per_s) tokens (:func:`ring_overlap_block`).
* Sparse attention patterns, as (T, T) boolean masks (True: query i may see key j):
  :func:`sliding_window_mask`, :func:`strided_mask` (Child et al. 2019) and
  :func:`global_window_mask` (a window plus global tokens, as in Longformer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lmcourse.checks import require_bool, require_int
from lmcourse.model import causal_mask

__all__ = [
    "kv_cache_bytes",
    "attention_ops",
    "format_bytes",
    "BYTE_UNITS",
    "DTYPE_BYTES",
    "MODEL_PRESETS",
    "sliding_window_mask",
    "strided_mask",
    "global_window_mask",
    "LLAMA3_8B",
    "ModelShape",
    "RingCost",
    "attention_flops",
    "prefill_flops",
    "ring_attention",
    "ring_overlap_block",
]


def kv_cache_bytes(
    n_layer: int,
    n_kv_head: int,
    head_dim: int,
    seq_len: int,
    batch: int = 1,
    bytes_per_elem: int = 2,
) -> int:
    """Memory of a KV cache: 2 (keys and values) x L x h x d x n x batch x bytes.

    Example: a 70B model with grouped-query attention (80 layers, 8 KV heads, d=128) at
    4096 tokens in fp16 needs ``kv_cache_bytes(80, 8, 128, 4096)`` = 1.34e9 bytes.
    :meth:`lmcourse.model.KVCache.nbytes` measures the same for a cache that exists.
    """
    for name, value in (
        ("n_layer", n_layer),
        ("n_kv_head", n_kv_head),
        ("head_dim", head_dim),
        ("seq_len", seq_len),
        ("batch", batch),
        ("bytes_per_elem", bytes_per_elem),
    ):
        if value < 0:
            raise ValueError(f"kv_cache_bytes: {name} must be >= 0, got {value}")
    return 2 * n_layer * n_kv_head * head_dim * seq_len * batch * bytes_per_elem


#: bytes per stored element for the usual cache dtypes
DTYPE_BYTES: dict[str, int] = {"fp32": 4, "fp16 / bf16": 2, "int8 / fp8": 1}

#: (n_layer, n_kv_head, head_dim) of a few public model architectures (from their configs)
MODEL_PRESETS: dict[str, tuple[int, int, int]] = {
    "shakespeare-char (this course, MHA)": (4, 4, 32),
    "GPT-2 small (MHA)": (12, 12, 64),
    "Llama-2-7B (MHA)": (32, 32, 128),
    "Llama-3-8B (GQA, 8 KV heads)": (32, 8, 128),
    "Falcon-7B (MQA, 1 KV head)": (32, 1, 64),
    "Llama-2-70B (GQA, 8 KV heads)": (80, 8, 128),
    "70B shape with MHA (64 KV heads)": (80, 64, 128),
}


def attention_ops(n: int) -> dict[str, np.ndarray]:
    """Query-key dot products per decode step t = 1..n, without and with a KV cache.

    Returns arrays of length n: ``steps``, ``no_cache`` (t(t+1)/2), ``cache`` (t),
    ``positions_no_cache`` (t positions recomputed), ``positions_cache`` (1), and the
    cumulative sums ``cum_no_cache`` (n(n+1)(n+2)/6 at the end) and ``cum_cache``
    (n(n+1)/2). All counts are per attention head and per layer.
    """
    n = require_int("n", n, minimum=1)
    t = np.arange(1, n + 1, dtype=np.int64)
    no_cache = t * (t + 1) // 2
    return {
        "steps": t,
        "no_cache": no_cache,
        "cache": t.copy(),
        "positions_no_cache": t.copy(),
        "positions_cache": np.ones_like(t),
        "cum_no_cache": np.cumsum(no_cache),
        "cum_cache": np.cumsum(t),
    }


#: bytes in each unit the book prints: decimal (kB ... TB) and binary (KiB ... TiB)
BYTE_UNITS: dict[str, int] = {
    "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
}


def format_bytes(n: float, binary: bool = False) -> str:
    """Human-readable size, the one byte formatter of the package (and of the explorers' JS).

    Decimal by default: 1.34e9 -> ``"1.34 GB"`` (kB, MB, GB, TB are powers of 1000); with
    ``binary=True`` powers of 1024: 2**30 -> ``"1.00 GiB"``.
    """
    units = ("TiB", "GiB", "MiB", "KiB") if binary else ("TB", "GB", "MB", "kB")
    for unit in units:
        if abs(n) >= BYTE_UNITS[unit]:
            return f"{n / BYTE_UNITS[unit]:.2f} {unit}"
    return f"{int(n)} B"


# --------------------------------------------------------------------------------------
# Sparse attention patterns
# --------------------------------------------------------------------------------------


def sliding_window_mask(T: int, window: int) -> torch.Tensor:
    """(T, T) bool: query i sees keys i - window + 1 .. i (itself and window - 1 before)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    i = torch.arange(T).unsqueeze(1)
    j = torch.arange(T).unsqueeze(0)
    return (j <= i) & (j > i - window)


def strided_mask(T: int, stride: int) -> torch.Tensor:
    """(T, T) bool, the strided sparse pattern of Child et al. (2019), both heads merged.

    Query i sees the previous ``stride`` keys (local head) and every key j <= i with
    (i - j) divisible by ``stride`` (strided head).
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    i = torch.arange(T).unsqueeze(1)
    j = torch.arange(T).unsqueeze(0)
    return (j <= i) & ((j > i - stride) | ((i - j) % stride == 0))


def global_window_mask(T: int, window: int, n_global: int) -> torch.Tensor:
    """(T, T) bool: a causal sliding window plus ``n_global`` global tokens at the start.

    The first ``n_global`` positions (memory / global tokens, as in Longformer) are seen by
    every later query and see every earlier key themselves.
    """
    mask = sliding_window_mask(T, window)
    g = min(n_global, T)
    mask[:, :g] = True
    mask[:g, :] = True
    return mask & causal_mask(T)


# --------------------------------------------------------------------------------------
# The cost model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    """The numbers the cost model needs (a published model's shape, or an lmcourse config)."""

    name: str
    n_params: float
    n_layer: int
    n_head: int
    n_kv_head: int
    head_dim: int

    def __post_init__(self) -> None:
        for f in ("n_params", "n_layer", "n_head", "n_kv_head", "head_dim"):
            if not getattr(self, f) > 0:
                raise ValueError(f"ModelShape.{f} must be > 0, got {getattr(self, f)!r}")
        if self.n_head % self.n_kv_head:
            raise ValueError("ModelShape.n_kv_head must divide n_head")

    def kv_bytes(self, n_tokens: int, bytes_per_elem: int = 2) -> int:
        """Bytes of the KV cache for ``n_tokens`` tokens (one sequence)."""
        return kv_cache_bytes(self.n_layer, self.n_kv_head, self.head_dim, n_tokens, 1, bytes_per_elem)


# Llama 3 8B: 32 layers, 32 query heads, 8 KV heads of 128 (Meta's published config).
LLAMA3_8B = ModelShape("Llama-3-8B", 8.03e9, 32, 32, 8, 128)


def _check_tokens(n_tokens: int) -> None:
    require_int("n_tokens", n_tokens, minimum=1)


def attention_flops(shape: ModelShape, n_tokens: int, causal: bool = True) -> float:
    """FLOPs of the attention matmuls (QK^T and weights @ V) of a prefill of ``n_tokens``."""
    _check_tokens(n_tokens)
    require_bool("causal", causal)
    full = 2 * 2 * shape.n_layer * shape.n_head * shape.head_dim * float(n_tokens) ** 2
    return full / 2 if causal else full


def prefill_flops(shape: ModelShape, n_tokens: int) -> tuple[float, float]:
    """``(weight_flops, attention_flops)`` of a causal prefill: 2 P n and the n^2 term."""
    _check_tokens(n_tokens)
    return 2 * shape.n_params * n_tokens, attention_flops(shape, n_tokens)


@dataclass
class RingCost:
    """Per-device cost of ring attention over ``devices`` devices (see the module text)."""

    devices: int
    kv_bytes_per_device: float
    attention_flops_per_device: float
    bytes_sent_per_device: float


def ring_attention(shape: ModelShape, n_tokens: int, devices: int, bytes_per_elem: int = 2) -> RingCost:
    """Per-device KV memory, attention FLOPs and bytes sent for ring attention.

    Memory counts the device's own KV block plus the one it is receiving; the bytes sent
    are the G - 1 KV blocks each device forwards, for all layers, during one prefill.
    """
    _check_tokens(n_tokens)
    require_int("devices", devices, minimum=1)
    block = shape.kv_bytes(n_tokens, bytes_per_elem) / devices
    return RingCost(
        devices=devices,
        kv_bytes_per_device=block * (2 if devices > 1 else 1),
        attention_flops_per_device=attention_flops(shape, n_tokens) / devices,
        bytes_sent_per_device=block * (devices - 1),
    )


def ring_overlap_block(shape: ModelShape, flops_per_s: float, bytes_per_s: float, bytes_per_elem: int = 2) -> float:
    """Smallest block (tokens per device) for which ring attention hides its communication.

    Computing one (query block, KV block) pair, unmasked, takes 4 H D b^2 / flops_per_s
    seconds per layer; sending the next KV block takes 2 Hk D b bytes / bytes_per_s.
    Returns the b at which the two are equal; larger blocks are compute-bound.
    """
    if not flops_per_s > 0 or not bytes_per_s > 0:
        raise ValueError("flops_per_s and bytes_per_s must be > 0")
    return 2 * shape.n_kv_head * bytes_per_elem * flops_per_s / (4 * shape.n_head * bytes_per_s)
