"""Helpers for the nbgrader homework's hidden tests.

The homework's test cells compare the student's results with the ``lmcourse`` reference
through :func:`check_tensor` and :func:`check_float` (exact ``torch.Tensor`` type, shape,
dtype, then numbers; a clear message saying what differs and where). When a homework is
graded (scripts/grade.py) the test cells run in the grader's own process and the
student's functions run in a sandbox without the reference modules; :func:`call_many`
batches many calls into that sandbox. Nothing here ever writes to stderr.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Iterable, Optional

import torch

__all__ = ["check_tensor", "check_float", "call_many", "value_and_grad"]


def call_many(func: Callable, calls: Iterable[tuple[tuple, dict]]) -> list:
    """``[func(*args, **kwargs) for args, kwargs in calls]``, in order.

    While a homework is graded, ``func`` is a proxy to the student's code running in a
    separate process (scripts/grade.py); its ``map`` method sends all the calls in one
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
