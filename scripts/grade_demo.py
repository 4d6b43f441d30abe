"""Grade demo: real nbgrader on made-up students for every homework, then the score matrix.

Usage: python scripts/grade_demo.py [--timeout SECONDS] [hw ...]

In a temporary copy of the course it runs ``nbgrader generate_assignment``, writes one
submission per student id into submitted/<student>/<hw>/, runs ``nbgrader autograde`` per
student (timed) and reads the scores from the gradebook:

- ``solution``: the release with the instructor's solution pasted into the answer cells;
- ``release``:  the untouched student release (every answer raises NotImplementedError);
- ``cheat``:    answers that call the lmcourse reference (must score 0);
- ``loop``:     the solution with one answer that never returns (cut by the cell timeout);
- ``edited``:   the release with every test cell replaced by ``pass`` (nbgrader restores it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from build_homework import CHEATS, LOOPS  # noqa: E402
from release_assignments import ROOT, homeworks, make_course, nbgrader  # noqa: E402

STUDENTS = ("solution", "release", "cheat", "loop", "edited")


def _nbg(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def strip_markers(source: str) -> str:
    """Solution source without the nbgrader ``### BEGIN/END SOLUTION`` lines."""
    return "\n".join(line for line in source.splitlines() if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)


def submission(kind: str, release_nb, solution_nb, name: str):
    """The notebook student ``kind`` hands in for homework ``name``."""
    nb = nbformat.from_dict(release_nb)
    solutions = {_nbg(c).get("grade_id"): c.source for c in solution_nb.cells if _nbg(c).get("solution")}
    for cell in nb.cells:
        meta = _nbg(cell)
        gid = meta.get("grade_id")
        if meta.get("solution") and kind in ("solution", "loop", "cheat"):
            cell.source = strip_markers(solutions[gid])
            if kind == "cheat":
                cell.source = CHEATS.get(name, {}).get(gid, cell.source).strip("\n")
            if kind == "loop":
                cell.source = LOOPS.get(name, {}).get(gid, cell.source).strip("\n")
        if meta.get("grade") and not meta.get("solution") and kind == "edited":
            cell.source = "pass"
    return nb


def manual_grade_ids(name: str, root: str = ROOT) -> set[str]:
    """Grade ids of the manually graded cells of homework ``name`` (solution and grade)."""
    ids = set()
    folder = os.path.join(root, "solutions", name)
    for fname in sorted(os.listdir(folder)):
        if fname.endswith(".ipynb"):
            for cell in nbformat.read(os.path.join(folder, fname), as_version=4).cells:
                meta = _nbg(cell)
                if meta.get("grade") and meta.get("solution"):
                    ids.add(meta["grade_id"])
    return ids


def grade(names: list[str], timeout: int = 60, students=STUDENTS) -> tuple[dict, dict]:
    """Return ({(hw, student): {grade_id: (score, max)}}, {(hw, student): seconds})."""
    from nbgrader.api import Gradebook

    scores, seconds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        course = make_course(os.path.join(tmp, "course"))
        for name in names:
            nbgrader(course, "generate_assignment", name, "--force")
            rel_dir = os.path.join(course, "assignments", name)
            for fname in sorted(os.listdir(rel_dir)):
                if not fname.endswith(".ipynb"):
                    continue
                release_nb = nbformat.read(os.path.join(rel_dir, fname), as_version=4)
                solution_nb = nbformat.read(os.path.join(course, "solutions", name, fname), as_version=4)
                for student in students:
                    out = os.path.join(course, "submitted", student, name)
                    os.makedirs(out, exist_ok=True)
                    nbformat.write(submission(student, release_nb, solution_nb, name), os.path.join(out, fname))
            for student in students:
                t0 = time.perf_counter()
                nbgrader(
                    course, "autograde", name, f"--student={student}", "--create", "--force",
                    f"--ExecutePreprocessor.timeout={timeout}",
                )
                seconds[name, student] = time.perf_counter() - t0
        with Gradebook("sqlite:///" + os.path.join(course, "gradebook.db"), "lmcourse") as gb:
            for name in names:
                for student in students:
                    sub = gb.find_submission(name, student)
                    cells = {}
                    for nb in sub.notebooks:
                        for g in nb.grades:
                            cells[g.name] = (float(g.score), float(g.max_score))
                    scores[name, student] = cells
    return scores, seconds


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=int, default=60, help="seconds per cell (default 60)")
    parser.add_argument("homework", nargs="*")
    args = parser.parse_args(argv)
    names = args.homework or homeworks(ROOT)
    scores, seconds = grade(names, args.timeout)
    print(f"{'homework':24s} " + " ".join(f"{s:>10s}" for s in STUDENTS))
    for name in names:
        cells = [scores[name, s] for s in STUDENTS]
        total = [f"{sum(v[0] for v in c.values()):g}/{sum(v[1] for v in c.values()):g}" for c in cells]
        print(f"{name:24s} " + " ".join(f"{t:>10s}" for t in total))
        print(f"{'  seconds to autograde':24s} " + " ".join(f"{seconds[name, s]:10.1f}" for s in STUDENTS))
        manual = manual_grade_ids(name)
        for gid in sorted(cells[0]):
            note = "  (graded by hand: autograde gives 0)" if gid in manual else ""
            print(f"  {gid:22s} " + " ".join(f"{c[gid][0]:>10g}" for c in cells) + note)


if __name__ == "__main__":
    main(sys.argv[1:])
