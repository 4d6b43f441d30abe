"""Regenerate the student release assignments/<hw>/ from solutions/<hw>/ with nbgrader.

Usage: python scripts/release_assignments.py [hw ...]     (default: every homework)

nbgrader runs in a temporary copy of the course (solutions/ + nbgrader_config.py) so no
gradebook.db is left in the repository; its release (assignments/<hw>/) is then copied here.
The course helpers live in the grading package (grader/course.py).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # the grading package lives at the repository root, outside the wheel
    sys.path.insert(0, ROOT)

from grader.course import NBGRADER, env, homeworks, make_course, nbgrader  # noqa: E402

__all__ = ["NBGRADER", "ROOT", "env", "generate", "homeworks", "make_course", "nbgrader"]


def generate(names: list[str], out: str, root: str = ROOT) -> None:
    """Generate the release of each homework in ``names`` into ``out``/<hw>/."""
    with tempfile.TemporaryDirectory() as tmp:
        course = make_course(os.path.join(tmp, "course"), root)
        for name in names:
            nbgrader(course, "generate_assignment", name, "--force")
            target = os.path.join(out, name)
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(os.path.join(course, "assignments", name), target)


def main(argv: list[str]) -> None:
    names = argv or homeworks()
    generate(names, os.path.join(ROOT, "assignments"))
    for name in names:
        print(f"released assignments/{name}/")


if __name__ == "__main__":
    main(sys.argv[1:])
