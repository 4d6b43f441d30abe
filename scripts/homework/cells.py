"""Cell builders shared by every homework source in scripts/homework/.

``md(...)`` explanation (locked), ``code(id, src)`` locked code, ``answer(id, src)`` an
autograded answer cell (``### BEGIN SOLUTION`` / ``### END SOLUTION``), ``tests(id,
points, src)`` a locked autograded test cell (``### BEGIN HIDDEN TESTS`` ...). The first
code cell is the course's locked setup cell ``SETUP_CELL`` from scripts/new_chapter.py.
``SUMMARY`` is the last cell: it reruns every function in ``VISIBLE_TESTS``.
"""

from __future__ import annotations

import os
import sys

import nbformat

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from new_chapter import SETUP_CELL  # noqa: E402, F401  (re-exported)

_counter = {"n": 0}


def _meta(grade_id: str, *, grade: bool, solution: bool, locked: bool, points: int = 0) -> dict:
    m = {"grade": grade, "solution": solution, "locked": locked, "grade_id": grade_id, "schema_version": 3}
    if grade:
        m["points"] = points
    return {"nbgrader": m}


def md(src: str) -> nbformat.NotebookNode:
    _counter["n"] += 1
    gid = f"md-{_counter['n']}"
    return nbformat.v4.new_markdown_cell(src.strip("\n"), metadata=_meta(gid, grade=False, solution=False, locked=True))


def code(grade_id: str, src: str, tags: tuple = ()) -> nbformat.NotebookNode:
    meta = _meta(grade_id, grade=False, solution=False, locked=True)
    if tags:
        meta["tags"] = list(tags)
    return nbformat.v4.new_code_cell(src.strip("\n"), metadata=meta)


def answer(grade_id: str, src: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(src.strip("\n"), metadata=_meta(grade_id, grade=False, solution=True, locked=False))


def tests(grade_id: str, points: int, src: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(
        src.strip("\n"), metadata=_meta(grade_id, grade=True, solution=False, locked=True, points=points)
    )


SUMMARY = '''
# Run every visible test again and print a summary (hidden tests run only when graded).
_results = {}
for _name, _test in VISIBLE_TESTS.items():
    try:
        _test()
        _results[_name] = "passed"
    except NotImplementedError:
        _results[_name] = "not implemented yet"
    except Exception as _e:  # noqa: BLE001 - report any failure
        _results[_name] = f"FAILED: {type(_e).__name__}: {_e}"
for _name, _r in _results.items():
    print(f"{_name:32s} {_r}")
_n = sum(r == "passed" for r in _results.values())
print(f"{_n}/{len(_results)} visible test groups passed; hidden tests run when the homework is graded.")
'''

