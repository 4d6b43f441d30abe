"""Fast decoding: a static KV cache and a decode step that ``torch.compile`` captures whole.

Chapter 6 teaches the readable loop (:mod:`lmcourse.generate`); chapter 11 builds towards
this file. Both give the same tokens; this one is what makes a GPU fast.

Why the eager loop is slow on a GPU: a decode step of a small model launches a few hundred
small kernels (one per matmul, norm, activation, ...), each costing microseconds of Python
and launch time, while the arithmetic takes less. The step is bound by overhead, not by
the GPU. The remedy (the design follows PyTorch's gpt-fast; this code is our own):

1. **Fixed shapes.** The cache is allocated once at its final length ``max_len``; a step
   writes the new key/value at position ``pos`` in place, and attention looks at all
   ``max_len`` slots through a mask that hides the empty ones. Every decode step then has
   the same tensor shapes, and the position is a tensor, not a Python number.
2. **One graph.** A function of fixed-shape tensors with no Python decisions inside can be
   compiled whole (``fullgraph=True``) and, with ``mode="reduce-overhead"``, recorded once
   as a CUDA graph and replayed each step: one launch per token instead of hundreds.
3. **Sampling outside.** The compiled step returns logits; the token is picked by
   :func:`lmcourse.sampling.sample_next`, eagerly, exactly as :func:`lmcourse.generate.generate`
   picks it, so both give the same tokens for the same settings and generator.

The model's own forward pass does the work (:meth:`lmcourse.model.GPT.logits`, the one
model step every decoder runs through); only the cache and its mask differ from the eager
path.

Shapes used in the comments:
    B  batch size    T  positions in this call    M  max_len of the static cache
    Hk n_kv_head     D  head_dim                  V  vocab_size
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Optional, Union

import torch
import torch.nn as nn

from lmcourse.checks import require_bool, require_generator, require_instance, require_int
from lmcourse.model import GPT, KVCache, eval_mode
from lmcourse.sampling import SamplingConfig, sample_next

__all__ = ["StaticKVCache", "forward_static", "static_decode_step", "fast_generate"]


class StaticKVCache(nn.Module):
    """Keys and values of every layer in buffers of fixed shape (B, Hk, M, D).

    Before a forward, ``input_pos`` (T,) holds the absolute positions of the T new tokens;
    ``update`` writes their keys/values at those slots and returns the whole buffers, and
    :meth:`mask` says which slots each new token may see. Buffers of a Module, so that
    ``torch.compile`` treats them as state updated in place.
    """

    def __init__(
        self,
        n_layer: int,
        batch_size: int,
        n_kv_head: int,
        max_len: int,
        head_dim: int,
        device: Optional[Union[str, torch.device]] = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        shape = KVCache.buffer_shape(n_layer, batch_size, n_kv_head, max_len, head_dim)
        for layer in range(n_layer):
            self.register_buffer(f"k{layer}", torch.zeros(shape, device=device, dtype=dtype), persistent=False)
            self.register_buffer(f"v{layer}", torch.zeros(shape, device=device, dtype=dtype), persistent=False)
        self.register_buffer("slots", torch.arange(max_len, device=device), persistent=False)  # (M,)
        self.max_len = max_len
        self.input_pos: Optional[torch.Tensor] = None  # (T,) set by forward_static

    def mark_static(self) -> StaticKVCache:
        """Tell ``torch.compile`` that the buffers keep their addresses, so that a CUDA graph
        may update them in place (instead of refusing to record a graph that mutates inputs)."""
        for buf in self.buffers():
            torch._dynamo.mark_static_address(buf)
        return self

    @classmethod
    def for_model(cls, model: GPT, batch_size: int, max_len: Optional[int] = None) -> StaticKVCache:
        """An empty cache on the model's device and dtype (``max_len`` defaults to block_size)."""
        cfg = model.config
        max_len = cfg.block_size if max_len is None else max_len
        if not 1 <= max_len <= cfg.block_size:
            raise ValueError(f"max_len must be in [1, block_size={cfg.block_size}], got {max_len}")
        dtype = model.transformer.wte.weight.dtype
        return cls(cfg.n_layer, batch_size, cfg.n_kv_head, max_len, cfg.head_dim, device=model.device, dtype=dtype)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new (B, Hk, T, D) keys/values at slots ``input_pos``; return all (B, Hk, M, D)."""
        k_all, v_all = self.get_buffer(f"k{layer}"), self.get_buffer(f"v{layer}")
        k_all.index_copy_(2, self.input_pos, k)
        v_all.index_copy_(2, self.input_pos, v)
        return k_all, v_all

    def mask(self, input_pos: torch.Tensor) -> torch.Tensor:
        """(T,) positions -> (1, 1, T, M) bool: the token at position p sees slots 0..p."""
        return (self.slots.unsqueeze(0) <= input_pos.unsqueeze(1)).view(1, 1, -1, self.max_len)


def forward_static(model: GPT, cache: StaticKVCache, ids: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
    """Run ``ids`` (B, T) at positions ``input_pos`` (T,) through the model with the static
    cache; returns logits (B, T, V). The prefill calls it with T = prompt length."""
    cache.input_pos = input_pos
    positions = input_pos.unsqueeze(0)  # (1, T), the same for every row
    return model.logits(ids, positions, cache, cache.mask(input_pos))  # (B, T, V)


def static_decode_step(model: GPT, cache: StaticKVCache, token: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """One decode step of fixed shape: token (B, 1) at position ``pos`` (1,) -> logits (B, V).

    This is the function that ``torch.compile`` captures whole. (Not to be confused with
    :func:`lmcourse.sampling.decode_step`, which turns logits into a token.)
    """
    return forward_static(model, cache, token, pos)[:, -1, :]


_compiled: dict[str, Callable[..., torch.Tensor]] = {}
_caches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {key: StaticKVCache}


def _cache_for(model: GPT, batch_size: int) -> StaticKVCache:
    """The model's static cache for this batch size, created once and then reused.

    Reuse keeps the buffers at the same addresses, so a recorded CUDA graph is replayed
    rather than recorded again. Old contents do no harm: the prefill and each step write
    every slot before the mask lets a query see it.
    """
    key = (batch_size, model.device, model.transformer.wte.weight.dtype, model.config.n_layer, model.config.block_size)
    per_model = _caches.setdefault(model, {})
    if key not in per_model:
        per_model.clear()  # one cache per model at a time: free the old one
        per_model[key] = StaticKVCache.for_model(model, batch_size)
    return per_model[key]


def _compiled_decode_step() -> Callable[..., torch.Tensor]:
    """:func:`static_decode_step` compiled once per process (CUDA graphs on a GPU; plain Inductor on a CPU)."""
    if "step" not in _compiled:
        _compiled["step"] = torch.compile(static_decode_step, mode="reduce-overhead", fullgraph=True)
    return _compiled["step"]


def _check_arguments(
    model: GPT, prompt_ids: Any, max_new_tokens: Any, generator: Any, compile: Any
) -> None:
    """The decoder contract of :mod:`lmcourse.checks`, for (B, T) tensors of equal-length prompts."""
    require_instance("model", model, GPT, "an lmcourse GPT")
    require_instance("prompt_ids", prompt_ids, torch.Tensor, "an integer tensor (B, T)")
    if prompt_ids.dtype.is_floating_point or prompt_ids.dtype.is_complex or prompt_ids.dtype == torch.bool:
        raise TypeError(f"prompt_ids must hold integer token ids, got a tensor of dtype {prompt_ids.dtype}")
    if prompt_ids.dim() != 2 or prompt_ids.size(1) < 1:
        raise ValueError(f"prompt_ids must have shape (B, T) with T >= 1, got {tuple(prompt_ids.shape)}")
    V = model.config.vocab_size
    if bool(((prompt_ids < 0) | (prompt_ids >= V)).any()):
        raise ValueError(f"prompt_ids must be token ids in [0, {V - 1}]")
    require_int("max_new_tokens", max_new_tokens, minimum=0)
    require_generator("generator", generator)
    require_bool("compile", compile)
    if prompt_ids.size(1) + max_new_tokens > model.config.block_size:
        raise ValueError(
            f"prompt ({prompt_ids.size(1)}) + max_new_tokens ({max_new_tokens}) must fit in "
            f"block_size={model.config.block_size}; fast_generate does not slide a window "
            "(lmcourse.generate.generate does)"
        )


@torch.no_grad()
def fast_generate(
    model: GPT,
    prompt_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    compile: bool = False,
) -> torch.Tensor:
    """Generate ``max_new_tokens`` after each of B equal-length prompts with the static cache.

    Args:
        model: an lmcourse :class:`~lmcourse.model.GPT` (put in eval mode for the call).
        prompt_ids: LongTensor (B, T); all rows have T real tokens (no padding).
        max_new_tokens: >= 0; ``T + max_new_tokens`` must fit in ``block_size``.
        temperature: 0 is greedy (argmax); > 0 samples from softmax(logits / temperature).
        top_k: keep only the k most likely tokens before sampling (None: all).
        generator: ``torch.Generator`` for the draws.
        compile: compile the decode step with ``torch.compile(mode="reduce-overhead",
            fullgraph=True)`` (CUDA graphs on a GPU). The first call compiles (slow).
    Returns:
        LongTensor (B, T + max_new_tokens): the prompts followed by the new tokens, equal to
        ``lmcourse.generate.generate(model, prompt_ids, max_new_tokens,
        SamplingConfig(temperature, top_k), generator=generator).sequences`` (no stop
        conditions here).
    """
    _check_arguments(model, prompt_ids, max_new_tokens, generator, compile)
    sampling = SamplingConfig(temperature=temperature, top_k=top_k)
    device = model.device
    prompt = prompt_ids.to(device=device, dtype=torch.long)
    B, T = prompt.shape
    if max_new_tokens == 0:
        return prompt.clone()
    step = _compiled_decode_step() if compile else static_decode_step
    cache = _cache_for(model, B)  # M = block_size: one shape for every call
    if compile:
        cache.mark_static()
    tokens = [prompt]
    with eval_mode(model):
        logits = forward_static(model, cache, prompt, torch.arange(T, device=device))[:, -1, :]  # prefill (B, V)
        pos = torch.tensor([T], device=device)  # (1,) position of the token fed next
        for i in range(max_new_tokens):
            token = sample_next(logits, sampling, generator)  # (B,), eager: same as generate
            tokens.append(token.unsqueeze(1))
            if i + 1 < max_new_tokens:
                if compile:  # a new replay: the previous step's logits may be overwritten
                    torch.compiler.cudagraph_mark_step_begin()
                logits = step(model, cache, token.unsqueeze(1), pos)  # (B, V)
                pos = pos + 1
    return torch.cat(tokens, dim=1)  # (B, T + max_new_tokens)
