"""The nbgrader course: its homework, a temporary copy of it, running nbgrader in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

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
    pp = e.get("PYTHONPATH", "")
    e["PYTHONPATH"] = ROOT + (os.pathsep + pp if pp else "")
    return e


def nbgrader(course: str, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run ``nbgrader args...`` in the course directory ``course``; raise with its log on failure."""
    proc = subprocess.run(
        [NBGRADER, *args, "--CourseDirectory.root=" + course],
        cwd=course, capture_output=True, text=True, env=env(), timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc
