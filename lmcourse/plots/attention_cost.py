"""Figures and measurements for chapter 10 (context length and attention cost).

- :func:`peak_tensor_bytes` runs a function and reports the largest number of bytes held
  at once by the tensors that PyTorch operators allocated during the call.
- :func:`measure_attention_cost` times the explicit attention of ``lmcourse.model`` (it
  materialises the T x T weights) against the fused ``F.scaled_dot_product_attention``
  over several context lengths, and measures both peaks; :func:`plot_attention_cost`
  draws the result.
- :func:`sliding_window_mask`, :func:`strided_mask`, :func:`global_window_mask` and
  :func:`plot_long_context_masks` show which key each query may see in the long-context
  attention patterns.
- :func:`plot_position_loss` draws the loss at each position of the context window.
"""

from __future__ import annotations

import time
import weakref
from typing import Any, Callable, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from lmcourse.model import causal_mask, scaled_dot_product_attention

__all__ = [
    "peak_tensor_bytes",
    "measure_attention_cost",
    "plot_attention_cost",
    "sliding_window_mask",
    "strided_mask",
    "global_window_mask",
    "plot_long_context_masks",
    "log2_buckets",
    "plot_position_loss",
]


# --------------------------------------------------------------------------------------
# Memory accounting
# --------------------------------------------------------------------------------------


class _LiveBytes(TorchDispatchMode):
    """Counts the bytes of every new storage an operator returns, until it is freed."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, list[int]] = {}  # data_ptr -> [number of live tensors, nbytes]
        self._outside: set[int] = set()  # storages that existed before the call

    def _release(self, ptr: int) -> None:
        entry = self._refs.get(ptr)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self.live -= entry[1]
            del self._refs[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        for t in tree_flatten((args, kwargs))[0]:
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in self._refs:
                self._outside.add(t.untyped_storage().data_ptr())
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr == 0 or ptr in self._outside:
                continue  # empty, or a view / in-place result on a pre-existing tensor
            if ptr not in self._refs:
                self._refs[ptr] = [0, storage.nbytes()]
                self.live += storage.nbytes()
                self.peak = max(self.peak, self.live)
            self._refs[ptr][0] += 1
            weakref.finalize(t, self._release, ptr)
        return out


def peak_tensor_bytes(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """Run ``fn(*args, **kwargs)``; return its result and the peak of live tensor bytes.

    Every tensor an ATen operator returns during the call is counted from its creation
    until the last Python reference to it (or to a view of it) dies. What is *not*
    counted: the inputs (they existed before), and scratch buffers a kernel allocates and
    frees inside itself (for the fused attention kernel on CPU these are fixed-size tiles
    per thread, independent of the sequence length).
    """
    tracker = _LiveBytes()
    with tracker:
        result = fn(*args, **kwargs)
    peak = tracker.peak
    return result, peak


# --------------------------------------------------------------------------------------
# Time and memory of the two attention paths
# --------------------------------------------------------------------------------------


def _best_time(fn: Callable[[], Any], repeats: int, warmup: bool = True) -> float:
    """Smallest wall-clock time of ``repeats`` calls (after one warm-up call), in seconds."""
    if warmup:
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@torch.no_grad()
def measure_attention_cost(
    lengths: Sequence[int],
    n_head: int = 4,
    head_dim: int = 32,
    batch: int = 1,
    repeats: int = 3,
    seed: int = 0,
    device: Optional[torch.device] = None,
) -> dict[str, list[float]]:
    """Time and peak memory of causal attention, explicit vs fused, for each length T.

    The explicit path is :func:`lmcourse.model.scaled_dot_product_attention` with
    :func:`lmcourse.model.causal_mask` (what ``GPTConfig(attn_impl="explicit")`` runs);
    the fused path is ``F.scaled_dot_product_attention(..., is_causal=True)`` (the
    default ``attn_impl="sdpa"``). Queries, keys and values are random (batch, n_head, T,
    head_dim) fp32 tensors.

    Returns:
        A dict of lists, one entry per length: ``lengths``; ``explicit_ms`` and
        ``fused_ms`` (best of ``repeats`` timed calls, after the memory-measuring call); ``explicit_bytes`` and
        ``fused_bytes`` (:func:`peak_tensor_bytes`, measured on CPU memory accounting of
        the tensors each call allocates); ``weights_bytes``, the size of one
        (batch, n_head, T, T) fp32 tensor, computed; ``max_abs_diff`` between the outputs.
    """
    gen = torch.Generator().manual_seed(seed)
    res: dict[str, list[float]] = {
        k: []
        for k in ("lengths", "explicit_ms", "fused_ms", "explicit_bytes", "fused_bytes", "weights_bytes", "max_abs_diff")
    }
    for T in lengths:
        q, k, v = torch.randn(3, batch, n_head, T, head_dim, generator=gen).to(device).unbind(0)

        def explicit(q=q, k=k, v=v, T=T) -> torch.Tensor:
            return scaled_dot_product_attention(q, k, v, causal_mask(T, device=q.device))[0]

        def fused(q=q, k=k, v=v) -> torch.Tensor:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

        out_e, bytes_e = peak_tensor_bytes(explicit)
        out_f, bytes_f = peak_tensor_bytes(fused)
        res["lengths"].append(T)
        # the memory pass above was the warm-up call
        res["explicit_ms"].append(1000 * _best_time(explicit, repeats, warmup=False))
        res["fused_ms"].append(1000 * _best_time(fused, repeats, warmup=False))
        res["explicit_bytes"].append(bytes_e)
        res["fused_bytes"].append(bytes_f)
        res["weights_bytes"].append(batch * n_head * T * T * 4)
        res["max_abs_diff"].append(float((out_e - out_f).abs().max()))
    return res


def plot_attention_cost(results: dict[str, list[float]]) -> plt.Figure:
    """Two log-log panels from :func:`measure_attention_cost`: time and peak memory vs T.

    Dotted grey lines of slope 2 (quadratic) and 1 (linear), anchored at the first point
    of the explicit and fused curves, make the growth rates readable.
    """
    T = np.asarray(results["lengths"], dtype=float)
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10.5, 3.8))
    for ax, key, unit, scale in (
        (ax_t, "ms", "time per call (ms)", 1.0),
        (ax_m, "bytes", "peak tensor memory (MiB)", 1 / 2**20),
    ):
        e = np.asarray(results[f"explicit_{key}"], dtype=float) * scale
        f = np.asarray(results[f"fused_{key}"], dtype=float) * scale
        ax.plot(T, e, "o-", color="tab:red", label="explicit (materialises T\u00d7T)")
        ax.plot(T, f, "s-", color="tab:blue", label="fused F.scaled_dot_product_attention")
        ax.plot(T, e[0] * (T / T[0]) ** 2, ":", color="grey", label="\u221d T\u00b2")
        ax.plot(T, f[0] * (T / T[0]), "--", color="grey", lw=0.8, label="\u221d T")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("context length T")
        ax.set_ylabel(unit)
        ax.grid(True, which="major", alpha=0.3)
    if "weights_bytes" in results:
        w = np.asarray(results["weights_bytes"], dtype=float) / 2**20
        ax_m.plot(T, w, "x", color="black", label="one T\u00d7T weight tensor (computed)")
    ax_t.set_title("time")
    ax_m.set_title("memory")
    ax_m.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# Long-context attention patterns
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


def plot_long_context_masks(T: int = 24, window: int = 6, stride: int = 6, n_global: int = 2) -> plt.Figure:
    """Four (T, T) masks side by side: full causal, sliding window, strided, window + global.

    Each panel's title gives the number of (query, key) pairs it computes.
    """
    masks = [
        ("full causal", causal_mask(T)),
        (f"sliding window w={window}", sliding_window_mask(T, window)),
        (f"strided sparse, stride {stride}", strided_mask(T, stride)),
        (f"window + {n_global} global tokens", global_window_mask(T, window, n_global)),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.5))
    for ax, (title, m) in zip(axes, masks):
        ax.imshow(m.numpy(), cmap="Blues", vmin=0, vmax=1.3)
        ax.set_title(f"{title}\n{int(m.sum())} pairs", fontsize=9)
        ax.set_xlabel("key position j")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_ylabel("query position i")
    fig.tight_layout()
    return fig


def log2_buckets(values: Sequence[float]) -> tuple[list[int], list[float]]:
    """Average ``values[t]`` (t = 0, 1, ...) over the context sizes 1, 2, 3-4, 5-8, 9-16, ...

    Returns:
        ``(ends, means)``: the largest context size of each bucket (1, 2, 4, 8, ...) and the
        mean of the values whose context size t + 1 falls in it.
    """
    y = np.asarray(values, dtype=float)
    ends, means, prev, end = [], [], 0, 1
    while prev < len(y):
        end = min(end, len(y))
        ends.append(end)
        means.append(float(y[prev:end].mean()))  # context sizes prev + 1 .. end
        prev, end = end, 2 * end
    return ends, means


def plot_position_loss(loss_per_position: Sequence[float], block_size: Optional[int] = None) -> plt.Figure:
    """Mean next-token loss (nats) at each position of the context window.

    Position t predicts token t + 1 from t + 1 tokens of context, so the curve shows how
    much each extra token of context helps. The thin line is every position; the markers
    are the averages over the buckets of :func:`log2_buckets`.
    """
    y = np.asarray(loss_per_position, dtype=float)
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    ax.plot(np.arange(1, len(y) + 1), y, color="tab:blue", lw=0.8, alpha=0.5, label="each position")
    ends, means = log2_buckets(y)
    ax.plot(ends, means, "o-", color="tab:blue", label="bucket means (1, 2, 3-4, 5-8, ...)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tokens of context seen (position + 1)")
    ax.set_ylabel("mean cross-entropy (nats)")
    if block_size is not None:
        ax.axvline(block_size, color="tab:red", ls="--", lw=1, label=f"block_size = {block_size}")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.set_title("loss at each position of the window (validation text)")
    fig.tight_layout()
    return fig
