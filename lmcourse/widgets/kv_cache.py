"""Chapter 7's explorers: attention work per step with vs without a KV cache, and a KV-memory calculator."""

from __future__ import annotations

from typing import Optional, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt

from ..long_context import kv_cache_bytes
from ..plots.kv_cache import (
    DTYPE_BYTES,
    MODEL_PRESETS,
    attention_ops,
    format_bytes,
    plot_attention_ops,
    plot_kv_memory_vs_context,
)
from .base import Explorer

__all__ = ["AttentionOpsExplorer", "KVMemoryCalculator"]


class AttentionOpsExplorer(Explorer):
    """Slider over the sequence length n; bars of query-key dot products per step and their totals.

    ``update(n)`` changes the length headless; ``totals`` holds the current cumulative
    counts; ``figure()`` is the static twin (:func:`~lmcourse.plots.kv_cache.plot_attention_ops`).
    """

    def __init__(self, n: int = 64, max_n: int = 1024) -> None:
        self.slider = widgets.IntSlider(
            value=n, min=1, max=max_n, step=1, description="length n", continuous_update=False
        )
        self.info = widgets.HTML()
        self.out = widgets.Output()
        self.renders = 0
        self.slider.observe(lambda ch: self._apply(int(ch["new"])), names="value")
        self.widget = widgets.VBox([widgets.HBox([self.slider, self.info]), self.out])
        self._apply(int(self.slider.value))

    @property
    def n(self) -> int:
        """The sequence length shown."""
        return self._n

    def update(self, n: int) -> None:
        """Show length ``n`` (moves the slider, redraws)."""
        if int(self.slider.value) != int(n):
            self.slider.value = int(n)
        else:
            self._apply(int(n))

    def _apply(self, n: int) -> None:
        self._n = n
        ops = attention_ops(n)
        self.totals = {"no_cache": int(ops["cum_no_cache"][-1]), "cache": int(ops["cum_cache"][-1])}
        ratio = self.totals["no_cache"] / self.totals["cache"]
        self.info.value = (
            f"total dot products: no cache <b>{self.totals['no_cache']:,}</b>, "
            f"KV cache <b>{self.totals['cache']:,}</b> ({ratio:.1f}\u00d7 fewer)"
        )
        self._render()

    def figure(self, axes: Optional[Sequence[plt.Axes]] = None) -> plt.Figure:
        """Static figure of the current length."""
        return plot_attention_ops(self._n, axes=axes)


class KVMemoryCalculator(Explorer):
    """KV-cache memory from layers, KV heads, head dim, context, batch and dtype.

    A preset dropdown fills the sliders with a real architecture (see
    :data:`~lmcourse.plots.kv_cache.MODEL_PRESETS`). ``nbytes`` is the current
    :func:`~lmcourse.long_context.kv_cache_bytes`; ``set(...)`` changes any control headless;
    ``figure()`` draws memory vs context for the current shape, with the MQA variant of the
    same model (one KV head) for comparison.
    """

    CONTEXTS = [2**i for i in range(7, 18)]  # 128 ... 131072

    def __init__(self, preset: str = "Llama-2-70B (GQA, 8 KV heads)", context: int = 4096, dtype: str = "fp16 / bf16") -> None:
        if preset not in MODEL_PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {list(MODEL_PRESETS)}")
        n_layer, n_kv, d = MODEL_PRESETS[preset]
        self.preset = widgets.Dropdown(options=list(MODEL_PRESETS), value=preset, description="preset")
        self.n_layer = widgets.IntSlider(value=n_layer, min=1, max=128, description="layers L")
        self.n_kv_head = widgets.IntSlider(value=n_kv, min=1, max=128, description="KV heads")
        self.head_dim = widgets.Dropdown(options=[32, 64, 80, 96, 128, 256], value=d, description="head dim d")
        self.context = widgets.SelectionSlider(options=self.CONTEXTS, value=context, description="context n")
        self.batch = widgets.IntSlider(value=1, min=1, max=64, description="batch")
        self.dtype = widgets.Dropdown(options=list(DTYPE_BYTES), value=dtype, description="dtype")
        self.info = widgets.HTML()
        self.out = widgets.Output()
        self.renders = 0
        self._loading = False
        self.preset.observe(self._on_preset, names="value")
        for w in (self.n_layer, self.n_kv_head, self.head_dim, self.context, self.batch, self.dtype):
            w.observe(lambda _: self._apply(), names="value")
        left = widgets.VBox([self.preset, self.n_layer, self.n_kv_head, self.head_dim])
        right = widgets.VBox([self.context, self.batch, self.dtype, self.info])
        self.widget = widgets.VBox([widgets.HBox([left, right]), self.out])
        self._apply()

    def _on_preset(self, change) -> None:
        n_layer, n_kv, d = MODEL_PRESETS[change["new"]]
        self._loading = True  # one redraw for the three changes
        try:
            self.n_layer.value, self.n_kv_head.value, self.head_dim.value = n_layer, n_kv, d
        finally:
            self._loading = False
        self._apply()

    def set(self, **values) -> None:
        """Change controls headless, e.g. ``set(n_kv_head=1, context=8192, dtype="fp32")``."""
        names = {"preset", "n_layer", "n_kv_head", "head_dim", "context", "batch", "dtype"}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown controls {sorted(unknown)}; known: {sorted(names)}")
        if "preset" in values:
            self.preset.value = values.pop("preset")
        self._loading = True
        try:
            for name, v in values.items():
                getattr(self, name).value = v
        finally:
            self._loading = False
        self._apply()

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n_layer, n_kv_head, head_dim) currently selected."""
        return int(self.n_layer.value), int(self.n_kv_head.value), int(self.head_dim.value)

    def _apply(self) -> None:
        if self._loading:
            return
        n_layer, n_kv, d = self.shape
        b = DTYPE_BYTES[self.dtype.value]
        self.nbytes = kv_cache_bytes(n_layer, n_kv, d, int(self.context.value), int(self.batch.value), b)
        per_token = kv_cache_bytes(n_layer, n_kv, d, 1, 1, b)
        self.info.value = (
            f"KV cache: <b>{format_bytes(self.nbytes)}</b><br>"
            f"= 2 \u00d7 {n_layer} \u00d7 {n_kv} \u00d7 {d} \u00d7 {self.context.value} \u00d7 "
            f"{self.batch.value} \u00d7 {b} bytes<br>per token: {format_bytes(per_token)}"
        )
        self._render()

    def figure(self, ax: Optional[plt.Axes] = None) -> plt.Figure:
        """Memory vs context for the current shape and its MQA variant (one KV head)."""
        n_layer, n_kv, d = self.shape
        configs = {f"current: {n_kv} KV heads": (n_layer, n_kv, d)}
        if n_kv != 1:
            configs["same with MQA (1 KV head)"] = (n_layer, 1, d)
        return plot_kv_memory_vs_context(
            configs,
            bytes_per_elem=DTYPE_BYTES[self.dtype.value],
            batch=int(self.batch.value),
            mark_context=int(self.context.value),
            ax=ax,
        )
