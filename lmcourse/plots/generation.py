"""Figures of the generation loop (chapter 6): what the model proposed at each step.

They draw a :class:`lmcourse.experiments.LoopTrace` (recorded by
:func:`lmcourse.experiments.trace_generation` from :func:`lmcourse.generate.generate`'s
own steps): one step (:func:`plot_step`), a grid over the first steps
(:func:`plot_candidate_grid`), and the timing comparison of one parallel forward against a
sequential loop (:func:`plot_parallel_vs_sequential`).
"""

from __future__ import annotations

from typing import Mapping, Optional

import matplotlib.pyplot as plt
import numpy as np

from ..experiments import LoopTrace
from .distribution import token_label

__all__ = [
    "plot_step",
    "plot_candidate_grid",
    "plot_parallel_vs_sequential",
]


def _short(text: str, width: int = 48) -> str:
    text = text.replace("\n", "\u21b5")
    return text if len(text) <= width else "\u2026" + text[-(width - 1) :]


def plot_step(trace: LoopTrace, step: int, ax: Optional[plt.Axes] = None) -> plt.Figure:
    """Bar chart of the top candidates at ``step``; the chosen token's bar is orange.

    If the chosen token is not among the recorded top-k, it is added as an extra bar.
    """
    if not 0 <= step < trace.n_steps:
        raise ValueError(f"step must be in [0, {trace.n_steps - 1}], got {step}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 3.4))
    else:
        fig = ax.figure
    ids = list(trace.top_ids[step])
    probs = list(trace.top_probs[step])
    chosen = trace.chosen[step]
    if chosen not in ids:
        ids.append(chosen)
        probs.append(trace.chosen_probs[step])
    colors = ["tab:orange" if i == chosen else "tab:blue" for i in ids]
    x = np.arange(len(ids))
    bars = ax.bar(x, probs, color=colors)
    for bar, v in zip(bars, probs):
        ax.text(bar.get_x() + bar.get_width() / 2, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [token_label(trace.vocab[i]) for i in ids])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("probability")
    ax.set_title(
        f"step {step + 1}: after \u201c{_short(trace.prefix(step))}\u201d\n"
        f"chosen \u201c{token_label(trace.vocab[chosen])}\u201d (orange), p = {trace.chosen_probs[step]:.3f}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def plot_candidate_grid(trace: LoopTrace, n_steps: Optional[int] = None, ax: Optional[plt.Axes] = None) -> plt.Figure:
    """Grid of the top candidates over the first ``n_steps`` steps (columns) by rank (rows).

    Each cell shows a candidate token, coloured by its probability; the chosen token of each
    step is outlined in black. Reading the outlined cells left to right spells the output.
    """
    n = trace.n_steps if n_steps is None else min(n_steps, trace.n_steps)
    k = trace.top_ids.shape[1]
    probs = trace.top_probs[:n].T  # (k, n)
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6.0, 0.42 * n + 1.5), 0.45 * k + 1.6))
    else:
        fig = ax.figure
    im = ax.imshow(probs, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for s in range(n):
        for r in range(k):
            tok = trace.vocab[int(trace.top_ids[s, r])]
            ax.text(s, r, token_label(tok), ha="center", va="center", fontsize=8,
                    color="white" if probs[r, s] > 0.6 else "black")
        rank = trace.chosen_rank(s)
        if rank is not None:
            ax.add_patch(plt.Rectangle((s - 0.5, rank - 0.5), 1, 1, fill=False, ec="black", lw=1.8))
    ax.set_xticks(range(n), [str(s + 1) for s in range(n)], fontsize=7)
    ax.set_yticks(range(k), [f"#{r + 1}" for r in range(k)])
    ax.set_xlabel("generation step")
    ax.set_ylabel("candidate rank")
    ax.set_title(f"top-{k} candidates per step after \u201c{_short(trace.prefix(0), 30)}\u201d (chosen: outlined)")
    fig.colorbar(im, ax=ax, label="probability", fraction=0.03, pad=0.01)
    fig.tight_layout()
    return fig


def plot_parallel_vs_sequential(times: Mapping[str, float], n_tokens: int, ax: Optional[plt.Axes] = None) -> plt.Figure:
    """Horizontal bars of wall-clock times (seconds) for processing ``n_tokens`` tokens.

    Args:
        times: label -> seconds, e.g. one parallel forward vs a sequential loop.
        n_tokens: the number of positions each measurement covered (for the title).
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 0.6 * len(times) + 1.4))
    else:
        fig = ax.figure
    labels = list(times)
    ms = [1000 * times[k] for k in labels]
    y = np.arange(len(labels))
    bars = ax.barh(y, ms, color=["tab:green", "tab:orange", "tab:red", "tab:purple"][: len(labels)])
    for bar, v in zip(bars, ms):
        ax.text(v, bar.get_y() + bar.get_height() / 2, f" {v:.1f} ms", va="center", fontsize=9)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, max(ms) * 1.25)
    ax.set_xlabel("wall-clock time (ms)")
    ax.set_title(f"{n_tokens} positions: all at once vs one after another")
    fig.tight_layout()
    return fig

