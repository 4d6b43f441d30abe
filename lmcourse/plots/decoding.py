"""Figures of decoding strategies: what temperature, top-k and top-p do to a distribution.

Chapter 8 (decoding strategies) uses this file; the explorer in
:mod:`lmcourse.widgets.decoding` draws its state with :func:`plot_filtering`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..sampling import filter_stats
from .distribution import token_label

__all__ = [
    "plot_filtering",
    "plot_diversity_quality",
    "plot_kept_counts",
]


def plot_filtering(
    logits: torch.Tensor,
    vocab: Sequence[str],
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    k: int = 20,
    context: str = "",
    axes: Optional[Sequence[plt.Axes]] = None,
) -> plt.Figure:
    """Bar charts of the ``k`` most likely tokens before (left) and after (right) filtering.

    Left: the model's own probabilities (temperature 1); tokens the filters remove are
    grey. Right: the distribution actually sampled from: temperature applied, removed
    tokens at 0, the survivors renormalised to sum to 1. Both panels use the same token
    order (the model's ranking, which temperature never changes).
    """
    stats = filter_stats(logits, temperature, top_k, top_p)
    before, after, kept = stats["before"], stats["after"], stats["kept"]
    if len(vocab) != before.numel():
        raise ValueError(f"{len(vocab)} vocabulary strings for {before.numel()} logits")
    k = min(k, before.numel())
    top = torch.topk(before, k).indices.tolist()
    labels = [token_label(vocab[i]) for i in top]
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    else:
        fig = axes[0].figure
    ax_b, ax_a = axes
    x = np.arange(k)
    colors = ["tab:blue" if bool(kept[i]) else "lightgray" for i in top]
    ax_b.bar(x, before[top].numpy(), color=colors)
    ax_b.set_xticks(x, labels)
    ax_b.set_ylabel("probability")
    ax_b.set_title("model, \u03c4 = 1 (grey: removed by the filters)")
    ax_a.bar(x, after[top].numpy(), color=colors)
    for xi, i in zip(x, top):
        v = float(after[i])
        if v > 0.005:
            ax_a.text(xi, v, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
    ax_a.set_xticks(x, labels)
    parts = [f"\u03c4 = {temperature:g}"]
    if top_k is not None:
        parts.append(f"top-k = {top_k}")
    if top_p is not None:
        parts.append(f"top-p = {top_p:g}")
    ax_a.set_title(f"sampled from ({', '.join(parts)}): {stats['n_kept']} of {before.numel()} tokens kept")
    ax_a.set_ylim(0, max(float(after.max()), float(before.max())) * 1.12)
    if context:
        fig.suptitle(f"next token after {context!r}")
    fig.tight_layout()
    return fig


def plot_diversity_quality(
    points: Sequence[dict],
    reference: Optional[dict] = None,
    ax: Optional[plt.Axes] = None,
    xlabel: str = "diversity: distinct n-grams / all n-grams",
) -> plt.Figure:
    """Diversity (x) against quality (y) for several decoding settings.

    Args:
        points: dicts with ``"family"`` (one line per family, e.g. "temperature"),
            ``"label"`` (annotation, e.g. "0.7"), ``"diversity"`` and ``"quality"``.
        reference: an optional dict with ``"label"``, ``"diversity"``, ``"quality"`` drawn as a
            star (e.g. real text).
        ax: axes to draw into.
        xlabel: the x-axis label (say which n-grams).
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.4))
    else:
        fig = ax.figure
    families: dict[str, list[dict]] = {}
    for p in points:
        families.setdefault(p["family"], []).append(p)
    for (family, pts), marker in zip(families.items(), "osD^v<>"):
        xs = [p["diversity"] for p in pts]
        ys = [p["quality"] for p in pts]
        ax.plot(xs, ys, marker=marker, label=family)
        for p in pts:
            ax.annotate(p["label"], (p["diversity"], p["quality"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
    if reference is not None:
        ax.plot([reference["diversity"]], [reference["quality"]], marker="*", ms=14, ls="",
                color="black", label=reference["label"])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("quality: mean model log p per char (\u03c4 = 1)")
    ax.set_title("coherence vs diversity")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_kept_counts(counts: dict, vocab_size: int, ax: Optional[plt.Axes] = None) -> plt.Figure:
    """How many tokens each rule keeps, context by context.

    Args:
        counts: ``{rule name: sequence of kept-token counts, one per context}``.
        vocab_size: V (the top of the y axis).
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 3.4))
    else:
        fig = ax.figure
    for name, c in counts.items():
        c = np.asarray(c)
        ax.plot(np.arange(len(c)), c, marker=".", lw=1, label=name)
    ax.set_yscale("log")
    ax.set_ylim(0.8, vocab_size * 1.2)
    ax.set_xlabel("position in the text (one context per position)")
    ax.set_ylabel("tokens kept (log scale)")
    ax.set_title("fixed top-k keeps the same number everywhere; top-p and min-p adapt")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
