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
:func:`load` also checks what it reads: the format and version, the shapes against the
model configuration, and that every floating-point weight is finite; every error names
the file.

Reading order: the format (:data:`FORMAT`, :data:`VERSION`), tokenizers in and out, the
atomic write (:func:`save`), the checked read (:func:`load`, :func:`load_model`), and the
files of a training run (:func:`list_checkpoints`, :func:`latest_checkpoint`,
:func:`clean_stale_temp_files`).
"""

from __future__ import annotations

import os
import pickle
import re
import secrets
import warnings
from typing import Any, Optional, Union

import torch
import torch.nn as nn

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
]

FORMAT = "lmcourse-checkpoint"
VERSION = 1
FIELDS = ("model_config", "model", "tokenizer", "train_config", "step", "optimizer", "scaler",
          "rng", "metrics", "history", "meta")
BEST_NAME = "best.pt"  # the best-validation model of a training run
_CKPT_RE = re.compile(r"ckpt_(\d+)\.pt")  # the periodic checkpoints: ckpt_<step>.pt
_TMP_RE = re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{8}")  # unfinished writes

PathLike = Union[str, os.PathLike]


class CheckpointError(ValueError):
    """A file that is not a valid, safe lmcourse checkpoint (the message names the file)."""


# --------------------------------------------------------------------------------------
# Tokenizers in and out (plain dicts)
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def _model_config(model: nn.Module) -> Optional[dict[str, Any]]:
    config = getattr(model, "config", None)
    return config.to_dict() if isinstance(config, GPTConfig) else None


def save(path: PathLike, model: nn.Module, tokenizer: Any = None, **fields: Any) -> str:
    """Write ``model`` (and optionally its tokenizer and training state) to ``path``.

    Args:
        path: the file to write; its folder is created if needed.
        model: the model; a :class:`~lmcourse.model.GPT` also stores its configuration.
        tokenizer: stored as a plain dict, so :func:`load_model` returns it too.
        **fields: any of ``train_config, step, optimizer, scaler, rng, metrics, history,
            meta`` (plain types and tensors only, so the file loads with ``weights_only``).

    The file is written to a temporary name in the same folder, flushed to disk and
    renamed over ``path``: a crash or a full disk leaves the previous file intact. It gets
    the usual permissions (``0666`` minus the umask). Returns ``path``.
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
    _atomic_save(_plain(payload, "checkpoint"), path)
    return os.fspath(path)


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


def _atomic_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` to ``.<name>.tmp-<pid>-<random>`` next to ``path``, then rename."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create the folder of checkpoint {path!r}: {e.strerror or e}") from e
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        # os.open with mode 0o666 lets the umask decide (0644 usually); mkstemp would give 0600
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, (OSError, RuntimeError)):  # disk full, read-only folder, ...
            raise OSError(f"could not write checkpoint {path!r}: {e} (disk full or not writable?)") from e
        raise


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


def _torch_load(path: str, map_location: Any) -> Any:
    """``torch.load(weights_only=True)`` with errors that name the file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint file at {path!r}")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path!r} is not a file")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4" for a plain pickle
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        unsafe = re.search(r"unsupported (?:global|class):? (?:global )?[\w.]+", str(e), re.IGNORECASE)
        if unsafe:
            raise CheckpointError(
                f"refusing to load {path!r}: it holds Python objects other than tensors and "
                f"plain containers, which could run code when unpickled ({unsafe.group(0)}). "
                "Only files in the lmcourse checkpoint format are loaded."
            ) from None
        raise CheckpointError(f"{path!r} is corrupt or not a torch checkpoint (the safe "
                              "weights-only loader cannot read it)") from None
    except Exception as e:  # truncated zip, not a torch file, ...
        raise CheckpointError(f"{path!r} is corrupt or not a torch checkpoint: {e}") from None


def _check_weights(path: str, state: Any, config: Optional[dict[str, Any]]) -> None:
    """Every entry a tensor, every float finite, and (given a GPT config) every shape right."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path!r}: 'model' must be a dict of tensors")
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path!r} is corrupt: weight {key!r} holds NaN or infinite values")
    if config is None:
        return
    try:
        with torch.device("meta"):  # shapes only: no memory, however big the config
            expected = GPT(GPTConfig.from_dict(config)).state_dict()
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path!r}: invalid model_config: {e}") from None
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path!r}: weights do not match model_config (missing {missing[:5]}, "
                              f"unexpected {extra[:5]})")
    for key, ref in expected.items():
        if tuple(state[key].shape) != tuple(ref.shape):
            raise CheckpointError(f"{path!r}: weight {key!r} has shape {tuple(state[key].shape)}, "
                                  f"model_config needs {tuple(ref.shape)}")


def load(path: PathLike, map_location: Any = "cpu", check: bool = True) -> dict[str, Any]:
    """Read and check a checkpoint; returns its dict (see the module docstring).

    Never runs code from the file (``weights_only=True``). Raises ``FileNotFoundError`` for
    a missing file and :class:`CheckpointError` (a ``ValueError``) naming the file for
    anything else: a pickle with other objects, a truncated file, another format, a newer
    version, weights that do not fit ``model_config``, NaN or infinite weights.
    ``check=False`` skips the weight checks (format and version are always checked).
    """
    path = os.fspath(path)
    ckpt = _torch_load(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path!r} is not an lmcourse checkpoint (format {found!r}, "
                              f"expected {FORMAT!r})")
    version = ckpt.get("version")
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise CheckpointError(f"{path!r} has checkpoint version {version!r}; this lmcourse reads "
                              f"versions 1..{VERSION} (upgrade lmcourse?)")
    for key in FIELDS:
        ckpt.setdefault(key, None)
    if check:
        _check_weights(path, ckpt["model"], ckpt["model_config"])
    return ckpt


def load_model(path: PathLike, device: Optional[Union[str, torch.device]] = None) -> tuple[GPT, Any]:
    """``(model, tokenizer or None)`` from a checkpoint file, or from a run folder.

    A folder written by ``python -m lmcourse train`` (or a :class:`~lmcourse.train.Trainer`
    with ``ckpt_dir``) gives its best-validation model ``best.pt``, or its latest
    checkpoint when there is no ``best.pt``. The model is in eval mode, in fp32, on
    ``device`` (default CPU).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        best = os.path.join(path, BEST_NAME)
        found = best if os.path.isfile(best) else latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"no checkpoint ({BEST_NAME} or ckpt_<step>.pt) in folder {path!r}")
        path = found
    ckpt = load(path)
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

    Only names that are exactly ``ckpt_<digits>.pt`` count (a copy such as
    ``ckpt_0000100 (1).pt`` does not); a missing folder has none.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(folder)
             if (m := _CKPT_RE.fullmatch(name)) and os.path.isfile(os.path.join(folder, name))]
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
