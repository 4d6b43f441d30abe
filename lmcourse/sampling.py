"""Sampling: turning next-token logits into a choice of token.

Chapter 6 (the generation loop) and chapter 8 (decoding strategies) teach this file.

Every filter is a pure function on logits of shape (..., V): it returns *new* logits in
which the removed tokens are set to -inf (so that softmax gives them probability 0) and
the kept tokens are unchanged. They work on a single row (V,) or a batch (B, V), and give
exactly the same result as the Hugging Face ``transformers`` logits processors of the
same name (the tests use them as the oracle, ties included).

The order in which :func:`process_logits` applies them is the one ``transformers`` uses:
repetition penalty, temperature, top-k, top-p, min-p.

Shapes used in the comments:
    B  batch size    V  vocabulary size    S  number of previous tokens
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch

__all__ = [
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "min_p_filter",
    "apply_repetition_penalty",
    "SamplingConfig",
    "process_logits",
    "sample_next",
]

NEG_INF = float("-inf")

PreviousIds = Union[torch.Tensor, Sequence[Sequence[int]], Sequence[int]]


# --------------------------------------------------------------------------------------
# Filters: logits (..., V) -> logits (..., V)
# --------------------------------------------------------------------------------------


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide the logits by ``temperature`` > 0: below 1 sharpens, above 1 flattens.

    Temperature 0 means greedy decoding; it is handled by :func:`sample_next` (argmax),
    not here, because dividing by 0 is undefined.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (0 means greedy in sample_next), got {temperature!r}")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the tokens whose logit is >= the k-th largest; the others become -inf.

    Tokens tied with the k-th largest are all kept (so more than k may survive, as in
    ``transformers``). ``k`` larger than V keeps everything.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"top_k must be an integer >= 1, got {k!r}")
    k = min(k, logits.size(-1))
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_largest, NEG_INF)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus sampling: keep the smallest set of most likely tokens whose mass reaches p.

    The ``transformers`` rule, word for word: sort the probabilities in *ascending* order,
    accumulate them, and remove every token whose cumulative probability is <= 1 - p (the
    unlikely tail holding at most 1 - p of the mass). The most likely token is always kept,
    and so is the token at which the accumulated mass crosses 1 - p. ``p = 1`` keeps all.
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p!r}")
    sorted_logits, sorted_idx = torch.sort(logits, descending=False)  # (..., V) ascending
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)  # (..., V)
    sorted_remove = cumulative <= (1 - p)
    sorted_remove[..., -1:] = False  # always keep the most likely token
    remove = sorted_remove.scatter(-1, sorted_idx, sorted_remove)  # back to vocabulary order
    return logits.masked_fill(remove, NEG_INF)


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Keep the tokens with probability >= ``min_p`` x (probability of the top token).

    The threshold scales with the model's confidence: a peaked distribution keeps few
    tokens, a flat one keeps many. The top token is always kept.
    """
    if not 0.0 <= min_p <= 1.0:
        raise ValueError(f"min_p must be in [0, 1], got {min_p!r}")
    probs = torch.softmax(logits, dim=-1)  # (..., V)
    threshold = min_p * probs.amax(dim=-1, keepdim=True)  # (..., 1)
    remove = probs < threshold
    top = probs.argmax(dim=-1, keepdim=True)  # (..., 1)
    remove = remove.scatter(-1, top, False)  # never remove the most likely token
    return logits.masked_fill(remove, NEG_INF)


def _seen_mask(previous_ids: PreviousIds, logits: torch.Tensor) -> torch.Tensor:
    """Boolean (..., V) mask, True where the token id appears in ``previous_ids``.

    ``previous_ids`` is a LongTensor (..., S) matching the leading dimensions of
    ``logits``, or a (possibly ragged) list of lists for a (B, V) batch, or a flat list
    for a single (V,) row. Negative ids are ignored (useful as padding).
    """
    V = logits.size(-1)
    if not isinstance(previous_ids, torch.Tensor):
        rows = list(previous_ids)
        if logits.dim() == 1:
            rows = [rows]
        elif len(rows) != logits.size(0):
            raise ValueError(
                f"previous_ids has {len(rows)} rows but logits has batch size {logits.size(0)}"
            )
        width = max((len(r) for r in rows), default=0)
        padded = [list(r) + [-1] * (width - len(r)) for r in rows]
        previous_ids = torch.tensor(padded, dtype=torch.long, device=logits.device).view(
            *logits.shape[:-1], width
        )
    ids = previous_ids.to(device=logits.device, dtype=torch.long)
    if ids.shape[:-1] != logits.shape[:-1]:
        raise ValueError(
            f"previous_ids must have shape {tuple(logits.shape[:-1])} + (S,), got {tuple(ids.shape)}"
        )
    ids = torch.where(ids < 0, V, ids)  # padding -> an extra column that is dropped below
    seen = torch.zeros(*logits.shape[:-1], V + 1, dtype=torch.bool, device=logits.device)
    seen.scatter_(-1, ids, True)
    return seen[..., :V]


def apply_repetition_penalty(
    logits: torch.Tensor, previous_ids: PreviousIds, penalty: float
) -> torch.Tensor:
    """Make every token already seen less likely (CTRL, Keskar et al. 2019).

    For each token id in ``previous_ids`` (counted once, however often it appeared), a
    positive logit is divided by ``penalty`` and a negative one multiplied by it, so the
    token always moves down when ``penalty`` > 1. ``penalty = 1`` changes nothing.

    Args:
        logits: (B, V) or (V,) logits.
        previous_ids: (B, S) LongTensor, a list of B (ragged) lists, or a flat list of ids
            for a single (V,) row. Negative ids are ignored.
        penalty: > 0; values above 1 discourage repetition.
    """
    if not penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0, got {penalty!r}")
    seen = _seen_mask(previous_ids, logits)  # (..., V)
    penalized = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalized, logits)


# --------------------------------------------------------------------------------------
# Configuration and the sampling step
# --------------------------------------------------------------------------------------


@dataclass
class SamplingConfig:
    """How to pick the next token. Validated on construction.

    Args:
        temperature: > 0 divides the logits; 0 means greedy (argmax, no randomness).
        top_k: keep the k most likely tokens (>= 1), or None for no limit.
        top_p: nucleus threshold in (0, 1], or None.
        min_p: relative probability threshold in [0, 1], or None.
        repetition_penalty: > 0 (1 is no penalty), or None.
    """

    temperature: float = 1.0
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    min_p: Optional[float] = None
    repetition_penalty: Optional[float] = None

    def __post_init__(self) -> None:
        if not isinstance(self.temperature, (int, float)) or not self.temperature >= 0:
            raise ValueError(
                f"SamplingConfig.temperature must be >= 0 (0 is greedy), got {self.temperature!r}"
            )
        if self.top_k is not None and (
            isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1
        ):
            raise ValueError(f"SamplingConfig.top_k must be an integer >= 1 or None, got {self.top_k!r}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"SamplingConfig.top_p must be in (0, 1] or None, got {self.top_p!r}")
        if self.min_p is not None and not 0.0 <= self.min_p <= 1.0:
            raise ValueError(f"SamplingConfig.min_p must be in [0, 1] or None, got {self.min_p!r}")
        if self.repetition_penalty is not None and not self.repetition_penalty > 0:
            raise ValueError(
                f"SamplingConfig.repetition_penalty must be > 0 or None, got {self.repetition_penalty!r}"
            )

    @property
    def greedy(self) -> bool:
        """True when decoding is deterministic argmax (temperature 0)."""
        return self.temperature == 0


def process_logits(
    logits: torch.Tensor,
    config: SamplingConfig,
    previous_ids: Optional[PreviousIds] = None,
) -> torch.Tensor:
    """Apply the whole chain of ``config`` to (..., V) logits; return the new logits.

    Order (as ``transformers``): repetition penalty, temperature, top-k, top-p, min-p.
    With temperature 0 (greedy) the temperature step is skipped; the filters keep the
    argmax anyway. The repetition penalty needs ``previous_ids`` (otherwise skipped).
    """
    if config.repetition_penalty is not None and previous_ids is not None:
        logits = apply_repetition_penalty(logits, previous_ids, config.repetition_penalty)
    if config.temperature > 0 and config.temperature != 1.0:
        logits = apply_temperature(logits, config.temperature)
    if config.top_k is not None:
        logits = top_k_filter(logits, config.top_k)
    if config.top_p is not None and config.top_p < 1.0:
        logits = top_p_filter(logits, config.top_p)
    if config.min_p is not None and config.min_p > 0:
        logits = min_p_filter(logits, config.min_p)
    return logits


def sample_next(
    logits: torch.Tensor,
    config: SamplingConfig,
    generator: Optional[torch.Generator] = None,
    previous_ids: Optional[PreviousIds] = None,
) -> torch.Tensor:
    """Pick one token per row of (B, V) logits; returns (B,) token ids.

    Greedy (temperature 0) takes the argmax of the processed logits; otherwise one draw
    from softmax(processed logits) with ``generator`` (same seed, same draws).
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (B, V), got {tuple(logits.shape)}")
    logits = process_logits(logits.float(), config, previous_ids)  # (B, V)
    if config.greedy:
        return logits.argmax(dim=-1)  # (B,)
    probs = torch.softmax(logits, dim=-1)  # (B, V), 0 on removed tokens
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)  # (B,)
