"""Figures of chapter 12: self-supervised targets, loss vs parameters and vs compute."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..scaling import (
    CHINCHILLA_TOKENS_PER_PARAM,
    KAPLAN_ALPHA_N,
    PowerLaw,
    compute_frontier,
    fit_power_law,
)


def _label(ch: str) -> str:
    return {" ": "\u2423", "\n": "\\n"}.get(ch, ch)


def plot_self_supervision(text: str, ax: Optional[plt.Axes] = None) -> plt.Figure:
    """One raw string read as ``len(text) - 1`` (context -> next character) training examples.

    Row t shows the context ``text[:t + 1]`` (grey) and its label ``text[t + 1]`` (red):
    the labels are the text itself, shifted by one.
    """
    if len(text) < 2:
        raise ValueError("text needs at least 2 characters")
    T = len(text) - 1
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(0.42 * (T + 1) + 1.2, 0.32 * T + 0.8))
    for t in range(T):
        for j in range(T + 1):
            if j <= t:
                color, tc = "#d9d9d9", "black"
            elif j == t + 1:
                color, tc = "#d62728", "white"
            else:
                continue
            ax.add_patch(plt.Rectangle((j, T - 1 - t), 0.92, 0.85, color=color))
            ax.text(j + 0.46, T - 1 - t + 0.42, _label(text[j]), ha="center", va="center", color=tc,
                    fontsize=10, family="monospace")
    ax.set_xlim(-0.1, T + 1)
    ax.set_ylim(-0.2, T)
    ax.set_yticks([T - 1 - t + 0.42 for t in range(T)], [f"t={t}" for t in range(T)])
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"{T} training examples from one {T + 1}-character string\n(grey: context, red: label)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_loss_vs_params(
    runs: Sequence[dict[str, Any]],
    fit: Optional[PowerLaw] = None,
    published_alpha: float = KAPLAN_ALPHA_N,
    ax: Optional[plt.Axes] = None,
) -> plt.Figure:
    """Final validation loss against non-embedding parameters N (log-log), with fits.

    Draws the measured points, the fitted power law (``fit``; fitted here when ``None``) and,
    for comparison, a line with the published exponent ``published_alpha`` through the
    geometric middle of the measured points (same scale, only the slope is Kaplan's).
    """
    n = np.array([r["non_embedding_params"] for r in runs], dtype=np.float64)
    loss = np.array([r["val_loss"] for r in runs], dtype=np.float64)
    fit = fit_power_law(n, loss) if fit is None else fit
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.4, 4.2))
    grid = np.geomspace(n.min() / 1.5, n.max() * 1.5, 100)
    ax.plot(n, loss, "o", color="C0", ms=7, label="measured (one run per size)", zorder=3)
    e = f"{fit.E:.2f} + " if fit.E else ""
    ax.plot(grid, fit(grid), "-", color="C0", label=f"fit: $L = {e}(N_c/N)^{{{fit.alpha:.3f}}}$")
    mid_n = float(np.exp(np.log(n).mean()))
    mid_l = float(np.exp(np.log(loss).mean()))
    ax.plot(grid, mid_l * (mid_n / grid) ** published_alpha, "--", color="C1",
            label=f"published slope $\\alpha_N = {published_alpha}$ (Kaplan et al.)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("non-embedding parameters $N$")
    ax.set_ylabel("validation loss (nats / char)")
    ax.yaxis.set_minor_formatter(plt.FormatStrFormatter("%.1f"))
    ax.yaxis.set_major_formatter(plt.FormatStrFormatter("%.1f"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title("Loss vs model size, same training tokens for every size")
    fig.tight_layout()
    return fig


def plot_loss_vs_compute(
    runs: Sequence[dict[str, Any]],
    fit: Optional[PowerLaw] = None,
    ax: Optional[plt.Axes] = None,
) -> plt.Figure:
    """Validation-loss curves of every size against training FLOPs, and their frontier.

    Each run's ``curve`` is drawn as a line coloured by size; the compute-efficient frontier
    (:func:`lmcourse.scaling.compute_frontier`) is marked, with its power-law ``fit``
    (fitted here when ``None``).
    """
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.8, 4.4))
    cmap = plt.get_cmap("viridis")
    for i, r in enumerate(runs):
        c = np.array([p["flops"] for p in r["curve"]], dtype=np.float64)
        val = np.array([p["val_loss"] for p in r["curve"]], dtype=np.float64)
        keep = c > 0
        color = cmap(i / max(1, len(runs) - 1))
        ax.plot(c[keep], val[keep], "-", color=color, lw=1.5,
                label=f"N = {r['non_embedding_params'] / 1e3:,.0f}k")
    fc, fl = compute_frontier(runs)
    fit = fit_power_law(fc, fl) if fit is None else fit
    ax.plot(fc, fl, "o", mfc="none", mec="black", ms=6, label="frontier (best at each budget)")
    grid = np.geomspace(fc.min(), fc.max(), 100)
    ax.plot(grid, fit(grid), "--", color="black", label=f"fit: $L \\propto C^{{-{fit.alpha:.3f}}}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute $C \\approx 6ND$ (FLOPs)")
    ax.set_ylabel("validation loss (nats / char)")
    ax.yaxis.set_minor_formatter(plt.FormatStrFormatter("%.1f"))
    ax.yaxis.set_major_formatter(plt.FormatStrFormatter("%.1f"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("Learning curves against compute")
    fig.tight_layout()
    return fig


def plot_tokens_per_param(
    runs: Sequence[dict[str, Any]],
    ratio: float = CHINCHILLA_TOKENS_PER_PARAM,
    ax: Optional[plt.Axes] = None,
) -> plt.Figure:
    """Training tokens per non-embedding parameter of each run, against the Chinchilla ratio."""
    n = np.array([r["non_embedding_params"] for r in runs], dtype=np.float64)
    d = np.array([r["tokens"] for r in runs], dtype=np.float64)
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.0, 3.4))
    ax.bar(range(len(runs)), d / n, color="C2")
    ax.axhline(ratio, color="C3", ls="--", label=f"Chinchilla compute-optimal: ~{ratio:.0f} tokens / parameter")
    ax.set_yscale("log")
    ax.set_xticks(range(len(runs)), [f"{x / 1e3:,.0f}k" for x in n])
    ax.set_xlabel("non-embedding parameters $N$")
    ax.set_ylabel("tokens / parameter")
    ax.legend(fontsize=9)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.set_title("How much data each size saw, per parameter")
    fig.tight_layout()
    return fig
