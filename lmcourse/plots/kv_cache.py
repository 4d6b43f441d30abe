"""Figures of the KV cache (chapter 7): attention work per step, decode timings, cache memory.

The numbers come from :mod:`lmcourse.long_context` (:func:`~lmcourse.long_context.attention_ops`,
:func:`~lmcourse.long_context.kv_cache_bytes`); this file only draws them.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..long_context import BYTE_UNITS, DTYPE_BYTES, attention_ops, format_bytes, kv_cache_bytes

__all__ = [
    "plot_attention_ops",
    "plot_decode_times",
    "plot_kv_memory_vs_context",
]

def plot_attention_ops(n: int, axes: Optional[Sequence[plt.Axes]] = None) -> plt.Figure:
    """Two panels for sequence length ``n``: dot products per step, and their running total.

    Left: bars per step without cache (t(t+1)/2, growing quadratically) and with cache (t).
    Right: the cumulative totals, on a shared scale, with the final ratio in the title.
    """
    ops = attention_ops(n)
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    else:
        fig = axes[0].figure
    ax_step, ax_cum = axes
    t = ops["steps"]
    width = 0.9 if n <= 64 else 1.0
    ax_step.bar(t, ops["no_cache"], width=width, color="tab:red", alpha=0.6, label="no cache: t(t+1)/2")
    ax_step.bar(t, ops["cache"], width=width, color="tab:blue", label="KV cache: t")
    ax_step.set_xlabel("decode step t (tokens already in the context)")
    ax_step.set_ylabel("query\u00b7key dot products")
    ax_step.set_title("work per step (one head, one layer)")
    ax_step.legend()
    ax_cum.plot(t, ops["cum_no_cache"], color="tab:red", lw=2, label="no cache")
    ax_cum.plot(t, ops["cum_cache"], color="tab:blue", lw=2, label="KV cache")
    ax_cum.set_xlabel("tokens generated so far")
    ax_cum.set_ylabel("total dot products")
    ratio = ops["cum_no_cache"][-1] / ops["cum_cache"][-1]
    ax_cum.set_title(
        f"running total after {n} steps: {ops['cum_no_cache'][-1]:,} vs {ops['cum_cache'][-1]:,} ({ratio:.0f}\u00d7)"
    )
    ax_cum.legend()
    fig.tight_layout()
    return fig


def plot_decode_times(
    lengths: Sequence[int],
    ms_cache: Sequence[float],
    ms_no_cache: Sequence[float],
    ax: Optional[plt.Axes] = None,
    device: str = "cpu",
) -> plt.Figure:
    """Measured time (ms) to produce one token vs context length, with and without a KV cache."""
    if not len(lengths) == len(ms_cache) == len(ms_no_cache):
        raise ValueError("lengths, ms_cache and ms_no_cache must have the same length")
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 3.8))
    else:
        fig = ax.figure
    ax.plot(lengths, ms_no_cache, "o-", color="tab:red", lw=2, label="no cache (recompute the prefix)")
    ax.plot(lengths, ms_cache, "o-", color="tab:blue", lw=2, label="KV cache (one new position)")
    ax.set_xlabel("context length (tokens already generated)")
    ax.set_ylabel("time per new token (ms)")
    ax.set_ylim(0, max(max(ms_no_cache), max(ms_cache)) * 1.15)
    ax.set_title(f"decode time per token, measured on {device}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_kv_memory_vs_context(
    configs: Mapping[str, tuple[int, int, int]],
    bytes_per_elem: int = 2,
    batch: int = 1,
    max_context: int = 131072,
    mark_context: Optional[int] = None,
    budget_bytes: Optional[float] = None,
    ax: Optional[plt.Axes] = None,
) -> plt.Figure:
    """KV-cache memory (computed with :func:`~lmcourse.long_context.kv_cache_bytes`) vs context length.

    Args:
        configs: label -> (n_layer, n_kv_head, head_dim), one line each.
        bytes_per_elem: 4 fp32, 2 fp16/bf16, 1 int8/fp8.
        batch: sequences held at once.
        max_context: the longest context on the (log) x axis.
        mark_context: draw a vertical line and label each line's value there.
        budget_bytes: a horizontal line, e.g. the memory of one accelerator.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 4))
    else:
        fig = ax.figure
    ctx = np.unique(np.geomspace(128, max(128, max_context), 40).astype(np.int64))
    for label, (n_layer, n_kv, d) in configs.items():
        mem = np.array([kv_cache_bytes(n_layer, n_kv, d, int(c), batch, bytes_per_elem) for c in ctx], dtype=float)
        (line,) = ax.plot(ctx, mem / BYTE_UNITS["GB"], lw=2, label=label)
        if mark_context is not None:
            m = kv_cache_bytes(n_layer, n_kv, d, mark_context, batch, bytes_per_elem) / BYTE_UNITS["GB"]
            ax.plot([mark_context], [m], "o", color=line.get_color())
            ax.annotate(format_bytes(m * BYTE_UNITS["GB"]), (mark_context, m), textcoords="offset points",
                        xytext=(6, 4), fontsize=8, color=line.get_color())
    if mark_context is not None:
        ax.axvline(mark_context, color="gray", ls=":", lw=1)
    if budget_bytes is not None:
        ax.axhline(budget_bytes / BYTE_UNITS["GB"], color="black", ls="--", lw=1, label=f"{format_bytes(budget_bytes)} budget")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context length n (tokens)")
    ax.set_ylabel("KV cache (GB, log scale)")
    dtype = {v: k for k, v in DTYPE_BYTES.items()}.get(bytes_per_elem, f"{bytes_per_elem} B")
    ax.set_title(f"KV-cache memory = 2\u00b7L\u00b7h_kv\u00b7d\u00b7n\u00b7bytes (batch {batch}, {dtype})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
