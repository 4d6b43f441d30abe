"""Figures comparing training objectives: attention patterns and training signals per sequence.

Chapter 15 (other objectives, strengths & limits) uses these.
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import torch

from ..model import causal_mask

__all__ = ["attention_patterns", "plot_attention_patterns", "plot_training_signals"]


def attention_patterns(T: int, n_source: int) -> dict[str, torch.Tensor]:
    """Boolean (T, T) "query may attend to key" patterns of three model families.

    * ``"decoder-only (GPT)"``: the causal mask, :func:`lmcourse.model.causal_mask`.
    * ``"bidirectional (BERT)"``: every position sees every position.
    * ``"encoder-decoder (T5, BART)"``: the first ``n_source`` positions (the source) see
      each other fully; each target position sees the whole source and the earlier targets.
      (In a real encoder-decoder the two parts are separate stacks joined by
      cross-attention; drawn on one sequence, the allowed pairs are these.)
    """
    if not 0 < n_source < T:
        raise ValueError(f"n_source must be in [1, T-1], got {n_source} for T={T}")
    causal = causal_mask(T)
    seq2seq = causal.clone()
    seq2seq[:n_source, :n_source] = True
    return {
        "decoder-only (GPT)": causal,
        "bidirectional (BERT)": torch.ones(T, T, dtype=torch.bool),
        "encoder-decoder (T5, BART)": seq2seq,
    }


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
