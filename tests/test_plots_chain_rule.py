"""The chain-rule figure draws headlessly and returns a matplotlib figure."""

import matplotlib.pyplot as plt
import pytest

from lmcourse.plots.chain_rule import plot_conditional_probs


def test_plot_conditional_probs_returns_figure():
    fig = plot_conditional_probs(list("to be"), [0.5, 0.9, 0.2, 0.01, 0.7], title="t")
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes[0].patches) == 5
    plt.close(fig)


def test_plot_conditional_probs_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        plot_conditional_probs(list("ab"), [0.5])
