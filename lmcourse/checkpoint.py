"""Checkpoint files: one format, written atomically, read without running any code.

Chapter 4 (training) writes these files; every later chapter reads them. A checkpoint is
a plain dict of tensors, numbers, strings, lists and dicts::

    {"format": "lmcourse-checkpoint", "version": 1,
     "model_config": GPTConfig.to_dict() (or None for a model that is not a GPT),
     "model": state_dict, "tokenizer": tokenizer_to_dict(tok) or None,
     "train_config": TrainConfig.to_dict() or None, "step": int,
     "optimizer": state_dict or None, "scaler": state_dict or None,
     "rng": {name: tensor} or None, "metrics": {"val_loss": ..., ...},
     "history": [record, ...], "meta": {"command": ..., ...}}

**What is safe to load.** A ``.pt`` file is a Python pickle, and unpickling an arbitrary
pickle can run arbitrary code: never ``torch.load(path, weights_only=False)`` a file you did
not make. Every loading path in lmcourse (:func:`load`, :func:`load_model`,
``Trainer.resume``, ``load_pretrained``, ``load_herald``, ``python -m
lmcourse sample/train``) calls ``torch.load(..., weights_only=True)``, whose unpickler
accepts only tensors and plain containers and refuses everything else *before* running it.
So loading a checkpoint from a classmate or from the web with lmcourse cannot run code;
it can still contain a bad model (wrong, or trained to say anything), and a file from an
older lmcourse (or any file holding other Python objects) is refused with a message.
:func:`load` also checks what it reads, cheaply and before anything is built: the
format and version (a string and an integer), the type of every field, the model
configuration's sizes (within :data:`CONFIG_LIMITS`), the weights' names and shapes
against it (computed by :func:`expected_shapes` from the sizes alone, so a small file
declaring 100,000 layers is refused at once), that every weight is floating point and
finite; every error names the file.

A training run's folder is written only through regular files the trainer creates
inside it (:func:`atomic_write`: a temporary file and a rename, never following a link),
after :func:`check_run_folder` has refused links and non-files there, and by one trainer
at a time (:func:`run_lock`).

Reading order: the format (:data:`FORMAT`, :data:`VERSION`), the atomic write
(:func:`save`, :func:`atomic_write`), the checked read (:func:`load`, :func:`load_model`,
:func:`expected_shapes`), and the files of a training run (:func:`list_checkpoints`,
:func:`latest_checkpoint`, :func:`clean_stale_temp_files`, :func:`check_run_folder`,
:func:`run_lock`).
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import re
import secrets
import stat
import warnings
from typing import IO, Any, Callable, Iterator, Optional, Union

import torch
import torch.nn as nn

from .checks import require_bool
from .model import GPT, GPTConfig
from .tokenization import tokenizer_from_dict, tokenizer_to_dict

__all__ = [
    "FORMAT",
    "VERSION",
    "CheckpointError",
    "save",
    "load",
    "load_model",
    "list_checkpoints",
    "latest_checkpoint",
    "checkpoint_name",
    "BEST_NAME",
    "clean_stale_temp_files",
    "CONFIG_LIMITS",
    "expected_shapes",
    "count_parameters",
    "atomic_write",
    "check_run_folder",
    "run_lock",
    "RunFolderError",
    "LOCK_NAME",
]

FORMAT = "lmcourse-checkpoint"
VERSION = 1
FIELDS = ("model_config", "model", "tokenizer", "train_config", "step", "optimizer", "scaler",
          "rng", "metrics", "history", "meta")
BEST_NAME = "best.pt"  # the best-validation model of a training run
_CKPT_RE = re.compile(r"ckpt_(\d+)\.pt")  # the periodic checkpoints: ckpt_<step>.pt
_TMP_RE = re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{8}")  # unfinished writes

PathLike = Union[str, os.PathLike]
FileLike = Union[PathLike, IO[bytes]]  # a path, or a binary file object opened by the caller
LOCK_NAME = ".lmcourse-train.lock"  # the lock a training run holds on its folder (run_lock)
# Sane bounds on a stored GPTConfig, checked before any shape is computed: every real
# model of the course (and GPT-2 / Llama sizes) is well inside them.
CONFIG_LIMITS = {"vocab_size": 1 << 24, "block_size": 1 << 20, "n_layer": 1024, "n_head": 1024,
                 "n_kv_head": 1024, "n_embd": 1 << 16, "mlp_hidden": 1 << 18}
MAX_PARAMETERS = 1 << 40  # about a trillion: anything larger is not a checkpoint of ours


class CheckpointError(ValueError):
    """A file that is not a valid, safe lmcourse checkpoint (the message names the file)."""


class RunFolderError(ValueError):
    """A run folder that a trainer must not write to (links, foreign files, another trainer)."""


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def _model_config(model: nn.Module) -> Optional[dict[str, Any]]:
    config = getattr(model, "config", None)
    return config.to_dict() if isinstance(config, GPTConfig) else None


def save(path: FileLike, model: nn.Module, tokenizer: Any = None, **fields: Any) -> Union[str, IO[bytes]]:
    """Write ``model`` (and optionally its tokenizer and training state) to ``path``.

    Args:
        path: the file to write (its folder is created if needed), or a binary file
            object opened for writing (``open(..., "wb")``, ``io.BytesIO()``).
        model: the model; a :class:`~lmcourse.model.GPT` also stores its configuration.
        tokenizer: stored as a plain dict, so :func:`load_model` returns it too.
        **fields: any of ``train_config, step, optimizer, scaler, rng, metrics, history,
            meta`` (plain types and tensors only, so the file loads with ``weights_only``).

    A path is written atomically (:func:`atomic_write`): to a temporary name in the same
    folder, flushed to disk and renamed over ``path``, so a crash or a full disk leaves
    the previous file intact, and a symbolic link at ``path`` is replaced, never followed.
    It gets the usual permissions (``0666`` minus the umask). A file object is written
    where it stands (the caller owns it). Returns ``path``.
    """
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown checkpoint fields {sorted(unknown)}; known: {list(FIELDS[2:])}")
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": _model_config(model),
        "model": {k: v.detach() for k, v in model.state_dict().items()},
        "tokenizer": None if tokenizer is None else tokenizer_to_dict(tokenizer),
        "train_config": None,
        "step": 0,
        "optimizer": None,
        "scaler": None,
        "rng": None,
        "metrics": {},
        "history": [],
        "meta": {},
    }
    payload.update(fields)
    obj = _plain(payload, "checkpoint")
    if _is_file_object(path):
        torch.save(obj, path)
        return path
    atomic_write(path, lambda f: torch.save(obj, f), what="checkpoint")
    return os.fspath(path)


def _is_file_object(path: Any) -> bool:
    return hasattr(path, "write") or hasattr(path, "read")


def _plain(obj: Any, where: str) -> Any:
    """``obj`` made of exactly the types ``weights_only`` loading accepts, or a TypeError.

    Subclasses of str/int/float (``torch.__version__`` is one) and numpy scalars become
    the plain type, so that the file loads without allow-listing any class.
    """
    if obj is None or isinstance(obj, (torch.Tensor, torch.Size, torch.dtype)):
        return obj
    for plain in (bool, int, float, str):
        if isinstance(obj, plain):
            return plain(obj)
    if getattr(obj, "ndim", None) == 0 and hasattr(obj, "item"):  # a numpy scalar
        return _plain(obj.item(), where)
    if isinstance(obj, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, dict):
        return {_plain(k, where): _plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    raise TypeError(f"{where} is a {type(obj).__name__}: checkpoints hold only tensors, numbers, "
                    "strings, lists, tuples and dicts (so they load with weights_only=True)")


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None], what: str = "file") -> str:
    """Create or replace the regular file ``path`` with what ``write(f)`` writes to ``f``.

    ``write`` gets a new temporary file ``.<name>.tmp-<pid>-<random>`` in the same folder,
    created with ``O_EXCL | O_NOFOLLOW`` (so it is a new regular file, never an existing
    file or a link); it is flushed, synced and renamed over ``path`` with ``os.replace``.
    A crash or a full disk leaves the previous file intact, and a symbolic link at
    ``path`` is replaced by the new file: its target is never written. Every file that
    the Trainer and ``python -m lmcourse train`` write goes through here. Returns ``path``.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create the folder of {what} {path!r}: {e.strerror or e}") from e
    if os.path.isdir(path) and not os.path.islink(path):
        raise OSError(f"cannot write {what} {path!r}: it is a folder")
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        # os.open with mode 0o666 lets the umask decide (0644 usually); mkstemp would give 0600
        fd = os.open(tmp, flags, 0o666)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.lexists(tmp):
            os.remove(tmp)
        if isinstance(e, (OSError, RuntimeError)):  # disk full, read-only folder, ...
            raise OSError(f"could not write {what} {path!r}: {e} (disk full or not writable?)") from e
        raise
    return path


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


def _name(path: FileLike) -> str:
    """How error messages name ``path``: the path, or a file object's ``name``."""
    if _is_file_object(path):
        return str(getattr(path, "name", f"<{type(path).__name__}>"))
    return os.fspath(path)


def _torch_load(path: FileLike, map_location: Any) -> Any:
    """``torch.load(weights_only=True)`` with errors that name the file."""
    name = _name(path)
    if not _is_file_object(path):
        if not os.path.lexists(path):
            raise FileNotFoundError(f"no checkpoint file at {name!r}")
        if not os.path.isfile(path):
            raise CheckpointError(f"{name!r} is not a file")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4" for a plain pickle
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        unsafe = re.search(r"unsupported (?:global|class):? (?:global )?[\w.]+", str(e), re.IGNORECASE)
        if unsafe:
            raise CheckpointError(
                f"refusing to load {name!r}: it holds Python objects other than tensors and "
                f"plain containers, which could run code when unpickled ({unsafe.group(0)}). "
                "Only files in the lmcourse checkpoint format are loaded."
            ) from None
        raise CheckpointError(f"{name!r} is corrupt or not a torch checkpoint (the safe "
                              "weights-only loader cannot read it)") from None
    except RecursionError:
        raise CheckpointError(f"{name!r} is corrupt: its containers are nested too deeply") from None
    except MemoryError:
        raise CheckpointError(f"{name!r} is corrupt: it declares more data than fits in memory") from None
    except Exception as e:  # truncated zip, not a torch file, ...
        message = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{name!r} is corrupt or not a torch checkpoint: {message}") from None


def _int_field(config: dict[str, Any], name: str, default: Optional[int]) -> Optional[int]:
    value = config.get(name, default)
    if value is None and name in ("n_kv_head", "mlp_hidden"):
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"model_config.{name} must be an integer, got {value!r}")
    if not 1 <= value <= CONFIG_LIMITS[name]:
        raise ValueError(f"model_config.{name} must be in [1, {CONFIG_LIMITS[name]}], got {value!r}")
    return value


def _checked_config(config: Any) -> GPTConfig:
    """A stored ``model_config`` as a GPTConfig, its sizes bounded before anything uses them."""
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise ValueError(f"model_config must be a dict of named fields, got {type(config).__name__}")
    defaults = GPTConfig.__dataclass_fields__
    for name in CONFIG_LIMITS:
        _int_field(config, name, defaults[name].default)
    return GPTConfig.from_dict(config)  # the remaining checks (choices, divisibility, ...)


def expected_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """The ``state_dict`` shapes of ``GPT(config)``, computed from the sizes alone.

    Nothing is built (not even on the meta device), so this costs the same for any
    configuration; a test holds it equal to the state dict of a built model.
    """
    C, V, F = config.n_embd, config.vocab_size, config.hidden_dim
    kv = 2 * config.n_kv_head * config.head_dim
    norm_bias = config.bias and config.norm == "layernorm"
    shapes: dict[str, tuple[int, ...]] = {"transformer.wte.weight": (V, C)}
    if config.pos_emb == "learned":
        shapes["transformer.wpe.weight"] = (config.block_size, C)

    def linear(name: str, n_out: int, n_in: int) -> None:
        shapes[name + ".weight"] = (n_out, n_in)
        if config.bias:
            shapes[name + ".bias"] = (n_out,)

    def norm(name: str) -> None:
        shapes[name + ".weight"] = (C,)
        if norm_bias:
            shapes[name + ".bias"] = (C,)

    for i in range(config.n_layer):
        h = f"transformer.h.{i}"
        norm(f"{h}.ln_1")
        linear(f"{h}.attn.c_attn", C + kv, C)
        linear(f"{h}.attn.c_proj", C, C)
        norm(f"{h}.ln_2")
        linear(f"{h}.mlp.c_fc", 2 * F if config.mlp == "swiglu" else F, C)
        linear(f"{h}.mlp.c_proj", C, F)
    norm("transformer.ln_f")
    shapes["lm_head.weight"] = (V, C)
    return shapes


def count_parameters(config: GPTConfig) -> int:
    """Number of parameters of ``GPT(config)`` (a tied LM head counted once), by arithmetic."""
    total = sum(math.prod(shape) for shape in expected_shapes(config).values())
    return total - (config.vocab_size * config.n_embd if config.tie_weights else 0)


def _layer_count_ok(config: GPTConfig, state: dict[str, Any]) -> bool:
    """Cheap first test: a file with far fewer tensors than the config needs is refused at once."""
    per_layer = 6 + 4 * config.bias + 2 * (config.bias and config.norm == "layernorm")
    return len(state) >= config.n_layer * per_layer


_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def _check_weights(path: str, state: Any, config: Optional[dict[str, Any]]) -> None:
    """Every entry a floating tensor with finite values, and (given a config) the right shape."""
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"{path!r}: 'model' must be a dict of named tensors")
    for key, tensor in state.items():
        if tensor.dtype not in _FLOAT_DTYPES:
            raise CheckpointError(f"{path!r}: weight {key!r} has dtype {tensor.dtype}; model weights "
                                  "must be floating point (float32, float16, bfloat16 or float64)")
    if config is not None:
        try:
            cfg = _checked_config(config)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{path!r}: invalid model_config: {e}") from None
        if not _layer_count_ok(cfg, state):
            raise CheckpointError(f"{path!r}: model_config declares {cfg.n_layer} layers but the file "
                                  f"holds only {len(state)} weights")
        n_params = count_parameters(cfg)
        if n_params > MAX_PARAMETERS:
            raise CheckpointError(f"{path!r}: model_config declares {n_params:,} parameters "
                                  f"(more than {MAX_PARAMETERS:,})")
        expected = expected_shapes(cfg)
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        if missing or extra:
            raise CheckpointError(f"{path!r}: weights do not match model_config (missing {missing[:5]}, "
                                  f"unexpected {extra[:5]})")
        for key, shape in expected.items():
            if tuple(state[key].shape) != shape:
                raise CheckpointError(f"{path!r}: weight {key!r} has shape {tuple(state[key].shape)}, "
                                      f"model_config needs {shape}")
    for key, tensor in state.items():
        if not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path!r} is corrupt: weight {key!r} holds NaN or infinite values")


# The type each field must have (None is always allowed: "not stored")
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "model_config": (dict,), "model": (dict,), "tokenizer": (dict,), "train_config": (dict,),
    "step": (int,), "optimizer": (dict,), "scaler": (dict,), "rng": (dict,), "metrics": (dict,),
    "history": (list,), "meta": (dict,),
}


def _check_fields(name: str, ckpt: dict[str, Any]) -> None:
    for key, types in _FIELD_TYPES.items():
        value = ckpt[key]
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            raise CheckpointError(f"{name!r}: field {key!r} must be a {types[0].__name__} or None, "
                                  f"got {type(value).__name__}")
    if ckpt["model"] is None:
        raise CheckpointError(f"{name!r}: the file holds no model weights ('model' is missing)")
    if ckpt["step"] is not None and ckpt["step"] < 0:
        raise CheckpointError(f"{name!r}: field 'step' must be >= 0, got {ckpt['step']}")


def load(path: FileLike, map_location: Any = "cpu", check: bool = True) -> dict[str, Any]:
    """Read and check a checkpoint; returns its dict (see the module docstring).

    ``path`` is a file path or a binary file object opened for reading. Never runs code
    from the file (``weights_only=True``). Raises ``FileNotFoundError`` for a missing file
    and :class:`CheckpointError` (a ``ValueError``) naming the file for anything else: a
    pickle with other objects, a truncated file, another format, a version that is not a
    known integer, fields of the wrong type, a ``model_config`` outside
    :data:`CONFIG_LIMITS`, weights that do not fit it (checked from the sizes alone,
    before any model is built), weights that are not floating point, NaN or infinite
    weights. ``check=False`` skips the weight checks (the format, version and field
    types are always checked).
    """
    require_bool("check", check)
    name = _name(path)
    ckpt = _torch_load(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or not isinstance(ckpt.get("format"), str):
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{name!r} is not an lmcourse checkpoint (format {found!r}, "
                              f"expected {FORMAT!r})")
    version = ckpt.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        raise CheckpointError(f"{name!r} has checkpoint version {version!r}; this lmcourse reads "
                              f"the integer versions 1..{VERSION} (upgrade lmcourse?)")
    for key in FIELDS:
        ckpt.setdefault(key, None)
    _check_fields(name, ckpt)
    if check:
        _check_weights(name, ckpt["model"], ckpt["model_config"])
    return ckpt


def load_model(path: FileLike, device: Optional[Union[str, torch.device]] = None) -> tuple[GPT, Any]:
    """``(model, tokenizer or None)`` from a checkpoint file (a path or a binary file object),
    or from a run folder.

    A folder written by ``python -m lmcourse train`` (or a :class:`~lmcourse.train.Trainer`
    with ``ckpt_dir``) gives its best-validation model ``best.pt``, or its latest
    checkpoint when there is no ``best.pt``. The model is in eval mode, in fp32, on
    ``device`` (default CPU).
    """
    if not _is_file_object(path) and os.path.isdir(path):
        path = os.fspath(path)
        best = os.path.join(path, BEST_NAME)
        found = best if _is_regular(best) else latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"no checkpoint ({BEST_NAME} or ckpt_<step>.pt) in folder {path!r}")
        path = found
    ckpt = load(path)
    path = _name(path)
    if ckpt["model_config"] is None:
        raise CheckpointError(f"{path!r} holds a model that is not an lmcourse GPT (no model_config)")
    model = GPT(GPTConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"].items()})
    tokenizer = None
    if ckpt["tokenizer"] is not None:
        try:
            tokenizer = tokenizer_from_dict(ckpt["tokenizer"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path!r}: invalid tokenizer: {e}") from None
        if tokenizer.vocab_size != model.config.vocab_size:
            raise CheckpointError(f"{path!r}: tokenizer vocab {tokenizer.vocab_size} != model vocab "
                                  f"{model.config.vocab_size}")
    return model.to(device or "cpu").eval(), tokenizer


# --------------------------------------------------------------------------------------
# The files of a training run
# --------------------------------------------------------------------------------------


def checkpoint_name(step: int) -> str:
    """File name of the periodic checkpoint at ``step``: ``ckpt_0001000.pt``."""
    return f"ckpt_{step:07d}.pt"


def list_checkpoints(folder: PathLike) -> list[str]:
    """The ``ckpt_<step>.pt`` files in ``folder``, oldest step first (numeric order).

    Only regular files named exactly ``ckpt_<digits>.pt`` count (a copy such as
    ``ckpt_0000100 (1).pt`` does not, nor does a symbolic link); a missing folder has none.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(folder)
             if (m := _CKPT_RE.fullmatch(name)) and _is_regular(os.path.join(folder, name))]
    return [os.path.join(folder, name) for _, name in sorted(found)]


def latest_checkpoint(folder: PathLike) -> Optional[str]:
    """Newest valid checkpoint in ``folder``, or None: files that fail :func:`load` are skipped.

    A file that is named like ours but is not a valid checkpoint of this format (a
    user's own file, a damaged copy) is passed over with a warning, so resuming takes the
    newest checkpoint the Trainer really wrote.
    """
    for path in reversed(list_checkpoints(folder)):
        try:
            load(path, check=False)
        except (CheckpointError, FileNotFoundError) as e:
            warnings.warn(f"skipping {path}: {e}", stacklevel=2)
            continue
        return path
    return None


def clean_stale_temp_files(folder: PathLike) -> list[str]:
    """Delete temporary files left by writes that were killed; returns what was removed.

    A temporary file carries the id of the process writing it; it is stale when that
    process no longer runs (a running writer's files, in this or another process, are
    left alone).
    """
    folder = os.fspath(folder)
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in os.listdir(folder):
        m = _TMP_RE.fullmatch(name)
        if m is None or _pid_alive(int(m.group("pid"))):
            continue
        try:
            os.remove(os.path.join(folder, name))
            removed.append(os.path.join(folder, name))
        except OSError:
            pass
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # exists (another user's) or cannot tell: keep the file
    return True


def _is_regular(path: str) -> bool:
    """A regular file itself, not a link to one (``lstat``: links are never followed)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


# The names a training run writes in its folder (checked by check_run_folder)
RUN_FILES = ("history.json", "tokenizer.json", BEST_NAME, LOCK_NAME)


def check_run_folder(folder: PathLike) -> None:
    """Refuse a run folder that a trainer would write through a link or into a non-file.

    Every name the trainer writes (``history.json``, ``tokenizer.json``, ``best.pt``,
    ``ckpt_<step>.pt``, the lock) must be absent or a regular file; a symbolic link, a
    folder, a FIFO or a device there raises :class:`RunFolderError` naming it, before
    anything is written. (The writes replace links rather than follow them anyway, see
    :func:`atomic_write`; the check makes a tampered folder an error instead of a
    silent repair.) A missing folder is fine: the trainer creates it.
    """
    folder = os.fspath(folder)
    if not os.path.lexists(folder):
        return
    if not os.path.isdir(folder):
        raise RunFolderError(f"run folder {folder!r} is not a folder")
    for name in sorted(os.listdir(folder)):
        if name not in RUN_FILES and not _CKPT_RE.fullmatch(name) and not _TMP_RE.fullmatch(name):
            continue
        path = os.path.join(folder, name)
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            raise RunFolderError(f"run folder {folder!r}: {name!r} is a symbolic link (to "
                                 f"{os.readlink(path)!r}); a trainer writes only regular files it "
                                 "created inside its folder. Remove the link or use another --out.")
        if not stat.S_ISREG(mode):
            raise RunFolderError(f"run folder {folder!r}: {name!r} is not a regular file; remove it "
                                 "or use another --out")


@contextlib.contextmanager
def run_lock(folder: PathLike) -> Iterator[str]:
    """Hold the run folder's lock ``<folder>/.lmcourse-train.lock`` while the block runs.

    The lock is an exclusive ``flock`` on that file, which holds the owner's process id.
    A second trainer on the same folder (another process, or another call in this one)
    gets a :class:`RunFolderError` naming the lock file and the owner's pid. A stale
    lock cannot block a run: the operating system releases an ``flock`` when its
    process ends, however it ends (killed, crashed, power lost), so the file left behind
    by a dead run is simply taken over; there is nothing to delete by hand. (On a
    network file system without ``flock`` support, or on Windows, no lock is taken.)
    """
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_NAME)
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        yield path
        return
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as e:
        raise RunFolderError(f"cannot open the lock {path!r} of run folder {folder!r}: "
                             f"{e.strerror or e} (a link or a non-file there?)") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RunFolderError(f"the lock {path!r} of run folder {folder!r} is not a regular file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise RunFolderError(
                f"run folder {folder!r} is in use by another trainer: the lock {path!r} is held "
                f"(by process {owner}). Wait for it to finish or use another --out."
            ) from None
        except OSError:  # no flock on this file system: run unlocked
            pass
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the flock
