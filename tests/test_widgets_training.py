"""Training-chapter explorers: the teacher-forcing stepper and the live loss-curve callback."""

import matplotlib.pyplot as plt
import pytest
import torch

from lmcourse.model import GPT, GPTConfig
from lmcourse.tokenization import CharTokenizer
from lmcourse.train import TrainConfig, Trainer
from lmcourse.widgets.training import LiveLossPlot, TeacherForcingStepper, in_notebook

TEXT = "to be or not to be, that is the question"


def _setup(block_size=64):
    tok = CharTokenizer.from_text(TEXT)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=block_size, n_layer=1, n_head=2, n_embd=16))
    return model, tok


def test_stepper_builds_and_follows_slider():
    model, tok = _setup()
    st = TeacherForcingStepper(model, tok, "to be or not", position=0, k=3)
    assert st.renders == 1 and st.position == 0 and st.n_positions == len("to be or not") - 1
    s0 = st.step(0)
    assert s0["prefix"] == "t" and s0["target"] == "o"
    st.slider.value = 4  # as a user would
    assert st.renders == 2 and st.position == 4
    s4 = st.step(4)
    assert s4["prefix"] == "to be" and s4["target"] == " "
    assert s4["loss"] == pytest.approx(-torch.log(torch.tensor(s4["prob"])).item(), abs=1e-5)
    assert "to be" in st.info.value and "nats" in st.info.value
    st.update(7)  # headless path moves the slider
    assert st.slider.value == 7 and st.renders == 3
    st.update(7)  # same value still redraws
    assert st.renders == 4
    fig = st.figure()
    bars = fig.axes[0].patches
    assert len(bars) == st.n_positions
    assert bars[7].get_facecolor() != bars[0].get_facecolor()  # the chosen step stands out
    plt.close(fig)
    with pytest.raises(ValueError):
        TeacherForcingStepper(model, tok, "t")


def test_stepper_crops_to_context():
    model, tok = _setup(block_size=8)
    st = TeacherForcingStepper(model, tok, TEXT)
    assert st.n_positions == 8 and st.slider.max == 7


def test_live_loss_plot_headless_in_training():
    model, tok = _setup(block_size=8)
    data = torch.tensor(tok.encode(TEXT * 20))
    assert not in_notebook()
    live = LiveLossPlot(every=2, floor=1.0)
    assert live.live is False
    cfg = TrainConfig(max_iters=6, batch_size=4, block_size=8, eval_interval=3, eval_iters=1,
                      log_interval=1, progress=False, device="cpu", warmup_iters=1)
    trainer = Trainer(model, cfg, data[:600], data[600:], callbacks=[live])
    trainer.train()
    assert live.history == trainer.history
    assert live.draws == 0  # nothing drawn headless
    kinds = [r["kind"] for r in live.history]
    assert kinds.count("eval") == 2 and kinds.count("train") == 6
    fig = live.figure()
    ys = [tuple(line.get_ydata()) for line in fig.axes[0].get_lines()]
    assert tuple(r["val_loss"] for r in live.history if r["kind"] == "eval") in ys
    plt.close(fig)


def test_live_loss_plot_draws_when_live(monkeypatch):
    shown = []

    class Handle:
        def update(self, fig):
            shown.append(("update", fig))

    def fake_display(fig, display_id=False):
        shown.append(("display", fig))
        return Handle()

    import IPython.display

    monkeypatch.setattr(IPython.display, "display", fake_display)
    live = LiveLossPlot(every=2, live=True)
    for step in range(1, 5):
        live(None, {"kind": "train", "step": step, "loss": 3.0 - 0.1 * step})
    live(None, {"kind": "eval", "step": 4, "val_loss": 2.5, "val_ppl": 12.0})
    assert [k for k, _ in shown] == ["display", "update", "update"]
    assert live.draws == 3
