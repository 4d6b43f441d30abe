"""Splitting a submission from the instructor notebook, and merging the autograded copy.

Only the student's answer cells are taken from a submission: the nbgrader ``solution``
cells **of code type**, by ``grade_id``, the first code copy of each id. A markdown (or raw)
cell that carries a grade id is ignored, so it can never shadow the code that was graded;
:func:`autograded_notebook` shows exactly the sources :func:`answer_sources` returned.
Every other cell (explanations, locked code, the tests) comes from the instructor's
``solutions/<hw>/<hw>.ipynb``.
"""

from __future__ import annotations

import ast
import copy
import os
import stat
from typing import Optional

import nbformat

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"


class SubmissionRefused(Exception):
    """The submitted file cannot be graded (a symlink, not a regular file, unreadable)."""


def nbg(cell) -> dict:
    """The nbgrader metadata of a cell."""
    return cell.get("metadata", {}).get("nbgrader", {})


def is_answer(cell) -> bool:
    """A student's answer cell: code, nbgrader ``solution`` and not graded by hand."""
    meta = nbg(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("solution")) and not meta.get("grade")


def is_test(cell) -> bool:
    """An autograded test cell: code, ``grade`` and not ``solution``."""
    meta = nbg(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def answer_sources(submission_nb) -> dict[str, str]:
    """``{grade_id: source}`` of the submission's answer cells (first code copy wins)."""
    out: dict[str, str] = {}
    for cell in submission_nb.cells:
        gid = nbg(cell).get("grade_id")
        if gid and cell.get("cell_type") == "code" and nbg(cell).get("solution") and gid not in out:
            src = cell.get("source", "")
            out[gid] = "".join(src) if isinstance(src, list) else str(src)
    return out


def written_sources(submission_nb, release_nb) -> dict[str, str]:
    """``{grade_id: source}`` of the answers graded by hand (``solution`` and ``grade``).

    Taken only from a cell of the same type as the release's cell of that id (first copy).
    """
    kinds = {nbg(c).get("grade_id"): c.cell_type for c in release_nb.cells
             if nbg(c).get("solution") and nbg(c).get("grade")}
    out: dict[str, str] = {}
    for cell in submission_nb.cells:
        gid = nbg(cell).get("grade_id")
        if gid in kinds and cell.get("cell_type") == kinds[gid] and gid not in out:
            src = cell.get("source", "")
            out[gid] = "".join(src) if isinstance(src, list) else str(src)
    return out


def read_submission(path: str, root: Optional[str] = None) -> nbformat.NotebookNode:
    """Read a submitted notebook; refuse symlinks and non-regular files.

    ``root`` (the ``submitted/`` folder): every path component below it must be a real
    folder, not a symlink. Raises :class:`SubmissionRefused` with a sentence for the report.
    """
    if root is not None:
        rel = os.path.relpath(path, root)
        cur = root
        for part in rel.split(os.sep)[:-1]:
            cur = os.path.join(cur, part)
            st = os.lstat(cur)
            if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
                raise SubmissionRefused(f"{cur} is a symlink or not a folder: not graded")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise SubmissionRefused(f"{path} is missing") from None
    if stat.S_ISLNK(st.st_mode):
        raise SubmissionRefused(f"{path} is a symlink: not graded (submit the notebook file itself)")
    if not stat.S_ISREG(st.st_mode):
        raise SubmissionRefused(f"{path} is not a regular file: not graded")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, encoding="utf-8") as f:
        try:
            return nbformat.read(f, as_version=4)
        except Exception:  # noqa: BLE001 - an unreadable notebook scores 0 everywhere
            return nbformat.v4.new_notebook()


def check_submission_folder(folder: str) -> list[str]:
    """Sentences naming each symlink or non-regular file inside a submission folder."""
    bad = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                bad.append(f"{p} is a symlink")
            elif not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                bad.append(f"{p} is not a regular file")
    return bad


def strip_solution_markers(source: str) -> str:
    """The solution without its ``### BEGIN/END SOLUTION`` lines."""
    return "\n".join(s for s in source.splitlines() if "### BEGIN SOLUTION" not in s and "### END SOLUTION" not in s)


def defined_names(source: str) -> list[str]:
    """Top-level names a cell defines (def, class, assignment)."""
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names += [n.id for n in ast.walk(t) if isinstance(n, ast.Name)]
    return names


def hidden_lines(source: str) -> tuple[int, int]:
    """(first, last) 1-based line numbers of a test cell's hidden block; (0, -1) if none."""
    lines = source.splitlines()
    start = next((i + 1 for i, s in enumerate(lines) if HIDDEN_BEGIN in s), 0)
    end = next((i + 1 for i, s in enumerate(lines) if HIDDEN_END in s), len(lines))
    return (start, end) if start else (0, -1)


def visible_source(source: str) -> str:
    """A test cell as students see it: the hidden block removed."""
    out, hidden = [], False
    for line in source.splitlines():
        if HIDDEN_BEGIN in line:
            hidden = True
        elif HIDDEN_END in line:
            hidden = False
        elif not hidden:
            out.append(line)
    return "\n".join(out)


def autograded_notebook(release_nb, answers: dict[str, str], reports: dict[str, str]):
    """The release notebook with the graded answers and a report under every test cell.

    ``answers``: the sources that were graded (:func:`answer_sources`) and the written
    answers (:func:`written_sources`); ``reports``:
    ``{test grade_id: text}``. Markdown cells keep the release's text, whatever grade id a
    submission gave its own markdown cells.
    """
    nb = copy.deepcopy(release_nb)
    for cell in nb.cells:
        gid = nbg(cell).get("grade_id")
        if cell.cell_type != "code":
            if nbg(cell).get("solution") and nbg(cell).get("grade") and gid in answers:
                cell.source = answers[gid]  # a written answer, graded by hand
            continue
        if nbg(cell).get("solution") and gid in answers:
            cell.source = answers[gid]
        cell.outputs, cell.execution_count = [], None
        if gid in reports:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=reports[gid] + "\n")]
    return nb
