"""Static matplotlib figures for the book; they only draw.

What they draw is computed by the module that owns the concept (:mod:`lmcourse.metrics`,
:mod:`lmcourse.model`, :mod:`lmcourse.experiments`, ...). Each ipywidgets explorer's state
is drawn here, which is the picture a reader without a kernel or JavaScript sees.
"""
