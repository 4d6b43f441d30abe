"""Figures for the training chapter: per-position teacher-forced losses and loss curves.

:func:`lmcourse.experiments.teacher_forcing_table` computes, for every position, the
target token, the probability the model gave it and its loss;
:func:`plot_teacher_forcing` draws the per-position loss bars with one step picked out (the
static twin of the :func:`lmcourse.explorers.teacher_forcing_view` explorer);
:func:`plot_loss_curves` draws train/val loss against the step from a Trainer ``history``
(split by :func:`lmcourse.train.loss_history`).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..train import loss_history
from .distribution import token_label

__all__ = [
    "plot_teacher_forcing",
    "plot_loss_curves",
]


def plot_teacher_forcing(
    table: dict[str, torch.Tensor],
    vocab: Sequence[str],
    position: Optional[int] = None,
    axes: Optional[Sequence[plt.Axes]] = None,
) -> plt.Figure:
    """Per-position loss bars along a sequence, and the model's top candidates at one step.

    Args:
        table: the output of :func:`lmcourse.experiments.teacher_forcing_table`.
        vocab: token strings in id order.
        position: the step to pick out (highlighted bar and right panel); ``None`` draws
            only the bar chart.
        axes: axes to draw into: one for the bars, or two when ``position`` is given.
    Returns:
        The matplotlib figure.
    """
    losses = table["losses"].numpy()
    T = len(losses)
    if position is not None and not 0 <= position < T:
        raise ValueError(f"position must be in [0, {T - 1}], got {position}")
    n_axes = 1 if position is None else 2
    if axes is None:
        if n_axes == 1:
            fig, ax_bar = plt.subplots(figsize=(11, 3.4))
            axes = [ax_bar]
        else:
            fig, axes = plt.subplots(
                1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [3.2, 1]}
            )
    fig = axes[0].figure
    ax = axes[0]
    targets = [token_label(vocab[int(i)]) for i in table["targets"]]
    colors = ["tab:blue"] * T
    if position is not None:
        colors = ["#9bbcd9"] * T
        colors[position] = "tab:red"
    ax.bar(np.arange(T), losses, color=colors)
    mean = float(losses.mean())
    ax.axhline(mean, color="black", ls="--", lw=1)
    ax.text(T - 0.5, mean, f" mean {mean:.2f} nats", va="bottom", ha="right", fontsize=10)
    ax.set_xticks(np.arange(T), targets, fontsize=10)
    ax.set_xlim(-0.7, T - 0.3)
    ax.set_xlabel("target token y_t (the input at each step is everything to its left)")
    ax.set_ylabel("loss  -ln p(y_t | x_≤t)  [nats]")
    ax.set_title(f"teacher forcing: {T} positions, {T} training signals in one forward pass")
    if position is not None:
        ax_k = axes[1]
        top_ids = table["top_ids"][position].tolist()
        top_p = table["top_probs"][position].numpy()
        target = int(table["targets"][position])
        labels = [token_label(vocab[i]) for i in top_ids]
        bar_colors = ["tab:red" if i == target else "tab:gray" for i in top_ids]
        y = np.arange(len(top_ids))
        ax_k.barh(y, top_p, color=bar_colors)
        ax_k.set_yticks(y, labels)
        ax_k.invert_yaxis()
        ax_k.set_xlim(0, 1)
        ax_k.set_xlabel("model probability")
        p_t = float(table["probs"][position])
        ax_k.set_title(
            f"step {position}: p({token_label(vocab[target])}) = {p_t:.3f}\n"
            f"loss = {float(table['losses'][position]):.2f} nats",
            fontsize=11,
        )
        if target not in top_ids:
            ax_k.text(0.5, len(top_ids) - 0.5, "target not in top-k", ha="center", fontsize=10,
                      color="tab:red")
    fig.tight_layout()
    return fig


def plot_loss_curves(
    history: Sequence[dict[str, Any]],
    floor: Optional[float] = None,
    floor_label: str = "entropy rate of the source",
    reference: Optional[dict[str, float]] = None,
    title: str = "",
    max_steps: Optional[int] = None,
    ax: Optional[plt.Axes] = None,
) -> plt.Figure:
    """Training and validation loss (nats per token) against the optimizer step.

    Args:
        history: a Trainer ``history`` (records with ``kind`` "train" or "eval").
        floor: a horizontal line no model can go below (e.g. a source's entropy rate).
        floor_label: legend label of ``floor``.
        reference: other horizontal lines ``{label: loss}`` (e.g. uniform guessing).
        title: axes title.
        max_steps: x-axis limit (default: the last step in ``history``).
        ax: axes to draw into (default: a new figure).
    Returns:
        The matplotlib figure.
    """
    h = loss_history(history)
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 4))
    else:
        fig = ax.figure
    if len(h["train_step"]):
        ax.plot(h["train_step"], h["train_loss"], color="tab:blue", alpha=0.6, lw=1,
                label="train loss (one batch)")
    if len(h["val_step"]):
        ax.plot(h["val_step"], h["val_loss"], "o-", color="tab:orange", ms=4,
                label="val loss (held-out batches)")
    for i, (label, value) in enumerate((reference or {}).items()):
        ax.axhline(value, color="gray", ls=[":", "-."][i % 2], lw=1.2, label=f"{label}: {value:.2f}")
    if floor is not None:
        ax.axhline(floor, color="black", ls="--", lw=1.5, label=f"{floor_label}: {floor:.3f}")
    last = max([0.0, *h["train_step"], *h["val_step"]])
    ax.set_xlim(0, max_steps if max_steps else max(last, 1))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy [nats per token]")
    if title:
        ax.set_title(title)
    if len(h["train_step"]) or len(h["val_step"]) or floor is not None or reference:
        ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    finite = [v for v in (*h["train_loss"], *h["val_loss"]) if math.isfinite(v)]
    lines = [*(reference or {}).values()] + ([floor] if floor is not None else [])
    if finite:
        ax.set_ylim(max(0.0, min(finite + lines) - 0.15), max(finite + lines) + 0.1)
    fig.tight_layout()
    return fig
