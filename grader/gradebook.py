"""nbgrader's gradebook and the feedback each student gets.

The feedback of a test cell lists its score and each check's name, points and pass/fail;
a failed check's message only when the check is visible (the grader blanks the messages of
hidden checks, grader/submission.py), never expected values or hidden inputs.
"""

from __future__ import annotations

import os
import warnings

import nbformat

from grader.notebook import autograded_notebook, written_sources
from grader.submission import TestResult


def feedback_text(r: TestResult) -> str:
    """The report printed under a test cell of the autograded notebook."""
    lines = [f"{r.grade_id}: {r.score:g} / {r.points:g} points"
             + (" (all tests passed)" if r.score == r.points and not r.message else "")]
    for c in r.checks:
        mark = "ok  " if c.passed else "FAIL"
        lines.append(f"  {mark} {c.name} ({c.points:g} pt)" + (f": {c.message}" if c.message else ""))
    if r.message and not (r.checks and r.message.startswith("failed checks")):
        lines.append(f"FAILED: {r.message}")
    return "\n".join(lines)


def write_autograded(course: str, hw: str, student: str, release_nb, submission_nb, answers: dict,
                     results: list[TestResult]) -> str:
    """Write autograded/<student>/<hw>/<hw>.ipynb (for ``nbgrader generate_feedback``); return its path."""
    dest = os.path.join(course, "autograded", student, hw)
    os.makedirs(dest, exist_ok=True)
    graded = dict(answers)
    graded.update(written_sources(submission_nb, release_nb))
    nb = autograded_notebook(release_nb, graded, {r.grade_id: feedback_text(r) for r in results})
    tmp_path = os.path.join(dest, f".{hw}.ipynb.tmp")
    nbformat.write(nb, tmp_path)
    path = os.path.join(dest, f"{hw}.ipynb")
    os.replace(tmp_path, path)
    return path


def write_gradebook(course: str, hw: str, student: str, nb_name: str, results: list[TestResult]) -> None:
    """Store each test cell's (partial) score as its automatic score in gradebook.db."""
    from nbgrader.api import Gradebook

    with warnings.catch_warnings(), Gradebook("sqlite:///" + os.path.join(course, "gradebook.db"), "lmcourse") as gb:
        warnings.simplefilter("ignore")  # SQLAlchemy's autoflush notes inside nbgrader's add_submission
        gb.update_or_create_student(student)
        try:
            gb.find_submission(hw, student)
        except Exception:  # noqa: BLE001 - MissingEntry: a new submission
            gb.add_submission(hw, student)
        for r in results:
            grade = gb.find_grade(r.grade_id, nb_name, hw, student)
            grade.auto_score = r.score
        gb.db.commit()
