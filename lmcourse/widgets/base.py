"""What every live widget shares: an ``Output`` area redrawn from its ``figure()``."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt

__all__ = ["LiveWidget"]


class LiveWidget:
    """Base of the book's ipywidgets, the views that need a running kernel while you play.

    A subclass builds its controls, sets ``self.out`` (an ``ipywidgets.Output``),
    ``self.renders = 0`` and ``self.widget`` (the box shown in the notebook), and
    implements :meth:`figure`, the static matplotlib drawing of its current state (the
    same function draws the page's figure when no kernel runs the widget).
    """

    out: widgets.Output
    widget: widgets.Widget
    renders: int

    def figure(self) -> plt.Figure:  # pragma: no cover - overridden
        """A static matplotlib figure of the current state."""
        raise NotImplementedError

    def _render(self) -> None:
        """Redraw ``figure()`` into the output area."""
        self.out.clear_output(wait=True)
        with self.out:
            fig = self.figure()
            plt.show()
            plt.close(fig)
        self.renders += 1

    def _ipython_display_(self):  # pragma: no cover - display hook
        from IPython.display import display

        display(self.widget)
