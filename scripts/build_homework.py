"""Write the nbgrader source notebooks solutions/<hw>/<hw>.ipynb from scripts/homework/<hw>.py.

Usage: python scripts/build_homework.py [hw ...]     (default: every homework)

Each homework is one jupytext "percent" file, ``scripts/homework/<hw>.py``: cells start at
``# %%`` lines that carry the nbgrader cell metadata (``nbgrader={...}``), markdown cells are
comments (``# %% [markdown]``), solutions sit between ``### BEGIN SOLUTION`` and
``### END SOLUTION``, hidden tests between ``### BEGIN HIDDEN TESTS`` and
``### END HIDDEN TESTS``. Open one in Jupyter as a notebook with jupytext, or edit it as text.
This script only adds what the text format does not keep: the course's setup cell
(``SETUP_CELL`` of scripts/new_chapter.py, in the cell tagged ``setup``), the closing
"Summary" cells (``SUMMARY_MARKDOWN`` and ``SUMMARY_CELL`` below, appended to every
homework; a source that still ends with its own copy has it replaced), stable cell ids and
the kernelspec; jupytext does the rest.

A cell may take its source from another homework: a line
``### SOLUTION FROM <hw>:<grade_id>`` is replaced by the source of the cell with that
``grade_id`` in ``scripts/homework/<hw>.py`` (solution markers kept, so nbgrader clears the
solution in the release as usual). The capstone uses it so that the official solutions of
the pieces a student pastes in are written once, in their own homework. An injection line
that itself stands inside a ``### BEGIN SOLUTION`` region (HW4's GPT cell, one solution
region holding HW3b's classes) gets the cell without its markers, since nbgrader regions do
not nest. In such a cell a
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

# The last two cells of every homework: re-run the visible tests and say how to submit.
SUMMARY_MARKDOWN = """## Summary

The cell below re-runs every visible test. When everything passes, save the notebook and
submit it (on Colab: *File / Download / Download .ipynb*, then upload it to the course LMS)."""
SUMMARY_MARKDOWN_WRITTEN = """## Summary

The cell below re-runs every visible test (the written answer is graded by hand). When
everything passes, save the notebook and submit it (on Colab: *File / Download / Download
.ipynb*, then upload it to the course LMS)."""
SUMMARY_CELL = """# Run every visible test again and print a summary (hidden tests run only when graded).
from lmcourse.grading import begin_cell, cell_results

_results = {}
for _name, _test in VISIBLE_TESTS.items():
    begin_cell()
    try:
        _test()
        _failed = [r["name"] for r in cell_results() if not r["passed"]]
        _results[_name] = "passed" if not _failed else "FAILED: " + "; ".join(_failed)
    except NotImplementedError:
        _results[_name] = "not implemented yet"
    except Exception as _e:  # noqa: BLE001 - report any failure
        _results[_name] = f"FAILED: {type(_e).__name__}: {_e}"
begin_cell()
for _name, _r in _results.items():
    print(f"{_name:36s} {_r}")
_n = sum(r == "passed" for r in _results.values())
print(f"{_n}/{len(_results)} visible test groups passed; hidden tests run when the homework is graded.")"""


def _nbgrader_meta(grade_id: str) -> dict:
    return {"nbgrader": {"grade": False, "grade_id": grade_id, "locked": True, "schema_version": 3, "solution": False}}


def inject_summary(nb: nbformat.NotebookNode) -> None:
    """Replace or append the two Summary cells at the end of ``nb`` (the same in every homework).

    The markdown cell keeps the grade id of a source's own Summary cell, else gets the next
    free ``md-N``; its text mentions hand grading when the homework has a written answer.
    """
    cells = nb.cells
    md_id = None
    for i, cell in enumerate(cells):
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade_id") == "summary":
            before = cells[i - 1] if i else None
            if before is not None and before.cell_type == "markdown" and before.source.startswith("## Summary"):
                md_id = before.metadata.get("nbgrader", {}).get("grade_id")
                del cells[i - 1:i + 1]
            else:
                del cells[i]
            break
    if md_id is None:
        numbers = [int(g[3:]) for c in cells for g in [c.metadata.get("nbgrader", {}).get("grade_id", "")]
                   if g.startswith("md-") and g[3:].isdigit()]
        md_id = f"md-{max(numbers, default=0) + 1}"
    written = any(c.metadata.get("nbgrader", {}).get("solution") and c.metadata["nbgrader"].get("grade") for c in cells)
    md = nbformat.v4.new_markdown_cell(SUMMARY_MARKDOWN_WRITTEN if written else SUMMARY_MARKDOWN,
                                       metadata=_nbgrader_meta(md_id))
    code = nbformat.v4.new_code_cell(SUMMARY_CELL, metadata=_nbgrader_meta("summary"))
    cells += [md, code]


BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
INJECT = re.compile(r"^### SOLUTION FROM (\w+):(\S+)[ \t]*$", re.MULTILINE)


def cell_source(hw: str, grade_id: str) -> str:
    """The source of the cell ``grade_id`` of homework ``hw`` (its own injections done)."""
    nb = jupytext.read(os.path.join(SOURCES, f"{hw}.py"), fmt="py:percent")
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return inject_solutions(cell.source, seen=(hw,))
    raise ValueError(f"### SOLUTION FROM {hw}:{grade_id}: no cell with grade_id {grade_id!r} in {hw}")


def inject_solutions(source: str, seen: tuple = ()) -> str:
    """Replace every ``### SOLUTION FROM <hw>:<grade_id>`` line by that cell's source (without
    its solution markers where the line stands inside a solution region)."""
    def one(match: re.Match) -> str:
        hw, grade_id = match.group(1), match.group(2)
        if hw in seen:
            raise ValueError(f"### SOLUTION FROM {hw}:{grade_id}: a cycle through {hw}")
        if not os.path.isfile(os.path.join(SOURCES, f"{hw}.py")):
            raise ValueError(f"### SOLUTION FROM {hw}:{grade_id}: no homework {hw}")
        return cell_source(hw, grade_id)

    lines, in_solution = [], False
    for line in source.split("\n"):
        if line.startswith("# ruff: noqa"):
            continue
        marker = line.strip()
        if marker in (BEGIN, END):
            in_solution = marker == BEGIN
        elif in_solution and INJECT.match(line):
            line = without_markers(INJECT.sub(one, line))
        lines.append(line)
    return INJECT.sub(one, "\n".join(lines))


def without_markers(source: str) -> str:
    """``source`` without its ``### BEGIN SOLUTION`` / ``### END SOLUTION`` lines."""
    return "\n".join(line for line in source.split("\n") if line.strip() not in (BEGIN, END))


def notebook(name: str) -> nbformat.NotebookNode:
    """The nbgrader source notebook of homework ``name`` (no outputs)."""
    nb = jupytext.read(os.path.join(SOURCES, f"{name}.py"), fmt="py:percent")
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    inject_summary(nb)
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
