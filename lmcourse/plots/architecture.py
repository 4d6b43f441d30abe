"""Diagrams of the architecture: the GPT (or Llama) block and the residual stream.

Both figures only draw boxes and arrows; the labels come from a ``GPTConfig`` (or any object
with the same attribute names), so the diagram always shows the configuration it is given:
a GPT-2 block (LayerNorm, learned positions, GELU MLP, tied head) or a Llama block
(RMSNorm, RoPE on queries and keys, SwiGLU, grouped-query attention, untied head).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from ..checks import require_int

__all__ = ["block_labels", "plot_gpt_block", "plot_residual_stream"]

_COLORS = {"embed": "#dbe9f6", "norm": "#fde9c8", "attn": "#f8d0d0", "mlp": "#d5ecd4",
           "head": "#e6dcf2", "stream": "#555555"}


def block_labels(config: Any) -> dict[str, str]:
    """The text of each box of :func:`plot_gpt_block` for ``config``.

    Args:
        config: a ``GPTConfig`` (or an object with its attributes ``n_layer``, ``n_head``,
            ``n_kv_head``, ``n_embd``, ``vocab_size``, ``block_size``, ``norm``, ``mlp``,
            ``pos_emb``, ``tie_weights``).

    Returns:
        A dict with the keys ``embed``, ``pos``, ``norm``, ``attn``, ``mlp``, ``head``,
        ``repeat`` and ``title``, each a short label.
    """
    names = ("n_layer", "n_head", "n_kv_head", "n_embd", "vocab_size", "block_size", "norm", "mlp",
             "pos_emb", "tie_weights")
    missing = [n for n in names if not hasattr(config, n)]
    if missing:
        raise TypeError(f"config must have the attributes of a GPTConfig; missing {missing}")
    c = config
    norm = "RMSNorm" if c.norm == "rmsnorm" else "LayerNorm"
    kv = c.n_kv_head if c.n_kv_head is not None else c.n_head
    heads = f"{c.n_head} heads" if kv == c.n_head else f"{c.n_head} query / {kv} key-value heads (GQA)"
    rope = c.pos_emb == "rope"
    mlp = "SwiGLU MLP" if c.mlp == "swiglu" else "MLP: 4C, GELU, C"
    return {
        "embed": f"token embedding  ({c.vocab_size} × {c.n_embd})",
        "pos": "no position table: RoPE rotates q and k" if rope else f"+ position embedding  ({c.block_size} × {c.n_embd})",
        "norm": norm,
        "attn": f"causal self-attention\n{heads}" + ("\nRoPE on q, k" if rope else ""),
        "mlp": mlp,
        "head": "LM head (tied to the token embedding)" if c.tie_weights else "LM head (its own matrix)",
        "repeat": f"× {c.n_layer} blocks",
        "title": "Llama-style block" if (rope or c.norm == "rmsnorm" or c.mlp == "swiglu") else "GPT-2 block",
    }


def _box(ax: plt.Axes, x: float, y: float, w: float, h: float, text: str, color: str, size: float = 9.5) -> None:
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=color, edgecolor="#333333", linewidth=1.0))
    ax.text(x, y, text, ha="center", va="center", fontsize=size)


def _arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], color: str = "#333333",
           style: str = "-|>", lw: float = 1.2, connection: str = "arc3") -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=11, color=color, linewidth=lw,
                                 connectionstyle=connection, shrinkA=0, shrinkB=0))


def _plus(ax: plt.Axes, x: float, y: float) -> None:
    ax.add_patch(plt.Circle((x, y), 0.13, facecolor="white", edgecolor=_COLORS["stream"], linewidth=1.4, zorder=3))
    ax.text(x, y, "+", ha="center", va="center", fontsize=11, zorder=4)


def plot_gpt_block(config: Any, figsize: tuple[float, float] = (6.4, 7.6)) -> plt.Figure:
    """Diagram of the whole model around one transformer block, bottom (ids) to top (logits).

    The vertical grey line is the residual stream: the block's two branches each read it
    through a norm, compute (attention mixes positions, the MLP works on each position
    alone) and add their result back at a ``+``. The block is repeated ``n_layer`` times;
    a final norm and the LM head turn the stream into logits.

    Args:
        config: a ``GPTConfig`` (see :func:`block_labels`); the labels follow it, so a
            Llama-style config draws RMSNorm, RoPE, SwiGLU and GQA.
        figsize: figure size in inches.

    Returns:
        The matplotlib figure (one axes, no ticks).
    """
    labels = block_labels(config)
    fig, ax = plt.subplots(figsize=figsize)
    ax.set(xlim=(0, 10), ylim=(-0.6, 12.2))
    ax.axis("off")
    sx = 3.0  # x of the residual stream
    bx = 6.6  # x of the branches
    # bottom: ids and embeddings
    ax.text(sx, -0.3, "token ids  (B, T)", ha="center", va="center", fontsize=9.5)
    _box(ax, sx, 0.75, 5.2, 1.0, labels["embed"] + "\n" + labels["pos"], _COLORS["embed"], size=9)
    # the stream through the block
    ax.plot([sx, sx], [1.25, 9.0], color=_COLORS["stream"], linewidth=3, solid_capstyle="butt", zorder=1)
    ax.text(sx - 0.2, 5.0, "residual stream  (B, T, C)", ha="right", va="center", fontsize=8.5, color="#444444",
            rotation=90)
    # block frame
    ax.add_patch(FancyBboxPatch((1.2, 2.0), 7.6, 6.3, boxstyle="round,pad=0.05,rounding_size=0.2",
                                facecolor="none", edgecolor="#888888", linestyle="--", linewidth=1.2))
    ax.text(8.7, 2.2, labels["repeat"], ha="right", va="bottom", fontsize=10, weight="bold", color="#444444")
    ax.text(8.7, 8.1, labels["title"], ha="right", va="top", fontsize=9.5, color="#444444")
    for y0, kind, text in ((2.6, "attn", labels["attn"]), (5.4, "mlp", labels["mlp"])):
        ax.plot([sx, bx], [y0, y0], color="#333333", linewidth=1.2)  # the branch reads the stream
        _arrow(ax, (bx, y0), (bx, y0 + 0.25))
        _box(ax, bx, y0 + 0.55, 2.6, 0.6, labels["norm"], _COLORS["norm"])
        _arrow(ax, (bx, y0 + 0.85), (bx, y0 + 1.15))
        _box(ax, bx, y0 + 1.6, 3.2, 0.9 if kind == "attn" else 0.7, text, _COLORS[kind], size=9)
        _plus(ax, sx, y0 + 2.4)
        _arrow(ax, (bx, y0 + 2.05 if kind == "attn" else y0 + 1.95), (sx + 0.13, y0 + 2.4),
               connection="angle,angleA=90,angleB=0,rad=0")
    # top: final norm, head, logits
    _box(ax, sx, 9.35, 2.6, 0.6, "final " + labels["norm"], _COLORS["norm"])
    _arrow(ax, (sx, 9.65), (sx, 10.05))
    _box(ax, sx, 10.4, 5.0, 0.7, labels["head"], _COLORS["head"])
    _arrow(ax, (sx, 10.75), (sx, 11.2))
    ax.text(sx, 11.5, f"logits  (B, T, {config.vocab_size}): one next-token distribution per position",
            ha="center", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def plot_residual_stream(n_layer: int, norms: Optional[Sequence[float]] = None,
                         figsize: tuple[float, float] = (10.5, 3.2)) -> plt.Figure:
    """The residual stream as a running sum: ``x_L = x_0 + sum of every branch's output``.

    The stream runs left to right, from the embeddings to the LM head. Each block has two
    branches (attention, then the MLP); each reads the stream through a norm and adds its
    output back at a ``+``. Nothing overwrites the stream; every branch only adds to it.

    Args:
        n_layer: number of blocks to draw (1 to 12).
        norms: optional measured lengths of the stream, ``n_layer + 1`` numbers (after the
            embeddings and after each block), written under the stream.
        figsize: figure size in inches.

    Returns:
        The matplotlib figure (one axes, no ticks).
    """
    require_int("n_layer", n_layer, 1, 12)
    if norms is not None and len(norms) != n_layer + 1:
        raise ValueError(f"norms must have n_layer + 1 = {n_layer + 1} values, got {len(norms)}")
    fig, ax = plt.subplots(figsize=figsize)
    step = 2.0  # width of one block
    width = 2.2 + n_layer * step + 2.2
    ax.set(xlim=(0, width), ylim=(-1.1, 2.6))
    ax.axis("off")
    y = 0.0
    _box(ax, 1.0, y, 1.7, 0.7, "embeddings\n$x_0$", _COLORS["embed"], size=9)
    _arrow(ax, (1.85, y), (width - 1.85, y), color=_COLORS["stream"], lw=3, style="-|>")
    _box(ax, width - 1.0, y, 1.7, 0.7, "final norm,\nLM head", _COLORS["head"], size=9)
    for layer in range(n_layer):
        x0 = 2.2 + layer * step
        for j, (kind, name) in enumerate((("attn", "attn"), ("mlp", "MLP"))):
            xr, xw = x0 + 0.15 + j * 1.0, x0 + 0.85 + j * 1.0  # read and write points
            _arrow(ax, (xr, y + 0.05), ((xr + xw) / 2 - 0.25, 1.15), connection="arc3,rad=-0.3")
            _box(ax, (xr + xw) / 2, 1.45, 0.8, 0.55, name, _COLORS[kind], size=8.5)
            _arrow(ax, ((xr + xw) / 2 + 0.25, 1.15), (xw, y + 0.14), connection="arc3,rad=-0.3")
            _plus(ax, xw, y)
        ax.text(x0 + 1.0, 2.25, f"block {layer + 1}", ha="center", va="center", fontsize=8.5, color="#444444")
        if norms is not None:
            ax.text(x0 + step - 0.05, -0.55, f"|x| = {norms[layer + 1]:.1f}", ha="center", va="center", fontsize=8)
    if norms is not None:
        ax.text(1.9, -0.55, f"|x| = {norms[0]:.1f}", ha="left", va="center", fontsize=8)
    ax.text(width / 2, -0.95, "the stream only grows by addition:  $x_L = x_0 + \\sum_\\ell$ (attention$_\\ell$ + MLP$_\\ell$)",
            ha="center", va="center", fontsize=9.5)
    fig.tight_layout()
    return fig
