"""Devices, precision and seeding: the three lines every notebook starts with.

``lmcourse.device()`` picks CUDA, then Apple MPS, then CPU. ``autocast_dtype(device)``
chooses the mixed-precision type: bfloat16 only on GPUs of compute capability >= 8.0
(Ampere and newer); float16 with a GradScaler on older GPUs such as Colab's T4 (torch
reports bf16 as "supported" there, but emulates it slowly); float32 on CPU and MPS.
"""

from __future__ import annotations

import os
import random
from typing import Optional, Sequence, Union

import numpy as np
import torch

__all__ = [
    "device", "autocast_dtype", "needs_grad_scaler", "seed_everything", "synchronize", "setup", "describe",
    "same_device", "draw_multinomial", "draw_uniform", "draw_randint",
]


def device(prefer: Optional[Union[str, torch.device]] = None) -> torch.device:
    """The best available device: ``cuda``, then ``mps``, then ``cpu``.

    ``prefer`` (or the environment variable ``LMCOURSE_DEVICE``) overrides the choice;
    asking for a device that is not available raises a clear error.
    """
    prefer = prefer if prefer is not None else os.environ.get("LMCOURSE_DEVICE")
    if prefer is not None:
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was requested but CUDA is not available")
        if dev.type == "mps" and not (torch.backends.mps.is_available()):
            raise RuntimeError("device 'mps' was requested but Apple MPS is not available")
        if dev.type not in ("cuda", "mps", "cpu"):
            raise ValueError(f"device must be 'cuda', 'mps' or 'cpu', got {prefer!r}")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_dtype(dev: Union[str, torch.device]) -> torch.dtype:
    """Mixed-precision dtype for ``dev``: bf16 on CUDA with capability >= 8.0, fp16 on
    older CUDA GPUs (T4, V100), fp32 on CPU and MPS (no autocast there)."""
    dev = torch.device(dev)
    if dev.type == "cuda":
        major, _ = torch.cuda.get_device_capability(dev)
        return torch.bfloat16 if major >= 8 else torch.float16
    return torch.float32


def needs_grad_scaler(dev: Union[str, torch.device]) -> bool:
    """True when training on ``dev`` uses fp16 autocast, which needs a GradScaler."""
    return autocast_dtype(dev) == torch.float16


def seed_everything(seed: int = 0, device: Optional[Union[str, torch.device]] = None) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and every CUDA device); return a seeded generator.

    The returned ``torch.Generator`` lives on ``device`` (default: the CPU) and is seeded
    with ``seed``, so ``seed_everything(0, device)`` gives a generator that can be passed
    to ``torch.rand(..., device=device, generator=g)`` and to every lmcourse function that
    takes ``generator=``. Those functions accept a generator on any device; for a given
    seed and device pair the results are reproducible (a CPU generator gives the same draws
    whatever device the model is on; a CUDA generator's stream differs from the CPU's).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    dev = torch.device("cpu") if device is None else torch.device(device)
    return torch.Generator(device=dev).manual_seed(seed)


def synchronize(dev: Union[str, torch.device, None] = None) -> None:
    """Wait until every kernel queued on ``dev`` has finished (a no-op on the CPU).

    GPU work is asynchronous: a Python call returns once its kernels are queued. Timing
    code calls this before reading the clock, so that it measures the work and not only
    its launch. ``None`` means :func:`device`'s choice.
    """
    dev = device() if dev is None else torch.device(dev)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()
    elif dev.type != "cpu":
        raise ValueError(f"device must be 'cuda', 'mps' or 'cpu', got {dev.type!r}")


def describe(dev: Union[str, torch.device]) -> str:
    """One line naming the device, e.g. ``cuda (Tesla T4, fp16 autocast)``."""
    dev = torch.device(dev)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
        return f"cuda ({name}, {str(autocast_dtype(dev)).removeprefix('torch.')} autocast)"
    if dev.type == "mps":
        return "mps (Apple GPU, fp32)"
    return f"cpu ({torch.get_num_threads()} threads, fp32)"


def setup(seed: int = 0, prefer: Optional[str] = None, verbose: bool = True) -> torch.device:
    """What a notebook's first cell calls: pick the device, seed everything, say what runs.

    Chapters then make their generators on that device,
    ``torch.Generator(device=device).manual_seed(s)``, so that sampling code works on CPU,
    CUDA and MPS alike.
    """
    dev = device(prefer)
    seed_everything(seed)
    if verbose:
        print(f"lmcourse: running on {describe(dev)}, seed {seed}, torch {torch.__version__}")
    return dev


# --------------------------------------------------------------------------------------
# Random draws on the generator's device (a CPU generator works with a CUDA model, and back)
# --------------------------------------------------------------------------------------


def same_device(a: torch.device, b: torch.device) -> bool:
    """True when two devices are the same (``cuda`` and ``cuda:0`` count as one on one GPU)."""
    if a.type != b.type:
        return False
    if a.index is None or b.index is None:
        current = torch.cuda.current_device() if a.type == "cuda" and torch.cuda.is_available() else 0
        return (a.index if a.index is not None else current) == (b.index if b.index is not None else current)
    return a.index == b.index


def draw_multinomial(probs: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One draw per row of (B, V) (or one of (V,)) probabilities; ids on ``probs``' device.

    The draw happens on the ``generator``'s device: when it differs from the
    probabilities' (a CPU generator with a CUDA model), the probabilities are copied to
    the generator's device and the ids come back. Same generator state, same ids.
    """
    if generator is None or same_device(generator.device, probs.device):
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)
    drawn = torch.multinomial(probs.to(generator.device), 1, generator=generator)  # (B, 1)
    return drawn.squeeze(-1).to(probs.device)


def draw_uniform(
    shape: Sequence[int], generator: Optional[torch.Generator] = None, device: Optional[torch.device] = None,
    dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    """Uniform [0, 1) numbers of ``shape`` drawn on the generator's device, returned on ``device``."""
    where = generator.device if generator is not None else device
    u = torch.rand(tuple(shape), generator=generator, device=where, dtype=dtype)
    return u if device is None else u.to(device)


def draw_randint(
    high: int, shape: Sequence[int], generator: Optional[torch.Generator] = None,
    device: Optional[torch.device] = None, low: int = 0,
) -> torch.Tensor:
    """Integers in ``[low, high)`` of ``shape`` drawn on the generator's device, returned on ``device``."""
    where = generator.device if generator is not None else device
    r = torch.randint(low, high, tuple(shape), generator=generator, device=where)
    return r if device is None else r.to(device)
