"""The messages between the grader and the sandboxed worker: framing, plain data, tags.

One module for both sides: the grader imports it, and a copy of it is placed in the
sandbox next to the worker (as the allowed ``lmcourse`` modules are), so both sides frame,
check and tag messages the same way. It uses only the standard library and torch.

A message is an 8-byte little-endian length followed by a ``torch.save`` payload, read back
with ``torch.load(weights_only=True)``: never pickled code. What the grader accepts from the
sandbox is checked by :func:`check_plain` before anything looks at it:

- only ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, ``list``,
  ``tuple``, ``dict`` (keys: numbers, strings, tuples of them), exact ``torch.Tensor``
  and the dtypes of :data:`DTYPES`;
- every container and tensor appears once (shared references, the seed of a "pickle
  bomb" whose traversal is exponential, are refused);
- tensors are dense, on the CPU, contiguous, own exactly their storage (no stride-0 view
  of one number made to look huge, no overlapping or shared storage), with an allowed dtype;
- at most :data:`MAX_ITEMS` values and :data:`MAX_DEPTH` levels; messages at most
  ``max_bytes`` long.

Objects that are not plain data travel as tagged dicts (the tag names below).
"""

from __future__ import annotations

import io
import os
import select
import struct
import time
from typing import Any, Callable, Optional

import torch

# ---- tags: a dict with one of these keys stands for an object ------------------------------
HANDLE = "__handle__"        # an object that stays in the sandbox (int id, "type", "callable")
DTYPE = "__dtype__"          # a torch dtype, by name (only the names of DTYPES)
GENERATOR = "__generator__"  # a torch.Generator by value: its state (and "device")
GENREF = "__genref__"        # the same generator again, by position
CALLBACK = "__callback__"    # a function of the grader that the sandbox calls back
GPT = "__gpt__"              # an lmcourse.model.GPT by value: config dict, "state", "training"
OPTIM = "__optim__"          # a torch optimizer by value: class name, "model" index, "state"
TAGS = (HANDLE, DTYPE, GENERATOR, GENREF, CALLBACK, GPT, OPTIM)

# the only dtypes that may cross, by name
DTYPES = {name: getattr(torch, name) for name in (
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
    "uint8", "int8", "int16", "int32", "int64", "bool")}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
# optimizers that may be rebuilt in the sandbox, by class name
OPTIMIZERS = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad")

MAX_BYTES = 64 * 2**20   # default cap on one message
MAX_ITEMS = 2_000_000    # values in one message
MAX_DEPTH = 100          # nesting levels in one message
_SCALARS = (type(None), bool, int, float, complex, str, bytes)


class ProtocolError(Exception):
    """A message is malformed, too large, or not plain data."""


class ProtocolTimeout(ProtocolError):
    """No (complete) message before the deadline."""


class ProtocolClosed(ProtocolError):
    """The other side closed its end (the process died)."""


# ---- framing -------------------------------------------------------------------------------


def dumps(msg: Any) -> bytes:
    """``msg`` as one framed message (length prefix + torch.save payload)."""
    buf = io.BytesIO()
    torch.save(msg, buf)
    data = buf.getvalue()
    return struct.pack("<Q", len(data)) + data


def write_message(fd: int, msg: Any) -> None:
    """Write one framed message to the file descriptor ``fd``."""
    view = memoryview(dumps(msg))
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int, deadline: Optional[float]) -> bytes:
    chunks = []
    while n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise ProtocolTimeout("no answer in time")
        b = os.read(fd, min(n, 1 << 20))
        if not b:
            raise ProtocolClosed("the other side closed the connection")
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def read_message(fd: int, deadline: Optional[float] = None, max_bytes: int = MAX_BYTES) -> Any:
    """Read one framed message from ``fd`` (``deadline``: a ``time.monotonic()`` value).

    The payload is loaded with ``torch.load(weights_only=True)``; the caller checks it with
    :func:`check_plain` when it comes from the untrusted side.
    """
    (n,) = struct.unpack("<Q", _read_exact(fd, 8, deadline))
    if n > max_bytes:
        raise ProtocolError(f"a message of {n} bytes is larger than the limit of {max_bytes} bytes")
    data = _read_exact(fd, n, deadline)
    try:
        return torch.load(io.BytesIO(data), weights_only=True)
    except Exception as e:  # noqa: BLE001 - anything that is not plain data
        raise ProtocolError(f"the message is not plain data ({type(e).__name__})") from None


# ---- plain data ------------------------------------------------------------------------------


def check_tensor_plain(t: torch.Tensor) -> None:
    """Raise ProtocolError unless ``t`` is a dense CPU tensor owning exactly its storage."""
    if type(t) is not torch.Tensor:
        raise ProtocolError(f"a tensor subclass ({type(t).__name__}) is not plain data")
    if t.layout != torch.strided or t.device.type != "cpu" or t.is_quantized:
        raise ProtocolError("only dense CPU tensors are plain data")
    if t.dtype not in DTYPE_NAMES:
        raise ProtocolError(f"tensors of dtype {t.dtype} are not accepted")
    if t.is_conj() or t.is_neg():
        raise ProtocolError("tensors with a lazy conjugate or negative bit are not accepted")
    if t.storage_offset() != 0 or not t.is_contiguous() or (t.numel() > 1 and 0 in t.stride()):
        raise ProtocolError("tensors must be contiguous and own their storage "
                            "(no views, no stride 0, no overlap): send .contiguous().clone()")
    if t.untyped_storage().nbytes() != t.numel() * t.element_size():
        raise ProtocolError("a tensor's storage must hold exactly its values")


def check_plain(value: Any, max_items: int = MAX_ITEMS, max_depth: int = MAX_DEPTH) -> Any:
    """Return ``value`` if it is plain data (module docstring), else raise ProtocolError."""
    seen: set[int] = set()
    storages: set[int] = set()
    count = [0]

    def walk(v: Any, depth: int) -> None:
        count[0] += 1
        if count[0] > max_items:
            raise ProtocolError(f"more than {max_items} values in one message")
        if depth > max_depth:
            raise ProtocolError(f"more than {max_depth} levels of nesting")
        t = type(v)
        if t in _SCALARS:
            return
        if t is torch.dtype:
            if v not in DTYPE_NAMES:
                raise ProtocolError(f"dtype {v} is not accepted")
            return
        if id(v) in seen:
            raise ProtocolError("the same object appears twice in a message (shared references)")
        seen.add(id(v))
        if t is torch.Tensor:
            check_tensor_plain(v)
            if v.numel():
                ptr = v.untyped_storage().data_ptr()
                if ptr in storages:
                    raise ProtocolError("two tensors share one storage")
                storages.add(ptr)
            return
        if t in (list, tuple):
            for x in v:
                walk(x, depth + 1)
            return
        if t is dict:
            for k, x in v.items():
                if type(k) not in (str, int, float, bool, type(None), tuple):
                    raise ProtocolError(f"dict keys must be numbers or strings, got {type(k).__name__}")
                if type(k) is tuple:
                    walk(k, depth + 1)
                walk(x, depth + 1)
            return
        raise ProtocolError(f"a {t.__name__} is not plain data")

    walk(value, 0)
    return value


def dtype_from_name(name: Any) -> torch.dtype:
    """The dtype of :data:`DTYPES` called ``name`` (``"float32"`` or ``"torch.float32"``)."""
    if type(name) is not str or name.removeprefix("torch.") not in DTYPES:
        raise ProtocolError(f"dtype {name!r} is not accepted")
    return DTYPES[name.removeprefix("torch.")]


def tag_of(value: Any) -> Optional[str]:
    """The tag of a tagged dict, or None."""
    if type(value) is dict:
        for tag in TAGS:
            if tag in value:
                return tag
    return None


def convert(value: Any, special: Callable[[Any], Any], depth: int = 0) -> Any:
    """Rebuild ``value``: containers recursively (as plain list, tuple, dict), ``special(v)``
    for everything else.

    ``special`` returns the converted object (a scalar or tensor as it is, a tag for an
    object). Used by both sides, for arguments and for results.
    """
    if depth > MAX_DEPTH:
        raise ProtocolError(f"more than {MAX_DEPTH} levels of nesting")
    if isinstance(value, list):
        return [convert(v, special, depth + 1) for v in value]
    if isinstance(value, tuple):  # torch.Size, named tuples: plain tuples
        return tuple(convert(v, special, depth + 1) for v in value)
    if isinstance(value, dict) and tag_of(dict(value)) is None:  # OrderedDict: a plain dict
        return {k: convert(v, special, depth + 1) for k, v in value.items()}
    return special(value)
