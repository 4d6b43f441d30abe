"""Attention patterns of GPT / BERT / encoder-decoder and the training-signals figure."""

import matplotlib.pyplot as plt
import pytest
import torch

from lmcourse.experiments import attention_patterns
from lmcourse.model import causal_mask
from lmcourse.plots.objectives import (
    plot_attention_patterns,
    plot_training_signals,
)


@pytest.mark.parametrize("T,n_src", [(2, 1), (7, 3), (12, 11)])
def test_patterns(T, n_src):
    p = attention_patterns(T, n_src)
    gpt, bert, s2s = p.values()
    assert torch.equal(gpt, causal_mask(T))
    assert bool(bert.all())
    assert bool(s2s[:n_src, :n_src].all())  # source is bidirectional
    assert not bool(s2s[:n_src, n_src:].any())  # source never sees the target
    assert torch.equal(s2s[n_src:], gpt[n_src:] | torch.zeros_like(gpt[n_src:]).index_fill(1, torch.arange(n_src), True))
    assert int(gpt.sum()) <= int(s2s.sum()) <= int(bert.sum())
    with pytest.raises(ValueError):
        attention_patterns(T, T)


def test_figures():
    fig = plot_attention_patterns(list("abcdef"), 2)
    assert len(fig.axes) == 3 and "21 of 36" in fig.axes[0].get_title()
    plt.close(fig)
    fig = plot_training_signals([128, 256], 0.15)
    ys = [list(line.get_ydata()) for line in fig.axes[0].get_lines()]
    assert ys == [[128, 256], [19, 38]]
    plt.close(fig)
