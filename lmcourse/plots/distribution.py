"""Figures of a next-token distribution: the top-k logits beside their probabilities."""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..sampling import distribution_stats


def token_label(token: str) -> str:
    """Make a token printable on an axis: a space becomes ``␣``, a newline ``\\n``."""
    if token == " ":
        return "\u2423"
    if not token.strip():
        return repr(token)[1:-1] or "''"
    return token


def plot_distribution(
    logits: torch.Tensor,
    vocab: Sequence[str],
    temperature: float = 1.0,
    k: int = 10,
    context: str = "",
    axes: Optional[Sequence[plt.Axes]] = None,
) -> plt.Figure:
    """Draw the ``k`` most likely next tokens: logits / temperature (left), probabilities (right).

    Args:
        logits: the (V,) next-token logits (before temperature).
        vocab: the V token strings, in id order.
        temperature: divides the logits before the softmax.
        k: how many tokens to show (the order never depends on the temperature).
        context: the prefix, shown in the title.
        axes: two axes to draw into (default: a new 1 x 2 figure).
    Returns:
        The matplotlib figure.
    """
    stats = distribution_stats(logits, temperature)
    z, p = stats["scaled"], stats["probs"]
    if len(vocab) != z.numel():
        raise ValueError(f"{len(vocab)} vocabulary strings for {z.numel()} logits")
    k = min(k, z.numel())
    top = torch.topk(z, k).indices.tolist()
    labels = [token_label(vocab[i]) for i in top]
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    else:
        fig = axes[0].figure
    ax_z, ax_p = axes
    x = np.arange(k)
    zs = z[top].numpy()
    ax_z.bar(x, zs, color=["tab:orange" if v >= 0 else "tab:purple" for v in zs])
    ax_z.axhline(0, color="black", lw=0.8)
    ax_z.set_xticks(x, labels)
    ax_z.set_ylabel("logit / temperature")
    ax_z.set_title(f"top-{k} logits (any real number), \u03c4 = {temperature:.2f}")
    ps = p[top].numpy()
    bars = ax_p.bar(x, ps, color="tab:blue")
    for bar, v in zip(bars, ps):
        ax_p.text(
            bar.get_x() + bar.get_width() / 2, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8
        )
    ax_p.set_xticks(x, labels)
    ax_p.set_ylim(0, 1.08)
    ax_p.set_ylabel("probability")
    rest = max(0.0, 1.0 - float(ps.sum()))
    ax_p.set_title(
        f"softmax: entropy {stats['entropy_bits']:.2f} bits; other {z.numel() - k} tokens: {rest:.2f}"
    )
    if context:
        fig.suptitle(f"next token after {context!r}")
    fig.tight_layout()
    return fig
