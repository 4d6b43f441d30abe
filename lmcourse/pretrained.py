"""The shipped checkpoints: small char-level Shakespeare models the book's chapters use.

Chapter 4 (training) made them with ``python -m lmcourse train --export-pretrained NAME``
(the course's :class:`lmcourse.train.Trainer`); each file records its command, seed, number
of steps, training time and validation loss in its ``meta``. Later chapters (sampling, KV
cache, speculative decoding) load them with :func:`load_pretrained` instead of training.

They are ordinary :mod:`lmcourse.checkpoint` files, loaded with ``weights_only=True``
(nothing in them is executed). Only the names in :data:`PRETRAINED` are accepted: a name
is never turned into a path, so ``"../x"`` or ``"/tmp/x"`` is an unknown name. To load a
checkpoint file of your own, use :func:`lmcourse.checkpoint.load_model`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import torch

from .checkpoint import load, load_model
from .model import GPT

__all__ = ["CHECKPOINT_DIR", "PRETRAINED", "available", "checkpoint_path", "load_pretrained", "metadata"]

CHECKPOINT_DIR = Path(__file__).parent / "assets" / "checkpoints"
# name -> file in CHECKPOINT_DIR: the only names load_pretrained accepts
PRETRAINED = {
    "shakespeare-char": "shakespeare-char.pt",
    "shakespeare-char-draft": "shakespeare-char-draft.pt",
}


def available() -> list[str]:
    """Names of the shipped checkpoints, e.g. ``["shakespeare-char", ...]``."""
    return sorted(name for name, file in PRETRAINED.items() if (CHECKPOINT_DIR / file).is_file())


def checkpoint_path(name: str) -> Path:
    """File of the shipped checkpoint ``name``; ValueError listing the available ones."""
    if not isinstance(name, str) or name not in PRETRAINED or name not in available():
        raise ValueError(f"unknown pretrained checkpoint {name!r}; available: {available()} "
                         "(for a file of your own use lmcourse.checkpoint.load_model(path))")
    return CHECKPOINT_DIR / PRETRAINED[name]


def metadata(name: str) -> dict[str, Any]:
    """How checkpoint ``name`` was made: command, seed, iters, val_loss, train_seconds, ..."""
    return dict(load(checkpoint_path(name), check=False)["meta"])


def load_pretrained(
    name: str = "shakespeare-char", device: Optional[Union[str, torch.device]] = None
) -> tuple[GPT, Any]:
    """``(model, tokenizer)`` of a shipped checkpoint; the model is in eval mode, in fp32.

    Args:
        name: one of :func:`available` (``"shakespeare-char"``, ``"shakespeare-char-draft"``).
        device: where to put the model (default CPU).
    """
    return load_model(checkpoint_path(name), device=device)
