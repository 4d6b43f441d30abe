"""Chapter 3's numbers: temperature-scaled probabilities and entropy, the model's logits, the figure."""

import math

import matplotlib.pyplot as plt
import pytest
import torch

from lmcourse import metrics
from lmcourse.experiments import next_token_logits
from lmcourse.model import GPT, GPTConfig
from lmcourse.plots.distribution import plot_distribution, token_label
from lmcourse.sampling import distribution_stats
from lmcourse.tokenization import CharTokenizer

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
    with pytest.raises(ValueError, match="temperature"):
        distribution_stats(z, 0.0)
    with pytest.raises(TypeError, match="temperature"):
        distribution_stats(z, "hot")
    low, high = distribution_stats(z, 0.3)["entropy_bits"], distribution_stats(z, 3.0)["entropy_bits"]
    assert 0 <= low < high <= math.log2(len(VOCAB)) + 1e-6  # a higher temperature flattens


def test_from_model():
    tok = CharTokenizer.from_text("".join(VOCAB))
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=16))
    z = next_token_logits(model, tok, "abcabcabcabc")  # longer than block_size: cropped
    assert z.shape == (tok.vocab_size,)
    ids = tok.encode("abcabcabcabc")[-8:]
    logits, _ = model(torch.tensor([ids]))
    assert torch.allclose(z, logits[0, -1].float(), atol=1e-6)  # the last position of the cropped context


def test_static_figure():
    fig = plot_distribution(_logits(), VOCAB, k=4, context="ab")
    assert len(fig.axes) == 2
    assert len(fig.axes[1].patches) == 4
    plt.close(fig)
    fig = plot_distribution(_logits(), VOCAB, temperature=0.7, k=100)
    assert len(fig.axes[0].patches) == len(VOCAB)
    plt.close(fig)
    assert token_label(" ") == "\u2423" and token_label("\n") == "\\n" and token_label("a") == "a"
