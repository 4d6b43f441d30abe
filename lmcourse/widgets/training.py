"""Explorers for the training chapter: a teacher-forcing stepper and a live loss curve.

:class:`TeacherForcingStepper` walks along one sequence position by position: the input
prefix the model sees, the ground-truth target, the probability the model gives it and the
loss there. :class:`LiveLossPlot` is a :class:`lmcourse.train.Trainer` callback that redraws
the loss curves while the model trains (in a notebook) and always keeps the history for the
final static figure.
"""

from __future__ import annotations

import html
from typing import Any, Optional, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt

from ..experiments import teacher_forcing_table
from ..plots.distribution import token_label
from ..plots.training import plot_loss_curves, plot_teacher_forcing
from .base import Explorer

__all__ = ["TeacherForcingStepper", "LiveLossPlot", "in_notebook"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where live display updates can be shown)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of ipywidgets
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class TeacherForcingStepper(Explorer):
    """Step through a sequence under teacher forcing, one position at a time.

    Args:
        model: a model whose ``forward(idx)`` returns ``(logits, loss)``.
        tokenizer: has ``encode`` and ``decode`` (e.g. a ``CharTokenizer``).
        text: the sequence; it is cropped to the model's ``block_size + 1`` tokens.
        position: the initial step (default 0).
        k: number of top candidates drawn at the chosen step.

    One forward pass computes every position at once (that is teacher forcing); the slider
    only chooses which one to show. ``update(position)`` moves it headless; ``figure()``
    draws the current state statically (what the book shows in its HTML).
    """

    def __init__(self, model, tokenizer, text: str, position: int = 0, k: int = 5) -> None:
        ids = tokenizer.encode(text)[: model.config.block_size + 1]
        if len(ids) < 2:
            raise ValueError("text must have at least 2 tokens")
        self.ids = ids
        self.vocab = [tokenizer.decode([i]) for i in range(tokenizer.vocab_size)]
        self.table = teacher_forcing_table(model, ids, k=k)
        self.n_positions = len(ids) - 1
        self.slider = widgets.IntSlider(
            value=position, min=0, max=self.n_positions - 1, step=1,
            description="position t", continuous_update=True,
        )
        self.info = widgets.HTML()
        self.out = widgets.Output()
        self.renders = 0
        self.slider.observe(self._on_change, names="value")
        self.widget = widgets.VBox([self.slider, self.info, self.out])
        self._apply(int(self.slider.value))

    @property
    def position(self) -> int:
        return self._position

    def step(self, position: int) -> dict[str, Any]:
        """What the model sees and is scored on at ``position``."""
        t = int(position)
        return {
            "prefix": "".join(self.vocab[int(i)] for i in self.table["inputs"][: t + 1]),
            "target": self.vocab[int(self.table["targets"][t])],
            "prob": float(self.table["probs"][t]),
            "loss": float(self.table["losses"][t]),
        }

    def update(self, position: int) -> None:
        """Show step ``position`` (moves the slider, redraws)."""
        if int(self.slider.value) != int(position):
            self.slider.value = int(position)  # the observer calls _apply
        else:
            self._apply(int(position))

    def _apply(self, position: int) -> None:
        if not 0 <= position < self.n_positions:
            raise ValueError(f"position must be in [0, {self.n_positions - 1}], got {position}")
        self._position = position
        s = self.step(position)
        self.info.value = (
            "<span style='font-family:monospace'>input x<sub>≤t</sub>: "
            f"<b>{html.escape(s['prefix'])}</b>"
            f"<span style='background:#f4a6a6'>{html.escape(token_label(s['target']))}</span>"
            "</span><br>"
            f"target y<sub>t</sub> = {html.escape(repr(s['target']))}, model p = "
            f"<b>{s['prob']:.3f}</b>, loss = -ln p = <b>{s['loss']:.2f} nats</b>"
        )
        self._render()

    def figure(self, axes: Optional[Sequence[plt.Axes]] = None) -> plt.Figure:
        """A static matplotlib figure of the current step."""
        return plot_teacher_forcing(self.table, self.vocab, self._position, axes=axes)

    def _on_change(self, change) -> None:
        self._apply(int(change["new"]))


class LiveLossPlot:
    """Trainer callback: keep the history and, in a notebook, redraw the loss curves.

    Pass it in ``Trainer(..., callbacks=[LiveLossPlot()])``. It redraws one figure in place
    (an IPython display handle) on every evaluation, and every ``every`` training records.
    Outside a Jupyter kernel (a script, a test) ``live`` is False and nothing is drawn
    until you call :meth:`figure`.

    Args:
        every: redraw after this many training records (0: only on evaluations).
        live: draw while training; ``None`` means "when running in a notebook".
        **plot_kwargs: passed to :func:`lmcourse.plots.training.plot_loss_curves`
            (``floor``, ``reference``, ``title``, ``max_steps``).
    """

    def __init__(self, every: int = 0, live: Optional[bool] = None, **plot_kwargs: Any) -> None:
        self.every = every
        self.live = in_notebook() if live is None else live
        self.plot_kwargs = plot_kwargs
        self.history: list[dict[str, Any]] = []
        self.draws = 0
        self._handle = None
        self._since_draw = 0

    def __call__(self, trainer, record: dict[str, Any]) -> None:
        self.history.append(dict(record))
        self._since_draw += 1
        due = record.get("kind") == "eval" or (self.every and self._since_draw >= self.every)
        if due:
            self._since_draw = 0
            if self.live:
                self._draw()

    def figure(self, ax: Optional[plt.Axes] = None) -> plt.Figure:
        """A static figure of the curves so far."""
        return plot_loss_curves(self.history, ax=ax, **self.plot_kwargs)

    def _draw(self) -> None:
        from IPython.display import display

        fig = self.figure()
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)
        self.draws += 1
