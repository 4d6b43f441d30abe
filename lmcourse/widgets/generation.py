"""The autoregressive loop stepper: walk through a generation one token at a time."""

from __future__ import annotations

import html
from typing import Any, Optional

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from ..experiments import LoopTrace, trace_generation
from ..model import GPT
from ..plots.distribution import token_label
from ..plots.generation import plot_step
from ..sampling import SamplingConfig
from .base import Explorer

__all__ = ["LoopStepper"]


class LoopStepper(Explorer):
    """An ipywidgets stepper over a recorded generation (:class:`~lmcourse.experiments.LoopTrace`).

    A slider (with a play button and previous/next buttons) picks the step; the view shows
    the prefix the model saw, the top candidates with their probabilities as a bar chart,
    and which token was chosen.

    ``widget`` is the box to display; ``update(step)`` moves to a step without a browser;
    ``figure()`` draws the current step statically (the static twin of the whole run is
    :func:`~lmcourse.plots.generation.plot_candidate_grid`).
    """

    def __init__(self, trace: LoopTrace, step: int = 0) -> None:
        self.trace = trace
        last = trace.n_steps - 1
        self.slider = widgets.IntSlider(
            value=step, min=0, max=last, step=1, description="step", continuous_update=False
        )
        self.play = widgets.Play(value=step, min=0, max=last, step=1, interval=900, description="play")
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.prev_button = widgets.Button(description="\u25c0 previous", layout=widgets.Layout(width="110px"))
        self.next_button = widgets.Button(description="next \u25b6", layout=widgets.Layout(width="110px"))
        self.prev_button.on_click(lambda _: self.update(max(0, self.step - 1)))
        self.next_button.on_click(lambda _: self.update(min(last, self.step + 1)))
        self.text = widgets.HTML()
        self.out = widgets.Output()
        self.renders = 0
        self.slider.observe(self._on_change, names="value")
        controls = widgets.HBox([self.play, self.prev_button, self.slider, self.next_button])
        self.widget = widgets.VBox([controls, self.text, self.out])
        self._apply(int(self.slider.value))

    @classmethod
    def from_model(
        cls,
        model: GPT,
        tokenizer: Any,
        prompt: str,
        n_steps: int = 30,
        sampling: Optional[SamplingConfig] = None,
        k: int = 5,
        generator: Optional[torch.Generator] = None,
    ) -> LoopStepper:
        """Generate with ``model`` (see :func:`trace_generation`) and step through the result."""
        return cls(trace_generation(model, tokenizer, prompt, n_steps, sampling, k, generator))

    @property
    def step(self) -> int:
        """The step shown (0-based)."""
        return self._step

    def update(self, step: int) -> None:
        """Show ``step`` (moves the slider, redraws)."""
        if int(self.slider.value) != int(step):
            self.slider.value = int(step)  # the observer calls _apply
        else:
            self._apply(int(step))

    def _apply(self, step: int) -> None:
        self._step = step
        t = self.trace
        prompt = html.escape("".join(t.vocab[i] for i in t.prompt_ids))
        before = html.escape("".join(t.vocab[i] for i in t.chosen[:step]))
        chosen = t.vocab[t.chosen[step]]
        rank = t.chosen_rank(step)
        rank_txt = f"rank {rank + 1}" if rank is not None else "outside the top candidates"
        self.text.value = (
            "<pre style='white-space:pre-wrap;margin:0'>"
            f"<span style='color:gray'>{prompt}</span>{before}"
            f"<b style='background:#ffd59e'>{html.escape(chosen)}</b></pre>"
            f"step {step + 1} of {t.n_steps}: chose <b>{html.escape(token_label(chosen))!r}</b> "
            f"with p = {t.chosen_probs[step]:.3f} ({rank_txt}); gray = prompt"
        )
        self._render()

    def figure(self, ax: Optional[plt.Axes] = None) -> plt.Figure:
        """A static matplotlib figure of the current step."""
        return plot_step(self.trace, self._step, ax=ax)

    def _on_change(self, change) -> None:
        self._apply(int(change["new"]))
