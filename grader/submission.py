"""Grading one submission: the proxies to the sandbox, the test cells, partial credit.

:class:`SubmissionGrader` runs the instructor notebook's locked code and test cells here
(the trusted side), in one namespace where the names the answer cells define are
:class:`Remote` proxies. Calling one sends plain data to the sandbox (grader/sandbox.py)
and gets plain data back (grader/protocol.py). Rules that keep the trusted side safe:

- one sandbox per submission at a time: a test cell that needs other options (allowed
  modules, blocked operators) kills the running sandbox before its own starts;
- each test cell gets a fresh child of the sandbox's zygote (grader/worker.py), killed at
  the end of the cell: nothing stored by one test cell's calls is seen by the next;
- arguments are copies; a model handed to the student's code comes back unchanged (it is
  compared with what was sent) unless the call also received an optimizer over it (a
  training step), in which case its new weights and the optimizer's state are the result
  and are loaded into the grader's objects; an argument the call changed in place fails
  the call; only generators' states come back otherwise;
- every test cell runs under a time limit (``cell_timeout``, student code and reference
  together), every call under ``timeout``, and the submission under a total ``budget``;
- partial credit: :func:`lmcourse.grading.begin_cell` before each test cell,
  :func:`lmcourse.grading.cell_results` after; a cell's score is the points of its passed
  checks (a cell with no checks is all or nothing). Checks that do not add up to the
  cell's points are an instructor error (:class:`InstructorError`);
- feedback never carries the message of a hidden check (nor of any failure raised from a
  hidden test's lines): only its name, points and pass/fail.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import signal
import tempfile
import time
import traceback
from typing import Any, Optional

import nbformat

from grader import protocol
from grader.notebook import (
    answer_sources,
    defined_names,
    hidden_lines,
    is_answer,
    is_test,
    nbg,
    strip_solution_markers,
)
from grader.sandbox import (
    FSIZE_BYTES,
    MEMORY_BYTES,
    NPROC,
    REPLY_BYTES,
    Sandbox,
    SandboxError,
    SandboxStartError,
    SandboxTimeout,
    make_lib,
)

SAFE_EXCEPTIONS = {e.__name__: e for e in (
    ValueError, TypeError, AssertionError, NotImplementedError, IndexError, KeyError, RuntimeError,
    ZeroDivisionError, AttributeError, NameError, ArithmeticError, OverflowError, LookupError,
    StopIteration, RecursionError, ImportError, ModuleNotFoundError)}
TIMEOUT = 60.0        # seconds per call into the student's code
CELL_TIMEOUT = 120.0  # seconds per test cell (student code and reference together)
BUDGET = 600.0        # seconds per submission, all test cells together

StudentError = SandboxError  # the name the test cells and older callers use


class InstructorError(Exception):
    """The homework itself is wrong (checks that do not add up to the cell's points)."""


class CellTimeout(BaseException):
    """The test cell ran past its time limit (a BaseException: no test code swallows it)."""


@dataclasses.dataclass
class CheckResult:
    name: str
    points: float
    passed: bool
    message: str  # "" when passed, or when the check is hidden


@dataclasses.dataclass
class TestResult:
    grade_id: str
    points: float
    score: float
    message: str  # "" when passed; never a hidden check's message
    checks: list = dataclasses.field(default_factory=list)


# ---- proxies ------------------------------------------------------------------------------


class Part:
    """The sandbox of one set of options for one submission."""

    def __init__(self, grader: SubmissionGrader, allow: tuple, block_ops: tuple):
        self.grader, self.allow, self.block_ops = grader, allow, block_ops
        self.sb: Optional[Sandbox] = None
        self.skip: set[int] = set()  # answer cells that hung or crashed while defined: not run again
        self.generation = 0          # handles are valid only in the child that made them
        self.child = False

    def stop(self) -> None:
        if self.sb is not None and not self.sb.dead:
            self.sb.kill()
        self.child = False

    def _start(self) -> Sandbox:
        g = self.grader
        lib = os.path.join(g.tmp, f"lib-{list(g.parts.values()).index(self)}")  # one per part
        if not os.path.isdir(lib):
            try:
                make_lib(self.allow, lib)
            except OSError as e:  # the grader's own fault: never the student's
                raise SandboxStartError(f"cannot prepare the sandbox's files: {e}") from None
        cfg = {"memory_bytes": g.memory_bytes, "block_ops": list(self.block_ops), "threads": 1,
               "nproc": NPROC, "fsize_bytes": FSIZE_BYTES}
        with g.paused():
            while True:
                sb = Sandbox(lib, cfg, g.isolate, g.slot)
                for i, (name, source) in enumerate(g.cells):
                    if i in self.skip:
                        continue
                    sb.send({"op": "exec", "source": source, "name": name})
                    try:
                        sb.receive(time.monotonic() + g.timeout)
                    except SandboxError:
                        self.skip.add(i)
                        break
                else:
                    return sb

    def _ensure_child(self) -> Sandbox:
        g = self.grader
        if g.active is not self:  # one sandbox per submission at a time
            for other in g.parts.values():
                if other is not self:
                    other.stop()
            g.active = self
        if self.sb is None or self.sb.dead:
            self.sb = self._start()
            self.child = False
        if not self.child:
            self.sb.send({"op": "fork"})
            reply = self.sb.receive(g.deadline(10.0))
            if reply != {"ok": None}:
                self.stop()
                raise StudentError("the process running your code did not start")
            self.child = True
            self.generation += 1
        return self.sb

    def end_cell(self) -> None:
        """Kill the child of the test cell that ended (the zygote stays)."""
        if self.sb is None or self.sb.dead or not self.child:
            self.child = False
            return
        self.child = False
        try:
            self.sb.send({"op": "end"})
            while "child_exit" not in self.sb.receive(time.monotonic() + 10):
                pass
        except SandboxError:
            self.stop()

    def request(self, msg: dict, callbacks: list) -> dict:
        """Send ``msg`` to the child; answer its callbacks until its reply."""
        g = self.grader
        sb = self.sb
        sb.send(msg)
        deadline = g.deadline(g.timeout)
        while True:
            reply = sb.receive(deadline)
            if "child_exit" in reply:
                self.child = False
                raise StudentError("the Python process running your code died (crash, os._exit or memory limit)")
            if "callback" not in reply:
                return reply
            try:
                fn = callbacks[int(reply["callback"])]
                result = fn(*decode(reply["args"], self), **decode(reply["kwargs"], self))
                sb.send({"ok": Encoder(self).encode(result)})
            except (SandboxError, CellTimeout):
                raise
            except Exception as e:  # noqa: BLE001 - reported to the student's code as an error
                sb.send({"error": f"{type(e).__name__}: {e}"})

    def call(self, op: str, target: dict, args=(), kwargs=None, grad: bool = False):
        if "generation" in target and (target["generation"] != self.generation or not self.child
                                       or self.sb is None or self.sb.dead):
            raise StudentError("this object was made in an earlier test cell or lost when your code crashed")
        self._ensure_child()
        enc = Encoder(self)
        msg = {"op": op, "target": {k: v for k, v in target.items() if k != "generation"}}
        if op == "call":
            msg["args"] = enc.encode(tuple(args))
            msg["kwargs"] = enc.encode(dict(kwargs or {}))
            msg["grad"] = grad
        elif op == "map":
            msg["calls"] = enc.encode([(tuple(a), dict(k)) for a, k in args])
        reply = self.request(msg, enc.callbacks)
        if "error" in reply:
            exc = SAFE_EXCEPTIONS.get(str(reply["error"]), StudentError)
            text = str(reply.get("message", ""))
            raise exc(text if exc is not StudentError else f"{reply['error']}: {text}")
        enc.finish(reply)
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
        return self._part.call("getattr", t)

    def __setattr__(self, name, value):
        raise AttributeError("attributes of the student's objects cannot be set from the tests")

    def __repr__(self) -> str:
        return f"<student {self._kind}>"


class Encoder:
    """Trusted objects -> plain data for one call; then what comes back for them."""

    def __init__(self, part: Part):
        import torch

        from lmcourse.model import GPT

        self.torch, self.GPT, self.part = torch, GPT, part
        self.gens: list = []
        self.models: list = []  # (model, state sent)
        self.optims: list = []  # (optimizer, model index)
        self.callbacks: list = []

    def encode(self, value: Any) -> Any:
        return protocol.convert(value, self._special)

    def _special(self, value: Any) -> Any:
        torch = self.torch
        p = protocol
        if type(value) in (type(None), bool, int, float, complex, str, bytes):
            return value
        if isinstance(value, torch.Tensor):
            leaf = torch.Tensor.detach(value).clone()
            return leaf.requires_grad_() if value.requires_grad and leaf.is_floating_point() else leaf
        if isinstance(value, Remote):
            if value._target.get("generation") != self.part.generation:
                raise StudentError("this object was made in an earlier test cell or lost when your code crashed")
            return {p.HANDLE: value._target["handle"]}
        if isinstance(value, torch.dtype):
            return {p.DTYPE: p.DTYPE_NAMES[value]}
        if isinstance(value, torch.Generator):
            for i, g in enumerate(self.gens):
                if g is value:
                    return {p.GENREF: i}
            self.gens.append(value)
            return {p.GENERATOR: value.get_state(), "device": str(value.device)}
        if isinstance(value, self.GPT):
            for i, (m, _) in enumerate(self.models):  # sent once per message, however often it appears
                if m is value:
                    return {p.MODELREF: i}
            state = {k: v.detach().clone() for k, v in value.state_dict().items()}
            self.models.append((value, state))
            return {p.GPT: dataclasses.asdict(value.config), "state": state, "training": value.training}
        if isinstance(value, torch.optim.Optimizer):
            if type(value).__name__ not in p.OPTIMIZERS or type(value) is not getattr(torch.optim, type(value).__name__):
                raise TypeError(f"cannot send a {type(value).__name__} to the student's code")
            params = [id(q) for g in value.param_groups for q in g["params"]]
            model = next((i for i, (m, _) in enumerate(self.models) if [id(q) for q in m.parameters()] == params), None)
            if model is None:
                raise TypeError("an optimizer can be sent only after (and with) the model it trains")
            self.optims.append((value, model))
            return {p.OPTIM: type(value).__name__, "model": model, "state": value.state_dict()}
        if callable(value) and not isinstance(value, type):  # a grader function the student's code calls back
            self.callbacks.append(value)
            return {p.CALLBACK: len(self.callbacks) - 1}
        raise TypeError(f"cannot send a {type(value).__name__} to the student's code")

    def finish(self, reply: dict) -> None:
        """Check the reply's side effects; load what a call may change into the grader's objects."""
        torch = self.torch
        changed = reply.get("changed", [])
        if changed and not getattr(self.part.grader, "inplace_ok", False):
            which = ", ".join(f"argument {c + 1}" if isinstance(c, int) else f"argument {c}=" for c in changed)
            raise StudentError(f"your code changed its input in place ({which}); return a new value instead")
        gens, models, optims = reply.get("gens", []), reply.get("models", []), reply.get("optims", [])
        if len(gens) != len(self.gens) or len(models) != len(self.models) or len(optims) != len(self.optims):
            raise StudentError("the reply does not match the call")
        trained = {m for _, m in self.optims}
        for i, ((_model, sent), new) in enumerate(zip(self.models, models)):
            if type(new) is not dict or new.keys() != sent.keys() or any(
                    type(new[k]) is not torch.Tensor or new[k].shape != sent[k].shape or new[k].dtype != sent[k].dtype
                    for k in sent):
                raise StudentError("the model sent back does not have the model's parameters")
            if i not in trained and any(not torch.equal(new[k], sent[k]) for k in sent
                                        if not (sent[k].is_floating_point() and sent[k].isnan().any())):
                raise StudentError("your code changed the model it was given (its weights); "
                                   "it must leave the model unchanged")
        for g, s in zip(self.gens, gens):
            try:
                g.set_state(s)
            except Exception:  # noqa: BLE001 - not a generator state
                raise StudentError("the generator state sent back is not valid") from None
        for i in trained:
            self.models[i][0].load_state_dict(models[i])
        for (opt, _), s in zip(self.optims, optims):
            try:
                opt.load_state_dict(decode(s, self.part))
            except Exception:  # noqa: BLE001
                raise StudentError("the optimizer state sent back is not valid") from None


def decode(value: Any, part: Part) -> Any:
    """Plain data from the sandbox -> values for the tests (handles become :class:`Remote`)."""

    def special(v):
        tag = protocol.tag_of(v)
        if tag is None:
            return v
        if tag == protocol.HANDLE:
            if type(v[tag]) is not int:
                raise StudentError("a handle sent back is not valid")
            return Remote(part, {"handle": v[tag], "generation": part.generation}, str(v.get("type", "object"))[:100])
        if tag == protocol.DTYPE:
            return protocol.dtype_from_name(v[tag])
        raise StudentError(f"the value sent back holds a {tag} tag, which the sandbox may not send")

    try:
        return protocol.convert(value, special)
    except protocol.ProtocolError as e:
        raise StudentError(f"the value sent back was refused: {e}") from None


# ---- one submission -------------------------------------------------------------------------


def _visible(where: list, filename: str, hidden_start: int) -> bool:
    """Whether a check (or failure) was reached only from a test cell's visible lines."""
    if not hidden_start:
        return True
    lines = [line for f, line in where if f == filename]
    return bool(lines) and all(line < hidden_start for line in lines)


class SubmissionGrader:
    def __init__(self, source_nb, submission_nb, *, timeout: float = TIMEOUT, cell_timeout: float = CELL_TIMEOUT,
                 budget: float = BUDGET, isolate: bool = True, memory_bytes: int = MEMORY_BYTES,
                 tmp: str, slot: int = 0):
        self.timeout, self.cell_timeout, self.budget = timeout, cell_timeout, budget
        self.isolate, self.memory_bytes, self.tmp, self.slot = isolate, memory_bytes, tmp, slot
        self.answers = answer_sources(submission_nb)
        self.cells: list[tuple[str, str]] = []  # what runs in the sandbox, in notebook order
        self.trusted: list = []  # ("code", source) or ("test", cell) run here
        self.student_names: list[str] = []
        for cell in source_nb.cells:
            meta = nbg(cell)
            gid = meta.get("grade_id", "")
            if cell.cell_type != "code" or "setup" in cell.metadata.get("tags", []) or gid == "summary":
                continue  # the setup cell installs lmcourse; the summary re-runs the visible tests
            if is_answer(cell):
                self.student_names += defined_names(strip_solution_markers(cell.source))
                self.cells.append((f"<answer {gid}>", self.answers.get(gid, "")))
            elif is_test(cell):
                self.trusted.append(("test", cell))
            elif not meta.get("solution"):
                self.cells.append((f"<cell {gid}>", cell.source))
                self.trusted.append(("code", cell.source))
        self.parts: dict[tuple, Part] = {}
        self.active: Optional[Part] = None
        self._cell_deadline = math.inf
        self._budget_deadline = math.inf
        self._alarm = False

    # ---- time ---------------------------------------------------------------------------
    def deadline(self, seconds: float) -> float:
        """The deadline of a call of ``seconds``: never past the cell's or the budget's."""
        return min(time.monotonic() + seconds, self._cell_deadline, self._budget_deadline)

    @contextlib.contextmanager
    def paused(self):
        """Sandbox start-up is never counted against the student: the clocks stop."""
        left = signal.setitimer(signal.ITIMER_REAL, 0)[0] if self._alarm else 0.0
        t0 = time.monotonic()
        try:
            yield
        finally:
            dt = time.monotonic() - t0
            self._cell_deadline += dt
            self._budget_deadline += dt
            if left > 0:
                signal.setitimer(signal.ITIMER_REAL, left)

    def part(self, options: dict) -> Part:
        key = (tuple(sorted(options.get("allow", ()))), tuple(sorted(options.get("block_ops", ()))))
        if key not in self.parts:
            self.parts[key] = Part(self, *key)
        return self.parts[key]

    def run(self) -> list[TestResult]:
        import torch

        import lmcourse.grading as G

        results = []
        ns: dict[str, Any] = {"__name__": "__grading__"}
        self._alarm = _main_thread()
        self._budget_deadline = time.monotonic() + self.budget
        old = signal.signal(signal.SIGALRM, _on_alarm) if self._alarm else None
        try:
            for kind, item in self.trusted:
                if kind == "code":
                    with contextlib.redirect_stdout(io.StringIO()):
                        exec(compile(item, "<locked cell>", "exec"), ns)
                    continue
                results.append(self._run_test(item, ns, G, torch))
        finally:
            if self._alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
            for part in self.parts.values():
                part.stop()
        return results

    def _run_test(self, cell, ns: dict, G, torch) -> TestResult:
        meta = nbg(cell)
        gid = meta["grade_id"]
        pts = float(meta.get("points", 0))
        filename = f"<test {gid}>"
        hidden_start = hidden_lines(cell.source)[0]
        now = time.monotonic()
        if now >= self._budget_deadline:
            return TestResult(gid, pts, 0.0, f"not run: the time budget of your submission ({self.budget:g} s) was used up")
        options = cell.metadata.get("lmcourse", {})
        part = self.part(options)
        # a cell whose answers update an argument by design (a cache) says so: "inplace": true
        self.inplace_ok = options.get("inplace") is True
        for name in self.student_names:
            ns[name] = Remote(part, {"name": name}, "function")
        torch.manual_seed(0)
        G.begin_cell()
        self._cell_deadline = min(now + self.cell_timeout, self._budget_deadline)
        message, visible = "", True
        if self._alarm:
            signal.setitimer(signal.ITIMER_REAL, max(self._cell_deadline - now, 1e-3))
        error: Optional[BaseException] = None
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(cell.source, filename, "exec"), ns)
        except BaseException as e:  # noqa: BLE001 - sorted below, once the cell's clock is stopped
            error = e
        finally:
            # the cell's time ends with its code: reading the traceback below (source files,
            # linecache) must never be interrupted by the cell's alarm
            if self._alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
            self._cell_deadline = math.inf
        if error is not None and os.environ.get("LMCOURSE_GRADER_DEBUG"):  # the instructor's raw traceback
            traceback.print_exception(error)
        if isinstance(error, CellTimeout):
            message = f"your code did not finish: the test cell ran past its limit of {self.cell_timeout:g} s"
            part.stop()
        elif isinstance(error, SandboxTimeout):
            message = f"your code did not finish: {error}"
        elif isinstance(error, StudentError):
            message = f"your code failed: {error}"
            visible = _visible(_tb_where(error), filename, hidden_start)
        elif isinstance(error, Exception):  # a failed check or an error of the student's code
            message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            visible = _visible(_tb_where(error), filename, hidden_start)
        elif error is not None:
            raise error
        part.end_cell()
        checks = G.cell_results()
        if not checks:
            if message and not visible:
                message = "a hidden test failed"
            return TestResult(gid, pts, 0.0 if message else pts, message[:1500])
        total = sum(c["points"] for c in checks)
        if total > pts + 1e-9 or (G.cell_complete() and abs(total - pts) > 1e-9):
            raise InstructorError(f"test cell {gid}: its checks add up to {total:g} points, but the cell has "
                                  f"{pts:g} (fix the points of its check() calls)")
        out = []
        for c in checks:
            shown = c["message"] if not c["passed"] and _visible(c["where"], filename, hidden_start) else ""
            out.append(CheckResult(c["name"], c["points"], bool(c["passed"]), shown[:500]))
        score = sum(c.points for c in out if c.passed)
        if G.cell_complete() or message.startswith("AssertionError: failed checks"):
            message = ""
        elif message and not visible:
            message = "a hidden test failed outside a check"
        if not message and score < pts:
            message = "failed checks: " + "; ".join(c.name for c in out if not c.passed)
        return TestResult(gid, pts, score, message[:1500], out)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _on_alarm(signum, frame):
    raise CellTimeout()


def _tb_where(e: BaseException) -> list:
    return [(f.filename, f.lineno) for f in reversed(traceback.extract_tb(e.__traceback__))]


def grade_notebook(source_path: str, submission_path: str, timeout: float = TIMEOUT, isolate: bool = True,
                   cell_timeout: float = CELL_TIMEOUT, budget: float = BUDGET, slot: int = 0,
                   submission_root: Optional[str] = None) -> list[TestResult]:
    """Grade one submitted notebook against the instructor notebook (no gradebook)."""
    import torch

    from grader.notebook import read_submission

    torch.set_num_threads(1)
    source = nbformat.read(source_path, as_version=4)
    submission = read_submission(submission_path, submission_root)
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # the sandbox (another uid) reads its library copy in here
        return SubmissionGrader(source, submission, timeout=timeout, cell_timeout=cell_timeout, budget=budget,
                                isolate=isolate, tmp=tmp, slot=slot).run()


__all__ = ["CellTimeout", "CheckResult", "InstructorError", "Part", "REPLY_BYTES", "Remote", "StudentError",
           "SubmissionGrader", "TestResult", "decode", "grade_notebook"]
