"""Helpers for the nbgrader homework's hidden tests.

Hidden tests compute the expected value with the ``lmcourse`` reference, then call the
student's function inside :func:`forbid`, so a submission that merely calls the reference
raises instead of scoring. :func:`check_tensor` and :func:`check_float` compare plain
values (exact ``torch.Tensor`` type, shape, dtype, then numbers), so an object with a rigged
``__eq__`` cannot pass. Nothing here ever writes to stderr.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import math
import textwrap
import warnings
from typing import Any, Callable, Iterable, Iterator, Optional

import torch

__all__ = ["ReferenceUsedError", "forbid", "check_tensor", "check_float", "assert_no_reference_import"]


class ReferenceUsedError(AssertionError):
    """Raised when a forbidden reference function is called during a hidden test."""


def _resolve(target: str) -> tuple[Any, str, Any]:
    """'pkg.mod.attr' or 'pkg.mod.Class.method' -> (owner object, attribute name, value)."""
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:-1]:
            owner = getattr(owner, name)
        return owner, parts[-1], getattr(owner, parts[-1])
    raise ValueError(f"cannot resolve {target!r}")


@contextlib.contextmanager
def forbid(*targets: str, namespace: Optional[dict] = None) -> Iterator[None]:
    """Make each dotted ``target`` raise :class:`ReferenceUsedError` inside the block.

    ``namespace`` (e.g. the notebook's ``globals()``): names in it bound to a forbidden
    object (``from lmcourse.model import causal_mask``) are replaced too. Everything is
    restored on exit.
    """
    saved: list[tuple[Any, str, Any, bool]] = []
    try:
        for target in targets:
            owner, name, original = _resolve(target)

            def blocked(*args: Any, _t: str = target, **kwargs: Any) -> Any:
                raise ReferenceUsedError(
                    f"{_t} is the reference implementation: implement it yourself"
                )

            in_dict = isinstance(owner, type) and name in owner.__dict__
            saved.append((owner, name, original, in_dict or not isinstance(owner, type)))
            setattr(owner, name, blocked)
            if namespace is not None:
                for key, value in list(namespace.items()):
                    if value is original:
                        saved.append((namespace, key, value, True))
                        namespace[key] = blocked
        yield
    finally:
        for owner, name, original, _ in reversed(saved):
            if isinstance(owner, dict):
                owner[name] = original
            else:
                setattr(owner, name, original)


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


def assert_no_reference_import(func: Callable, module_names: Iterable[str]) -> None:
    """Reject a function (or class) whose source imports or names a reference module.

    ``module_names`` like ``["lmcourse.model"]``: ``import lmcourse.model``,
    ``from lmcourse.model import x``, ``from lmcourse import model`` and the attribute
    chain ``lmcourse.model.x`` all fail. Also rejects ``importlib``/``__import__``.
    """
    modules = list(module_names)
    name = getattr(func, "__name__", repr(func))
    if isinstance(func, type):  # a class defined in a notebook: read its methods one by one
        members = [
            m.__func__ if isinstance(m, (staticmethod, classmethod)) else m
            for m in vars(func).values()
        ]
        members = [m for m in members if inspect.isfunction(m)]
        for base in func.__bases__:
            if any(base.__module__ == m or base.__module__.startswith(m + ".") for m in modules):
                raise AssertionError(f"{name} must not subclass {base.__module__}.{base.__name__}")
    else:
        members = [func]
    for member in members:
        try:
            source = textwrap.dedent(inspect.getsource(member))
        except (OSError, TypeError) as e:
            raise AssertionError(f"cannot read the source of {member!r}: {e}") from None
        _scan(ast.parse(source), modules, name)


def _scan(tree: ast.AST, modules: list, name: str) -> None:
    """Raise AssertionError when ``tree`` imports or names one of ``modules``."""

    def hits(dotted: str) -> Optional[str]:
        for m in modules:
            if dotted == m or dotted.startswith(m + "."):
                return m
        return None

    for node in ast.walk(tree):
        found = None
        if isinstance(node, ast.Import):
            found = next((hits(a.name) for a in node.names if hits(a.name)), None)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found = hits(node.module) or next(
                (hits(f"{node.module}.{a.name}") for a in node.names if hits(f"{node.module}.{a.name}")),
                None,
            )
        elif isinstance(node, ast.Attribute):
            parts, cur = [], node
            while isinstance(cur, ast.Attribute):
                parts.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name):
                found = hits(".".join([cur.id, *reversed(parts)]))
        elif isinstance(node, ast.Name) and node.id in ("__import__", "importlib"):
            found = node.id
        if found:
            raise AssertionError(f"{name} must not use {found}: implement it yourself")
