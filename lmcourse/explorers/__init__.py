"""Interactive explorers that run in the browser: no kernel, no CDN, no network.

Each function below computes, in Python, what one explorer needs (logits for a few contexts,
a recorded generation, a formula's inputs) and returns an :class:`ExplorerView`. In Jupyter
or Colab it is a cell output; in the built book the same HTML is part of the page, and the
browser does the rest (softmax at any temperature, the filters, stepping, arithmetic). The
JavaScript lives in ``lmcourse/explorers/js/``: ``common.js`` (controls, bar charts,
softmax) and one small template per explorer.

One explorer per concept: the same view is a cell output in Jupyter and Colab (call it
with any model or text there) and part of the built page. Beside each, the chapter draws
its starting state with :mod:`lmcourse.plots`, the picture shown where JavaScript is off.
Only what needs Python while you play (sampling new text from the model, a live loss
curve) is an ipywidget, in :mod:`lmcourse.widgets`.

The eight explorers (what the reader moves; the chapter that shows it):

- :func:`temperature_view`: temperature and context; logits vs softmax (chapter 3).
- :func:`teacher_forcing_view`: position t; prefix, target, p and loss (chapter 4).
- :func:`attention_view`: layer, head, query; causal attention weights (chapter 5).
- :func:`generation_view`: step / play; the autoregressive loop (chapter 6).
- :func:`attention_ops_view`: n and t; dot products with and without a KV cache (chapter 7).
- :func:`kv_memory_view`: preset, shape, context, dtype; KV-cache bytes (chapter 7).
- :func:`decoding_view`: temperature, top-k, top-p, min-p (chapter 8).
- :func:`pipeline_view`: stage; JSON, template, ids, tokens, reply (chapter 14).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch

from ..checks import require_int, require_real
from ..experiments import STAGES
from ..long_context import DTYPE_BYTES, MODEL_PRESETS
from .view import EXPLORERS, ExplorerView, javascript

__all__ = [
    "EXPLORERS",
    "ExplorerView",
    "javascript",
    "logits_data",
    "temperature_view",
    "decoding_view",
    "attention_view",
    "teacher_forcing_view",
    "generation_view",
    "attention_ops_view",
    "kv_memory_view",
    "pipeline_view",
    "KV_CONTEXTS",
    "HEAD_DIMS",
]

#: the context lengths the KV-memory calculator offers (128 ... 131072)
KV_CONTEXTS = [2**i for i in range(7, 18)]
#: the head dimensions it offers
HEAD_DIMS = [32, 64, 80, 96, 128, 256]


def _vocab(tokenizer: Any, size: int) -> list[str]:
    return [tokenizer.decode([i]) for i in range(size)]


def _check_temperature(temperature: float, low: float, high: float) -> None:
    require_real("temperature", temperature, low, high)  # the slider's range


def logits_data(model, tokenizer, contexts: Union[str, Sequence[str]]) -> dict:
    """``{"vocab": [V strings], "contexts": [{"context", "logits": [V floats]}]}`` for the contexts.

    The logits are :func:`lmcourse.experiments.next_token_logits` of each context (the
    model's prediction after its last token), as plain floats.
    """
    from ..experiments import next_token_logits

    contexts = [contexts] if isinstance(contexts, str) else list(contexts)
    if not contexts or not all(isinstance(c, str) and c for c in contexts):
        raise ValueError("contexts must be one or more non-empty strings")
    rows = [next_token_logits(model, tokenizer, c) for c in contexts]
    return {
        "vocab": _vocab(tokenizer, rows[0].numel()),
        "contexts": [{"context": c, "logits": z.tolist()} for c, z in zip(contexts, rows)],
    }


def temperature_view(
    model, tokenizer, contexts: Union[str, Sequence[str]], k: int = 10, temperature: float = 1.0
) -> ExplorerView:
    """Next-token distribution under a temperature slider (0.1 to 3), for one or more contexts.

    The browser computes softmax(logits / T) for the ``k`` most likely tokens, the entropy
    in bits and the mass of the other tokens.
    """
    _check_temperature(temperature, 0.1, 3.0)
    require_int("k", k, minimum=1)
    data = logits_data(model, tokenizer, contexts)
    data.update(k=min(k, len(data["vocab"])), temperature=float(temperature))
    return ExplorerView("temperature", data)


def decoding_view(
    model,
    tokenizer,
    contexts: Union[str, Sequence[str]],
    k: int = 20,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_p: float = 0.0,
) -> ExplorerView:
    """Temperature, top-k, top-p and min-p on real next-token distributions.

    The browser applies them in the order of :func:`lmcourse.sampling.process_logits`
    (the same rules: ties with the k-th logit are kept, top-p removes the tail holding at
    most 1 - p, the top token always survives) and renormalises. ``top_k=0``, ``top_p=1``
    and ``min_p=0`` are "off".
    """
    _check_temperature(temperature, 0.05, 2.5)
    data = logits_data(model, tokenizer, contexts)
    V = len(data["vocab"])
    require_int("top_k (0 = off)", top_k, 0, V)
    require_real("top_p (1 = off)", top_p, 0.05, 1.0)
    require_real("min_p (0 = off)", min_p, 0.0, 1.0)
    data.update(k=min(k, V), temperature=float(temperature), top_k=top_k, top_p=float(top_p),
                min_p=float(min_p))
    return ExplorerView("decoding", data)


def attention_view(
    model, tokenizer, text: str, layer: int = 0, head: int = 0, query: Optional[int] = None
) -> ExplorerView:
    """Causal attention weights of ``model`` on ``text``: pick layer, head and query position.

    The weights are :func:`lmcourse.experiments.attention_weights` (every layer and head);
    the text is cropped to the model's ``block_size`` tokens.
    """
    from ..experiments import attention_weights

    ids = tokenizer.encode(text)[: model.config.block_size]
    if len(ids) < 2:
        raise ValueError("text must have at least 2 tokens")
    weights = attention_weights(model, torch.tensor(ids))  # (L, H, T, T)
    n_layer, n_head, T, _ = weights.shape
    query = T - 1 if query is None else query
    for name, value, n in (("layer", layer, n_layer), ("head", head, n_head), ("query", query, T)):
        if not 0 <= value < n:
            raise ValueError(f"{name} must be in [0, {n - 1}], got {value}")
    data = {
        "tokens": [tokenizer.decode([i]) for i in ids],
        "weights": weights.round(decimals=4).tolist(),
        "layer": layer,
        "head": head,
        "query": query,
    }
    return ExplorerView("attention", data)


def teacher_forcing_view(model, tokenizer, text: str, position: int = 0, k: int = 5) -> ExplorerView:
    """Step along ``text`` under teacher forcing: prefix, target, p(target) and loss per position.

    One forward pass (:func:`lmcourse.experiments.teacher_forcing_table`) computes every
    position; the text is cropped to ``block_size + 1`` tokens.
    """
    from ..experiments import teacher_forcing_table

    ids = tokenizer.encode(text)[: model.config.block_size + 1]
    if len(ids) < 2:
        raise ValueError("text must have at least 2 tokens")
    table = teacher_forcing_table(model, ids, k=k)
    n = len(ids) - 1
    if not 0 <= position < n:
        raise ValueError(f"position must be in [0, {n - 1}], got {position}")
    data = {key: value.tolist() for key, value in table.items()}
    data.update(vocab=_vocab(tokenizer, model.config.vocab_size), position=position)
    return ExplorerView("teacher_forcing", data)


def generation_view(trace: Any, step: int = 0) -> ExplorerView:
    """Step through a recorded generation (a :class:`lmcourse.experiments.LoopTrace`).

    Record one with :func:`lmcourse.experiments.trace_generation`; the browser shows the text so far, the candidates of each step
    and the token chosen, with play / previous / next.
    """
    if not 0 <= step < trace.n_steps:
        raise ValueError(f"step must be in [0, {trace.n_steps - 1}], got {step}")
    data = {
        "vocab": list(trace.vocab),
        "prompt_ids": [int(i) for i in trace.prompt_ids],
        "chosen": [int(i) for i in trace.chosen],
        "top_ids": trace.top_ids.tolist(),
        "top_probs": trace.top_probs.tolist(),
        "chosen_probs": trace.chosen_probs.tolist(),
        "step": step,
    }
    return ExplorerView("generation", data)


def attention_ops_view(n: int = 16, t: Optional[int] = None, max_n: int = 64) -> ExplorerView:
    """Query-key dot products per decode step without (t(t+1)/2) and with (t) a KV cache.

    Sliders: the number of steps ``n`` (1..``max_n``) and the step ``t`` drawn as grids
    (default ``n``). The counts are those of :func:`lmcourse.long_context.attention_ops`.
    """
    t = n if t is None else t
    for name, value in (("n", n), ("t", t), ("max_n", max_n)):
        require_int(name, value, minimum=1)
    if not t <= n <= max_n:
        raise ValueError(f"need 1 <= t <= n <= max_n, got t={t}, n={n}, max_n={max_n}")
    return ExplorerView("attention_ops", {"n": n, "t": t, "max_n": max_n})


def kv_memory_view(
    preset: str = "Llama-2-70B (GQA, 8 KV heads)",
    context: int = 4096,
    dtype: str = "fp16 / bf16",
    batch: int = 1,
) -> ExplorerView:
    """KV-cache memory calculator: 2 x L x h_kv x d x n x batch x bytes, computed in the browser.

    Presets are :data:`lmcourse.long_context.MODEL_PRESETS`, dtypes
    :data:`~lmcourse.long_context.DTYPE_BYTES`; the result equals
    :func:`lmcourse.long_context.kv_cache_bytes`.
    """
    if preset not in MODEL_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {list(MODEL_PRESETS)}")
    if context not in KV_CONTEXTS:
        raise ValueError(f"context must be one of {KV_CONTEXTS}, got {context!r}")
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {list(DTYPE_BYTES)}, got {dtype!r}")
    require_int("batch", batch, 1, 1024)
    data = {
        "presets": {k: list(v) for k, v in MODEL_PRESETS.items()},
        "dtypes": dict(DTYPE_BYTES),
        "contexts": KV_CONTEXTS,
        "head_dims": sorted(set(HEAD_DIMS) | {v[2] for v in MODEL_PRESETS.values()}),
        "preset": preset,
        "context": context,
        "dtype": dtype,
        "batch": batch,
    }
    return ExplorerView("kv_memory", data)


def pipeline_view(trace: Any, stage: int = 2) -> ExplorerView:
    """Step through one chat request (a :class:`lmcourse.experiments.PipelineTrace`).

    Stages: request JSON, chat template, prompt token ids, generated tokens (a slider
    streams them), reply and response JSON.
    """
    if not 0 <= stage < len(STAGES):
        raise ValueError(f"stage must be in [0, {len(STAGES) - 1}], got {stage}")
    data = {
        "stages": list(STAGES),
        "stage": stage,
        "request_json": trace.request_json,
        "prompt": trace.prompt,
        "specials": list(trace.specials),
        "prompt_ids": [int(i) for i in trace.prompt_ids],
        "prompt_tokens": list(trace.prompt_tokens),
        "new_ids": [int(i) for i in trace.new_ids],
        "new_tokens": list(trace.new_tokens),
        "reply": trace.reply,
        "finish_reason": trace.finish_reason,
        "response_json": trace.response_json,
    }
    return ExplorerView("pipeline", data)
