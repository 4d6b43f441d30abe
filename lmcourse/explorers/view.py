"""The HTML object every explorer returns: a container, its data as JSON, and the JavaScript.

An :class:`ExplorerView` is self-contained: the shared helpers (``js/common.js``) and the
explorer's own template (``js/<name>.js``) are inlined, so the page needs no kernel, no CDN
and no network, and works opened from a file. Jupyter, Colab and the built book all show it
through ``_repr_html_``; where JavaScript is off the reader sees ``fallback`` (a sentence that
points at the static figure next to it).
"""

from __future__ import annotations

import html
import json
import math
import uuid
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Union

__all__ = ["ExplorerView", "EXPLORERS", "javascript"]

#: the explorer templates in ``lmcourse/explorers/js/`` (one file each)
EXPLORERS = (
    "temperature",
    "decoding",
    "attention",
    "teacher_forcing",
    "generation",
    "attention_ops",
    "kv_memory",
    "pipeline",
)


@cache
def javascript(name: str) -> str:
    """The source of ``js/<name>.js`` (``"common"`` or one of :data:`EXPLORERS`)."""
    if name != "common" and name not in EXPLORERS:
        raise ValueError(f"unknown explorer {name!r}; known: {list(EXPLORERS)}")
    return resources.files(__package__).joinpath("js", f"{name}.js").read_text(encoding="utf-8")


def _plain(x: Any) -> Any:
    """JSON-ready copy of ``x``: tuples become lists, floats keep 6 significant digits."""
    if isinstance(x, float):
        if not math.isfinite(x):
            raise ValueError(f"explorer data must be finite numbers, got {x!r}")
        return float(f"{x:.6g}")
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


class ExplorerView:
    """One interactive explorer: ``_repr_html_`` renders it, ``data`` is what the browser gets.

    Args:
        name: which template draws it (one of :data:`EXPLORERS`).
        data: plain JSON-able data (numbers, strings, lists, dicts); floats are rounded to 6
            significant digits.
        fallback: text shown where JavaScript does not run.
    """

    def __init__(self, name: str, data: dict, fallback: str = "") -> None:
        if name not in EXPLORERS:
            raise ValueError(f"unknown explorer {name!r}; known: {list(EXPLORERS)}")
        self.name = name
        self.data = _plain(data)
        self.fallback = fallback or (
            f"Interactive {name.replace('_', ' ')} explorer: it needs JavaScript; "
            "the static figure shows its starting state."
        )
        self.id = f"lmc-{name}-{uuid.uuid4().hex[:10]}"

    def _repr_html_(self) -> str:
        payload = json.dumps(self.data, ensure_ascii=True, separators=(",", ":"))
        payload = payload.replace("</", "<\\/")  # a token "</script>" cannot end the block
        script = f"{javascript('common')}\n{javascript(self.name)}\nwindow.LMC.boot({self.id!r});"
        return (
            f'<div class="lmc-explorer" id="{self.id}" data-explorer="{self.name}" '
            f'role="group" aria-label="{self.name.replace("_", " ")} explorer">'
            f'<p class="lmc-fallback">{html.escape(self.fallback)}</p></div>\n'
            f'<script type="application/json" id="{self.id}-data">{payload}</script>\n'
            f"<script>{script}</script>\n"
        )

    def __repr__(self) -> str:
        return f"<{self.name} explorer: interactive in a browser (Jupyter, Colab, the book)>"

    def save(self, path: Union[str, Path]) -> Path:
        """Write a standalone HTML page holding only this explorer (atomically)."""
        path = Path(path)
        page = (
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{self.name} explorer</title></head><body>\n{self._repr_html_()}</body></html>\n"
        )
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
        return path
