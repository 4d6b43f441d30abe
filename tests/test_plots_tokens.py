"""The tokenisation figures draw headlessly and return matplotlib figures."""

import matplotlib.pyplot as plt

from lmcourse.plots.tokens import _layout, plot_compression, plot_token_boxes, visible


def test_visible_marks_whitespace():
    assert visible("a b\n") == "a\u00b7b\u21b5"


def test_layout_wraps_and_breaks_after_newline():
    placed = _layout(["abc", "de\n", "f", "ghij"], width=5)
    assert [(ln, col) for ln, col, _ in placed] == [(0, 0), (1, 0), (2, 0), (2, 1)]


def test_plot_token_boxes_returns_figure():
    fig = plot_token_boxes([("char", list("to be")), ("bpe", ["to", " be"])], width=10)
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes) == 2
    plt.close(fig)


def test_plot_compression_returns_figure():
    fig = plot_compression({"a": {512: 0.5, 1024: 0.4}, "b": {512: 0.52}}, reference={"char": 1.0})
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes[0].lines) == 3
    plt.close(fig)
