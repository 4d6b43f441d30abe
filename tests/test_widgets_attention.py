"""The attention explorer builds headless, reacts to its controls and draws a static figure."""

import matplotlib.pyplot as plt
import torch

from lmcourse.model import GPT, GPTConfig
from lmcourse.plots.attention import plot_attention, plot_mask
from lmcourse.widgets.attention import AttentionExplorer, attention_weights


def _setup():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=16))
    idx = torch.randint(0, 20, (7,))
    tokens = [chr(ord("a") + int(i)) for i in idx]
    return model, idx, tokens


def test_weights_are_causal_rows_summing_to_one():
    model, idx, _ = _setup()
    w = attention_weights(model, idx)
    assert w.shape == (2, 2, 7, 7)
    assert torch.allclose(w.sum(-1), torch.ones(2, 2, 7))
    assert torch.all(w.triu(diagonal=1) == 0)


def test_widget_builds_and_updates_on_change():
    model, idx, tokens = _setup()
    ex = AttentionExplorer(model, idx, tokens)
    assert ex.query.value == 6 and ex.renders == 1
    before = ex.current().clone()
    ex.head.value = 1
    assert ex.renders == 2
    assert not torch.equal(before, ex.current())
    ex.query.value = 2
    ex.layer.value = 1
    assert ex.renders == 4
    assert torch.equal(ex.current(), ex.weights[1, 1])


def test_static_figures():
    model, idx, tokens = _setup()
    ex = AttentionExplorer(model, idx, tokens, query=3)
    fig = ex.figure()
    assert len(fig.axes) >= 2  # matrix (+ colorbar) and the bar chart of the selected row
    plt.close(fig)
    fig = plot_attention(ex.current(), tokens)
    assert fig.axes
    plt.close(fig)
    fig = plot_mask(5)
    assert fig.axes
    plt.close(fig)
