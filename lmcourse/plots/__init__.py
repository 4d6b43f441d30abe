"""Static matplotlib figures for the book; they only draw.

What they draw is computed by the module that owns the concept (:mod:`lmcourse.metrics`,
:mod:`lmcourse.sampling`, :mod:`lmcourse.long_context`, :mod:`lmcourse.experiments`, ...).
Each figure of an explorer's starting state is drawn here: the picture a reader without
JavaScript sees beside the in-page explorer of :mod:`lmcourse.explorers`.
"""
