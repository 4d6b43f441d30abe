"""Sub-commands of ``python -m lmcourse``, and the argument types they share.

Each type checks its value while the command line is parsed, so a bad value is a usage
error naming the option (exit 2) before anything runs.
"""

from __future__ import annotations

import argparse
import os
from typing import Callable

__all__ = ["int_in", "float_in", "device_arg", "out_dir_arg", "SEED_MAX"]

SEED_MAX = 2**63 - 1  # torch.manual_seed takes seeds below 2**64; we keep to int64


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """argparse type: an integer in ``[low, high]`` (``high=None``: no upper bound)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            upper = "" if high is None else f", <= {high}"
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}{upper}, got {value}")
        return value

    return parse


def float_in(low: float, high: float | None = None, low_open: bool = False) -> Callable[[str], float]:
    """argparse type: a finite float in ``[low, high]`` (``(low, high]`` if ``low_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        below = value <= low if low_open else value < low
        if value != value or below or (high is not None and value > high) or value in (float("inf"), -float("inf")):
            rng = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'}]"
            raise argparse.ArgumentTypeError(f"must be a finite number in {rng}, got {text!r}")
        return value

    return parse


def device_arg(text: str) -> str:
    """argparse type: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, and available here."""
    import torch

    name = text.strip().lower()
    if name in ("auto", "cpu"):
        return name
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available on this machine (use cpu)")
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return name
    if name == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise argparse.ArgumentTypeError(f"{text!r}: Apple MPS is not available on this machine (use cpu)")
        return name
    raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda, cuda:N or mps, got {text!r}")


def out_dir_arg(text: str) -> str:
    """argparse type: a folder we can write to (it may not exist yet; a file is refused)."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    path = os.path.abspath(text)
    if os.path.exists(path) and not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text!r}: cannot write to {existing!r} (read-only or not a folder)")
    return text
