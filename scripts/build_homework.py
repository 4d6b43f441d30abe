"""Assemble the nbgrader source notebooks (solutions/) from the readable homework sources.

Usage: python scripts/build_homework.py [hw ...]    (writes solutions/<hw>/<hw>.ipynb)

Each homework is one module in scripts/homework/ named like its folder
(``hw3_causal_attention.py``) that defines

- ``CELLS``: the notebook, a list of cells made with :mod:`homework.cells`: ``md(...)``
  explanation (locked), ``answer(id, src)`` an autograded answer cell (``### BEGIN
  SOLUTION`` / ``### END SOLUTION``), ``tests(id, points, src)`` a locked autograded test
  cell (``### BEGIN HIDDEN TESTS`` ...); the first code cell is the course's locked setup
  cell (scripts/new_chapter.py);
- ``CHEATS``: grade_id -> an answer that only calls the reference (must score 0);
- ``LOOPS``: grade_id -> an answer that never returns (the cell timeout must cut it).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import homework  # noqa: E402

_MODULES = {
    m.name: importlib.import_module(f"homework.{m.name}")
    for m in pkgutil.iter_modules(homework.__path__)
    if m.name.startswith("hw")
}
HOMEWORK = {name: mod.CELLS for name, mod in sorted(_MODULES.items())}
CHEATS = {name: getattr(mod, "CHEATS", {}) for name, mod in sorted(_MODULES.items())}
LOOPS = {name: getattr(mod, "LOOPS", {}) for name, mod in sorted(_MODULES.items())}


def build(name: str, cells: list, root: str = ROOT) -> str:
    """Write solutions/<name>/<name>.ipynb (no outputs) and return its path."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = cells
    n_md = 0
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name[:4]}-{i:02d}"
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id", "").startswith("md-"):  # number explanations per notebook
            n_md += 1
            meta["grade_id"] = f"md-{n_md}"
    path = os.path.join(root, "solutions", name, f"{name}.ipynb")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path


def main(argv: list[str]) -> None:
    for name in argv or list(HOMEWORK):
        print(build(name, HOMEWORK[name]))


if __name__ == "__main__":
    main(sys.argv[1:])
