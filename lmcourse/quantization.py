"""Int8 quantization helpers for chapter 11 (fast inference).

- :func:`absmax_quantize` / :func:`dequantize`: symmetric per-row int8 quantization of a
  weight matrix, the arithmetic behind every int8 scheme.
- :func:`quantize_linear_int8`: PyTorch's dynamic int8 quantization of every
  ``nn.Linear`` of a model (weights stored in int8 with one scale per output row, like
  :func:`absmax_quantize`; activations quantized on the fly), with its deprecation
  warnings silenced.
- :func:`state_dict_bytes`: the size of a model's saved weights.
"""

from __future__ import annotations

import copy
import io
import warnings

import torch
import torch.nn as nn

__all__ = ["absmax_quantize", "dequantize", "quantize_linear_int8", "state_dict_bytes"]


def absmax_quantize(w: torch.Tensor, dim: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 quantization with one scale per slice along ``dim`` (per row by default).

    ``scale = max|w| / 127`` over ``dim``; ``q = round(w / scale)`` in [-127, 127]. The
    largest entry of each row is represented exactly; the others are off by at most
    ``scale / 2``.

    Returns:
        ``(q, scale)``: int8 tensor of ``w``'s shape and float scales (``dim`` kept, size 1).
    """
    scale = w.detach().abs().amax(dim=dim, keepdim=True).float() / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row stays zero
    q = torch.round(w.detach().float() / scale).clamp(-127, 127).to(torch.int8)
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`absmax_quantize` (up to rounding): ``q * scale`` in float32."""
    return q.float() * scale


def quantize_linear_int8(model: nn.Module, per_row: bool = True) -> nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` layers use dynamic int8 quantization (CPU).

    Uses ``torch.ao.quantization.quantize_dynamic``: each Linear's weight is stored as int8,
    and at run time the input activations are quantized per batch, the matmul runs in int8
    and the result is rescaled to float. Embeddings and LayerNorms stay float32. The
    original model is not modified. PyTorch marks this API as deprecated in favour of the
    separate ``torchao`` package; its warnings are silenced here.

    Args:
        model: the float model.
        per_row: one scale per output row, symmetric (zero point 0) -- the absmax scheme of
            :func:`absmax_quantize`, except that PyTorch divides by 127.5 and uses the range
            [-128, 127] (printed as ``qscheme=torch.per_channel_affine``). ``False``: one
            scale and zero point for the whole matrix (``per_tensor_affine``), PyTorch's
            default, less accurate when rows differ in size.
    """
    if not isinstance(per_row, bool):
        raise TypeError(f"per_row must be a bool, got {per_row!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import (
            default_dynamic_qconfig,
            per_channel_dynamic_qconfig,
            quantize_dynamic,
        )

        qconfig = per_channel_dynamic_qconfig if per_row else default_dynamic_qconfig
        return quantize_dynamic(copy.deepcopy(model).cpu(), {nn.Linear: qconfig}, dtype=torch.qint8)


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: the size of the model file on disk."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes
