"""The live loss curve of the training chapter.

:class:`LiveLossPlot` is a :class:`lmcourse.train.Trainer` callback that redraws the loss
curves while the model trains (in a notebook) and always keeps the history for the final
static figure. (The teacher-forcing walk of the same chapter needs no kernel: it is
:func:`lmcourse.explorers.teacher_forcing_view`.)
"""

from __future__ import annotations

from typing import Any, Optional

import matplotlib.pyplot as plt

from ..plots.training import plot_loss_curves

__all__ = ["LiveLossPlot", "in_notebook"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where live display updates can be shown)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of ipywidgets
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


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
