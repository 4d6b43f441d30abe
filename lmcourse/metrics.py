"""Measuring language models: log-probabilities, cross-entropy, perplexity, bits, entropy, diversity.

Chapter 3 (evaluating language models) teaches this file; every later chapter reports its
numbers with it. All functions are pure functions on tensors, written out so that each line
is one step of the maths; tests check them against ``torch.nn.functional``.

Shapes used in the comments:
    B  batch size     T  sequence length     V  vocabulary size     N  number of tokens

Units: natural logarithms give **nats**, base-2 logarithms give **bits**;
1 nat = 1 / ln 2 ≈ 1.4427 bits.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch

from .checks import require_int

__all__ = [
    "log_softmax",
    "sequence_log_prob",
    "cross_entropy",
    "perplexity",
    "sliding_window_perplexity",
    "bits_per_byte",
    "entropy",
    "surprisal",
    "distinct_n",
]

LN2 = math.log(2.0)
_UNITS = ("nats", "bits")


def _check_unit(unit: str) -> None:
    if unit not in _UNITS:
        raise ValueError(f"unit must be one of {_UNITS}, got {unit!r}")


def _to_unit(x, unit: str):
    """Convert a quantity in nats to ``unit``."""
    return x / LN2 if unit == "bits" else x


# --------------------------------------------------------------------------------------
# Log-probabilities
# --------------------------------------------------------------------------------------


def log_softmax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Numerically stable log-softmax, written out with the max trick.

    log softmax(z)_i = z_i - log sum_j exp(z_j) = (z_i - m) - log sum_j exp(z_j - m), m = max z.

    Subtracting the maximum makes the largest exponent exp(0) = 1, so nothing overflows even
    for logits of 1e4, and the sum is >= 1, so its log is finite.
    """
    m = logits.amax(dim=dim, keepdim=True)  # (..., 1, ...)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # rows of all -inf stay -inf
    shifted = logits - m
    return shifted - shifted.exp().sum(dim=dim, keepdim=True).log()


def _gather_target_log_probs(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int):
    """log p(target) at each position (0 where ignored) and the mask of scored positions."""
    if logits.dim() < 1 or logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits must be (..., V) with targets of shape (...); got logits "
            f"{tuple(logits.shape)} and targets {tuple(targets.shape)}"
        )
    mask = targets != ignore_index  # (...)
    safe = torch.where(mask, targets, torch.zeros_like(targets)).long()  # (...)
    V = logits.shape[-1]
    if mask.any() and (safe[mask].min() < 0 or safe[mask].max() >= V):
        raise ValueError(f"targets must be in [0, {V}) or equal ignore_index={ignore_index}")
    logp = log_softmax(logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits)
    tok = logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)  # (...)
    return torch.where(mask, tok, torch.zeros_like(tok)), mask


def sequence_log_prob(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100, unit: str = "nats"
) -> torch.Tensor:
    """Log-probability of each target sequence, by the chain rule.

    log p(x_1..x_T) = sum_t log p(x_t | x_<t): the sum over positions of the log-probability
    the model gives the actual next token. Positions whose target is ``ignore_index`` add 0.

    Args:
        logits: (B, T, V) or (T, V) next-token logits.
        targets: (B, T) or (T,) token ids.
        unit: ``"nats"`` (natural log) or ``"bits"`` (log base 2).

    Returns:
        (B,) or () log-probabilities (<= 0).
    """
    _check_unit(unit)
    tok, _ = _gather_target_log_probs(logits, targets, ignore_index)  # (B, T)
    return _to_unit(tok.sum(-1), unit)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean negative log-likelihood in nats over the non-ignored positions.

    Same value as ``F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=...)``.
    Returns a scalar tensor (NaN when every position is ignored, like PyTorch).
    """
    tok, mask = _gather_target_log_probs(logits, targets, ignore_index)
    return -tok.sum() / mask.sum()


def perplexity(
    logits_or_mean_nll: Union[torch.Tensor, float],
    targets: Optional[torch.Tensor] = None,
    ignore_index: int = -100,
) -> float:
    """Perplexity = exp(mean NLL in nats): the effective number of equally likely choices.

    Call it either with a mean negative log-likelihood in nats (a float or scalar tensor),
    ``perplexity(2.0)``, or with ``(logits, targets)``, which uses :func:`cross_entropy`.
    """
    if targets is None:
        nll = float(logits_or_mean_nll)
    else:
        nll = float(cross_entropy(logits_or_mean_nll, targets, ignore_index))
    return math.exp(nll)


@torch.no_grad()
def sliding_window_perplexity(
    model,
    ids: Union[torch.Tensor, list[int]],
    block_size: int,
    stride: int,
    device: Optional[Union[str, torch.device]] = None,
    return_nll: bool = False,
):
    """Perplexity of a text longer than the model's context, with a sliding window.

    Windows of ``block_size`` tokens start every ``stride`` tokens. Each window scores only
    the tokens not scored by an earlier window (the convention of the Hugging Face
    "Perplexity of fixed-length models" guide), so with ``stride < block_size`` every token
    from the second on is scored exactly once, with between ``block_size - stride`` and
    ``block_size - 1`` tokens of context. ``stride == block_size`` is plain non-overlapping
    chunks (cheapest, least context; the first token of each chunk is not scored, as in HF);
    ``stride == 1`` gives every token the fullest context (most expensive).

    Args:
        model: callable ``model(idx (1, L)) -> logits (1, L, V)`` or ``(logits, loss)``
            (an :class:`lmcourse.model.GPT` works); put it in eval mode yourself.
        ids: 1-D token ids (N,), N >= 2.
        block_size: window length (<= the model's context).
        stride: step between window starts, 1 <= stride <= block_size.
        device: where to run the windows (default: where ``ids`` are).
        return_nll: also return the total NLL in nats and the number of scored tokens.

    Returns:
        The perplexity (float); with ``return_nll``, ``(perplexity, total_nll, n_tokens)``.
    """
    ids = torch.as_tensor(ids).long()
    if ids.dim() != 1 or ids.numel() < 2:
        raise ValueError(f"ids must be a 1-D sequence of at least 2 tokens, got shape {tuple(ids.shape)}")
    if not isinstance(block_size, int) or block_size < 2:
        raise ValueError(f"block_size must be an integer >= 2, got {block_size!r}")
    if not isinstance(stride, int) or not 1 <= stride <= block_size:
        raise ValueError(f"stride must be an integer in [1, block_size={block_size}], got {stride!r}")
    if device is not None:
        ids = ids.to(device)
    N = ids.numel()
    total_nll, n_tokens = 0.0, 0
    prev_end = 1  # token 0 has no context: it is never scored
    for begin in range(0, N, stride):
        end = min(begin + block_size, N)
        window = ids[begin:end][None]  # (1, L)
        out = model(window)
        logits = out[0] if isinstance(out, (tuple, list)) else out  # (1, L, V)
        # logits[:, j] predicts window[:, j + 1]; score only targets at absolute positions
        # max(prev_end, begin + 1) .. end - 1: the tokens this window is the first to see
        # (a window's own first token has no context inside it, so it cannot be scored)
        first = max(prev_end, begin + 1) - begin  # index in the window of the first new target
        targets = window[:, first:]  # (1, end - prev_end)
        nll = -sequence_log_prob(logits[:, first - 1 : -1], targets)  # (1,)
        total_nll += float(nll.sum())
        n_tokens += targets.numel()
        prev_end = end
        if end == N:
            break
    ppl = math.exp(total_nll / n_tokens)
    return (ppl, total_nll, n_tokens) if return_nll else ppl


# --------------------------------------------------------------------------------------
# Bits, entropy, surprisal
# --------------------------------------------------------------------------------------


def bits_per_byte(total_nll_nats: Union[float, torch.Tensor], n_bytes: int) -> float:
    """Total NLL (nats) of a text divided by its size in UTF-8 bytes, in bits per byte.

    Unlike per-token loss, bits per byte does not depend on the tokenizer, so it compares
    models with different vocabularies on the same text.
    """
    if not isinstance(n_bytes, int) or n_bytes < 1:
        raise ValueError(f"n_bytes must be a positive integer, got {n_bytes!r}")
    return float(total_nll_nats) / (n_bytes * LN2)


def entropy(logits: torch.Tensor, unit: str = "bits", dim: int = -1) -> torch.Tensor:
    """Entropy H(p) = -sum_i p_i log p_i of the next-token distributions ``softmax(logits)``.

    Zero-probability entries (logit -inf) contribute 0. Returns one value per distribution,
    e.g. (B, T) for (B, T, V) logits: 0 for a certain model, log V for a uniform one.
    """
    _check_unit(unit)
    logp = log_softmax(logits, dim=dim)
    p = logp.exp()
    plogp = torch.where(p > 0, p * logp, torch.zeros_like(p))
    return _to_unit(-plogp.sum(dim=dim), unit)


def surprisal(
    prob: Union[float, torch.Tensor, None] = None,
    *,
    log_prob: Union[float, torch.Tensor, None] = None,
    unit: str = "bits",
):
    """Surprisal -log p of an outcome: 0 for a certain one, large for a rare one.

    Give exactly one of ``prob`` (p in [0, 1]) or ``log_prob`` (natural log p, <= 0).
    Returns a float for float input, else a tensor; ``unit`` is ``"bits"`` or ``"nats"``.
    """
    _check_unit(unit)
    if (prob is None) == (log_prob is None):
        raise ValueError("give exactly one of prob or log_prob")
    if prob is not None:
        p = torch.as_tensor(prob, dtype=torch.float64)
        if (p < 0).any() or (p > 1).any():
            raise ValueError("prob must be in [0, 1]")
        s = -torch.log(p)
        scalar = not isinstance(prob, torch.Tensor)
    else:
        lp = torch.as_tensor(log_prob, dtype=torch.float64)
        if (lp > 0).any():
            raise ValueError("log_prob must be <= 0 (a natural-log probability)")
        s = -lp
        scalar = not isinstance(log_prob, torch.Tensor)
    s = _to_unit(s, unit)
    return float(s) if scalar else s


# --------------------------------------------------------------------------------------
# Diversity of generated text
# --------------------------------------------------------------------------------------


def distinct_n(samples, n: int) -> float:
    """Distinct-n: unique n-grams / all n-grams, pooled over ``samples``.

    Each sample is a sequence of tokens (a string counts as a sequence of characters; pass
    ``text.split()`` for words). 1 means no n-gram ever repeats; near 0, the samples keep
    saying the same thing. Returns 0 when there is no n-gram at all.
    """
    require_int("n", n, minimum=1)
    grams = [tuple(s[i : i + n]) for s in samples for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0
