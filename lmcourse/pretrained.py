"""The shipped checkpoints: small char-level Shakespeare models the book's chapters use.

Chapter 4 (training) made them with ``scripts/train_pretrained.py`` and this package's
:class:`lmcourse.train.Trainer`; each file records its command, seed, number of steps,
training time and validation loss in ``metadata``. Later chapters (sampling, KV cache,
speculative decoding) load them with :func:`load_pretrained` instead of training.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import torch

from .model import GPT, GPTConfig, load_checkpoint_file
from .tokenization import CharTokenizer

__all__ = ["CHECKPOINT_DIR", "available", "checkpoint_path", "load_pretrained", "metadata"]

CHECKPOINT_DIR = Path(__file__).parent / "assets" / "checkpoints"


def available() -> list[str]:
    """Names of the shipped checkpoints, e.g. ``["shakespeare-char"]``."""
    return sorted(p.stem for p in CHECKPOINT_DIR.glob("*.pt"))


def checkpoint_path(name: str) -> Path:
    """File of the shipped checkpoint ``name``; ValueError listing the available ones."""
    path = CHECKPOINT_DIR / f"{name}.pt"
    if not path.is_file():
        raise ValueError(f"unknown pretrained checkpoint {name!r}; available: {available()}")
    return path


def _payload(name: str) -> dict[str, Any]:
    payload = load_checkpoint_file(checkpoint_path(name))
    if not isinstance(payload, dict) or payload.get("format") != "lmcourse-pretrained":
        raise ValueError(f"{checkpoint_path(name)} is not an lmcourse pretrained checkpoint")
    return payload


def metadata(name: str) -> dict[str, Any]:
    """How checkpoint ``name`` was made: command, seed, iters, val_loss, train_seconds, ..."""
    return dict(_payload(name)["metadata"])


def load_pretrained(
    name: str = "shakespeare-char", device: Optional[Union[str, torch.device]] = None
) -> tuple[GPT, CharTokenizer]:
    """``(model, tokenizer)`` of a shipped checkpoint; the model is in eval mode, in fp32.

    Args:
        name: one of :func:`available` (``"shakespeare-char"``).
        device: where to put the model (default CPU).
    """
    payload = _payload(name)
    model = GPT(GPTConfig.from_dict(payload["config"]))
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    model.load_state_dict(state)
    tok = payload["tokenizer"]
    tokenizer = CharTokenizer(tok["chars"], tok["special_tokens"], tok.get("unk"))
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(f"checkpoint {name!r}: tokenizer and model vocab sizes differ")
    return model.to(device or "cpu").eval(), tokenizer


def save_pretrained(
    path: Union[str, os.PathLike],
    model: GPT,
    tokenizer: CharTokenizer,
    meta: dict[str, Any],
) -> None:
    """Write a shipped-checkpoint file (model config + fp32 weights + tokenizer + metadata)."""
    from .model import atomic_torch_save

    specials = sorted(tokenizer.special_tokens, key=tokenizer.special_tokens.__getitem__)
    payload = {
        "format": "lmcourse-pretrained",
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "tokenizer": {"chars": list(tokenizer.chars), "special_tokens": specials, "unk": tokenizer.unk},
        "metadata": dict(meta),
    }
    atomic_torch_save(payload, path)
