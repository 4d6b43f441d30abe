"""Figures for chapter 10 (context length and attention cost).

- :func:`plot_attention_cost` draws :func:`lmcourse.experiments.measure_attention_cost`
  (explicit vs fused attention: time and peak memory over several context lengths).
- :func:`plot_long_context_masks` shows which key each query may see in the long-context
  attention patterns (the masks are :func:`lmcourse.long_context.sliding_window_mask`,
  :func:`~lmcourse.long_context.strided_mask` and :func:`~lmcourse.long_context.global_window_mask`).
- :func:`plot_position_loss` draws the loss at each position of the context window.
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np

# re-exported: chapter 10 imports them from here
from ..experiments import log2_buckets
from ..long_context import BYTE_UNITS, global_window_mask, sliding_window_mask, strided_mask
from ..model import causal_mask

__all__ = [
    "plot_attention_cost",
    "plot_long_context_masks",
    "plot_position_loss",
]


def plot_attention_cost(results: dict[str, list[float]]) -> plt.Figure:
    """Two log-log panels from :func:`measure_attention_cost`: time and peak memory vs T.

    Dotted grey lines of slope 2 (quadratic) and 1 (linear), anchored at the first point
    of the explicit and fused curves, make the growth rates readable.
    """
    T = np.asarray(results["lengths"], dtype=float)
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10.5, 3.8))
    for ax, key, unit, scale in (
        (ax_t, "ms", "time per call (ms)", 1.0),
        (ax_m, "bytes", "peak tensor memory (MiB)", 1 / BYTE_UNITS["MiB"]),
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
        w = np.asarray(results["weights_bytes"], dtype=float) / BYTE_UNITS["MiB"]
        ax_m.plot(T, w, "x", color="black", label="one T\u00d7T weight tensor (computed)")
    ax_t.set_title("time")
    ax_m.set_title("memory")
    ax_m.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# Long-context attention patterns
# --------------------------------------------------------------------------------------


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


def plot_position_loss(loss_per_position: Sequence[float], block_size: Optional[int] = None) -> plt.Figure:
    """Mean next-token loss (nats) at each position of the context window.

    Position t predicts token t + 1 from t + 1 tokens of context, so the curve shows how
    much each extra token of context helps. The thin line is every position; the markers
    are the averages over the buckets of :func:`lmcourse.experiments.log2_buckets`.
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
