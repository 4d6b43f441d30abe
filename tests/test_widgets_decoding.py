"""Headless checks of the chapter 8 decoding explorer."""

import matplotlib.pyplot as plt
import torch

from lmcourse.model import GPT, GPTConfig
from lmcourse.tokenization import CharTokenizer
from lmcourse.widgets.decoding import DecodingExplorer

LOGITS = torch.tensor([3.0, 2.5, 1.0, 0.5, 0.0, -1.0, -2.0, -4.0])
VOCAB = list("abcdefgh")


def test_explorer_state_follows_the_sliders():
    ex = DecodingExplorer(LOGITS, VOCAB, context="ab")
    assert ex.n_kept == 8 and ex.samples == []
    renders = ex.renders
    ex.update(top_k=3)
    assert ex.kept == [0, 1, 2] and ex.k_slider.value == 3
    assert abs(float(ex.probs.sum()) - 1) < 1e-6
    assert ex.renders == renders + 1  # one redraw for one update
    ex.k_slider.value = 0  # as a browser would
    assert ex.n_kept == 8
    ex.update(top_p=0.5)
    assert ex.settings["top_p"] == 0.5 and ex.n_kept < 8
    ex.update(temperature=0.1, top_p=1.0)
    assert ex.settings == {"temperature": 0.1, "top_k": None, "top_p": None}
    assert float(ex.probs[0]) > 0.99
    fig = ex.figure()
    assert len(fig.axes) == 2
    plt.close(fig)


def test_explorer_samples_with_a_model():
    torch.manual_seed(0)
    tok = CharTokenizer("abcdefgh ")
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
    ex = DecodingExplorer.from_model(model, tok, "abc", n_samples=2, sample_tokens=5)
    assert len(ex.samples) == 2 and all(isinstance(s, str) and s for s in ex.samples)
    assert "<table>" in ex.samples_html.value
    ex.update(top_k=1)  # greedy-like: every sample is the argmax path
    assert ex.samples[0] == ex.samples[1]
