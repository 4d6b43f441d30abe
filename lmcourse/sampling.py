"""Sampling: turning next-token logits into a choice of token.

Chapter 6 (the generation loop) and chapter 8 (decoding strategies) teach this file.

Every filter is a pure function on logits of shape (..., V): it returns *new* logits in
which the removed tokens are set to -inf (so that softmax gives them probability 0) and
the kept tokens are unchanged. They work on a single row (V,) or a batch (B, V). Each is
written from its definition (the papers are cited in the docstrings); the tests check
that they remove exactly the tokens the Hugging Face ``transformers`` logits processors of
the same name remove (for top-p ties at the cut, which ``transformers`` leaves to an
unstable sort, ours follow the documented order of :func:`top_p_filter`).

One decode step is "process the logits, then pick a token": :func:`process_logits` applies
the filters of a :class:`SamplingConfig` (in the order repetition penalty, temperature,
top-k, top-p, min-p, the order ``transformers`` uses too), :func:`pick_token` picks (argmax
when greedy, else one draw from the softmax), and :func:`decode_step` does both and
reports every intermediate. :func:`sample_next`, ``lmcourse.generate``,
``lmcourse.speculative`` and the book's tracing (through ``generate(record_steps=True)``)
all go through it.

Random draws and devices: a ``generator`` may live on another device than the logits (a
CPU generator with a CUDA model is the common case). The draw then happens on the
generator's device (the probabilities are copied there) and the token comes back to the
logits' device, so a seed gives the same tokens whatever device the model is on (up to
the floating-point differences of the model itself).

Shapes used in the comments:
    B  batch size    V  vocabulary size    S  number of previous tokens
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch

from lmcourse.checks import require_generator, require_instance, require_int, require_real
from lmcourse.devices import draw_multinomial
from lmcourse.metrics import entropy

__all__ = [
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "min_p_filter",
    "apply_repetition_penalty",
    "SamplingConfig",
    "process_logits",
    "pick_token",
    "TokenChoice",
    "decode_step",
    "sample_next",
    "distribution_stats",
    "filter_stats",
]

NEG_INF = float("-inf")

PreviousIds = Union[torch.Tensor, Sequence[Sequence[int]], Sequence[int]]


# --------------------------------------------------------------------------------------
# Argument checks shared by the filters and SamplingConfig
# --------------------------------------------------------------------------------------


def _check_temperature(value: object, name: str = "temperature", allow_zero: bool = False) -> float:
    t = require_real(name, value)
    if not (t > 0 or (allow_zero and t == 0)):
        rule = ">= 0 (0 is greedy)" if allow_zero else "> 0 (0 means greedy in sample_next)"
        raise ValueError(f"{name} must be {rule}, got {value!r}")
    return t


def _check_top_k(value: object, name: str = "top_k") -> int:
    return require_int(name, value, minimum=1)


def _check_top_p(value: object, name: str = "top_p") -> float:
    p = require_real(name, value)
    if not 0.0 < p <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return p


def _check_min_p(value: object, name: str = "min_p") -> float:
    return require_real(name, value, 0.0, 1.0)


def _check_penalty(value: object, name: str = "repetition_penalty") -> float:
    r = require_real(name, value)
    if not r > 0:
        raise ValueError(f"{name} must be > 0 (1 is no penalty), got {value!r}")
    return r


# --------------------------------------------------------------------------------------
# Filters: logits (..., V) -> logits (..., V)
# --------------------------------------------------------------------------------------


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide the logits by ``temperature`` > 0: below 1 sharpens, above 1 flattens.

    softmax(z / T) is the Boltzmann distribution at temperature T (Ackley, Hinton and
    Sejnowski 1985). Temperature 0 means greedy decoding; it is handled by
    :func:`pick_token` (argmax), not here, because dividing by 0 is undefined. A
    temperature so small that ``logits / T`` overflows is reported by :func:`decode_step`.
    """
    t = _check_temperature(temperature)
    return logits / t


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k most likely tokens (Fan, Lewis and Dauphin 2018); the others become -inf.

    A token survives when its logit is >= the k-th largest logit, so tokens tied with the
    k-th largest are all kept (more than k may survive). ``k`` >= V keeps everything.
    """
    k = min(_check_top_k(k), logits.size(-1))
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_largest, NEG_INF)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus sampling (Holtzman et al. 2020): keep the smallest set of most likely tokens
    whose probability mass reaches ``p``.

    Rank the tokens from most to least likely and walk down the ranking, adding up their
    probabilities. A token is kept when the mass of the tokens ranked *above* it is still
    below ``p``: the token whose probability makes the sum reach (or cross) ``p`` is kept,
    everything after it is removed. The most likely token is always kept.

    Ties: tokens of equal logit are ranked by id, the *larger* id first (the order of a
    stable ascending sort, which is how ``transformers`` breaks them), so a tie at the cut
    keeps the larger ids. ``p = 1`` keeps every token (deliberate difference:
    ``transformers`` also removes tokens whose probability underflows to exactly 0,
    which does not change the distribution).
    """
    p = _check_top_p(p)
    if p == 1.0:
        return logits.clone()
    V = logits.size(-1)
    # rank most likely first; flipping the ids first makes a stable sort put larger ids first
    ranked_logits, flipped_rank = torch.sort(logits.flip(-1), dim=-1, descending=True, stable=True)  # (..., V)
    ranked_ids = (V - 1) - flipped_rank  # (..., V) vocabulary ids in rank order
    ranked_probs = torch.softmax(ranked_logits, dim=-1)  # (..., V)
    mass_above = ranked_probs.cumsum(dim=-1) - ranked_probs  # (..., V) mass ranked above each token
    remove_ranked = mass_above >= p  # (..., V) the nucleus already holds p without this token
    remove_ranked[..., 0] = False  # the most likely token always stays
    remove = torch.zeros_like(remove_ranked).scatter(-1, ranked_ids, remove_ranked)  # vocab order
    return logits.masked_fill(remove, NEG_INF)


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Min-p sampling (Nguyen et al. 2024): keep the tokens with probability at least
    ``min_p`` times the probability of the most likely token.

    The threshold scales with the model's confidence: a peaked distribution keeps few
    tokens, a flat one keeps many. Since ``min_p`` <= 1 the most likely token always
    passes; ``min_p = 0`` keeps everything, ``min_p = 1`` only the tokens tied for the top.
    """
    min_p = _check_min_p(min_p)
    probs = torch.softmax(logits, dim=-1)  # (..., V)
    threshold = min_p * probs.amax(dim=-1, keepdim=True)  # (..., 1)
    return logits.masked_fill(probs < threshold, NEG_INF)


def _seen_mask(previous_ids: PreviousIds, logits: torch.Tensor) -> torch.Tensor:
    """Boolean (..., V) mask, True where the token id appears in ``previous_ids``.

    ``previous_ids`` is a LongTensor (..., S) matching the leading dimensions of
    ``logits``, or a (possibly ragged) list of lists for a (B, V) batch, or a flat list
    for a single (V,) row. Negative ids are padding and ignored.
    """
    V = logits.size(-1)
    lead = tuple(logits.shape[:-1])
    if not isinstance(previous_ids, torch.Tensor):  # lists: pad the rows with -1
        rows = [list(previous_ids)] if logits.dim() == 1 else [list(r) for r in previous_ids]
        if logits.dim() != 1 and (logits.dim() != 2 or len(rows) != logits.size(0)):
            raise ValueError(f"previous_ids has {len(rows)} rows but logits has shape {tuple(logits.shape)}")
        width = max((len(r) for r in rows), default=0)
        previous_ids = torch.tensor([r + [-1] * (width - len(r)) for r in rows], dtype=torch.long)
        previous_ids = previous_ids.view(*lead, width)
    ids = previous_ids.to(device=logits.device, dtype=torch.long)  # (..., S)
    if tuple(ids.shape[:-1]) != lead:
        raise ValueError(f"previous_ids must have shape {lead} + (S,), got {tuple(ids.shape)}")
    if ids.numel() and int(ids.max()) >= V:
        raise ValueError(f"previous_ids must be < vocabulary size {V} (negative ids are padding), got {int(ids.max())}")
    ids = torch.where(ids < 0, V, ids)  # padding -> an extra column, dropped below
    seen = torch.zeros(*lead, V + 1, dtype=torch.bool, device=logits.device)  # (..., V + 1)
    seen.scatter_(-1, ids, True)
    return seen[..., :V]


def apply_repetition_penalty(
    logits: torch.Tensor, previous_ids: PreviousIds, penalty: float
) -> torch.Tensor:
    """Make every token already seen less likely (Keskar et al. 2019, CTRL).

    CTRL divides the logit of every previously generated token by ``penalty`` before the
    softmax. Dividing a *negative* logit by a penalty > 1 would raise it, so, as in
    ``transformers`` and most implementations since, a negative logit is multiplied
    instead: a seen token always moves down when ``penalty`` > 1 (and up when < 1). Each
    seen token id is penalised once, however often it appeared; ``penalty = 1`` changes
    nothing.

    Args:
        logits: (B, V) or (V,) logits.
        previous_ids: (B, S) LongTensor, a list of B (ragged) lists, or a flat list of ids
            for a single (V,) row. Negative ids are ignored.
        penalty: > 0; values above 1 discourage repetition.
    """
    penalty = _check_penalty(penalty, "repetition_penalty")
    seen = _seen_mask(previous_ids, logits)  # (..., V)
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)  # (..., V)
    return torch.where(seen, penalized, logits)


# --------------------------------------------------------------------------------------
# Configuration
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

    Booleans, strings and non-finite numbers are rejected (TypeError / ValueError naming
    the field).
    """

    temperature: float = 1.0
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    min_p: Optional[float] = None
    repetition_penalty: Optional[float] = None

    def __post_init__(self) -> None:
        self.temperature = _check_temperature(self.temperature, "SamplingConfig.temperature", allow_zero=True)
        if self.top_k is not None:
            self.top_k = _check_top_k(self.top_k, "SamplingConfig.top_k")
        if self.top_p is not None:
            self.top_p = _check_top_p(self.top_p, "SamplingConfig.top_p")
        if self.min_p is not None:
            self.min_p = _check_min_p(self.min_p, "SamplingConfig.min_p")
        if self.repetition_penalty is not None:
            self.repetition_penalty = _check_penalty(self.repetition_penalty, "SamplingConfig.repetition_penalty")

    @property
    def greedy(self) -> bool:
        """True when decoding is deterministic argmax (temperature 0)."""
        return self.temperature == 0


# --------------------------------------------------------------------------------------
# One decode step: process the logits, then pick a token
# --------------------------------------------------------------------------------------


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


def _check_usable(raw: torch.Tensor, processed: torch.Tensor, config: SamplingConfig) -> None:
    """Raise a clear ValueError when the processed logits cannot give a distribution."""
    raw_nan, overflow = torch.stack(  # one device-to-host sync for both checks
        [torch.isnan(raw).any(), (torch.isnan(processed) | (processed == float("inf"))).any()]
    ).tolist()
    if raw_nan:
        raise ValueError("the logits contain NaN (the model's output is not finite): cannot pick a token")
    if overflow:
        raise ValueError(
            f"logits overflowed after processing (temperature={config.temperature!r}, "
            f"repetition_penalty={config.repetition_penalty!r}): a temperature or repetition_penalty "
            "this close to 0 divides the logits into infinity; use temperature=0 for greedy decoding"
        )


def pick_token(
    processed_logits: torch.Tensor, config: SamplingConfig, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """(B, V) processed logits -> (B,) ids: the argmax when greedy, else one softmax draw."""
    require_generator("generator", generator)
    if config.greedy:
        return processed_logits.argmax(dim=-1)  # (B,)
    return draw_multinomial(torch.softmax(processed_logits, dim=-1), generator)  # (B,)


@dataclass
class TokenChoice:
    """What one decode step computed, for B rows.

    Attributes:
        processed_logits: (B, V) logits after the chain of :func:`process_logits`.
        probs: (B, V) ``softmax(processed_logits)``: the distribution the token was drawn
            from (for greedy decoding, where the argmax is taken, the filtered
            distribution without temperature).
        token: (B,) the chosen ids.
    """

    processed_logits: torch.Tensor
    probs: torch.Tensor
    token: torch.Tensor


def decode_step(
    logits: torch.Tensor,
    config: SamplingConfig,
    generator: Optional[torch.Generator] = None,
    previous_ids: Optional[PreviousIds] = None,
) -> TokenChoice:
    """The decode step: process (B, V) logits with ``config``, then pick one token per row.

    Logits are processed in float32 (or float64 if given). Raises ValueError when the
    logits contain NaN (greedy decoding would otherwise silently return token 0) or
    when temperature / repetition penalty overflow them.

    Args:
        logits: (B, V) raw next-token logits.
        config: the :class:`SamplingConfig`.
        generator: ``torch.Generator`` for the draw, on any device (see the module doc):
            same seed, same tokens.
        previous_ids: the tokens so far, for the repetition penalty (see
            :func:`apply_repetition_penalty`).
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ValueError(f"logits must be a (B, V) tensor, got {getattr(logits, 'shape', type(logits))}")
    require_instance("config", config, SamplingConfig)
    require_generator("generator", generator)
    raw = logits if logits.dtype == torch.float64 else logits.float()
    processed = process_logits(raw, config, previous_ids)  # (B, V)
    _check_usable(raw, processed, config)
    token = pick_token(processed, config, generator)  # (B,)
    return TokenChoice(processed_logits=processed, probs=torch.softmax(processed, dim=-1), token=token)


def sample_next(
    logits: torch.Tensor,
    config: SamplingConfig,
    generator: Optional[torch.Generator] = None,
    previous_ids: Optional[PreviousIds] = None,
) -> torch.Tensor:
    """Pick one token per row of (B, V) logits; returns (B,) token ids (see :func:`decode_step`).

    Greedy (temperature 0) takes the argmax of the processed logits; otherwise one draw
    from softmax(processed logits) with ``generator``, which may sit on any device (same
    seed, same draws).
    """
    return decode_step(logits, config, generator, previous_ids).token


# --- what the filters do to one distribution (the figures and explorers of chapters 3 and 8) ---


def distribution_stats(logits: torch.Tensor, temperature: float = 1.0) -> dict:
    """Scaled logits, probabilities and entropy (bits) of one (V,) logits vector at ``temperature``.

    Returns:
        ``{"scaled": (V,) logits / temperature, "probs": (V,), "entropy_bits": float}``.
    """
    temperature = _check_temperature(temperature)
    z = torch.as_tensor(logits).detach().float().cpu().reshape(-1) / temperature
    return {"scaled": z, "probs": torch.softmax(z, dim=-1), "entropy_bits": entropy(z, "bits").item()}


def filter_stats(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    min_p: Optional[float] = None,
) -> dict:
    """The model's distribution before and after temperature + top-k + top-p + min-p.

    Args:
        logits: one (V,) next-token logits vector.
        temperature: > 0 (greedy is top_k=1).
        top_k, top_p, min_p: the filters of :class:`SamplingConfig` (None: off).
    Returns:
        A dict with ``"before"``: (V,) softmax(logits); ``"after"``: (V,) renormalised
        probabilities after :func:`process_logits` (0 on removed tokens); ``"kept"``: (V,)
        bool; ``"n_kept"``: int; ``"config"``: the SamplingConfig.
    """
    config = SamplingConfig(temperature=_check_temperature(temperature), top_k=top_k, top_p=top_p, min_p=min_p)
    z = torch.as_tensor(logits).detach().float().cpu().reshape(-1)
    processed = process_logits(z, config)
    kept = torch.isfinite(processed)
    return {
        "before": torch.softmax(z, dim=-1),
        "after": torch.softmax(processed, dim=-1),
        "kept": kept,
        "n_kept": int(kept.sum()),
        "config": config,
    }
