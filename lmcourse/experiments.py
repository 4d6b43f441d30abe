"""Measurements the book's figures and explorers show, computed with the package's own models.

:mod:`lmcourse.plots`, :mod:`lmcourse.widgets` and :mod:`lmcourse.explorers` only draw and
interact; what they draw is computed here (or in the module that owns the concept):

- :func:`next_token_logits`: the model's logits for the token after a context;
- :func:`attention_weights`: every layer's and head's causal attention on one sequence;
- :func:`teacher_forcing_table`: per-position targets, probabilities and losses of one
  teacher-forced forward pass.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .model import eval_mode

__all__ = ["next_token_logits", "attention_weights", "teacher_forcing_table"]


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def next_token_logits(model, tokenizer, context: str) -> torch.Tensor:
    """The (V,) logits ``model`` gives to the token after ``context`` (last position only).

    The context is cropped to the model's last ``block_size`` tokens. Returns a float32
    CPU tensor whatever the model's device.
    """
    ids = tokenizer.encode(context)[-model.config.block_size :]
    if not ids:
        raise ValueError("context must encode to at least one token")
    idx = torch.tensor([ids], dtype=torch.long, device=_device(model))  # (1, T)
    with eval_mode(model):
        logits, _ = model(idx)  # (1, T, V)
    return logits[0, -1].float().cpu()


@torch.no_grad()
def attention_weights(model, idx: torch.Tensor) -> torch.Tensor:
    """All attention weights of ``model`` for one sequence ``idx`` (T,) or (1, T).

    Returns:
        A (n_layer, n_head, T, T) float32 tensor on the CPU; row i holds what query i
        attends to (0 on the masked future).
    """
    if idx.dim() == 1:
        idx = idx.unsqueeze(0)
    if idx.dim() != 2 or idx.shape[0] != 1:
        raise ValueError(f"idx must be one sequence, (T,) or (1, T); got shape {tuple(idx.shape)}")
    with eval_mode(model):
        maps = model.attention_maps(idx.to(_device(model)))  # L x (1, H, T, T)
    return torch.stack([m[0] for m in maps]).float().cpu()


@torch.no_grad()
def teacher_forcing_table(model, ids: Sequence[int], k: int = 5) -> dict[str, torch.Tensor]:
    """Teacher-forced predictions of ``model`` along one token sequence, in one forward pass.

    With ``x = ids[:-1]`` as input and ``y = ids[1:]`` as targets, position ``t`` sees the
    true prefix ``ids[: t + 1]`` and is scored on ``ids[t + 1]``.

    Args:
        model: a model whose ``forward(idx)`` returns ``(logits, loss)`` (an
            :class:`lmcourse.model.GPT`); ``len(ids) - 1`` must fit its context.
        ids: at least 2 token ids.
        k: how many top candidates to keep per position.

    Returns:
        A dict of CPU tensors, all with T = ``len(ids) - 1`` rows: ``inputs`` (T,),
        ``targets`` (T,), ``probs`` (T,) the probability of each target, ``losses`` (T,)
        its negative log-probability in nats, ``top_ids`` (T, k) and ``top_probs`` (T, k).
    """
    ids_t = torch.as_tensor(list(ids), dtype=torch.long)
    if ids_t.dim() != 1 or ids_t.numel() < 2:
        raise ValueError("ids must be a sequence of at least 2 token ids")
    x = ids_t[:-1][None].to(_device(model))  # (1, T)
    y = ids_t[1:]  # (T,)
    with eval_mode(model):
        logits, _ = model(x)  # (1, T, V)
    logp = torch.log_softmax(logits[0].float().cpu(), dim=-1)  # (T, V)
    target_logp = logp.gather(-1, y[:, None]).squeeze(-1)  # (T,)
    k = min(k, logp.shape[-1])
    top_logp, top_ids = logp.topk(k, dim=-1)  # (T, k)
    return {
        "inputs": ids_t[:-1],
        "targets": y,
        "probs": target_logp.exp(),
        "losses": -target_logp,
        "top_ids": top_ids,
        "top_probs": top_logp.exp(),
    }
