"""Headless checks of lmcourse.plots.decoding (chapter 8's figures)."""

import matplotlib.pyplot as plt
import pytest
import torch

from lmcourse.plots.decoding import (
    plot_diversity_quality,
    plot_filtering,
    plot_kept_counts,
)
from lmcourse.sampling import filter_stats, top_k_filter, top_p_filter

LOGITS = torch.tensor([3.0, 2.5, 1.0, 0.5, 0.0, -1.0, -2.0, -4.0])
VOCAB = list("abcdefgh")


def test_filter_stats_matches_sampling_and_renormalises():
    s = filter_stats(LOGITS, temperature=1.0, top_k=3)
    assert s["n_kept"] == 3
    assert torch.equal(s["kept"], torch.isfinite(top_k_filter(LOGITS, 3)))
    assert s["after"].sum().item() == pytest.approx(1.0)
    kept = s["kept"]
    ratio = s["after"][kept] / s["before"][kept]  # renormalisation: same ratio for all survivors
    assert torch.allclose(ratio, ratio[0].expand_as(ratio))
    assert (s["after"][~kept] == 0).all()
    p = filter_stats(LOGITS, top_p=0.8)
    assert torch.equal(p["kept"], torch.isfinite(top_p_filter(LOGITS, 0.8)))


def test_filter_stats_temperature_extremes():
    cold = filter_stats(LOGITS, temperature=0.05)["after"]
    assert cold.argmax() == 0 and cold[0] > 0.99
    hot = filter_stats(LOGITS, temperature=100.0)["after"]
    assert hot.max() - hot.min() < 0.05
    with pytest.raises(ValueError):
        filter_stats(LOGITS, temperature=0.0)


def test_plot_filtering_draws_two_panels():
    fig = plot_filtering(LOGITS, VOCAB, temperature=0.7, top_k=4, top_p=0.9, k=6, context="x")
    ax_b, ax_a = fig.axes
    assert len(ax_b.patches) == 6 and len(ax_a.patches) == 6
    heights = [p.get_height() for p in ax_a.patches]
    assert sum(heights) == pytest.approx(1.0, abs=1e-5)  # the kept tokens are all among the 6
    with pytest.raises(ValueError):
        plot_filtering(LOGITS, VOCAB[:3])
    plt.close(fig)


def test_diversity_quality_and_kept_counts_figures():
    pts = [{"family": "temperature", "label": str(t), "diversity": t / 2, "quality": -t} for t in (0.5, 1.0)]
    fig = plot_diversity_quality(pts, reference={"label": "data", "diversity": 0.6, "quality": -1.5})
    assert len(fig.axes[0].lines) == 2
    plt.close(fig)
    fig = plot_kept_counts({"top-k": [5, 5, 5], "top-p": [1, 9, 3]}, vocab_size=10)
    assert [list(line.get_ydata()) for line in fig.axes[0].lines] == [[5, 5, 5], [1, 9, 3]]
    plt.close(fig)
