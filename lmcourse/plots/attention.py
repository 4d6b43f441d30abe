"""Figures of causal attention: the mask and a model's attention weights."""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def _labels(tokens: Sequence[str]) -> list[str]:
    """Make whitespace visible on tick labels."""
    return [repr(t)[1:-1] if t.strip() else "\u2423" for t in tokens]


def plot_attention(
    weights: torch.Tensor | np.ndarray,
    tokens: Sequence[str],
    query: Optional[int] = None,
    title: str = "",
    ax: Optional[plt.Axes] = None,
) -> plt.Figure:
    """Draw a (T, T) attention matrix: row i is what query position i attends to.

    With ``query`` set, that row is outlined and, beside the matrix, a bar chart shows its
    weights over the keys; the keys it may not see (the future) are hatched.

    Returns:
        The matplotlib figure.
    """
    w = np.asarray(torch.as_tensor(weights).detach().float().cpu())
    T = w.shape[0]
    labels = _labels(tokens)
    if ax is None:
        ncols = 2 if query is not None else 1
        fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 4.6), squeeze=False)
        ax, bar_ax = axes[0, 0], (axes[0, 1] if query is not None else None)
    else:
        fig, bar_ax = ax.figure, None
    masked = np.ma.masked_where(np.triu(np.ones((T, T), dtype=bool), k=1), w)
    cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd")
    im = ax.imshow(masked, cmap=cmap, vmin=0.0, vmax=1.0)
    ax.set_xticks(range(T), labels, fontsize=8)
    ax.set_yticks(range(T), labels, fontsize=8)
    ax.set_xlabel("key position j (what is looked at)")
    ax.set_ylabel("query position i (who is looking)")
    ax.set_title(title or "attention weights (grey: masked future)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if query is not None:
        ax.add_patch(plt.Rectangle((-0.5, query - 0.5), T, 1, fill=False, ec="red", lw=2))
        if bar_ax is not None:
            row = w[query]
            colors = ["tab:blue" if j <= query else "#dddddd" for j in range(T)]
            bar_ax.bar(range(T), row, color=colors, hatch=None)
            for j in range(query + 1, T):
                bar_ax.bar(j, 1.0, color="none", edgecolor="#bbbbbb", hatch="//")
            bar_ax.set_xticks(range(T), labels, fontsize=8)
            bar_ax.set_ylim(0, 1)
            bar_ax.set_ylabel("attention weight")
            bar_ax.set_title(f"query {query} ({labels[query]!r}) may see keys 0..{query}")
    fig.tight_layout()
    return fig


def plot_mask(T: int, ax: Optional[plt.Axes] = None) -> plt.Figure:
    """Draw the T x T causal mask: 1 (allowed) on and below the diagonal, -inf above."""
    allowed = np.tril(np.ones((T, T)))
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.6, 3.6))
    else:
        fig = ax.figure
    ax.imshow(allowed, cmap="Blues", vmin=0, vmax=1.3)
    for i in range(T):
        for j in range(T):
            ax.text(j, i, "0" if j <= i else "\u2212\u221e", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(T))
    ax.set_yticks(range(T))
    ax.set_xlabel("key j")
    ax.set_ylabel("query i")
    ax.set_title("additive causal mask")
    fig.tight_layout()
    return fig
