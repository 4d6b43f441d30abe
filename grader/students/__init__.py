"""Made-up students of each homework: ``grader/students/<hw>.py`` (data only).

Each file defines one dict, ``STUDENTS``::

    STUDENTS = {
        "numpy-style": {"kind": "honest", "answers": {"<answer grade_id>": "source", ...}},
        "wrong-tie": {"kind": "partial", "answers": {...}, "expect": {"test_top_p": 2}},
        "identity-encoder": {"kind": "attack", "answers": {...}, "expect": {"test_round_trip": 0}},
    }

Answer cells a student does not list get the official solution (markers stripped).
``expect`` maps a test cell's grade id to the exact points that student must get; the
test cells it does not list must get full marks. Honest students have no ``expect`` (full
marks everywhere). The file is imported as a module (it may use the standard library, for
example ``textwrap.dedent``, and :func:`given`); :func:`load` checks its shape.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from typing import Optional

import nbformat

from grader.notebook import nbg, strip_solution_markers

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts", "homework")
KINDS = ("honest", "partial", "attack")


def load(hw: str, folder: Optional[str] = None) -> dict:
    """``STUDENTS`` of ``<folder>/<hw>.py`` (default: this package), checked; {} if no file."""
    path = os.path.join(folder or HERE, f"{hw}.py")
    if not os.path.isfile(path):
        return {}
    spec = importlib.util.spec_from_file_location(f"_demo_students_{hw}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    students = getattr(mod, "STUDENTS", None)
    if not isinstance(students, dict):
        raise ValueError(f"{path}: STUDENTS must be a dict of student name -> description")
    for name, s in students.items():
        where = f"{path}: student {name!r}"
        if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"{where}: names are letters, digits, '-' and '_'")
        if not isinstance(s, dict) or s.get("kind") not in KINDS:
            raise ValueError(f"{where}: kind must be one of {KINDS}")
        answers = s.get("answers", {})
        if not isinstance(answers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in answers.items()):
            raise ValueError(f"{where}: answers must map answer grade ids to source strings")
        if s["kind"] == "honest" and s.get("expect"):
            raise ValueError(f"{where}: an honest student has no expect (full marks everywhere)")
        if s["kind"] != "honest" and not isinstance(s.get("expect"), dict):
            raise ValueError(f"{where}: a {s['kind']} student needs expect: {{test grade_id: points}}")
    return students


def given(hw: str, name: str) -> str:
    """The source of the top-level function ``name`` of ``scripts/homework/<hw>.py``.

    For a student who rewrites an answer cell that also holds code the homework gives (and
    says to keep as it is, like HW4's ``run_adamw``): the student keeps that code as written
    there instead of a copy in the student file.
    """
    with open(os.path.join(SOURCES, f"{hw}.py"), encoding="utf-8") as f:
        source = f.read()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return "\n\n" + ast.get_source_segment(source, node) + "\n"
    raise ValueError(f"scripts/homework/{hw}.py has no top-level function {name!r}")


def demo_id(name: str) -> str:
    """The student id a made-up student gets in the demo course."""
    return "x-" + name.replace("_", "-")


def notebook(release_nb, solution_nb, spec: dict):
    """The notebook that the made-up student ``spec`` hands in."""
    nb = nbformat.from_dict(release_nb)
    solutions = {nbg(c)["grade_id"]: c.source for c in solution_nb.cells
                 if c.cell_type == "code" and nbg(c).get("solution") and not nbg(c).get("grade")}
    unknown = set(spec.get("answers", {})) - set(solutions)
    if unknown:
        raise ValueError(f"answers for cells that are not answer cells: {sorted(unknown)}")
    for cell in nb.cells:
        gid = nbg(cell).get("grade_id")
        if gid in solutions:
            cell.source = spec.get("answers", {}).get(gid, strip_solution_markers(solutions[gid]))
    return nb


def mismatches(spec: dict, cells: dict, manual: set) -> list[str]:
    """What differs between a student's scores ``{grade_id: (score, max)}`` and ``spec``."""
    expect = spec.get("expect", {}) or {}
    out = []
    for gid, (score, top) in sorted(cells.items()):
        if gid in manual:
            continue
        want = float(expect.get(gid, top))
        if abs(score - want) > 1e-9:
            out.append(f"{gid}: got {score:g}, expected {want:g} of {top:g}")
    missing = set(expect) - set(cells)
    out += [f"{gid}: no such test cell" for gid in sorted(missing)]
    return out
