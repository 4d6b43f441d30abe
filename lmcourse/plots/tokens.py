"""Figures of tokenisation: text coloured by token, and compression against vocabulary size."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

__all__ = ["visible", "plot_token_boxes", "plot_compression"]

# How whitespace is drawn inside a token box, so that it can be seen.
_VISIBLE = {" ": "\u00b7", "\n": "\u21b5", "\t": "\u2192"}


def visible(token: str) -> str:
    """Return ``token`` with spaces, newlines and tabs replaced by visible symbols."""
    return "".join(_VISIBLE.get(ch, ch) for ch in token)


def _layout(tokens: Sequence[str], width: int) -> list[tuple[int, int, str]]:
    """Place tokens on a grid of character cells: ``(line, column, shown text)`` per token.

    A token that does not fit on the current line starts a new one; a token that ends with a
    newline also ends its line. A token longer than ``width`` gets a line of its own.
    """
    placed: list[tuple[int, int, str]] = []
    line, col = 0, 0
    for tok in tokens:
        shown = visible(tok) or "\u2205"
        if col > 0 and col + len(shown) > width:
            line, col = line + 1, 0
        placed.append((line, col, shown))
        col += len(shown)
        if tok.endswith("\n"):
            line, col = line + 1, 0
    return placed


def plot_token_boxes(
    rows: Sequence[tuple[str, Sequence[str]]],
    width: int = 64,
    cmap: str = "tab20",
    fontsize: float = 9.0,
) -> plt.Figure:
    """Draw the same text under several tokenisers, one coloured box per token.

    Each character sits in one cell of a grid, so a box is exactly as wide as its token's
    text; neighbouring tokens get different colours. Spaces are shown as ``·`` and
    newlines as ``↵``.

    Args:
        rows: ``(label, tokens)`` pairs, where ``tokens`` are the token strings in order
            (e.g. ``[tok.decode([i]) for i in tok.encode(text)]``). One panel per pair.
        width: characters per line before wrapping.
        cmap: matplotlib colormap the box colours cycle through.
        fontsize: size of the characters.

    Returns:
        The matplotlib figure.
    """
    layouts = [_layout(tokens, width) for _, tokens in rows]
    n_lines = [max((ln for ln, _, _ in lay), default=0) + 1 for lay in layouts]
    colours = plt.get_cmap(cmap).colors if hasattr(plt.get_cmap(cmap), "colors") else None
    if colours is None:
        colours = [plt.get_cmap(cmap)(k / 19) for k in range(20)]
    fig, axes = plt.subplots(
        len(rows),
        1,
        figsize=(0.14 * width + 0.4, sum(0.32 * n + 0.45 for n in n_lines)),
        gridspec_kw={"height_ratios": [n + 1.2 for n in n_lines]},
        squeeze=False,
    )
    for ax, (label, tokens), lay, n in zip(axes[:, 0], rows, layouts, n_lines):
        for k, (line, col, shown) in enumerate(lay):
            y = n - 1 - line
            ax.add_patch(
                Rectangle(
                    (col + 0.04, y + 0.08),
                    len(shown) - 0.08,
                    0.84,
                    facecolor=colours[k % len(colours)],
                    edgecolor="0.3",
                    linewidth=0.5,
                )
            )
            for j, ch in enumerate(shown):
                ax.text(
                    col + j + 0.5,
                    y + 0.5,
                    ch,
                    ha="center",
                    va="center",
                    family="monospace",
                    fontsize=fontsize,
                )
        ax.set_xlim(0, width)
        ax.set_ylim(0, n)
        ax.set_aspect("auto")
        ax.axis("off")
        ax.set_title(f"{label}: {len(tokens)} tokens", loc="left", fontsize=fontsize + 1)
    fig.tight_layout()
    return fig


def plot_compression(
    series: Mapping[str, Mapping[int, float]],
    reference: Optional[Mapping[str, float]] = None,
    title: str = "Tokens per character on held-out text",
    ax: Optional[plt.Axes] = None,
) -> plt.Figure:
    """Plot tokens per character against vocabulary size, one line per tokeniser family.

    Args:
        series: ``{name: {vocab_size: tokens_per_character}}``.
        reference: optional ``{name: tokens_per_character}`` drawn as horizontal dashed
            lines (e.g. the character tokeniser, which is 1.0 by construction).
        title: axes title.
        ax: axes to draw on; a new figure is made if ``None``.

    Returns:
        The matplotlib figure.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
    else:
        fig = ax.figure
    markers = "osD^v"
    for k, (name, points) in enumerate(series.items()):
        sizes = sorted(points)
        ax.plot(
            sizes,
            [points[v] for v in sizes],
            marker=markers[k % len(markers)],
            label=name,
            alpha=0.85,
        )
    for name, value in (reference or {}).items():
        ax.axhline(value, linestyle="--", color="0.5", linewidth=1)
        ax.annotate(name, (0.01, value), xycoords=("axes fraction", "data"),
                    xytext=(0, -12), textcoords="offset points", color="0.35", fontsize=9)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("vocabulary size (log scale)")
    ax.set_ylabel("tokens per character")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
