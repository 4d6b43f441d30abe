"""Helpers for the nbgrader homework's hidden tests.

The homework's test cells compare the student's results with the ``lmcourse`` reference
through :func:`check_tensor` and :func:`check_float` (exact ``torch.Tensor`` type, shape,
dtype, then numbers; a clear message saying what differs and where). When a homework is
graded (grader/grade.py) the test cells run in the grader's own process and the
student's functions run in a sandbox without the reference modules; :func:`call_many`
batches many calls into that sandbox. Nothing here ever writes to stderr.

Partial credit: a test cell is split into named checks, each worth its share of the cell's
points (the shares add up to the cell's ``points``)::

    with check("rows sum to one", 1):
        assert torch.allclose(w.sum(-1), torch.ones(3))
    with check("hidden shapes", 2):
        check_tensor("out", out, expected)
    checks_done()

A failing check (an ``AssertionError``, or any exception the student's code raised inside
it) is recorded and the cell goes on to the next check. :func:`checks_done` ends the cell:
it prints one line per check and raises ``AssertionError`` naming the failed ones, so a
student running the notebook sees which checks failed. The grader (grader/) reads
:func:`cell_results` after each test cell instead and gives the points of the checks that
passed; a test cell with no checks is all or nothing.
"""

from __future__ import annotations

import contextlib
import math
import sys
import warnings
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

import torch

__all__ = [
    "check", "checks_done", "begin_cell", "cell_results", "cell_complete",
    "check_tensor", "check_float", "call_many", "value_and_grad", "run_visible", "all_visible",
]

# the checks of the test cell being run: dicts with name, points, passed, message
_RESULTS: list[dict] = []
_STATE = {"done": False}  # checks_done() was called: the next check starts a new cell


def begin_cell() -> None:
    """Forget the checks recorded so far (the grader calls it before each test cell)."""
    _RESULTS.clear()
    _STATE["done"] = False


def cell_results() -> list[dict]:
    """The checks recorded since :func:`begin_cell`.

    Each is ``{"name", "points", "passed", "message", "where"}``; ``where`` lists the
    ``(file name, line)`` of the frames that entered the check, innermost first (the grader
    uses it to tell visible checks from hidden ones).
    """
    return [dict(r, where=list(r["where"])) for r in _RESULTS]


def cell_complete() -> bool:
    """Whether :func:`checks_done` ended the checks recorded since :func:`begin_cell`."""
    return bool(_STATE["done"])


def _callers(skip: int) -> list[tuple[str, int]]:
    frames = []
    try:
        f = sys._getframe(skip)
    except ValueError:
        return frames
    while f is not None and len(frames) < 50:
        frames.append((f.f_code.co_filename, f.f_lineno))
        f = f.f_back
    return frames


@contextlib.contextmanager
def check(name: str, points: float) -> Iterator[None]:
    """One graded check, worth ``points`` of its test cell (see the module docstring).

    An ``AssertionError`` or any other ``Exception`` raised inside the block fails this
    check only; the cell goes on with the next one. The message is kept for the student's
    own notebook; the grader's feedback shows only the check's name, points and result.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"check name must be a non-empty str, got {name!r}")
    if isinstance(points, bool) or not isinstance(points, (int, float)) or not points >= 0:
        raise ValueError(f"check points must be a number >= 0, got {points!r}")
    if _STATE["done"]:
        begin_cell()
    record = {"name": name, "points": float(points), "passed": False, "message": "", "where": _callers(3)}
    _RESULTS.append(record)
    try:
        yield
    except AssertionError as e:
        record["message"] = str(e) or "assertion failed"
    except Exception as e:  # the student's code raised: this check fails, the others run
        record["message"] = f"{type(e).__name__}: {e}"
    else:
        record["passed"] = True


def checks_done() -> None:
    """End a test cell: print each check's result, raise AssertionError if any failed.

    The results stay readable through :func:`cell_results` until the next check starts a
    new cell.
    """
    _STATE["done"] = True
    earned = sum(r["points"] for r in _RESULTS if r["passed"])
    total = sum(r["points"] for r in _RESULTS)
    for r in _RESULTS:
        mark = "ok  " if r["passed"] else "FAIL"
        line = f"{mark} {r['name']} ({r['points']:g} pt)"
        print(line + ("" if r["passed"] else f": {r['message']}"))
    failed = [r["name"] for r in _RESULTS if not r["passed"]]
    print(f"{earned:g} of {total:g} points in these checks")
    if failed:
        raise AssertionError("failed checks: " + "; ".join(failed))


VisibleChecks = Mapping[str, tuple[float, Callable[[], Any]]]


def run_visible(checks: VisibleChecks, visible_tests: Optional[dict] = None, key: Optional[str] = None) -> None:
    """Run a test cell's visible checks ``{name: (points, function)}``, each as its own :func:`check`.

    Each function asserts (through :func:`check_tensor` and the like) and returns True; a
    failing one fails only its own check. With ``visible_tests`` (the notebook's
    ``VISIBLE_TESTS``, re-run by the Summary cell) and ``key``, ``all_visible(checks)`` is
    first stored there under ``key``.
    """
    if visible_tests is not None:
        if not key:
            raise ValueError("run_visible: visible_tests needs a key")
        visible_tests[key] = all_visible(checks)
    for name, (points, f) in checks.items():
        with check(name, points):
            f()


def all_visible(checks: VisibleChecks) -> Callable[[], bool]:
    """One function for the Summary cell's ``VISIBLE_TESTS``: every function of ``checks``, in
    order, raising on the first failure (True when all pass)."""
    return lambda: all(f() for _, f in checks.values())


def call_many(func: Callable, calls: Iterable[tuple[tuple, dict]]) -> list:
    """``[func(*args, **kwargs) for args, kwargs in calls]``, in order.

    While a homework is graded, ``func`` is a proxy to the student's code running in a
    separate process (grader/submission.py); its ``map`` method sends all the calls in one
    message, so thousands of calls stay fast. In a notebook it is a plain loop.
    """
    calls = list(calls)
    many = getattr(func, "map", None)
    if callable(many) and not isinstance(func, type):
        return list(many(calls))
    return [func(*args, **kwargs) for args, kwargs in calls]


def value_and_grad(func: Callable, *args: Any, **kwargs: Any) -> tuple[Any, tuple]:
    """``(func(*args, **kwargs), grads)``: the output and, after ``output.backward()``, the
    gradient of every tensor argument that requires grad (in argument order; None where no
    gradient reached it).

    While a homework is graded ``func`` runs in a separate process, where the backward pass
    must run too (the grader's proxy has its own ``value_and_grad``).
    """
    remote = getattr(type(func), "value_and_grad", None)
    if remote is not None:
        return remote(func, *args, **kwargs)
    out = func(*args, **kwargs)
    out.backward()
    return out.detach(), tuple(a.grad for a in args if isinstance(a, torch.Tensor) and a.requires_grad)


def _where(on: Optional[str]) -> str:
    return f" (on input {on})" if on else ""


def check_tensor(
    name: str,
    got: Any,
    expected: torch.Tensor,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    on: Optional[str] = None,
) -> None:
    """Assert ``got`` is a plain tensor equal to ``expected`` within ``atol + rtol*|expected|``.

    Checks, in order: exact type ``torch.Tensor`` (no subclass), shape, dtype, then values
    (exact for bool/integer dtypes). Raises AssertionError saying what differs and where.
    """
    where = _where(on)
    if type(got) is not torch.Tensor:
        raise AssertionError(f"{name}{where}: expected a torch.Tensor, got {type(got).__name__}")
    if tuple(got.shape) != tuple(expected.shape):
        raise AssertionError(
            f"{name}{where}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        )
    if got.dtype != expected.dtype:
        raise AssertionError(f"{name}{where}: expected dtype {expected.dtype}, got {got.dtype}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = torch.Tensor.detach(got).cpu()
        e = expected.detach().cpu()
        if e.dtype == torch.bool or not (e.is_floating_point() or e.is_complex()):
            bad = g != e
        else:
            g64, e64 = g.double(), e.double()
            same_inf = torch.isinf(e64) & (g64 == e64)
            both_nan = torch.isnan(e64) & torch.isnan(g64)
            close = (g64 - e64).abs() <= atol + rtol * e64.abs()
            bad = ~(close | same_inf | both_nan)
        n_bad = int(bad.sum().item())
        if n_bad:
            idx = tuple(int(i) for i in bad.nonzero()[0])
            raise AssertionError(
                f"{name}{where}: {n_bad} of {e.numel()} values differ "
                f"(atol={atol}, rtol={rtol}); first at index {idx}: "
                f"expected {e[idx].item()!r}, got {g[idx].item()!r}"
            )


def check_float(
    name: str,
    got: Any,
    expected: float,
    atol: float = 1e-6,
    rtol: float = 1e-6,
    on: Optional[str] = None,
) -> None:
    """Assert ``got`` is a real Python/NumPy/0-d tensor number close to ``expected``."""
    where = _where(on)
    if isinstance(got, torch.Tensor):
        if got.numel() != 1:
            raise AssertionError(f"{name}{where}: expected a number, got a tensor of shape {tuple(got.shape)}")
        got = torch.Tensor.item(got)
    if isinstance(got, bool) or not isinstance(got, (int, float)) and type(got).__module__ != "numpy":
        raise AssertionError(f"{name}{where}: expected a float, got {type(got).__name__}")
    value = float(got)
    if math.isnan(expected) and math.isnan(value):
        return
    if not abs(value - expected) <= atol + rtol * abs(expected):
        raise AssertionError(
            f"{name}{where}: expected {expected!r}, got {value!r} (atol={atol}, rtol={rtol})"
        )
