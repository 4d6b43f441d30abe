"""The logits-vs-probabilities explorer builds headless, follows its slider, draws a figure."""

import math

import matplotlib.pyplot as plt
import pytest
import torch

from lmcourse import metrics
from lmcourse.model import GPT, GPTConfig
from lmcourse.plots.distribution import distribution_stats, plot_distribution, token_label
from lmcourse.tokenization import CharTokenizer
from lmcourse.widgets.distribution import DistributionExplorer, next_token_logits

VOCAB = list("abcdefgh ")


def _logits():
    torch.manual_seed(0)
    return torch.randn(len(VOCAB)) * 2


def test_stats_match_metrics():
    z = _logits()
    for tau in (0.3, 1.0, 2.5):
        s = distribution_stats(z, tau)
        assert torch.allclose(s["probs"], torch.softmax(z / tau, -1))
        assert s["entropy_bits"] == pytest.approx(metrics.entropy(z / tau).item(), abs=1e-5)
    with pytest.raises(ValueError):
        distribution_stats(z, 0.0)


def test_widget_builds_and_updates_on_change():
    z = _logits()
    ex = DistributionExplorer(z, VOCAB, k=5, context="ab")
    assert ex.renders == 1 and ex.temperature == 1.0
    h1 = ex.entropy_bits
    ex.slider.value = 0.5  # as a user would
    assert ex.renders == 2 and ex.temperature == 0.5
    assert ex.entropy_bits < h1
    ex.update(3.0)  # headless path moves the slider too
    assert ex.renders == 3 and ex.slider.value == 3.0
    assert ex.entropy_bits > h1
    assert "bits" in ex.info.value
    assert ex.entropy_bits <= math.log2(len(VOCAB)) + 1e-6
    ex.update(3.0)  # same value still redraws
    assert ex.renders == 4
    with pytest.raises(ValueError):
        DistributionExplorer(z, VOCAB[:-1])


def test_from_model():
    tok = CharTokenizer.from_text("".join(VOCAB))
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=16))
    z = next_token_logits(model, tok, "abcabcabcabc")  # longer than block_size: cropped
    assert z.shape == (tok.vocab_size,)
    ex = DistributionExplorer.from_model(model, tok, "abc", k=3)
    assert ex.vocab[0] == tok.decode([0]) and ex.renders == 1


def test_static_figure():
    ex = DistributionExplorer(_logits(), VOCAB, k=4, context="ab")
    fig = ex.figure()
    assert len(fig.axes) == 2
    assert len(fig.axes[1].patches) == 4
    plt.close(fig)
    fig = plot_distribution(_logits(), VOCAB, temperature=0.7, k=100)
    assert len(fig.axes[0].patches) == len(VOCAB)
    plt.close(fig)
    assert token_label(" ") == "\u2423" and token_label("\n") == "\\n" and token_label("a") == "a"
