"""Data for training and studying language models: corpora, batches and toy sources.

Chapter 2 (data & tokens) teaches the first half of this file; chapter 4 (training) uses
:func:`get_batch`; the exposure-bias chapter uses :class:`MarkovSource`; the "beyond text"
chapter uses :func:`shape_images` and :func:`quantised_tones`.

1. :func:`shakespeare_text`: the shipped public-domain Shakespeare corpus (~1 MB), see
   ``lmcourse/assets/DATA_CARD.md``.
2. :func:`split` and :func:`get_batch`: train/val split and random next-token batches.
3. :class:`MarkovSource`: a seeded random Markov chain whose entropy rate is known exactly,
   the floor any model of it can reach.
4. :func:`shape_images` / :func:`quantised_tones`: tiny non-text sequences.

Shapes used in the comments:
    N  number of tokens in a 1-D data tensor
    B  batch size          T  block_size (context length)
    V  vocab_size          K  order of a Markov source
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path
from typing import Optional, Union

import torch

__all__ = [
    "CORPUS_PATH",
    "shakespeare_text",
    "split",
    "get_batch",
]

CORPUS_PATH = Path(__file__).resolve().parent / "assets" / "shakespeare.txt.gz"


# --------------------------------------------------------------------------------------
# 1. The shipped corpus
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def shakespeare_text() -> str:
    """The shipped Shakespeare corpus as one string (about 1.07M characters, 76 distinct).

    Eight public-domain plays from Project Gutenberg, boilerplate removed; provenance, size
    and checksum are in ``lmcourse/assets/DATA_CARD.md``. The result is cached.
    """
    with gzip.open(CORPUS_PATH, "rb") as f:
        return f.read().decode("utf-8")


# --------------------------------------------------------------------------------------
# 2. Splits and batches
# --------------------------------------------------------------------------------------


def split(data, val_fraction: float = 0.1):
    """Contiguous train/validation split: the last ``val_fraction`` of ``data`` is validation.

    Works on anything sliceable with ``len`` (a string, a list, a 1-D tensor). Contiguous, not
    shuffled, so that validation text is text the model never saw in any window.

    Returns:
        ``(train, val)``.
    """
    if not isinstance(val_fraction, (int, float)) or not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    n = len(data)
    n_train = n - int(round(n * val_fraction))
    return data[:n_train], data[n_train:]


def get_batch(
    data: torch.Tensor,
    batch_size: int,
    block_size: int,
    generator: torch.Generator,
    device: Optional[Union[str, torch.device]] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of ``data``: inputs ``x`` and next-token targets ``y``.

    Window ``b`` starts at a random offset ``i`` drawn from ``generator`` and is
    ``x[b] = data[i : i + T]``, ``y[b] = data[i + 1 : i + T + 1]``: ``y`` is ``x`` shifted
    left by one, so ``y[b, t]`` is the token that follows ``x[b, :t + 1]``.

    Args:
        data: 1-D integer tensor of token ids (N,), on the CPU.
        batch_size: number of windows B (>= 1).
        block_size: window length T (>= 1); ``data`` needs at least T + 1 tokens.
        generator: a seeded CPU ``torch.Generator``; the same seed gives the same batches.
        device: where to put the batch. On CUDA the batch goes through pinned memory and
            is copied with ``non_blocking=True``.

    Returns:
        ``(x, y)``, two int64 tensors of shape (B, T).
    """
    if not isinstance(data, torch.Tensor) or data.dim() != 1:
        raise ValueError("data must be a 1-D tensor of token ids")
    if data.dtype.is_floating_point or data.dtype == torch.bool:
        raise ValueError(f"data must hold integer token ids, got dtype {data.dtype}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    if data.numel() < block_size + 1:
        raise ValueError(
            f"data has {data.numel()} tokens; block_size={block_size} needs at least "
            f"{block_size + 1} (one window plus its next-token target)"
        )
    if not isinstance(generator, torch.Generator):
        raise ValueError("generator must be a torch.Generator (seed it for reproducible batches)")

    starts = torch.randint(data.numel() - block_size, (batch_size,), generator=generator)  # (B,)
    offsets = torch.arange(block_size)  # (T,)
    idx = starts[:, None] + offsets[None, :]  # (B, T)
    x = data[idx].long()  # (B, T)
    y = data[idx + 1].long()  # (B, T)
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda":
            x = x.pin_memory().to(device, non_blocking=True)
            y = y.pin_memory().to(device, non_blocking=True)
        else:
            x, y = x.to(device), y.to(device)
    return x, y
