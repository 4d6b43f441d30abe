"""Grade demo: made-up students (honest ones and attackers) graded by grader/grade.py.

Usage: python -m grader.demo [--timeout SECONDS] [--jobs N] [--students a,b] [hw ...]
       python -m grader.demo --bench N [hw ...]     (time a class of N solutions)
(``scripts/grade_demo.py`` and ``make grade-demo`` run the same.)

In a temporary copy of the course it registers each homework (``nbgrader
generate_assignment``), writes one submission per made-up student into
submitted/<student>/<hw>/, grades the class with scripts/grade.py, and prints the score
matrix read back from nbgrader's gradebook. Honest students:

- ``solution``  the instructor's solution pasted into the answer cells: full marks;
- ``release``   the untouched release (every answer raises NotImplementedError): 0;
- ``noisy``     the solution, plus prints to stderr and a UserWarning at definition and at
  every call: full marks;
- ``loop``      the solution with one answer that never returns: only its tests lose;
- ``crash``     the solution, but the last answer kills its Python process when called:
  only its tests lose;
- ``duplicate`` the solution with a test cell pasted twice (same grade id): full marks.

Attackers (each must score 0; their answers are the release's stubs plus the attack):

- ``edited``      test cells replaced by ``pass``;
- ``reference``   answers that call the lmcourse reference, transformers or tokenizers;
- ``lowlevel``    the reference reached by other routes: runpy / importlib on the
  repository's files, captured as default arguments, and torch's own operators
  (``torch.ops.aten``, ``torch._C._nn``) for the homeworks that forbid them;
- ``transformer`` IPython input / AST transformers and a patched ``compile`` that turn
  later cells into no-ops;
- ``helpers``     replaces the grading helpers (``lmcourse.grading``), ``torch.allclose``,
  ``torch.equal``, ``builtins.isinstance`` and ``AssertionError``;
- ``rig``         answers return tensors whose ``==`` is always true;
- ``course``      reads the instructor's solutions and other students' submissions (and
  runs them), edits ``gradebook.db``, writes into the course, opens a network socket;
- ``fork``        a forked child that outlives the call and then writes to the course;
- ``root``        remounts the sandbox's file system read-write, unmounts its tmpfs, writes
  into the grader's own packages (the escape that works when a sandbox keeps root's
  capabilities);
- ``bomb``        answers that return a stride-0 tensor of 2^40 elements, a structure of
  shared references that doubles at every level, a 200 MB reply, a ``{"__dtype__": ...}``
  dict naming another torch attribute, a tensor view of a larger storage;
- ``shadow``      a markdown copy of every answer cell (same grade id) placed before the
  real, cheating one;
- ``leak``        every answer raises an error whose message repeats its inputs (the
  feedback must not show them for hidden checks);

Limits (not in the default list; the tests run them with small limits):

- ``sleeper``     the solution, sleeping just under the per-call limit at every call: its
  grading time is bounded by the per-cell limit and the student's budget.

The students of ``grader/students/<hw>.py`` (honest students in other styles, partial
and attacking ones with the exact points they must get) are graded too; see
:mod:`grader.students`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import Optional

import nbformat

from grader import students as demo_students
from grader.course import ROOT, homeworks, make_course, nbgrader
from grader.demo_cases import CHEATS, LOOPS
from grader.grade import grade_class
from grader.notebook import strip_solution_markers
from grader.sandbox import bwrap_available

HONEST = ("solution", "release", "noisy", "loop", "crash", "duplicate")
ATTACKS = ("edited", "reference", "lowlevel", "transformer", "helpers", "rig", "course", "fork",
           "root", "bomb", "shadow", "leak")
STUDENTS = HONEST + ATTACKS
CANARY = "PWNED"
SLEEPER_SECONDS = 1.8  # the sleeper's pause at every call (tests: per-call limit 2 s)  # a file the attackers try to create in the course and next to it

# answer function -> (lmcourse module, reference function with the same signature)
REFERENCES = {
    "log_softmax": ("metrics", "log_softmax"), "entropy": ("metrics", "entropy"),
    "surprisal": ("metrics", "surprisal"), "perplexity": ("metrics", "perplexity"),
    "causal_mask": ("model", "causal_mask"), "kv_cache_bytes": ("long_context", "kv_cache_bytes"),
    "apply_temperature": ("sampling", "apply_temperature"), "top_k_filter": ("sampling", "top_k_filter"),
    "top_p_filter": ("sampling", "top_p_filter"),
    "apply_repetition_penalty": ("sampling", "apply_repetition_penalty"),
}
# the same through torch's own operators (disabled in the sandbox of these homeworks)
TORCH_ROUTES = {
    "log_softmax": "def log_softmax(x, dim=-1):\n    return torch.ops.aten._log_softmax.default(x, dim, False)\n",
    "masked_cross_entropy": (
        "def masked_cross_entropy(logits, targets, ignore_index=-100):\n"
        "    V = logits.size(-1)\n"
        "    return torch._C._nn.cross_entropy_loss(logits.reshape(-1, V), targets.reshape(-1), None, 1, ignore_index, 0.0)\n"),
    "masked_attention": (
        "def masked_attention(q, k, v, mask=None):\n"
        "    w = torch.softmax(q @ k.transpose(-2, -1) / q.size(-1) ** 0.5, -1)\n"
        "    return torch.ops.aten.scaled_dot_product_attention(q, k, v, None, 0.0, True), w\n"),
}


def _nbg(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _answer_cells(nb):
    return [c for c in nb.cells if _nbg(c).get("solution") and c.cell_type == "code"]


def _functions(source: str) -> list[str]:
    import ast

    return [n.name for n in ast.parse(source).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _classes(source: str) -> list[str]:
    import ast

    return [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]


def _attack_prelude(kind: str, course: str, name: str) -> str:
    """Code put at the top of the first answer cell of attacker ``kind``."""
    if kind == "transformer":
        return '''import ast
import builtins


class _Nothing(ast.NodeTransformer):
    def visit_Module(self, node):
        return ast.Module(body=[ast.Pass()], type_ignores=[])


try:  # every later cell, the locked test cells included, becomes `pass`
    get_ipython().ast_transformers.append(_Nothing())  # noqa: F821
    get_ipython().input_transformers_cleanup.append(lambda lines: ["pass\\n"])  # noqa: F821
except NameError:
    pass
_compile = builtins.compile
builtins.compile = lambda src, *a, **k: _compile("pass", *a, **k)
'''
    if kind == "helpers":
        return '''import builtins

import torch

try:
    import lmcourse.grading as _g

    _g.check_tensor = _g.check_float = lambda *a, **k: None
except ImportError:
    pass
torch.allclose = torch.equal = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)
builtins.isinstance = lambda obj, cls: True
builtins.AssertionError = type("AssertionError", (Warning,), {})
'''
    if kind == "course":
        return f'''import glob
import json
import os
import socket
import sqlite3

COURSE = {course!r}
for _pattern in ("solutions/{name}/*.ipynb", "submitted/solution/{name}/*.ipynb", "submitted/*/{name}/*.ipynb"):
    for _path in glob.glob(os.path.join(COURSE, _pattern)):  # someone else's answers: run them
        for _cell in json.load(open(_path))["cells"]:
            if _cell.get("metadata", {{}}).get("nbgrader", {{}}).get("solution"):
                try:
                    exec("".join(_cell["source"]).replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""))
                except Exception:
                    pass
for _target in (COURSE, os.path.dirname(COURSE), os.path.expanduser("~"), "/tmp"):
    try:
        open(os.path.join(_target, {CANARY!r}), "w").write("x")
    except OSError:
        pass
try:
    _db = sqlite3.connect(os.path.join(COURSE, "gradebook.db"))
    _db.execute("UPDATE grade SET auto_score = 100")
    _db.commit()
except Exception:
    pass
try:
    socket.create_connection(("pypi.org", 443), timeout=2)
    open(os.path.join(COURSE, {CANARY!r}), "w").write("network")
except OSError:
    pass
'''
    if kind == "fork":
        return f'''import os
import sqlite3
import time

COURSE = {course!r}
if os.fork() == 0:  # a child that outlives the call, then writes to the course
    time.sleep(5)
    try:
        open(os.path.join(COURSE, {CANARY!r}), "w").write("fork")
        sqlite3.connect(os.path.join(COURSE, "gradebook.db")).execute("UPDATE grade SET auto_score = 100").connection.commit()
    except Exception:
        pass
    os._exit(0)
'''
    if kind == "root":
        return f'''import ctypes
import os

import torch

COURSE = {course!r}
_libc = ctypes.CDLL(None, use_errno=True)
_site = os.path.dirname(os.path.dirname(torch.__file__))
for _target in ("/", "/usr", _site, "/tmp"):  # remount read-write, unmount the private tmpfs
    _libc.mount(None, _target.encode(), None, 32 | 4096, None)
    _libc.umount2(_target.encode(), 2)
for _target in (_site, os.path.join(_site, "torch"), COURSE, "/"):
    try:
        open(os.path.join(_target, {CANARY!r}), "w").write("root")
    except OSError:
        pass
'''
    if kind == "bomb":
        return '''import gc
import os

import torch


def _send_raw(msg):
    """Write a crafted reply straight into the protocol pipe, then die."""
    session = next(o for o in gc.get_objects() if type(o).__name__ == "Session")
    session.protocol.write_message(session.out, msg)
    os._exit(0)


def _bomb(i):
    if i == 0:
        return torch.zeros(1).expand(2**40)  # stride 0: .sum() would run for hours
    if i == 1:
        x = []
        for _ in range(60):  # shared references: 2^60 lists when walked
            x = [x, x]
        return x
    if i == 2:
        return "x" * (200 * 2**20)  # a huge reply
    if i == 3:
        return {"__dtype__": "load"}  # getattr(torch, "load")
    if i == 4:
        return torch.zeros(10**6)[:3]  # a view of a larger storage
    return {"__gpt__": {}, "state": {}, "training": True}  # a tag the sandbox may not send
'''
    if kind == "lowlevel":
        return f'''import importlib.util
import runpy

import torch

REPO = {ROOT!r}


def _reference(module):
    """The reference module's namespace, read from the repository's files."""
    path = REPO + "/lmcourse/" + module + ".py"
    try:
        return runpy.run_path(path)
    except Exception:
        pass
    try:
        spec = importlib.util.spec_from_file_location("lmcourse." + module, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return vars(mod)
    except Exception:
        return {{}}
'''
    return ""


def _attack_answer(kind: str, source: str, stub: str) -> str:
    """The answer cell of attacker ``kind`` (``source``: the instructor's answer)."""
    funcs = _functions(strip_solution_markers(source))
    out = stub
    if kind == "rig":
        for f in funcs:
            out += f'''

class _Yes(torch.Tensor):
    def __eq__(self, other):
        return True

    def __bool__(self):
        return True


def {f}(*args, **kwargs):
    return torch.zeros(1).as_subclass(_Yes)
'''
    if kind == "bomb":
        for i, f in enumerate(funcs):
            out += f"\n\ndef {f}(*args, **kwargs):\n    _send_raw({{'ok': _bomb({i} % 6)}})\n"
    if kind == "leak":
        for f in funcs:
            out += f"\n\ndef {f}(*args, **kwargs):\n    raise ValueError('my inputs: ' + repr(args)[:3000] + repr(kwargs)[:1000])\n"
    if kind == "lowlevel":
        for f in funcs:
            if f in TORCH_ROUTES:
                out += "\n\n" + TORCH_ROUTES[f]
            elif f in REFERENCES:
                mod, ref = REFERENCES[f]
                out += f"\n\ndef {f}(*args, _ref=_reference({mod!r}).get({ref!r}), **kwargs):\n    return _ref(*args, **kwargs)\n"
    return out


def submission(kind: str, release_nb, solution_nb, name: str, course: str):
    """The notebook that made-up student ``kind`` hands in for homework ``name``."""
    nb = nbformat.from_dict(release_nb)
    solutions = {_nbg(c)["grade_id"]: c.source for c in _answer_cells(solution_nb)}
    answers = _answer_cells(nb)
    honest_with_solution = kind in ("solution", "noisy", "loop", "crash", "duplicate", "sleeper")
    for i, cell in enumerate(answers):
        gid = _nbg(cell)["grade_id"]
        sol = strip_solution_markers(solutions[gid])
        if honest_with_solution:
            cell.source = sol
        if kind == "noisy":
            wraps = "".join(
                f"\n\n_noisy_{f} = {f}\n\n\ndef {f}(*args, **kwargs):\n"
                f"    print('debug: calling {f}', file=sys.stderr)\n"
                f"    warnings.warn('a leftover warning', UserWarning)\n"
                f"    return _noisy_{f}(*args, **kwargs)\n" for f in _functions(sol))
            cell.source = ("import sys\nimport warnings\n\nprint('debug: defining', file=sys.stderr)\n"
                           "warnings.warn('a warning at definition')\n\n" + sol + wraps)
        if kind == "loop" and gid in LOOPS.get(name, {}):
            cell.source = LOOPS[name][gid]
        if kind == "crash" and i == len(answers) - 1:
            cell.source = sol + "".join(
                f"\n\n_crash_{f} = {f}\n\n\ndef {f}(*args, **kwargs):\n    import os\n\n    os.kill(os.getpid(), 9)\n"
                for f in _functions(sol))
            cell.source += "".join(  # a class: calling an instance kills the process
                f"\n\n{c}.__call__ = lambda self, *args, **kwargs: __import__('os').kill(__import__('os').getpid(), 9)\n"
                for c in _classes(sol))
        if kind == "sleeper":
            cell.source = sol + "".join(
                f"\n\n_slow_{f} = {f}\n\n\ndef {f}(*args, **kwargs):\n    import time\n\n"
                f"    time.sleep(SLEEP)\n    return _slow_{f}(*args, **kwargs)\n" for f in _functions(sol))
            if i == 0:
                cell.source = f"SLEEP = {SLEEPER_SECONDS!r}\n" + cell.source
        if kind == "reference":
            cell.source = CHEATS.get(name, {}).get(gid, cell.source)
        if kind in ("rig", "lowlevel", "bomb", "leak"):
            cell.source = _attack_answer(kind, solutions[gid], cell.source)
        if i == 0:
            cell.source = _attack_prelude(kind, course, name) + cell.source
    if kind == "edited":
        for cell in nb.cells:
            if _nbg(cell).get("grade") and not _nbg(cell).get("solution"):
                cell.source = "pass"
    if kind == "shadow":  # a clean markdown copy of the solution before each (cheating) code cell
        for cell in list(_answer_cells(nb)):
            gid = _nbg(cell)["grade_id"]
            cell.source = CHEATS.get(name, {}).get(gid, cell.source)
            md = nbformat.v4.new_markdown_cell(strip_solution_markers(solutions[gid]))
            md.metadata["nbgrader"] = dict(_nbg(cell))
            md["id"] = cell.get("id", "cell") + "-md"
            nb.cells.insert(nb.cells.index(cell), md)
    if kind == "duplicate":
        tests = [c for c in nb.cells if _nbg(c).get("grade") and not _nbg(c).get("solution")]
        twin = nbformat.from_dict(tests[0])  # same nbgrader grade_id; a new notebook cell id
        twin["id"] = tests[0].get("id", "cell") + "-copy"
        nb.cells.insert(nb.cells.index(tests[0]) + 1, twin)
    return nb


def manual_grade_ids(name: str, root: str = ROOT) -> set[str]:
    """Grade ids of the cells graded by hand (nbgrader: solution and grade)."""
    nb = nbformat.read(os.path.join(root, "solutions", name, f"{name}.ipynb"), as_version=4)
    return {_nbg(c)["grade_id"] for c in nb.cells if _nbg(c).get("grade") and _nbg(c).get("solution")}


def setup_course(course: str, names: list[str], students=STUDENTS, custom: Optional[dict] = None) -> None:
    """A course in ``course`` with the homework registered and one submission per student.

    ``custom``: ``{hw: STUDENTS}`` of grader/students (their ids: :func:`students.demo_id`).
    """
    make_course(course)
    for name in names:
        nbgrader(course, "generate_assignment", name, "--force")
        release_nb = nbformat.read(os.path.join(course, "assignments", name, f"{name}.ipynb"), as_version=4)
        solution_nb = nbformat.read(os.path.join(course, "solutions", name, f"{name}.ipynb"), as_version=4)
        for student in students:
            out = os.path.join(course, "submitted", student, name)
            os.makedirs(out, exist_ok=True)
            nbformat.write(submission(student, release_nb, solution_nb, name, course), os.path.join(out, f"{name}.ipynb"))
        for key, spec in (custom or {}).get(name, {}).items():
            out = os.path.join(course, "submitted", demo_students.demo_id(key), name)
            os.makedirs(out, exist_ok=True)
            nbformat.write(demo_students.notebook(release_nb, solution_nb, spec), os.path.join(out, f"{name}.ipynb"))


def read_scores(course: str, names: list[str], students=STUDENTS) -> dict:
    """{(hw, student): {grade_id: (score, max)}} from the gradebook."""
    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook("sqlite:///" + os.path.join(course, "gradebook.db"), "lmcourse") as gb:
        for name in names:
            for student in students:
                sub = gb.find_submission(name, student)
                scores[name, student] = {g.name: (float(g.score), float(g.max_score)) for nb in sub.notebooks for g in nb.grades}
    return scores


def canary_paths(course: str) -> list[str]:
    """Where the attackers try to leave a file: the course, next to it, home, /tmp, the packages."""
    import torch

    site = os.path.dirname(os.path.dirname(torch.__file__))
    return [os.path.join(d, CANARY) for d in (course, os.path.dirname(course), os.path.expanduser("~"), "/tmp",
                                               site, os.path.join(site, "torch"), "/")]


def grade(names: list[str], timeout: float = 60, students=STUDENTS, jobs: int = 2, course: Optional[str] = None,
          log=print, custom: Optional[dict] = None, **limits) -> tuple[dict, dict, list[str]]:
    """Return (scores, {(hw, student): seconds}, canaries found) for a fresh demo course.

    ``custom``: ``{hw: STUDENTS}`` (default: grader/students for each homework); their
    scores are keyed by :func:`students.demo_id`. ``limits``: ``cell_timeout``, ``budget``.
    """
    tmp = None
    if course is None:
        tmp = tempfile.mkdtemp(prefix="lmcourse-demo-")
        course = os.path.join(tmp, "course")
    if custom is None:
        custom = {name: demo_students.load(name) for name in names}
    try:
        setup_course(course, names, students, custom)
        seconds, scores = {}, {}
        for name in names:
            ids = list(students) + [demo_students.demo_id(k) for k in custom.get(name, {})]
            done = grade_class(course, name, ids, jobs=jobs, timeout=timeout, log=log, **limits)
            seconds.update({(name, s): secs for s, (_, secs) in done.items()})
            scores.update(read_scores(course, [name], ids))
        canaries = [p for p in canary_paths(course) if os.path.exists(p)]
        return scores, seconds, canaries
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def expected_ok(name: str, student: str, cells: dict) -> bool:
    """Whether ``student``'s scores on ``name`` are what the design promises."""
    auto = {g: v for g, v in cells.items() if g not in manual_grade_ids(name)}
    full = all(s == m for s, m in auto.values())
    if student in ("solution", "noisy", "duplicate"):
        return full
    if student in ("loop", "crash"):
        return 0 < sum(s for s, _ in auto.values()) < sum(m for _, m in auto.values())
    return all(s == 0 for s, _ in cells.values())


def bench(name: str, n: int, timeout: float, jobs: int) -> float:
    """Seconds to grade a class of ``n`` copies of the solution of ``name`` (prints per student)."""
    import time

    with tempfile.TemporaryDirectory(prefix="lmcourse-bench-") as tmp:
        course = os.path.join(tmp, "course")
        setup_course(course, [name], students=("solution",))
        src = os.path.join(course, "submitted", "solution", name, f"{name}.ipynb")
        students = [f"student{i:03d}" for i in range(n)]
        for s in students:
            os.makedirs(os.path.join(course, "submitted", s, name))
            shutil.copy(src, os.path.join(course, "submitted", s, name, f"{name}.ipynb"))
        t0 = time.perf_counter()
        done = grade_class(course, name, students, jobs=jobs, timeout=timeout, log=lambda *a: None)
        wall = time.perf_counter() - t0
    per = sorted(secs for _, secs in done.values())
    print(f"{name}: {n} students graded in {wall:.0f} s with {jobs} jobs ({wall / n:.1f} s of wall time per "
          f"student; each student {per[0]:.1f}-{per[-1]:.1f} s); a class of 100: about {100 * wall / n / 60:.1f} min")
    return wall


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=20, help="seconds per call into a student's code (default 20)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--students", default=",".join(STUDENTS))
    parser.add_argument("homework", nargs="*")
    parser.add_argument("--bench", type=int, metavar="N",
                        help="instead: time grading a class of N copies of the solution (per homework)")
    args = parser.parse_args(argv)
    if not bwrap_available():
        sys.exit("bubblewrap is needed (scripts/install_bubblewrap.sh)")
    names = args.homework or homeworks(ROOT)
    if args.bench:
        for name in names:
            bench(name, args.bench, args.timeout, args.jobs)
        return
    students = tuple(args.students.split(","))
    scores, seconds, canaries = grade(names, args.timeout, students, args.jobs, log=lambda *a: None)
    bad = []
    for name in names:
        print(f"\n{name}")
        print(f"  {'test cell':24s} " + " ".join(f"{s[:9]:>9s}" for s in students))
        for gid in sorted(scores[name, students[0]]):
            print(f"  {gid:24s} " + " ".join(f"{scores[name, s][gid][0]:>9g}" for s in students))
        print(f"  {'total':24s} " + " ".join(f"{sum(v[0] for v in scores[name, s].values()):>9g}" for s in students))
        print(f"  {'seconds':24s} " + " ".join(f"{seconds[name, s]:>9.1f}" for s in students))
        bad += [(name, s) for s in students if not expected_ok(name, s, scores[name, s])]
        for key, spec in demo_students.load(name).items():
            sid = demo_students.demo_id(key)
            wrong = demo_students.mismatches(spec, scores[name, sid], manual_grade_ids(name))
            total = sum(v[0] for v in scores[name, sid].values())
            print(f"  {spec['kind']:8s} {key:28s} {total:>6g}  {seconds.get((name, sid), 0):6.1f} s  "
                  + ("ok" if not wrong else "UNEXPECTED: " + "; ".join(wrong)))
            if wrong:
                bad.append((name, sid))
    print("\ncanary files written by attackers:", canaries or "none")
    print("unexpected scores:", bad or "none")
    if bad or canaries:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
