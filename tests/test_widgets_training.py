"""The live loss-curve callback of the training chapter."""

import matplotlib.pyplot as plt
import torch

from lmcourse.model import GPT, GPTConfig
from lmcourse.tokenization import CharTokenizer
from lmcourse.train import TrainConfig, Trainer
from lmcourse.widgets.training import LiveLossPlot, in_notebook

TEXT = "to be or not to be, that is the question"


def _setup(block_size=64):
    tok = CharTokenizer.from_text(TEXT)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=block_size, n_layer=1, n_head=2, n_embd=16))
    return model, tok


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
