"""ipywidgets explorers used in the book; they need a running Python kernel (Jupyter, Colab).

Each has a static twin in :mod:`lmcourse.plots` (the figure a reader without a kernel or
without JavaScript sees) and a browser twin in :mod:`lmcourse.explorers` that runs on the
built web page with no kernel at all. The ipywidgets versions remain for what needs Python
while you play, such as sampling new continuations from the model.
"""
