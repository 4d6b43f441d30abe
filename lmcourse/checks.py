"""Argument checks: one rule for the whole public API.

A value of the wrong **type** raises ``TypeError``; a value of the right type but outside
what is allowed raises ``ValueError``. Both messages name the parameter and say what is
allowed, and nothing is silently converted or clamped. A ``bool`` is never taken for a
number (``True`` is an ``int`` in Python), and a number or a string is never taken for a
``bool`` (``"no"`` is truthy).

Every function returns the checked value (converted to the plain Python type where that
is lossless, e.g. a NumPy integer to ``int``), so a caller writes
``n = require_int("max_new_tokens", n, minimum=0)``.

The decoders (:mod:`lmcourse.generate`, :mod:`lmcourse.beam`, :mod:`lmcourse.speculative`,
:mod:`lmcourse.fastgen`, :mod:`lmcourse.tools`) check their arguments here, the prompt
forms included (:func:`require_prompts`); other modules are welcome to.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Optional, TypeVar

import torch

__all__ = [
    "require_bool",
    "require_int",
    "require_real",
    "require_choice",
    "require_instance",
    "require_callable",
    "require_generator",
    "require_prompts",
    "require_eos_ids",
]

T = TypeVar("T")


def _is_int(x: object) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _got(value: object) -> str:
    return f"{type(value).__name__} {value!r}"


def _range_text(minimum: Optional[float], maximum: Optional[float]) -> str:
    if minimum is not None and maximum is not None:
        return f"in [{minimum}, {maximum}]"
    if minimum is not None:
        return f">= {minimum}"
    if maximum is not None:
        return f"<= {maximum}"
    return ""


def require_bool(name: str, value: object) -> bool:
    """``value`` must be ``True`` or ``False`` (not 0/1, not a string): TypeError otherwise."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {_got(value)}")
    return value


def require_int(name: str, value: object, minimum: Optional[int] = None, maximum: Optional[int] = None) -> int:
    """An integer (Python or NumPy, not a bool) in ``[minimum, maximum]`` (either bound optional).

    TypeError for bools, floats (even ``3.0``), strings and None; ValueError out of range.
    """
    allowed = " ".join(filter(None, ("an integer", _range_text(minimum, maximum))))
    if not _is_int(value):
        raise TypeError(f"{name} must be {allowed}, got {_got(value)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def require_real(
    name: str,
    value: object,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
) -> float:
    """A finite real number (int or float, not a bool) in ``[minimum, maximum]``; returns a float.

    TypeError for bools, strings, complex numbers and None; ValueError for NaN, infinities
    and values out of range.
    """
    allowed = " ".join(filter(None, ("a finite real number", _range_text(minimum, maximum))))
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {allowed}, got {_got(value)}")
    x = float(value)
    if not math.isfinite(x) or (minimum is not None and x < minimum) or (maximum is not None and x > maximum):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return x


def require_choice(name: str, value: T, allowed: Iterable[Any]) -> T:
    """``value`` must be one of ``allowed`` (compared with ``==``; bools only match bools)."""
    options = tuple(allowed)
    ok = any(value is a if isinstance(a, bool) or isinstance(value, bool) else value == a for a in options)
    if not ok:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def require_instance(name: str, value: T, cls: type, what: Optional[str] = None, optional: bool = False) -> T:
    """``value`` must be an instance of ``cls`` (or None with ``optional``): TypeError otherwise.

    ``what`` describes the allowed type in the message (default: the class name).
    """
    if optional and value is None:
        return value
    if not isinstance(value, cls):
        described = what or f"a {cls.__name__}"
        raise TypeError(f"{name} must be {described}{' or None' if optional else ''}, got {type(value).__name__}")
    return value


def require_callable(name: str, value: T, signature: str = "", optional: bool = False) -> T:
    """``value`` must be callable (or None with ``optional``); ``signature`` shows how it is called."""
    if optional and value is None:
        return value
    if not callable(value):
        how = f" as {signature}" if signature else ""
        raise TypeError(f"{name} must be callable{how}, got {type(value).__name__}")
    return value


def require_generator(name: str, value: object, optional: bool = True) -> Optional[torch.Generator]:
    """A ``torch.Generator`` on any device (or None when ``optional``): TypeError otherwise.

    A seed is not a generator: ``generator=42`` is refused with a hint to build one.
    """
    if value is None and optional:
        return None
    if not isinstance(value, torch.Generator):
        hint = f": pass torch.Generator().manual_seed({value!r})" if _is_int(value) else ""
        allowed = "a torch.Generator" + (" or None" if optional else "")
        raise TypeError(f"{name} must be {allowed}, got {type(value).__name__}{hint}")
    return value


# --------------------------------------------------------------------------------------
# Token ids: prompts and end-of-sequence ids
# --------------------------------------------------------------------------------------


def _is_array(x: object) -> bool:
    return isinstance(x, torch.Tensor) or type(x).__module__ == "numpy"


def _token_id(name: str, t: object, vocab_size: int, allowed: str) -> int:
    """One token id: an integer (TypeError otherwise) in [0, vocab_size) (ValueError otherwise)."""
    if not _is_int(t):
        raise TypeError(f"{name} must be {allowed}, got {_got(t)}")
    if not 0 <= t < vocab_size:
        raise ValueError(f"{name} must be token ids in [0, {vocab_size - 1}] (the vocabulary), got {t!r}")
    return int(t)


def _row(ids: Any, vocab_size: int, name: str) -> list[int]:
    """One prompt (a sequence of ints, or a 1-D integer tensor/array) -> list of ids."""
    if _is_array(ids) and len(ids.shape) != 1:
        raise ValueError(f"{name}: each prompt must be 1-D, got shape {tuple(ids.shape)}")
    if isinstance(ids, torch.Tensor):
        if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer token ids, got a tensor of dtype {ids.dtype}")
        ids = ids.tolist()
    elif type(ids).__module__ == "numpy":
        if ids.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer token ids, got a NumPy array of dtype {ids.dtype}")
        ids = ids.tolist()
    row = list(ids)
    if not row:
        raise ValueError(f"{name}: every prompt needs at least one token")
    return [_token_id(name, t, vocab_size, "integer token ids") for t in row]


def require_prompts(name: str, value: object, vocab_size: int, *, one: bool = False) -> list[list[int]]:
    """Every accepted prompt form -> a list of B prompts (lists of ids).

    Accepted: one prompt (a list/tuple of ints, a 1-D integer tensor or NumPy array) or
    several (a ragged list of such rows, a 2-D integer tensor or array (B, T)). Python and
    NumPy integers are both fine. A (B, T) tensor is B prompts, never flattened; with
    ``one=True`` (decoders of a single prompt) B must be 1. Strings, floats, None and bools
    raise TypeError; empty prompts and ids outside [0, vocab_size) raise ValueError.
    """
    if value is None or isinstance(value, (str, bytes, numbers.Number)):
        hint = ": encode the text with the tokenizer first" if isinstance(value, (str, bytes)) else ""
        raise TypeError(
            f"{name} must be a list of token ids, a list of such lists, or an integer tensor (T,) / (B, T), "
            f"got {type(value).__name__}{hint}"
        )
    if _is_array(value):
        dims = len(value.shape)
        if dims not in (1, 2):
            raise ValueError(f"{name} tensor must have shape (T,) or (B, T), got {tuple(value.shape)}")
        rows = [_row(value, vocab_size, name)] if dims == 1 else [_row(r, vocab_size, name) for r in value]
    else:
        items = list(value)
        if not items:
            raise ValueError(f"{name} must hold at least one prompt (got an empty sequence)")
        if all(_is_int(t) for t in items):
            rows = [_row(items, vocab_size, name)]  # a single prompt
        elif all(isinstance(t, (list, tuple)) or _is_array(t) for t in items):
            rows = [_row(r, vocab_size, name) for r in items]
        else:
            bad = next(t for t in items if not _is_int(t))
            raise TypeError(f"{name} must hold integer token ids (or lists of them), got {_got(bad)}")
    if not rows:
        raise ValueError(f"{name} must hold at least one prompt")
    if one and len(rows) != 1:
        raise ValueError(f"{name} holds {len(rows)} prompts, but this decoder takes one: pass a single row")
    return rows


def require_eos_ids(name: str, value: object, vocab_size: int) -> set[int]:
    """None, one id, or a list/tuple/set of ids in [0, vocab_size) -> a set of ids."""
    if value is None:
        return set()
    ids = [value] if _is_int(value) else value
    if not isinstance(ids, (list, tuple, set)):
        raise TypeError(f"{name} must be an int, a list of ints or None, got {_got(value)}")
    return {_token_id(name, t, vocab_size, "an int, a list of ints or None") for t in ids}
