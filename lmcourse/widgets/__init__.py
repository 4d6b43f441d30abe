"""ipywidgets explorers used in the book; each has a static twin in :mod:`lmcourse.plots`."""
