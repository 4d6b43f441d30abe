"""Headless checks of lmcourse.plots.exposure (chapter 9) and of its committed asset."""

import json
from importlib.resources import files

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from lmcourse.data import MarkovSource
from lmcourse.experiments import exposure_curves
from lmcourse.model import GPT, GPTConfig
from lmcourse.plots.exposure import plot_exposure


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    source = MarkovSource(4, order=2, seed=1, concentration=0.5)
    model = GPT(GPTConfig(vocab_size=4, block_size=12, n_layer=1, n_head=2, n_embd=16))
    return source, model


def test_exposure_curves_shapes_and_ranges(setup):
    source, model = setup
    model.train()
    c = exposure_curves(model, source, n_samples=32, length=10, seed=3)
    assert model.training  # the mode is restored
    assert list(c["position"]) == list(range(1, 9))
    for key in ("true_logp_model", "true_logp_data", "kl_own", "kl_data"):
        assert c[key].shape == (8,)
        assert np.isfinite(c[key]).all()
    assert (c["kl_own"] >= -1e-9).all() and (c["kl_data"] >= -1e-9).all()
    assert (c["true_logp_model"] <= 0).all() and (c["true_logp_data"] <= 0).all()
    assert c["entropy_rate"] == pytest.approx(source.entropy_rate())
    again = exposure_curves(model, source, n_samples=32, length=10, seed=3)
    assert np.array_equal(c["kl_own"], again["kl_own"])  # seeded
    with pytest.raises(ValueError):
        exposure_curves(model, source, length=13)


def test_real_data_scores_minus_entropy_rate(setup):
    source, model = setup
    c = exposure_curves(model, source, n_samples=400, length=12, seed=0)
    assert float(np.mean(c["true_logp_data"])) == pytest.approx(-source.entropy_rate(), abs=0.05)


def test_plot_exposure_lines(setup):
    source, model = setup
    c = exposure_curves(model, source, n_samples=8, length=8)
    fig = plot_exposure({"a": c, "b": c}, smooth=3, title="t")
    ax_lp, ax_kl = fig.axes
    assert len(ax_lp.lines) == 3  # two models + the -H reference
    assert len(ax_kl.lines) == 4  # own and real context per model
    assert np.allclose(ax_lp.lines[-1].get_ydata(), -source.entropy_rate())
    plt.close(fig)


def test_committed_asset_is_consistent():
    data = json.loads(files("lmcourse").joinpath("assets/exposure_bias.json").read_text())
    src = MarkovSource(**data["source"])
    assert data["entropy_rate"] == pytest.approx(src.entropy_rate())
    n = data["model"]["block_size"] - src.order
    for run in data["runs"].values():
        assert len(run["kl_own"]) == len(run["kl_data"]) == len(run["true_logp_model"]) == n
        assert run["val_loss"] >= src.entropy_rate() - 0.05
    fig = plot_exposure(data["runs"])
    plt.close(fig)
