"""Figures comparing training objectives: attention patterns and training signals per sequence.

Chapter 15 (other objectives, strengths & limits) uses these.
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt

from ..experiments import attention_patterns

__all__ = ["plot_attention_patterns", "plot_training_signals"]


def plot_attention_patterns(
    labels: Sequence[str], n_source: int, fontsize: float = 8.0
) -> plt.Figure:
    """Draw :func:`attention_patterns` for the tokens ``labels`` side by side.

    Rows are queries, columns keys; a dark cell means "may attend". The encoder-decoder
    panel has a line between the source and the target.
    """
    T = len(labels)
    pats = attention_patterns(T, n_source)
    fig, axes = plt.subplots(1, len(pats), figsize=(4.0 * len(pats), 4.2))
    for ax, (name, pat) in zip(axes, pats.items()):
        ax.imshow(pat.float().numpy(), cmap="Blues", vmin=-0.3, vmax=1.0)
        ax.set_xticks(range(T))
        ax.set_yticks(range(T))
        ax.set_xticklabels(labels, rotation=90, fontsize=fontsize)
        ax.set_yticklabels(labels, fontsize=fontsize)
        ax.set_xlabel("key (attended to)")
        ax.set_title(f"{name}\n{int(pat.sum())} of {T * T} pairs allowed", fontsize=fontsize + 2)
        if "encoder" in name:
            ax.axhline(n_source - 0.5, color="tab:red", lw=1)
            ax.axvline(n_source - 0.5, color="tab:red", lw=1)
    axes[0].set_ylabel("query (position being computed)")
    fig.tight_layout()
    return fig


def plot_training_signals(
    lengths: Sequence[int], mask_rate: float = 0.15, ax: Optional[plt.Axes] = None
) -> plt.Figure:
    """Predicted tokens per training sequence: T for next-token prediction, ~rate·T for MLM."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
    else:
        fig = ax.figure
    lengths = list(lengths)
    ax.plot(lengths, lengths, "o-", label="autoregressive: every position (T)")
    ax.plot(lengths, [round(mask_rate * t) for t in lengths], "s-",
            label=f"masked LM: masked positions ({mask_rate:.0%} of T)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("sequence length T (tokens)")
    ax.set_ylabel("tokens with a loss")
    ax.set_title("Training signals per sequence", loc="left")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig
