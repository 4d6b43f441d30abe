"""Grade the homework of a class outside the students' kernels (the trusted side).

Usage:
    python -m grader.grade HW [--student ID ...] [--jobs N] [--timeout S] [--course DIR]
    python -m grader.grade HW --notebook SUBMISSION.ipynb      (one file, print the report)
(``scripts/grade.py`` and ``make grade HW=...`` run the same.)

For every ``submitted/<student>/<HW>/<HW>.ipynb`` of the nbgrader course it

1. takes from the submission only the student's answer cells (code cells with nbgrader
   ``solution``, by ``grade_id``); every other cell comes from the instructor's
   ``solutions/<HW>/<HW>.ipynb``. A symlinked or non-regular submission is refused;
2. runs those answer cells in a bubblewrap sandbox (grader/sandbox.py), never privileged,
   one sandbox per student at a time, with time, memory, process and tmpfs limits;
3. runs each test cell here, where the student's functions and classes are proxies that
   exchange plain data with the sandbox (grader/submission.py), with a time limit per call,
   per test cell and per student; a grading process that runs past its hard limit is
   killed and restarted, so one stuck student never blocks the class;
4. writes the (partial) scores into nbgrader's gradebook and
   ``autograded/<student>/<HW>/<HW>.ipynb`` (each check's name, points and pass/fail, for
   ``nbgrader generate_feedback``);
5. prints the similarity report (grader/similarity.py) and writes it to
   ``similarity-<HW>.csv`` in the course folder. It never changes a score.

Per-test-cell options live in the instructor notebook's cell metadata
``{"lmcourse": {"allow": ["lmcourse.model"], "block_ops": ["log_softmax"]}}``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.connection
import os
import resource
import sys
import time
from typing import Optional

import nbformat

from grader.course import ROOT
from grader.gradebook import feedback_text, write_autograded, write_gradebook
from grader.notebook import (
    SubmissionRefused,
    answer_sources,
    check_submission_folder,
    read_submission,
)
from grader.sandbox import SandboxStartError, bwrap_available
from grader.submission import BUDGET, CELL_TIMEOUT, TIMEOUT, InstructorError, grade_notebook

TRUSTED_MEMORY_BYTES = 24 * 2**30  # address space of one grading process (tests and references)


def _slot_main(slot: int, conn) -> None:
    """One grading process: grade the submissions it is sent, one at a time."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > TRUSTED_MEMORY_BYTES:
        resource.setrlimit(resource.RLIMIT_AS, (TRUSTED_MEMORY_BYTES, hard))
    while True:
        task = conn.recv()
        if task is None:
            return
        student, kwargs = task
        t0 = time.perf_counter()
        try:
            out = grade_notebook(slot=slot, **kwargs)
        except InstructorError as e:
            out = ("instructor", str(e))
        except SubmissionRefused as e:
            out = ("refused", str(e))
        except (Exception, SandboxStartError) as e:  # noqa: BLE001 - reported, the class goes on
            out = ("error", f"{type(e).__name__}: {e}")
        conn.send((student, out, time.perf_counter() - t0))


class _Slot:
    def __init__(self, ctx, slot: int):
        self.slot = slot
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_slot_main, args=(slot, child), daemon=True)
        self.proc.start()
        child.close()
        self.task: Optional[str] = None
        self.started = 0.0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join()
        self.conn.close()


def grade_class(course: str, hw: str, students: Optional[list[str]] = None, jobs: int = 2,
                timeout: float = TIMEOUT, isolate: bool = True, log=print, cell_timeout: float = CELL_TIMEOUT,
                budget: float = BUDGET, hard_limit: Optional[float] = None, similarity: bool = True) -> dict:
    """Grade every submission of ``hw``; return ``{student: (results, seconds)}``.

    A student whose grading fails (refused file, crash of the grading process, past
    ``hard_limit`` seconds) is reported and left out; an :class:`InstructorError` stops it all.
    """
    nb_name = hw
    source_path = os.path.join(course, "solutions", hw, f"{nb_name}.ipynb")
    release = nbformat.read(os.path.join(course, "assignments", hw, f"{nb_name}.ipynb"), as_version=4)
    sub_root = os.path.join(course, "submitted")
    students = students or sorted(s for s in os.listdir(sub_root)
                                  if os.path.isdir(os.path.join(sub_root, s, hw)))
    hard_limit = hard_limit or (2 * budget + 300)
    out, failed = {}, []
    todo = []
    for s in students:
        folder = os.path.join(sub_root, s, hw)
        bad = check_submission_folder(folder) if os.path.isdir(folder) and not os.path.islink(folder) else []
        if bad:
            log(f"{s:20s} NOT GRADED: the submission holds {'; '.join(bad)} (only regular files are accepted)")
            failed.append(s)
            continue
        todo.append(s)
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that has torch threads
    slots = [_Slot(ctx, i) for i in range(max(1, min(jobs, len(todo))))] if todo else []
    pending = list(todo)
    try:
        while pending or any(s.task for s in slots):
            for sl in slots:
                if sl.task is None and pending:
                    student = pending.pop(0)
                    kwargs = dict(source_path=source_path, submission_path=os.path.join(sub_root, student, hw, f"{nb_name}.ipynb"),
                                  timeout=timeout, isolate=isolate, cell_timeout=cell_timeout, budget=budget,
                                  submission_root=sub_root)
                    sl.conn.send((student, kwargs))
                    sl.task, sl.started = student, time.monotonic()
            busy = [sl for sl in slots if sl.task]
            ready = multiprocessing.connection.wait([sl.conn for sl in busy] + [sl.proc.sentinel for sl in busy], 1.0)
            for i, sl in enumerate(slots):
                if not sl.task:
                    continue
                res = None
                if sl.conn in ready:
                    try:
                        student, res, secs = sl.conn.recv()
                    except (EOFError, OSError):
                        res = None
                if res is None and (sl.conn in ready or sl.proc.sentinel in ready
                                    or time.monotonic() - sl.started > hard_limit):
                    why = ("the grading process died" if not sl.proc.is_alive()
                           else f"grading took longer than {hard_limit:g} s and was stopped")
                    student, res, secs = sl.task, ("error", why), time.monotonic() - sl.started
                    sl.kill()
                    slots[i] = _Slot(ctx, sl.slot)
                    sl = slots[i]
                if res is None:
                    continue
                sl.task = None
                if isinstance(res, tuple):
                    kind, text = res
                    if kind == "instructor":
                        raise InstructorError(text)
                    log(f"{student:20s} NOT GRADED: {text}")
                    failed.append(student)
                    continue
                sub_path = os.path.join(sub_root, student, hw, f"{nb_name}.ipynb")
                submission = read_submission(sub_path, sub_root)
                write_autograded(course, hw, student, release, submission, answer_sources(submission), res)
                write_gradebook(course, hw, student, nb_name, res)
                out[student] = (res, secs)
                total = sum(r.score for r in res)
                log(f"{student:20s} {total:g}/{sum(r.points for r in res):g}  ({secs:.1f} s)")
    finally:
        for sl in slots:
            if sl.task is None:
                try:
                    sl.conn.send(None)
                except OSError:
                    pass
            sl.proc.join(timeout=5)
            if sl.proc.is_alive():
                sl.kill()
    if failed:
        log(f"not graded (see above): {', '.join(failed)}")
    if similarity and out:
        from grader.similarity import class_report, write_csv

        flags = class_report(course, hw, sorted(out))
        path = os.path.join(course, f"similarity-{hw}.csv")
        write_csv(flags, path)
        log(f"similarity report ({len(flags)} answers to review, scores unchanged): {path}")
        for f in flags:
            log(f"  {f.student:20s} {f.cell:24s} {f.similarity:.2f} like {f.like}")
    return out


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("homework")
    p.add_argument("--course", default=ROOT, help="the nbgrader course root (default: the repository)")
    p.add_argument("--student", action="append", help="grade only these students (repeatable)")
    p.add_argument("--notebook", help="grade this one notebook and print the report (no gradebook)")
    p.add_argument("--jobs", type=int, default=2, help="students graded at the same time (default 2)")
    p.add_argument("--timeout", type=float, default=TIMEOUT, help=f"seconds per call into the student's code (default {TIMEOUT:g})")
    p.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT,
                   help=f"seconds per test cell, student code and reference together (default {CELL_TIMEOUT:g})")
    p.add_argument("--budget", type=float, default=BUDGET, help=f"seconds per student, all cells (default {BUDGET:g})")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run student code without bubblewrap (it can then read and write your files)")
    a = p.parse_args(argv)
    isolate = not a.no_sandbox
    if isolate and not bwrap_available():
        sys.exit("bubblewrap (bwrap) is missing or cannot create namespaces here: install it "
                 "(sudo apt-get install bubblewrap) or see the instructors' page; --no-sandbox "
                 "grades without isolation")
    source = os.path.join(a.course, "solutions", a.homework, f"{a.homework}.ipynb")
    if a.notebook:
        try:
            results = grade_notebook(source, a.notebook, a.timeout, isolate, a.cell_timeout, a.budget)
        except SubmissionRefused as e:
            sys.exit(f"NOT GRADED: {e}")
        for r in results:
            print(feedback_text(r))
        return
    t0 = time.perf_counter()
    sub_root = os.path.join(a.course, "submitted")
    students = a.student or sorted(s for s in os.listdir(sub_root) if os.path.isdir(os.path.join(sub_root, s, a.homework)))
    try:
        done = grade_class(a.course, a.homework, students, a.jobs, a.timeout, isolate,
                           cell_timeout=a.cell_timeout, budget=a.budget)
    except InstructorError as e:
        sys.exit(f"the homework is wrong, nothing was graded further: {e}")
    print(f"graded {len(done)} submissions of {a.homework} in {time.perf_counter() - t0:.0f} s")
    if len(done) < len(students):
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
