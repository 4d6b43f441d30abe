"""The book-support rooms keep to their jobs.

- ``lmcourse.plots`` only draws: its public functions are ``plot_*`` figures, plus a few
  label and layout helpers of the drawings; what they draw is computed elsewhere.
- ``lmcourse.explorers`` (the in-page views) never import ``lmcourse.plots``.
- ``lmcourse.widgets`` holds only what needs a live kernel.
- Every chapter gives an explorer's instructions in the one shared admonition, and no
  chapter repeats the sentence that the explorer prints itself.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
from pathlib import Path

import pytest

import lmcourse
import lmcourse.plots

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(lmcourse.__file__).resolve().parent

#: public plots helpers that are not figures: they turn a token or a config into text or
#: positions for a drawing
DRAWING_HELPERS = {"token_label", "visible", "strip_layout", "block_labels"}

PLOT_MODULES = sorted(m.name for m in pkgutil.iter_modules(lmcourse.plots.__path__))


@pytest.mark.parametrize("name", PLOT_MODULES)
def test_plots_only_draw(name):
    module = importlib.import_module(f"lmcourse.plots.{name}")
    own = {
        n: obj for n, obj in vars(module).items()
        if not n.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
        and obj.__module__ == module.__name__
    }
    computing = sorted(n for n in own if not n.startswith("plot_") and n not in DRAWING_HELPERS)
    assert not computing, f"lmcourse.plots.{name} defines {computing}: move them to the module that owns the concept"
    data = sorted(n for n, v in vars(module).items() if n.isupper() and not n.startswith("_")
                  and not inspect.ismodule(v) and getattr(v, "__module__", None) is None
                  and n in getattr(module, "__all__", ()))
    assert not data, f"lmcourse.plots.{name} exports data {data}: it belongs with its concept"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            found.add(("." * node.level) + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_explorers_do_not_import_plots():
    for path in sorted((PACKAGE / "explorers").glob("*.py")):
        bad = {m for m in _imports(path) if "plots" in m.split(".")}
        assert not bad, f"{path.name} imports {bad}"


def test_widgets_are_only_the_live_ones():
    modules = sorted(m.name for m in pkgutil.iter_modules([str(PACKAGE / "widgets")]))
    assert modules == ["base", "decoding", "training"], modules


def _markdown_cells():
    for nb in sorted((ROOT / "book").glob("*.ipynb")):
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "markdown":
                yield nb.name, "".join(cell["source"])


def test_try_it_is_one_admonition_style():
    seen = 0
    for name, text in _markdown_cells():
        assert "no Python kernel and no network" not in text, f"{name} repeats the explorers' own note"
        assert "**Try it on this page.**" not in text, f"{name}: use the shared admonition"
        if "Try it on this page" in text:
            seen += 1
            assert ":::{admonition} Try it on this page\n:class: tip\n" in text, name
    assert seen >= 8  # every in-page explorer has its instructions
