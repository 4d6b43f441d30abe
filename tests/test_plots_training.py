"""Training-chapter figures: teacher-forced per-position losses and loss curves."""

import math

import matplotlib.pyplot as plt
import pytest
import torch

from lmcourse import metrics
from lmcourse.experiments import teacher_forcing_table
from lmcourse.model import GPT, GPTConfig
from lmcourse.plots.training import (
    plot_loss_curves,
    plot_teacher_forcing,
)
from lmcourse.train import loss_history


def _model(V=7, T=16):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=1, n_head=2, n_embd=16))


def test_table_matches_model_loss_and_metrics():
    model = _model()
    ids = torch.randint(7, (12,), generator=torch.Generator().manual_seed(1)).tolist()
    table = teacher_forcing_table(model, ids, k=3)
    T = len(ids) - 1
    assert table["losses"].shape == (T,) and table["top_ids"].shape == (T, 3)
    assert table["targets"].tolist() == ids[1:] and table["inputs"].tolist() == ids[:-1]
    x = torch.tensor([ids[:-1]])
    y = torch.tensor([ids[1:]])
    with torch.no_grad():
        logits, loss = model(x, y)
    assert table["losses"].mean().item() == pytest.approx(loss.item(), abs=1e-5)
    assert table["losses"].mean().item() == pytest.approx(metrics.cross_entropy(logits, y).item(), abs=1e-5)
    assert torch.allclose(table["probs"], (-table["losses"]).exp())
    assert ((table["probs"] > 0) & (table["probs"] <= 1)).all()
    # top-k probabilities are sorted, and the target's prob is <= the top one
    assert (table["top_probs"][:, :-1] >= table["top_probs"][:, 1:]).all()
    assert (table["probs"] <= table["top_probs"][:, 0] + 1e-6).all()
    assert model.training  # restored
    with pytest.raises(ValueError):
        teacher_forcing_table(model, [1])


def test_plot_teacher_forcing():
    model = _model()
    table = teacher_forcing_table(model, [0, 1, 2, 3, 4, 5, 6, 0], k=4)
    vocab = list("abcdef ")
    fig = plot_teacher_forcing(table, vocab, position=2)
    assert len(fig.axes) == 2
    bars = fig.axes[0].patches
    assert len(bars) == 7
    heights = [b.get_height() for b in bars]
    assert heights == pytest.approx(table["losses"].tolist(), abs=1e-6)
    plt.close(fig)
    fig = plot_teacher_forcing(table, vocab)  # bars only
    assert len(fig.axes) == 1
    plt.close(fig)
    with pytest.raises(ValueError):
        plot_teacher_forcing(table, vocab, position=7)


HISTORY = [
    {"kind": "train", "step": 10, "loss": 3.0, "lr": 1e-3, "tokens_per_s": 1.0},
    {"kind": "train", "step": 20, "loss": 2.5, "lr": 1e-3, "tokens_per_s": 1.0},
    {"kind": "eval", "step": 20, "val_loss": 2.6, "val_ppl": math.exp(2.6)},
    {"kind": "train", "step": 30, "loss": 2.2, "lr": 1e-3, "tokens_per_s": 1.0},
    {"kind": "eval", "step": 30, "val_loss": 2.3, "val_ppl": math.exp(2.3)},
]


def test_loss_history_and_curves():
    h = loss_history(HISTORY)
    assert h["train_step"] == [10, 20, 30] and h["val_loss"] == [2.6, 2.3]
    fig = plot_loss_curves(HISTORY, floor=2.0, reference={"uniform": 4.0}, title="t")
    ax = fig.axes[0]
    ys = [tuple(line.get_ydata()) for line in ax.get_lines()]
    assert (3.0, 2.5, 2.2) in ys and (2.6, 2.3) in ys
    assert (2.0, 2.0) in ys and (4.0, 4.0) in ys  # the floor and the reference lines
    lo, hi = ax.get_ylim()
    assert lo <= 2.0 and hi >= 4.0
    plt.close(fig)
    fig = plot_loss_curves([])  # empty history still draws
    plt.close(fig)
