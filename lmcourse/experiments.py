"""Measurements the book's figures and explorers show, computed with the package's own models.

:mod:`lmcourse.plots`, :mod:`lmcourse.widgets` and :mod:`lmcourse.explorers` only draw and
interact; what they draw is computed here (or in the module that owns the concept):

- :func:`next_token_logits`: the model's logits for the token after a context;
- :func:`attention_weights`: every layer's and head's causal attention on one sequence;
- :func:`teacher_forcing_table`: per-position targets, probabilities and losses of one
  teacher-forced forward pass;
- :func:`trace_generation`: a generation with the top candidates of every step, read from
  :func:`lmcourse.generate.generate`'s recorded steps (a :class:`LoopTrace`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch

from .generate import generate
from .model import eval_mode
from .sampling import SamplingConfig

__all__ = [
    "next_token_logits",
    "attention_weights",
    "teacher_forcing_table",
    "LoopTrace",
    "trace_generation",
]


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


@dataclass
class LoopTrace:
    """A recorded generation: the prompt, the chosen tokens and the top candidates per step.

    Attributes:
        prompt_ids: the prompt's token ids.
        chosen: the id chosen at every step (length n_steps).
        top_ids: (n_steps, k) ids of the k most likely candidates at every step, best first.
        top_probs: (n_steps, k) their probabilities under the distribution that was sampled.
        chosen_probs: (n_steps,) the probability of the chosen token.
        vocab: the token strings, in id order.
    """

    prompt_ids: list[int]
    chosen: list[int]
    top_ids: np.ndarray
    top_probs: np.ndarray
    chosen_probs: np.ndarray
    vocab: list[str]

    @property
    def n_steps(self) -> int:
        """Number of generated tokens."""
        return len(self.chosen)

    def prefix(self, step: int) -> str:
        """The text the model saw when it chose the token of ``step`` (prompt + earlier picks)."""
        ids = self.prompt_ids + self.chosen[:step]
        return "".join(self.vocab[i] for i in ids)

    def chosen_rank(self, step: int) -> Optional[int]:
        """0-based rank of the chosen token among the top-k of ``step`` (None if outside)."""
        hits = np.nonzero(self.top_ids[step] == self.chosen[step])[0]
        return int(hits[0]) if hits.size else None


def trace_generation(
    model,
    tokenizer: Any,
    prompt: str,
    n_steps: int,
    sampling: Optional[SamplingConfig] = None,
    k: int = 5,
    generator: Optional[torch.Generator] = None,
) -> LoopTrace:
    """Generate ``n_steps`` tokens after ``prompt`` and keep the top-``k`` candidates of each step.

    The tokens and distributions are those :func:`lmcourse.generate.generate` records with
    ``record_steps=True`` (its ``DecodeStep.probs`` is the distribution each token was
    drawn from), so with the same ``generator`` seed it picks the same tokens. The prompt
    plus the new tokens must fit in the model's ``block_size``.

    Args:
        model: an lmcourse GPT.
        tokenizer: anything with ``encode``, ``decode`` and ``vocab_size``.
        prompt: the text to continue.
        n_steps: number of tokens to generate (>= 1).
        sampling: how to pick (default: plain sampling at temperature 1).
        k: how many candidates to record per step.
        generator: ``torch.Generator`` for the draws, on any device.
    """
    ids = list(tokenizer.encode(prompt))
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1 or not ids:
        raise ValueError(f"trace_generation needs a non-empty prompt and n_steps >= 1, got n_steps={n_steps!r}")
    if len(ids) + n_steps > model.config.block_size:
        raise ValueError(
            f"prompt ({len(ids)} tokens) + n_steps ({n_steps}) exceeds block_size={model.config.block_size}"
        )
    out = generate(model, ids, n_steps, sampling, generator=generator, record_steps=True)
    k = min(k, model.config.vocab_size)
    probs = torch.stack([step.probs[0] for step in out.steps]).float().cpu()  # (n_steps, V)
    chosen = [int(step.token[0]) for step in out.steps]
    top = torch.topk(probs, k, dim=-1)  # (n_steps, k)
    return LoopTrace(
        prompt_ids=ids,
        chosen=chosen,
        top_ids=top.indices.numpy(),
        top_probs=top.values.numpy(),
        chosen_probs=probs[torch.arange(len(chosen)), chosen].numpy(),
        vocab=[tokenizer.decode([i]) for i in range(model.config.vocab_size)],
    )
