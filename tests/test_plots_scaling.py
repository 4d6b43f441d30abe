"""lmcourse.plots.scaling: the chapter 12 figures draw the numbers they are given."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from lmcourse.plots.scaling import (
    plot_loss_vs_compute,
    plot_loss_vs_params,
    plot_self_supervision,
    plot_tokens_per_param,
)
from lmcourse.scaling import fit_power_law


def _runs():
    runs = []
    for n in [1e4, 3e4, 1e5, 3e5, 1e6]:
        fpt = 6 * n
        curve = [{"step": s, "tokens": s * 1000, "flops": s * 1000 * fpt,
                  "val_loss": 1.0 + (3e3 / n) ** 0.1 + 1.0 / (1 + s)} for s in (0, 100, 200, 300)]
        runs.append({"non_embedding_params": int(n), "params": int(n) + 5000, "tokens": 300_000,
                     "flops": 300_000 * fpt, "flops_per_token": fpt,
                     "val_loss": curve[-1]["val_loss"], "curve": curve})
    return runs


def test_loss_vs_params_draws_points_fit_and_reference():
    runs = _runs()
    fit = fit_power_law([r["non_embedding_params"] for r in runs], [r["val_loss"] for r in runs])
    fig = plot_loss_vs_params(runs, fit)
    ax = fig.axes[0]
    points, fitted, ref = ax.get_lines()
    np.testing.assert_allclose(points.get_ydata(), [r["val_loss"] for r in runs])
    np.testing.assert_allclose(fitted.get_ydata(), fit(fitted.get_xdata()))
    x, y = ref.get_xdata(), ref.get_ydata()
    slope = np.polyfit(np.log(x), np.log(y), 1)[0]
    assert slope == pytest.approx(-0.076)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    plt.close(fig)


def test_loss_vs_compute_one_line_per_run_plus_frontier():
    runs = _runs()
    fig = plot_loss_vs_compute(runs)
    lines = fig.axes[0].get_lines()
    assert len(lines) == len(runs) + 2
    frontier = lines[len(runs)]
    assert np.all(np.diff(frontier.get_ydata()) < 0)
    assert np.all(np.diff(frontier.get_xdata()) > 0)
    plt.close(fig)


def test_tokens_per_param_bars():
    runs = _runs()
    fig = plot_tokens_per_param(runs)
    heights = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(heights, [r["tokens"] / r["non_embedding_params"] for r in runs])
    plt.close(fig)


def test_self_supervision_one_row_per_target():
    fig = plot_self_supervision("to be")
    ax = fig.axes[0]
    assert len(ax.get_yticks()) == 4
    reds = [p for p in ax.patches if p.get_facecolor()[:3] == matplotlib.colors.to_rgb("#d62728")]
    assert len(reds) == 4
    with pytest.raises(ValueError):
        plot_self_supervision("a")
    plt.close(fig)
