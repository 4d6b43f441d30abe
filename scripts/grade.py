"""Grade the homework of a class outside the students' kernels (the trusted side).

Usage:
    python scripts/grade.py HW [--student ID ...] [--jobs N] [--timeout S] [--course DIR]
    python scripts/grade.py HW --notebook SUBMISSION.ipynb      (one file, print the report)

For every ``submitted/<student>/<HW>/<HW>.ipynb`` of the nbgrader course it

1. takes from the submission only the student's answer cells (the nbgrader ``solution``
   cells, by ``grade_id``); every other cell (explanations, locked code, the tests) comes
   from the instructor's ``solutions/<HW>/<HW>.ipynb``;
2. runs those answer cells in a fresh Python (``scripts/grade_sandbox.py``) inside a
   bubblewrap sandbox: read-only view of the Python interpreter, torch and the lmcourse
   modules the part may use (the reference modules are absent), a private writable /tmp,
   no network, no view of the course (solutions, gradebook, other students, repository),
   a time limit per call and a memory limit;
3. runs each test cell (visible and hidden tests) here, in a fresh namespace where the
   student's functions and classes are proxies: calling one sends plain data (tensors,
   numbers, lists, ...) to the sandbox and gets plain data back, so the comparisons with
   the reference computed here cannot be rigged from the student's code. A call that
   hangs or kills the sandbox fails the tests that made it; the sandbox is restarted for
   the next ones. What the student's code prints (stdout, stderr, warnings) never counts;
4. writes the scores into nbgrader's gradebook (test cells = autograded scores, written
   answers left for hand grading) and ``autograded/<student>/<HW>/<HW>.ipynb`` whose test
   cells show the visible tests and, as output, each test's name, points and failure
   message (never the hidden tests' code or inputs), for ``nbgrader generate_feedback``.

Per-test-cell grading options live in the instructor notebook's cell metadata
``{"lmcourse": {"allow": ["lmcourse.model"], "block_ops": ["log_softmax"]}}``: the lmcourse
modules the sandbox of that test may import, and the ATen operators disabled there.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import copy
import dataclasses
import io
import json
import multiprocessing
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings
from typing import Any, Optional

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "grade_sandbox.py")
MEMORY_BYTES = 6 * 2**30
STARTUP_SECONDS = 300
# distributions the sandboxed Python may import: torch and what torch itself imports
ALLOWED_SITE = ("torch", "functorch", "torchgen", "numpy", "typing_extensions", "sympy", "mpmath",
                "networkx", "jinja2", "markupsafe", "filelock", "fsspec", "nvidia", "triton", "_distutils_hack",
                "regex")
SAFE_EXCEPTIONS = {e.__name__: e for e in (
    ValueError, TypeError, AssertionError, NotImplementedError, IndexError, KeyError, RuntimeError,
    ZeroDivisionError, AttributeError, NameError, ArithmeticError, OverflowError, LookupError,
    StopIteration, RecursionError, ImportError, ModuleNotFoundError)}


class StudentError(Exception):
    """The student's code failed in the sandbox (an exception, a time-out, a crash)."""


class SandboxTimeout(StudentError):
    pass


def _nbg(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def bwrap_available() -> bool:
    exe = shutil.which("bwrap")
    if not exe:
        return False
    r = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
                       capture_output=True)
    return r.returncode == 0


# ---- the sandbox ------------------------------------------------------------------------


def _site_dirs() -> list[str]:
    dirs = []
    for key in ("purelib", "platlib"):
        d = sysconfig.get_paths()[key]
        if d not in dirs and os.path.isdir(d):
            dirs.append(d)
    return dirs


def lmcourse_view(allow: tuple, dest: str) -> str:
    """Copy the allowed lmcourse modules (and nothing else) into dest/lmcourse; return dest."""
    import lmcourse

    src = os.path.dirname(lmcourse.__file__)
    pkg = os.path.join(dest, "lmcourse")
    os.makedirs(pkg, exist_ok=True)
    with open(os.path.join(pkg, "__init__.py"), "w") as f:
        f.write('"""lmcourse while grading: only the modules this part may use."""\n')
    for mod in allow:
        name = mod.split(".", 1)[1]
        shutil.copy(os.path.join(src, name.replace(".", "/") + ".py"), os.path.join(pkg, name + ".py"))
        if name == "data" and os.path.isdir(os.path.join(src, "assets")):
            shutil.copytree(os.path.join(src, "assets"), os.path.join(pkg, "assets"), dirs_exist_ok=True)
    return dest


def sandbox_command(lib: str, config: dict, isolate: bool = True) -> list[str]:
    """The command that starts the worker: bubblewrap around ``python -I grade_sandbox.py``."""
    py = os.path.realpath(sys.executable)
    cfg = dict(config, sys_path=["/sandbox/lib"] if isolate else [lib])
    inner = [sys.executable, "-I", "/sandbox/worker.py" if isolate else WORKER, json.dumps(cfg)]
    if not isolate:
        return inner
    cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
           "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp", "--setenv", "OMP_NUM_THREADS", "1",
           "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/tmp"]
    for d in ("/usr", "/lib", "/lib64", "/bin", "/etc/alternatives", "/etc/ld.so.cache"):
        if os.path.exists(d):
            cmd += ["--ro-bind", d, d]
    for prefix in {sys.base_prefix, sys.prefix, os.path.dirname(os.path.dirname(py))}:
        if not prefix.startswith("/usr"):
            cmd += ["--ro-bind", prefix, prefix]
    for site in _site_dirs() + [sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})["purelib"]]:
        if not os.path.isdir(site):
            continue
        cmd += ["--tmpfs", site]  # an empty site-packages, then only torch and its dependencies
        for entry in sorted(os.listdir(site)):
            base = entry.split("-")[0].split(".")[0].lower()
            if base in ALLOWED_SITE:
                cmd += ["--ro-bind", os.path.join(site, entry), os.path.join(site, entry)]
    cmd += ["--ro-bind", lib, "/sandbox/lib", "--ro-bind", WORKER, "/sandbox/worker.py"]
    if sys.executable != py:  # a venv: its bin/python link
        cmd += ["--ro-bind", os.path.dirname(sys.executable), os.path.dirname(sys.executable)]
    return cmd + inner


class Sandbox:
    """One sandboxed worker process; ``request`` sends a message and waits for the reply."""

    def __init__(self, lib: str, config: dict, timeout: float, isolate: bool):
        self.timeout = timeout
        self.proc = subprocess.Popen(
            sandbox_command(lib, config, isolate), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.dead = False
        try:  # python + torch imports: not counted in the student's time
            self._receive(time.monotonic() + STARTUP_SECONDS)
        except SandboxTimeout:
            raise RuntimeError(f"the sandbox did not start within {STARTUP_SECONDS} s") from None
        except StudentError:
            raise RuntimeError("the sandbox did not start: check `bwrap` with scripts/install_bubblewrap.sh") from None

    def kill(self) -> None:
        self.dead = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def _read(self, n: int, deadline: float) -> bytes:
        fd, chunks = self.proc.stdout.fileno(), []
        while n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.kill()
                raise SandboxTimeout("no answer in time (an infinite loop?)")
            b = os.read(fd, min(n, 1 << 20))
            if not b:
                self.kill()
                raise StudentError("the Python process running your code died (crash, os._exit or memory limit)")
            chunks.append(b)
            n -= len(b)
        return b"".join(chunks)

    def _send(self, msg: dict) -> None:
        import torch

        buf = io.BytesIO()
        torch.save(msg, buf)
        try:
            self.proc.stdin.write(struct.pack("<Q", len(buf.getvalue())) + buf.getvalue())
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.kill()
            raise StudentError("the Python process running your code died") from None

    def request(self, msg: dict, timeout: Optional[float] = None, callbacks=(), part=None) -> dict:
        """Send ``msg``; answer the calls of ``callbacks`` (grader functions) until the reply."""
        if self.dead:
            raise StudentError("the sandbox was restarted")
        self._send(msg)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._receive(deadline)
            if "callback" not in reply:
                return reply
            try:
                fn = callbacks[int(reply["callback"])]
                result = fn(*decode(reply["args"], part), **decode(reply["kwargs"], part))
                self._send({"ok": encode(result, {"gens": [], "models": [], "optims": [], "callbacks": []}, part)})
            except Exception as e:  # noqa: BLE001 - reported to the student's code as an error
                self._send({"error": f"{type(e).__name__}: {e}"})

    def _receive(self, deadline: float) -> dict:
        import torch

        (n,) = struct.unpack("<Q", self._read(8, deadline))
        if n > 1 << 30:
            self.kill()
            raise StudentError("the answer sent back is too large")
        try:
            return torch.load(io.BytesIO(self._read(n, deadline)), weights_only=True)
        except StudentError:
            raise
        except Exception as e:  # noqa: BLE001 - anything that is not plain data
            self.kill()
            raise StudentError(f"the value sent back is not plain data ({type(e).__name__})") from None


# ---- proxies ----------------------------------------------------------------------------


class Part:
    """The sandbox of one set of options for one submission, restarted after a failure."""

    def __init__(self, grader: SubmissionGrader, allow: tuple, block_ops: tuple):
        self.grader, self.allow, self.block_ops = grader, allow, block_ops
        self.sb: Optional[Sandbox] = None
        self.skip: set[int] = set()  # cells that hung: not run again
        self.generation = 0

    def sandbox(self) -> Sandbox:
        if self.sb is None or self.sb.dead:
            g = self.grader
            lib = os.path.join(g.tmp, "lib-" + "-".join(self.allow or ("none",)))
            if not os.path.isdir(lib):
                lmcourse_view(self.allow, lib)
            cfg = {"memory_bytes": g.memory_bytes, "block_ops": list(self.block_ops), "threads": 1}
            self.generation += 1
            while True:
                self.sb = Sandbox(lib, cfg, g.timeout, g.isolate)
                for i, (name, source) in enumerate(g.cells):
                    if i in self.skip:
                        continue
                    try:
                        self.sb.request({"op": "exec", "source": source, "name": name})
                    except SandboxTimeout:
                        self.skip.add(i)
                        break
                    except StudentError:
                        if self.sb.dead:
                            self.skip.add(i)
                            break
                else:
                    break
        return self.sb

    def call(self, op: str, target: dict, args=(), kwargs=None, grad: bool = False):
        sb = self.sandbox()
        if target.get("generation", self.generation) != self.generation:
            raise StudentError("this object was lost when your code crashed or timed out earlier")
        state = {"gens": [], "models": [], "optims": [], "callbacks": []}
        msg = {"op": op, "target": {k: v for k, v in target.items() if k != "generation"}}
        if op == "call":
            msg["args"] = encode(tuple(args), state, self)
            msg["kwargs"] = encode(dict(kwargs or {}), state, self)
            msg["grad"] = grad
        elif op == "map":
            msg["calls"] = encode([(tuple(a), dict(k)) for a, k in args], state, self)
        reply = sb.request(msg, callbacks=state["callbacks"], part=self)
        if "error" in reply:
            exc = SAFE_EXCEPTIONS.get(str(reply["error"]), StudentError)
            raise exc(f"{reply['message']}" if exc is not StudentError else f"{reply['error']}: {reply['message']}")
        for g, s in zip(state["gens"], reply.get("gens", [])):
            g.set_state(s)
        for m, s in zip(state["models"], reply.get("models", [])):
            m.load_state_dict(s)
        for o, s in zip(state["optims"], reply.get("optims", [])):
            o.load_state_dict(s)
        return decode(reply["ok"], self)


class Remote:
    """A name defined by the student's code, living in the sandbox."""

    def __init__(self, part: Part, target: dict, kind: str = "object"):
        object.__setattr__(self, "_part", part)
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_kind", kind)

    def __call__(self, *args, **kwargs):
        return self._part.call("call", self._target, args, kwargs)

    def value_and_grad(self, *args, **kwargs):
        """(output, grads of the tensor arguments): lmcourse.grading.value_and_grad, backward in the sandbox."""
        return self._part.call("call", self._target, args, kwargs, grad=True)

    def map(self, calls):
        """[self(*args, **kwargs) for args, kwargs in calls] in one message (lmcourse.grading.call_many)."""
        return self._part.call("map", self._target, calls)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        t = dict(self._target, attrs=[*self._target.get("attrs", ()), name])
        value = self._part.call("getattr", t)
        return value

    def __repr__(self) -> str:
        return f"<student {self._kind}>"


def encode(value, state: dict, part: Part):
    """Trusted object -> plain data for the sandbox (generators, GPTs, optimizers by value)."""
    import torch

    if isinstance(value, (int, float, str, bool, bytes, type(None))):
        return value
    if isinstance(value, torch.Tensor):
        leaf = value.detach().clone()
        return leaf.requires_grad_() if value.requires_grad and leaf.is_floating_point() else leaf
    if isinstance(value, Remote):
        if value._target.get("generation") != part.generation:
            raise StudentError("this object was lost when your code crashed or timed out earlier")
        return {"__handle__": value._target["handle"]}
    if isinstance(value, (list, tuple)):
        return type(value)(encode(v, state, part) for v in value)
    if isinstance(value, dict):
        return {k: encode(v, state, part) for k, v in value.items()}
    if isinstance(value, torch.dtype):
        return {"__dtype__": str(value)}
    if isinstance(value, torch.Generator):
        for i, g in enumerate(state["gens"]):
            if g is value:
                return {"__genref__": i}
        state["gens"].append(value)
        return {"__generator__": value.get_state(), "device": str(value.device)}
    if type(value).__name__ == "GPT" and hasattr(value, "config"):
        state["models"].append(value)
        return {"__gpt__": dataclasses.asdict(value.config), "state": value.state_dict(), "training": value.training}
    if isinstance(value, torch.optim.Optimizer):
        model = next(i for i, m in enumerate(state["models"])
                     if [id(p) for p in m.parameters()] == [id(p) for g in value.param_groups for p in g["params"]])
        state["optims"].append(value)
        return {"__optim__": type(value).__name__, "model": model, "state": value.state_dict()}
    if callable(value) and not isinstance(value, type):  # a grader function the student's code calls back
        state["callbacks"].append(value)
        return {"__callback__": len(state["callbacks"]) - 1}
    raise TypeError(f"cannot send a {type(value).__name__} to the student's code")


def decode(value, part: Part):
    import torch

    if type(value) is dict:
        if "__handle__" in value:
            target = {"handle": value["__handle__"], "generation": part.generation}
            return Remote(part, target, str(value.get("type", "object")))
        if "__dtype__" in value:
            return getattr(torch, str(value["__dtype__"]).split(".")[-1])
        return {k: decode(v, part) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(decode(v, part) for v in value)
    return value


# ---- one submission ---------------------------------------------------------------------


def defined_names(source: str) -> list[str]:
    """Top-level names a cell defines (def, class, assignment, import)."""
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names += [n.id for n in ast.walk(t) if isinstance(n, ast.Name)]
    return names


def strip_solution_markers(source: str) -> str:
    return "\n".join(s for s in source.splitlines() if "### BEGIN SOLUTION" not in s and "### END SOLUTION" not in s)


@dataclasses.dataclass
class TestResult:
    grade_id: str
    points: float
    score: float
    message: str  # "" when passed


class SubmissionGrader:
    def __init__(self, source_nb, submission_nb, *, timeout: float = 60, isolate: bool = True,
                 memory_bytes: int = MEMORY_BYTES, tmp: str):
        self.timeout, self.isolate, self.memory_bytes, self.tmp = timeout, isolate, memory_bytes, tmp
        submitted = {}
        for cell in submission_nb.cells:
            gid = _nbg(cell).get("grade_id")
            if gid and cell.cell_type == "code" and gid not in submitted:  # first one wins
                submitted[gid] = cell.source
        self.cells: list[tuple[str, str]] = []  # what runs in the sandbox, in notebook order
        self.trusted: list = []  # ("code", source) or ("test", cell) run here
        self.student_names: list[str] = []
        for cell in source_nb.cells:
            meta = _nbg(cell)
            gid = meta.get("grade_id", "")
            if cell.cell_type != "code" or "setup" in cell.metadata.get("tags", []) or gid == "summary":
                continue  # the setup cell installs lmcourse; the summary re-runs the visible tests
            if meta.get("solution") and not meta.get("grade"):
                self.student_names += defined_names(strip_solution_markers(cell.source))
                self.cells.append((f"<answer {gid}>", submitted.get(gid, "")))
            elif meta.get("grade") and not meta.get("solution"):
                self.trusted.append(("test", cell))
            else:
                self.cells.append((f"<cell {gid}>", cell.source))
                self.trusted.append(("code", cell.source))
        self.parts: dict[tuple, Part] = {}

    def part(self, options: dict) -> Part:
        key = (tuple(sorted(options.get("allow", ()))), tuple(sorted(options.get("block_ops", ()))))
        if key not in self.parts:
            self.parts[key] = Part(self, *key)
        return self.parts[key]

    def run(self) -> list[TestResult]:
        import torch

        results = []
        ns: dict[str, Any] = {"__name__": "__grading__"}
        for kind, item in self.trusted:
            if kind == "code":
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(item, "<locked cell>", "exec"), ns)
                continue
            meta = _nbg(item)
            part = self.part(item.metadata.get("lmcourse", {}))
            for name in self.student_names:
                ns[name] = Remote(part, {"name": name}, "function")
            torch.manual_seed(0)
            message = ""
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(item.source, f"<test {meta['grade_id']}>", "exec"), ns)
            except SandboxTimeout as e:
                message = f"your code did not finish: {e}"
            except StudentError as e:
                message = f"your code failed: {e}"
            except Exception as e:  # noqa: BLE001 - a failed check or an error of the student's code
                message = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            pts = float(meta.get("points", 0))
            results.append(TestResult(meta["grade_id"], pts, 0.0 if message else pts, message[:1500]))
        for part in self.parts.values():
            if part.sb is not None and not part.sb.dead:
                part.sb.kill()
        return results


def grade_notebook(source_path: str, submission_path: str, timeout: float = 60, isolate: bool = True) -> list[TestResult]:
    """Grade one submitted notebook against the instructor notebook (no gradebook)."""
    import torch

    torch.set_num_threads(1)
    source = nbformat.read(source_path, as_version=4)
    try:
        submission = nbformat.read(submission_path, as_version=4)
    except Exception:  # noqa: BLE001 - an unreadable file scores 0 everywhere
        submission = nbformat.v4.new_notebook()
    with tempfile.TemporaryDirectory() as tmp:
        return SubmissionGrader(source, submission, timeout=timeout, isolate=isolate, tmp=tmp).run()


# ---- the class: gradebook, autograded notebooks --------------------------------------------


def feedback_text(r: TestResult) -> str:
    head = f"{r.grade_id}: {r.score:g} / {r.points:g} points"
    return head + (" (all tests passed)" if not r.message else f"\nFAILED: {r.message}")


def autograded_notebook(release_nb, submission_nb, results: list[TestResult]):
    """The release notebook with the student's answers and a report under every test cell."""
    nb = copy.deepcopy(release_nb)
    answers = {}
    for cell in submission_nb.cells:
        gid = _nbg(cell).get("grade_id")
        if gid and _nbg(cell).get("solution") and gid not in answers:
            answers[gid] = cell.source
    by_id = {r.grade_id: r for r in results}
    for cell in nb.cells:
        meta = _nbg(cell)
        gid = meta.get("grade_id")
        if meta.get("solution"):
            cell.source = answers.get(gid, cell.source)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if gid in by_id:
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=feedback_text(by_id[gid]) + "\n")]
    return nb


def write_gradebook(course: str, hw: str, student: str, nb_name: str, results: list[TestResult]) -> None:
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


def _grade_student(args):
    """(results, seconds), or (error message, seconds): one student's failure never stops the class."""
    source_path, sub_path, timeout, isolate = args
    t0 = time.perf_counter()
    try:
        results = grade_notebook(source_path, sub_path, timeout, isolate)
    except Exception as e:  # noqa: BLE001 - reported, the class goes on
        results = f"{type(e).__name__}: {e}"
    return results, time.perf_counter() - t0


def grade_class(course: str, hw: str, students: Optional[list[str]] = None, jobs: int = 2,
                timeout: float = 60, isolate: bool = True, log=print) -> dict:
    """Grade every submission of ``hw``; return {student: (results, seconds)}."""
    nb_name = hw
    source_path = os.path.join(course, "solutions", hw, f"{nb_name}.ipynb")
    release = nbformat.read(os.path.join(course, "assignments", hw, f"{nb_name}.ipynb"), as_version=4)
    sub_root = os.path.join(course, "submitted")
    students = students or sorted(s for s in os.listdir(sub_root)
                                  if os.path.isfile(os.path.join(sub_root, s, hw, f"{nb_name}.ipynb")))
    out, failed = {}, []
    jobs_args = [(source_path, os.path.join(sub_root, s, hw, f"{nb_name}.ipynb"), timeout, isolate) for s in students]
    spawn = multiprocessing.get_context("spawn")  # no fork of a process that has torch threads
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=spawn) as pool:
        for student, (results, secs) in zip(students, pool.map(_grade_student, jobs_args)):
            if isinstance(results, str):
                log(f"{student:20s} NOT GRADED: {results}")
                failed.append(student)
                continue
            sub_path = os.path.join(sub_root, student, hw, f"{nb_name}.ipynb")
            try:
                submission = nbformat.read(sub_path, as_version=4)
            except Exception:  # noqa: BLE001
                submission = nbformat.v4.new_notebook()
            dest = os.path.join(course, "autograded", student, hw)
            os.makedirs(dest, exist_ok=True)
            tmp_path = os.path.join(dest, f".{nb_name}.ipynb.tmp")
            nbformat.write(autograded_notebook(release, submission, results), tmp_path)
            os.replace(tmp_path, os.path.join(dest, f"{nb_name}.ipynb"))
            write_gradebook(course, hw, student, nb_name, results)
            out[student] = (results, secs)
            total = sum(r.score for r in results)
            log(f"{student:20s} {total:g}/{sum(r.points for r in results):g}  ({secs:.1f} s)")
    if failed:
        log(f"not graded (see above): {', '.join(failed)}")
    return out


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("homework")
    p.add_argument("--course", default=ROOT, help="the nbgrader course root (default: the repository)")
    p.add_argument("--student", action="append", help="grade only these students (repeatable)")
    p.add_argument("--notebook", help="grade this one notebook and print the report (no gradebook)")
    p.add_argument("--jobs", type=int, default=2, help="students graded at the same time (default 2)")
    p.add_argument("--timeout", type=float, default=60, help="seconds per call into the student's code")
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
        for r in grade_notebook(source, a.notebook, a.timeout, isolate):
            print(feedback_text(r))
        return
    t0 = time.perf_counter()
    students = a.student or sorted(
        s for s in os.listdir(os.path.join(a.course, "submitted"))
        if os.path.isfile(os.path.join(a.course, "submitted", s, a.homework, f"{a.homework}.ipynb")))
    done = grade_class(a.course, a.homework, students, a.jobs, a.timeout, isolate)
    print(f"graded {len(done)} submissions of {a.homework} in {time.perf_counter() - t0:.0f} s")
    if len(done) < len(students):
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
