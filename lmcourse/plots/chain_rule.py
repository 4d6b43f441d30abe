"""Figure of the chain rule: the probability a model gives each token of a text, given its prefix."""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt

from lmcourse.plots.tokens import visible

__all__ = ["plot_conditional_probs"]


def plot_conditional_probs(
    tokens: Sequence[str],
    probs: Sequence[float],
    title: Optional[str] = None,
    figsize: tuple[float, float] = (11.0, 3.6),
) -> plt.Figure:
    """Bar chart of ``P(x_t | x_<t)`` for every token ``x_t`` of a sequence.

    By the chain rule the probability of the whole sequence is the product of these bars, so
    its log-probability is the sum of their logarithms. Each bar is labelled with its token
    (spaces shown as ``·``) and the y axis is on a log scale, so that the gap between a bar and 1
    is its surprisal.

    Args:
        tokens: the tokens ``x_1 .. x_T`` as strings.
        probs: ``P(x_t | x_<t)`` for each token, in ``(0, 1]``; same length as ``tokens``.
        title: optional title for the axes.
        figsize: figure size in inches.

    Returns:
        The matplotlib figure (one axes).
    """
    if len(tokens) != len(probs):
        raise ValueError(f"{len(tokens)} tokens but {len(probs)} probabilities")
    fig, ax = plt.subplots(figsize=figsize)
    xs = list(range(len(tokens)))
    colors = ["tab:red" if p < 0.1 else "tab:blue" for p in probs]
    ax.bar(xs, list(probs), color=colors, width=0.8)
    ax.set_yscale("log")
    ax.set_ylim(min(min(probs, default=1.0), 1e-3) / 2, 1.5)
    ax.set_xticks(xs)
    ax.set_xticklabels([visible(t) for t in tokens], fontfamily="monospace")
    ax.set_xlim(-0.6, len(tokens) - 0.4)
    ax.set_ylabel(r"$P(x_t \mid x_{<t})$ (log scale)")
    ax.set_xlabel("token $x_t$")
    ax.axhline(1.0, color="grey", lw=0.8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
