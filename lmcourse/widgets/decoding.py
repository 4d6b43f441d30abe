"""The decoding explorer: temperature, top-k and top-p on a real next-token distribution.

Chapter 8 (decoding strategies) shows it. Three sliders set a
:class:`~lmcourse.sampling.SamplingConfig`; the explorer shows which tokens survive the
filters, their renormalised probabilities, and (with a model) a few continuations sampled
with exactly that configuration, side by side.
"""

from __future__ import annotations

import html
from typing import Optional, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from ..experiments import next_token_logits
from ..generate import generate
from ..plots.decoding import plot_filtering
from ..sampling import filter_stats
from .base import LiveWidget


class DecodingExplorer(LiveWidget):
    """An ipywidgets explorer of temperature / top-k / top-p on one next-token distribution.

    Args:
        logits: the (V,) next-token logits of ``context``.
        vocab: the V token strings, in id order.
        context: the prefix (title, and the prompt of the samples).
        temperature: initial temperature (> 0).
        top_k: initial k; 0 (or None) means no top-k filter.
        top_p: initial p; 1.0 (or None) means no top-p filter.
        model, tokenizer: if given, ``n_samples`` continuations of ``sample_tokens`` tokens
            are generated with the current settings (same seed every time, so a change of
            setting is the only thing that changes them).
        k: how many tokens the bar charts show.
        seed: seed of the sample draws.

    ``widget`` is the box to display; ``update(temperature=..., top_k=..., top_p=...)``
    changes the state (moving the sliders) without a browser; ``figure()`` draws the current
    state (what the book's HTML shows).
    """

    def __init__(
        self,
        logits: torch.Tensor,
        vocab: Sequence[str],
        context: str = "",
        temperature: float = 1.0,
        top_k: Optional[int] = 0,
        top_p: Optional[float] = 1.0,
        model=None,
        tokenizer=None,
        n_samples: int = 3,
        sample_tokens: int = 40,
        k: int = 20,
        seed: int = 0,
    ) -> None:
        self.logits = torch.as_tensor(logits).detach().float().cpu().reshape(-1)
        if len(vocab) != self.logits.numel():
            raise ValueError(f"{len(vocab)} vocabulary strings for {self.logits.numel()} logits")
        if (model is None) != (tokenizer is None):
            raise ValueError("give both model and tokenizer (for samples) or neither")
        self.vocab = list(vocab)
        self.context = context
        self.model, self.tokenizer = model, tokenizer
        self.n_samples, self.sample_tokens, self.k, self.seed = n_samples, sample_tokens, k, seed
        V = self.logits.numel()
        self.t_slider = widgets.FloatSlider(value=temperature, min=0.05, max=2.5, step=0.05,
                                            description="temperature", continuous_update=False)
        self.k_slider = widgets.IntSlider(value=top_k or 0, min=0, max=V, step=1,
                                          description="top-k (0=off)", continuous_update=False)
        self.p_slider = widgets.FloatSlider(value=1.0 if top_p is None else top_p, min=0.05, max=1.0,
                                            step=0.01, description="top-p", continuous_update=False)
        self.info = widgets.HTML()
        self.samples_html = widgets.HTML()
        self.out = widgets.Output()
        self.renders = 0
        for s in (self.t_slider, self.k_slider, self.p_slider):
            s.observe(self._on_change, names="value")
        self.widget = widgets.VBox([
            widgets.HBox([self.t_slider, self.k_slider, self.p_slider]),
            self.info, self.out, self.samples_html,
        ])
        self._apply()

    @classmethod
    def from_model(cls, model, tokenizer, context: str, **kwargs) -> DecodingExplorer:
        """Explorer of what ``model`` predicts after ``context``, with samples from it."""
        logits = next_token_logits(model, tokenizer, context)
        vocab = [tokenizer.decode([i]) for i in range(logits.numel())]
        return cls(logits, vocab, context=context, model=model, tokenizer=tokenizer, **kwargs)

    # ---- state -----------------------------------------------------------------------

    @property
    def settings(self) -> dict:
        """The current ``temperature``, ``top_k`` and ``top_p`` (None where a filter is off)."""
        k = int(self.k_slider.value)
        p = float(self.p_slider.value)
        return {"temperature": float(self.t_slider.value), "top_k": k if k > 0 else None,
                "top_p": p if p < 1.0 else None}

    def update(self, temperature: Optional[float] = None, top_k: Optional[int] = None,
               top_p: Optional[float] = None) -> None:
        """Change any of the settings (moves the sliders once, recomputes, redraws)."""
        self._busy = True
        try:
            if temperature is not None:
                self.t_slider.value = temperature
            if top_k is not None:
                self.k_slider.value = top_k
            if top_p is not None:
                self.p_slider.value = top_p
        finally:
            self._busy = False
        self._apply()

    def _apply(self) -> None:
        s = self.settings
        stats = filter_stats(self.logits, s["temperature"], s["top_k"], s["top_p"])
        self.config = stats["config"]
        self.probs = stats["after"]
        self.kept = [int(i) for i in torch.nonzero(stats["kept"]).flatten()]
        self.n_kept = stats["n_kept"]
        ranked = sorted(self.kept, key=lambda i: -float(self.probs[i]))
        shown = ", ".join(f"{self.vocab[i]!r} {float(self.probs[i]):.2f}" for i in ranked[:8])
        more = f" + {len(ranked) - 8} more" if len(ranked) > 8 else ""
        self.info.value = html.escape(f"{self.n_kept} of {self.logits.numel()} tokens kept: {shown}{more}")
        self.samples = self._samples()
        if self.samples:
            cols = "".join(
                f"<td style='vertical-align:top;padding:4px 10px'><pre style='white-space:pre-wrap'>"
                f"{html.escape(self.context)}<b>{html.escape(t)}</b></pre></td>" for t in self.samples
            )
            self.samples_html.value = f"<table><tr>{cols}</tr></table>"
        self._render()

    def _samples(self) -> list[str]:
        if self.model is None:
            return []
        ids = self.tokenizer.encode(self.context)[-(self.model.config.block_size - self.sample_tokens):]
        out = generate(self.model, [ids] * self.n_samples, self.sample_tokens, self.config,
                       generator=torch.Generator().manual_seed(self.seed))
        return [self.tokenizer.decode(t) for t in out.new_tokens]

    # ---- drawing ---------------------------------------------------------------------

    def figure(self) -> plt.Figure:
        """Static figure of the current state (before / after filtering)."""
        s = self.settings
        return plot_filtering(self.logits, self.vocab, s["temperature"], s["top_k"], s["top_p"],
                              k=self.k, context=self.context)

    def _on_change(self, change) -> None:
        if not getattr(self, "_busy", False):
            self._apply()
