"""The "logits vs probabilities" explorer: a next-token distribution under a temperature slider."""

from __future__ import annotations

from typing import Optional, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from ..experiments import next_token_logits
from ..plots.distribution import distribution_stats, plot_distribution
from .base import Explorer

__all__ = ["DistributionExplorer", "next_token_logits"]


class DistributionExplorer(Explorer):
    """An ipywidgets explorer of one next-token distribution under a temperature.

    Args:
        logits: the (V,) next-token logits.
        vocab: the V token strings, in id order.
        temperature: the initial temperature (> 0).
        k: how many of the most likely tokens to draw.
        context: the prefix the logits belong to (for the title).

    ``widget`` is the ipywidgets box to display; ``update(temperature)`` changes the state
    (and moves the slider) without a browser; ``figure()`` draws the current state
    statically (what the book shows in its HTML).
    """

    def __init__(
        self,
        logits: torch.Tensor,
        vocab: Sequence[str],
        temperature: float = 1.0,
        k: int = 10,
        context: str = "",
    ) -> None:
        self.logits = torch.as_tensor(logits).detach().float().cpu().reshape(-1)
        if len(vocab) != self.logits.numel():
            raise ValueError(f"{len(vocab)} vocabulary strings for {self.logits.numel()} logits")
        self.vocab = list(vocab)
        self.k = k
        self.context = context
        self.slider = widgets.FloatSlider(
            value=temperature,
            min=0.1,
            max=3.0,
            step=0.05,
            description="temperature",
            continuous_update=False,
            readout_format=".2f",
        )
        self.info = widgets.HTML()
        self.out = widgets.Output()
        self.renders = 0
        self.slider.observe(self._on_change, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.slider, self.info]), self.out])
        self._apply(float(self.slider.value))

    @classmethod
    def from_model(cls, model, tokenizer, context: str, **kwargs) -> DistributionExplorer:
        """Explorer of the distribution ``model`` predicts after ``context``."""
        logits = next_token_logits(model, tokenizer, context)
        vocab = [tokenizer.decode([i]) for i in range(logits.numel())]
        return cls(logits, vocab, context=context, **kwargs)

    @property
    def temperature(self) -> float:
        return self._temperature

    def update(self, temperature: float) -> None:
        """Set the temperature (moves the slider, recomputes, redraws)."""
        if float(self.slider.value) != float(temperature):
            self.slider.value = temperature  # the observer calls _apply
        else:
            self._apply(float(temperature))

    def _apply(self, temperature: float) -> None:
        self._temperature = temperature
        stats = distribution_stats(self.logits, temperature)
        self.probs = stats["probs"]
        self.entropy_bits = stats["entropy_bits"]
        top = int(self.probs.argmax())
        self.info.value = (
            f"entropy <b>{self.entropy_bits:.2f} bits</b> &nbsp; "
            f"most likely {self.vocab[top]!r}: p = {float(self.probs[top]):.3f}"
        )
        self._render()

    def figure(self, ax: Optional[Sequence[plt.Axes]] = None) -> plt.Figure:
        """A static matplotlib figure of the current state."""
        return plot_distribution(
            self.logits, self.vocab, self._temperature, k=self.k, context=self.context, axes=ax
        )

    def _on_change(self, change) -> None:
        self._apply(float(change["new"]))
