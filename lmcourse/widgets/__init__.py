"""The book's ipywidgets: only what needs a running Python kernel while you play.

- :class:`lmcourse.widgets.decoding.DecodingExplorer`: the decoding filters on one
  distribution, with new continuations sampled from the model at every setting (chapter 8).
- :class:`lmcourse.widgets.training.LiveLossPlot`: the loss curves redrawn while a model
  trains (chapter 4).

Everything that can be computed once is an in-page explorer of :mod:`lmcourse.explorers`
instead (it is also a cell output in Jupyter and Colab), with its starting state drawn by
:mod:`lmcourse.plots` for readers without JavaScript.
"""
