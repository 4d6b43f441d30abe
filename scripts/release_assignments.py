"""Regenerate the student release assignments/<hw>/ from solutions/<hw>/ with nbgrader.

Usage: python scripts/release_assignments.py [hw ...]     (default: every homework)

nbgrader runs in a temporary copy of the course (solutions/ + nbgrader_config.py) so no
gradebook.db is left in the repository; its release (assignments/<hw>/) is then copied here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NBGRADER = os.path.join(os.path.dirname(sys.executable), "nbgrader")


def homeworks(root: str = ROOT) -> list[str]:
    """Names of the homework folders in solutions/."""
    src = os.path.join(root, "solutions")
    return sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)) and d.startswith("hw"))


def make_course(dest: str, root: str = ROOT) -> str:
    """Copy the nbgrader source of the course into ``dest`` (a fresh course directory)."""
    shutil.copytree(os.path.join(root, "solutions"), os.path.join(dest, "solutions"))
    shutil.copy(os.path.join(root, "nbgrader_config.py"), dest)
    os.makedirs(os.path.join(dest, "scripts"), exist_ok=True)
    shutil.copy(os.path.join(root, "scripts", "nbgrader_export.py"), os.path.join(dest, "scripts"))
    return dest


def env() -> dict:
    """The environment with the venv's bin/ first on PATH (nbgrader runs ``alembic``, kernels)."""
    e = dict(os.environ)
    e["PATH"] = os.path.dirname(NBGRADER) + os.pathsep + e.get("PATH", "")
    e.setdefault("PYTHONHASHSEED", "0")
    e.setdefault("MPLBACKEND", "Agg")
    return e


def nbgrader(course: str, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run ``nbgrader args...`` in the course directory ``course``; raise with its log on failure."""
    proc = subprocess.run(
        [NBGRADER, *args, "--CourseDirectory.root=" + course],
        cwd=course,
        capture_output=True,
        text=True,
        env=env(),
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


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
