"""Chapter 6 figures: the recorded loop matches lmcourse.generate; the figures draw it."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from lmcourse.experiments import trace_generation
from lmcourse.generate import generate
from lmcourse.model import GPT, GPTConfig
from lmcourse.plots.generation import (
    plot_candidate_grid,
    plot_parallel_vs_sequential,
    plot_step,
)
from lmcourse.sampling import SamplingConfig
from lmcourse.tokenization import CharTokenizer


def _model_and_tok():
    tok = CharTokenizer.from_text("abcdefgh \n")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=16))
    return model.eval(), tok


@pytest.mark.parametrize("sampling", [SamplingConfig(temperature=0), SamplingConfig(temperature=1.3, top_k=5)])
def test_trace_picks_the_same_tokens_as_generate(sampling):
    model, tok = _model_and_tok()
    trace = trace_generation(model, tok, "abc", 12, sampling, k=4, generator=torch.Generator().manual_seed(3))
    out = generate(model, tok.encode("abc"), 12, sampling, generator=torch.Generator().manual_seed(3))
    assert trace.chosen == out.new_tokens[0]
    assert trace.top_ids.shape == (12, 4) and trace.top_probs.shape == (12, 4)
    # probabilities sorted, in [0, 1], and the chosen prob matches generate's log-prob
    assert np.all(np.diff(trace.top_probs, axis=1) <= 1e-7)
    assert np.all((trace.top_probs >= 0) & (trace.top_probs <= 1))
    out_lp = generate(model, tok.encode("abc"), 12, sampling, generator=torch.Generator().manual_seed(3), return_logprobs=True)
    assert np.allclose(np.log(trace.chosen_probs), out_lp.logprobs[0], atol=1e-4)
    assert trace.prefix(0) == "abc" and trace.prefix(2) == "abc" + tok.decode(trace.chosen[:2])


def test_greedy_chooses_rank_one():
    model, tok = _model_and_tok()
    trace = trace_generation(model, tok, "ab", 8, SamplingConfig(temperature=0), k=3)
    assert all(trace.chosen_rank(s) == 0 for s in range(trace.n_steps))


def test_trace_rejects_too_long():
    model, tok = _model_and_tok()
    with pytest.raises(ValueError):
        trace_generation(model, tok, "abc", 30)
    with pytest.raises(ValueError):
        trace_generation(model, tok, "abc", 0)


def test_figures():
    model, tok = _model_and_tok()
    trace = trace_generation(model, tok, "abc", 10, k=4, generator=torch.Generator().manual_seed(0))
    fig = plot_step(trace, 3)
    n_bars = len(fig.axes[0].patches)
    assert n_bars in (4, 5)  # 5 when the chosen token is outside the top-4
    assert "step 4" in fig.axes[0].get_title()
    plt.close(fig)
    with pytest.raises(ValueError):
        plot_step(trace, 10)
    fig = plot_candidate_grid(trace, n_steps=6)
    img = fig.axes[0].images[0].get_array()
    assert img.shape == (4, 6)
    outlined = [p for p in fig.axes[0].patches]
    assert len(outlined) == sum(trace.chosen_rank(s) is not None for s in range(6))
    plt.close(fig)
    fig = plot_parallel_vs_sequential({"parallel": 0.01, "sequential": 0.2}, n_tokens=64)
    assert len(fig.axes[0].patches) == 2
    plt.close(fig)
