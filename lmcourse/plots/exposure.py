"""Exposure bias, measured: how a model does on its own samples versus on real data.

Chapter 9 (exposure bias) uses this file. :func:`lmcourse.experiments.exposure_curves`
measures, position by position, a model trained on a :class:`~lmcourse.data.MarkovSource`
(whose true next-token distribution is known exactly); :func:`plot_exposure` draws the
curves of several models.
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_exposure"]


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1:
        return np.asarray(y, dtype=float)
    kernel = np.ones(window) / window
    padded = np.pad(np.asarray(y, dtype=float), (window // 2, window - 1 - window // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def plot_exposure(
    curves: dict[str, dict[str, Sequence[float]]],
    smooth: int = 1,
    title: str = "",
    axes: Optional[Sequence[plt.Axes]] = None,
) -> plt.Figure:
    """Two panels over generation position, one line style per model.

    Left: true log-probability per token of the model's samples (and of real data, the
    dashed reference at -entropy rate). Right: KL from the true next-token distribution to
    the model's, with the model's own context (solid) and with real context (dotted).

    Args:
        curves: ``{model name: exposure_curves(...) result}`` (lists are fine: JSON).
        smooth: moving-average window over positions (1: none).
        title: the figure's title.
        axes: two axes to draw into (default: a new 1 x 2 figure).
    """
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    else:
        fig = axes[0].figure
    ax_lp, ax_kl = axes
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    h = None
    for i, (name, c) in enumerate(curves.items()):
        color = colors[i % len(colors)]
        x = np.asarray(c["position"])
        ax_lp.plot(x, _smooth(c["true_logp_model"], smooth), color=color, label=f"{name}: own samples")
        ax_kl.plot(x, _smooth(c["kl_own"], smooth), color=color, label=f"{name}: own context")
        ax_kl.plot(x, _smooth(c["kl_data"], smooth), color=color, ls=":", label=f"{name}: real context")
        h = float(c["entropy_rate"])
    if h is not None:
        ax_lp.axhline(-h, color="black", ls="--", lw=1, label="real data: \u2212entropy rate")
    ax_lp.set_xlabel("generated position t")
    ax_lp.set_ylabel("true log p(x_t | context) [nats]")
    ax_lp.set_title("quality of samples: the source's own judgement")
    ax_lp.legend(fontsize=8)
    ax_kl.set_xlabel("generated position t")
    ax_kl.set_ylabel("KL(p_true || q_model) [nats]")
    ax_kl.set_title("model error per position")
    ax_kl.set_ylim(bottom=0)
    ax_kl.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
