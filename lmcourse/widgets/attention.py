"""Attention-matrix explorer: pick a layer, a head and a query token, see what it attends to."""

from __future__ import annotations

from typing import Optional, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from ..experiments import attention_weights
from ..plots.attention import plot_attention
from .base import Explorer

__all__ = ["AttentionExplorer", "attention_weights"]


class AttentionExplorer(Explorer):
    """An ipywidgets explorer of a trained model's causal attention.

    Args:
        model: a :class:`lmcourse.model.GPT` (anything with ``attention_maps``).
        idx: token ids of one sequence, (T,) or (1, T).
        tokens: the T strings to label the axes with.
        layer, head, query: the initial selection (``query`` defaults to the last token).

    ``widget`` is the ipywidgets box to display; ``figure()`` draws the current state
    statically (what the book shows in its HTML).
    """

    def __init__(
        self,
        model,
        idx: torch.Tensor,
        tokens: Sequence[str],
        layer: int = 0,
        head: int = 0,
        query: Optional[int] = None,
    ) -> None:
        self.weights = attention_weights(model, idx)  # (L, H, T, T)
        n_layer, n_head, T, _ = self.weights.shape
        if len(tokens) != T:
            raise ValueError(f"{len(tokens)} token labels for a sequence of {T} positions")
        self.tokens = list(tokens)
        opts = [(f"{i}: {t!r}", i) for i, t in enumerate(self.tokens)]
        self.layer = widgets.Dropdown(options=list(range(n_layer)), value=layer, description="layer")
        self.head = widgets.Dropdown(options=list(range(n_head)), value=head, description="head")
        self.query = widgets.Dropdown(
            options=opts, value=T - 1 if query is None else query, description="query token"
        )
        self.out = widgets.Output()
        self.renders = 0
        for w in (self.layer, self.head, self.query):
            w.observe(self._on_change, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.layer, self.head, self.query]), self.out])
        self._render()

    def current(self) -> torch.Tensor:
        """The (T, T) weights of the selected layer and head."""
        return self.weights[self.layer.value, self.head.value]

    def figure(self) -> plt.Figure:
        """A static matplotlib figure of the current selection."""
        return plot_attention(
            self.current(),
            self.tokens,
            query=self.query.value,
            title=f"layer {self.layer.value}, head {self.head.value}",
        )

    def _on_change(self, change) -> None:
        self._render()
