"""Write the nbgrader source notebooks solutions/<hw>/<hw>.ipynb from scripts/homework/<hw>.py.

Usage: python scripts/build_homework.py [hw ...]     (default: every homework)

Each homework is one jupytext "percent" file, ``scripts/homework/<hw>.py``: cells start at
``# %%`` lines that carry the nbgrader cell metadata (``nbgrader={...}``), markdown cells are
comments (``# %% [markdown]``), solutions sit between ``### BEGIN SOLUTION`` and
``### END SOLUTION``, hidden tests between ``### BEGIN HIDDEN TESTS`` and
``### END HIDDEN TESTS``. Open one in Jupyter as a notebook with jupytext, or edit it as text.
This script only adds what the text format does not keep: the course's setup cell
(``SETUP_CELL`` of scripts/new_chapter.py, in the cell tagged ``setup``), stable cell ids
and the kernelspec; jupytext does the rest.

A cell may take its source from another homework: a line
``### SOLUTION FROM <hw>:<grade_id>`` is replaced by the source of the cell with that
``grade_id`` in ``scripts/homework/<hw>.py`` (solution markers kept, so nbgrader clears the
solution in the release as usual). The capstone uses it so that the official solutions of
the pieces a student pastes in are written once, in their own homework. In such a cell a
``# ruff: noqa`` line (the source file names functions that only the injection defines) is
for the source file only and is dropped.
"""

from __future__ import annotations

import os
import re
import sys

import jupytext
import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SOURCES = os.path.join(HERE, "homework")
sys.path.insert(0, HERE)
from new_chapter import SETUP_CELL  # noqa: E402

HOMEWORK = sorted(f[:-3] for f in os.listdir(SOURCES) if f.startswith("hw") and f.endswith(".py"))


INJECT = re.compile(r"^### SOLUTION FROM (\w+):(\S+)[ \t]*$", re.MULTILINE)


def cell_source(hw: str, grade_id: str) -> str:
    """The source of the cell ``grade_id`` of homework ``hw`` (its own injections done)."""
    nb = jupytext.read(os.path.join(SOURCES, f"{hw}.py"), fmt="py:percent")
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return inject_solutions(cell.source, seen=(hw,))
    raise ValueError(f"### SOLUTION FROM {hw}:{grade_id}: no cell with grade_id {grade_id!r} in {hw}")


def inject_solutions(source: str, seen: tuple = ()) -> str:
    """Replace every ``### SOLUTION FROM <hw>:<grade_id>`` line by that cell's source."""
    def one(match: re.Match) -> str:
        hw, grade_id = match.group(1), match.group(2)
        if hw in seen:
            raise ValueError(f"### SOLUTION FROM {hw}:{grade_id}: a cycle through {hw}")
        if not os.path.isfile(os.path.join(SOURCES, f"{hw}.py")):
            raise ValueError(f"### SOLUTION FROM {hw}:{grade_id}: no homework {hw}")
        return cell_source(hw, grade_id)

    source = "\n".join(line for line in source.split("\n") if not line.startswith("# ruff: noqa"))
    return INJECT.sub(one, source)


def notebook(name: str) -> nbformat.NotebookNode:
    """The nbgrader source notebook of homework ``name`` (no outputs)."""
    nb = jupytext.read(os.path.join(SOURCES, f"{name}.py"), fmt="py:percent")
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name[:4]}-{i:02d}"
        if "setup" in cell.metadata.get("tags", []):
            cell.source = SETUP_CELL
        elif "### SOLUTION FROM " in cell.source:
            cell.source = inject_solutions(cell.source, seen=(name,))
    nbformat.validate(nb)
    return nb


def build(name: str, root: str = ROOT) -> str:
    """Write solutions/<name>/<name>.ipynb under ``root`` and return its path."""
    path = os.path.join(root, "solutions", name, f"{name}.ipynb")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nbformat.write(notebook(name), path)
    return path


def main(argv: list[str]) -> None:
    for name in argv or HOMEWORK:
        print(build(name))


if __name__ == "__main__":
    main(sys.argv[1:])
