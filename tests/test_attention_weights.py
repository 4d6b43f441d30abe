"""The attention explorer builds headless, reacts to its controls and draws a static figure."""

import matplotlib.pyplot as plt
import torch

from lmcourse.experiments import attention_weights
from lmcourse.model import GPT, GPTConfig
from lmcourse.plots.attention import plot_attention, plot_mask


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


def test_static_figures():
    model, idx, tokens = _setup()
    w = attention_weights(model, idx)
    fig = plot_attention(w[1, 0], tokens, query=3, title="layer 1, head 0")
    assert len(fig.axes) >= 2  # matrix (+ colorbar) and the bar chart of the selected row
    plt.close(fig)
    fig = plot_attention(w[0, 1], tokens)
    assert fig.axes
    plt.close(fig)
    fig = plot_mask(5)
    assert fig.axes
    plt.close(fig)
