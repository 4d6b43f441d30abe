"""Generation: the autoregressive loop that turns a model into a text generator.

Chapter 6 (the generation loop) and chapter 8 (decoding strategies) teach this file; the
KV cache it relies on is chapter 7 (``lmcourse.model.KVCache``).

The loop, for a batch of prompts:

1. **prefill**: run the (left-padded) prompts through the model once, filling the KV cache;
   the logits at the last position give the first new token;
2. **decode**: feed only the token just chosen, one position per step; it attends to
   everything cached. Each step picks the next token with :mod:`lmcourse.sampling`;
3. **stop** each sequence on its own (end-of-sequence id, stop string, or length limit);
   finished sequences stop growing while the others continue.

Batches of prompts of different lengths are *left*-padded, so that every row's last real
token sits in the last column; an ``attention_mask`` hides the padding keys and
``position_ids = cumsum(mask) - 1`` gives each row its own positions, so a prompt gives
the same tokens in a batch as alone.

**Sliding window.** The model has ``block_size`` learned positions. When a sequence would
pass them, the loop keeps only the last ``block_size // 2`` tokens of every row (the
*window*), re-prefills the cache with them, and continues; the window then grows again up
to ``block_size`` and slides again. Without the cache (``use_cache=False``) the whole
window is recomputed every step, with exactly the same window, so both give the same
tokens. In a batch the window slides for all rows together, when the longest row is full.

Shapes used in the comments:
    B  batch size    W  window width (columns, padding included)    V  vocabulary size
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import torch

from lmcourse.model import GPT, KVCache, eval_mode
from lmcourse.sampling import SamplingConfig, process_logits

__all__ = ["GenerationOutput", "generate", "stream"]

PromptIds = Union[Sequence[int], Sequence[Sequence[int]], torch.Tensor]


@dataclass
class GenerationOutput:
    """What :func:`generate` returns (one entry per prompt, in order, no padding).

    Attributes:
        sequences: prompt + new tokens of every row.
        new_tokens: only the generated tokens (an EOS token, when hit, is included).
        finish_reasons: ``"eos"``, ``"stop"`` (a stop string appeared) or ``"length"``
            (``max_new_tokens`` reached).
        logprobs: with ``return_logprobs``, the log-probability of each new token under the
            *processed* distribution it was drawn from, i.e. ``log_softmax`` of the logits
            after repetition penalty, temperature and top-k/top-p/min-p (for greedy
            decoding, temperature 0, after the filters but without temperature).
        text: with a ``tokenizer``, the decoded new tokens of every row.
    """

    sequences: list[list[int]]
    new_tokens: list[list[int]]
    finish_reasons: list[str]
    logprobs: Optional[list[list[float]]] = None
    text: Optional[list[str]] = None


# --------------------------------------------------------------------------------------
# Argument checking
# --------------------------------------------------------------------------------------


def _as_rows(prompt_ids: PromptIds, vocab_size: int) -> list[list[int]]:
    """list[int], ragged list[list[int]], LongTensor (T,) or (B, T) -> list of B lists."""
    if isinstance(prompt_ids, torch.Tensor):
        if prompt_ids.dim() not in (1, 2) or prompt_ids.dtype.is_floating_point:
            raise ValueError(
                f"prompt_ids tensor must be an integer (T,) or (B, T) tensor, got "
                f"{prompt_ids.dtype} of shape {tuple(prompt_ids.shape)}"
            )
        rows = prompt_ids.tolist()
        rows = [rows] if prompt_ids.dim() == 1 else rows
    else:
        rows = list(prompt_ids)
        if rows and all(isinstance(t, int) and not isinstance(t, bool) for t in rows):
            rows = [rows]  # a single prompt
        rows = [list(r) for r in rows]
    if not rows:
        raise ValueError("prompt_ids must hold at least one prompt")
    for r in rows:
        if not r:
            raise ValueError("prompt_ids: every prompt needs at least one token")
        for t in r:
            if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < vocab_size:
                raise ValueError(f"prompt_ids must be integers in [0, {vocab_size - 1}], got {t!r}")
    return rows


def _as_id_set(eos_token_id: Union[int, Sequence[int], None]) -> set[int]:
    """None, one id, or a list of ids -> a set."""
    if eos_token_id is None:
        return set()
    ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    for t in ids:
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ValueError(f"eos_token_id must be an int >= 0 or a list of them, got {eos_token_id!r}")
    return set(ids)


def _as_stop_strings(stop_strings: Union[str, Sequence[str], None], tokenizer: Any) -> list[str]:
    """None, one string or a list -> list of non-empty strings (needs a tokenizer)."""
    if stop_strings is None:
        return []
    strings = [stop_strings] if isinstance(stop_strings, str) else list(stop_strings)
    if not strings or not all(isinstance(s, str) and s for s in strings):
        raise ValueError(f"stop_strings must be non-empty strings, got {stop_strings!r}")
    if tokenizer is None or not callable(getattr(tokenizer, "decode", None)):
        raise ValueError("stop_strings need a tokenizer with decode(ids) -> str (tokenizer=...)")
    return strings


# --------------------------------------------------------------------------------------
# The model side: windows, prefill, decode
# --------------------------------------------------------------------------------------


def _left_pad(windows: list[list[int]], device: torch.device) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Left-pad rows to one width W: ids (B, W) and mask (B, W), or mask None if no padding."""
    W = max(len(w) for w in windows)
    ids = torch.zeros(len(windows), W, dtype=torch.long, device=device)  # pad id 0, never seen
    mask = torch.zeros(len(windows), W, dtype=torch.long, device=device)
    for i, w in enumerate(windows):
        ids[i, W - len(w) :] = torch.tensor(w, dtype=torch.long, device=device)
        mask[i, W - len(w) :] = 1
    if bool(mask.all()):
        return ids, None  # same lengths: plain causal attention (the fast path)
    return ids, mask


def _forward_window(
    model: GPT, windows: list[list[int]], kv_cache: Optional[KVCache]
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Run the left-padded windows (prefill, or a full recompute); return last logits (B, V) and mask."""
    device = model.transformer.wte.weight.device
    ids, mask = _left_pad(windows, device)  # (B, W), (B, W) or None
    positions = None if mask is None else (mask.cumsum(-1) - 1).clamp(min=0)  # (B, W)
    logits, _ = model(ids, kv_cache=kv_cache, attention_mask=mask, position_ids=positions)
    return logits[:, -1, :], mask  # left padding: the last column is real in every row


def _next_token_logits(
    model: GPT,
    prompts: list[list[int]],
    max_new_tokens: int,
    use_cache: bool,
) -> Iterator[tuple[torch.Tensor, list[list[int]]]]:
    """Yield the next-token logits (B, V) at every step, with the contexts so far.

    The caller appends its chosen token to every row of the yielded ``contexts`` before
    asking for the next step. This is where the KV cache and the sliding window live.
    """
    block = model.config.block_size
    keep = max(1, block // 2)  # tokens kept when the window slides
    contexts = [list(p) for p in prompts]  # full history of every row
    starts = [max(0, len(c) - block) for c in contexts]  # window = contexts[i][starts[i]:]
    cache: Optional[KVCache] = None
    mask: Optional[torch.Tensor] = None
    device = model.transformer.wte.weight.device
    for step in range(max_new_tokens):
        width = max(len(c) - s for c, s in zip(contexts, starts))
        if width > block:  # slide: keep the last `keep` tokens of every row
            starts = [max(s, len(c) - keep) for c, s in zip(contexts, starts)]
            cache = None  # the cached keys have the old positions: re-prefill
            width = max(len(c) - s for c, s in zip(contexts, starts))
        if not use_cache:
            windows = [c[s:] for c, s in zip(contexts, starts)]
            logits, _ = _forward_window(model, windows, None)  # recompute everything
        elif cache is None:  # prefill the window once
            windows = [c[s:] for c, s in zip(contexts, starts)]
            remaining = max_new_tokens - step  # positions this cache will ever need
            cache = model.new_kv_cache(len(windows), max_len=min(block, width + remaining))
            logits, mask = _forward_window(model, windows, cache)
        else:  # decode: only the newest token of every row
            last = torch.tensor([[c[-1]] for c in contexts], dtype=torch.long, device=device)  # (B, 1)
            positions = None
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(len(contexts), 1)], dim=1)  # (B, L + 1)
                positions = mask.sum(-1, keepdim=True) - 1  # (B, 1) each row's own position
            step_logits, _ = model(last, kv_cache=cache, attention_mask=mask, position_ids=positions)
            logits = step_logits[:, -1, :]  # (B, V)
        yield logits, contexts


# --------------------------------------------------------------------------------------
# The loop with stop conditions
# --------------------------------------------------------------------------------------


class _State:
    """Per-row bookkeeping of a generation: new tokens, log-probs, finish reasons, text."""

    def __init__(self, n_rows: int) -> None:
        self.new_tokens: list[list[int]] = [[] for _ in range(n_rows)]
        self.logprobs: list[list[float]] = [[] for _ in range(n_rows)]
        self.reasons: list[Optional[str]] = [None] * n_rows
        self.text: list[str] = [""] * n_rows


@torch.no_grad()  # on a generator function: grad is off only while it runs
def _steps(
    model: GPT,
    rows: list[list[int]],
    max_new_tokens: int,
    sampling: SamplingConfig,
    eos_ids: set[int],
    stop_strings: list[str],
    tokenizer: Any,
    use_cache: bool,
    generator: Optional[torch.Generator],
    state: _State,
) -> Iterator[list[int]]:
    """Run the loop; after each step yield the B chosen ids (-1 for rows already finished)."""
    longest_stop = max((len(s) for s in stop_strings), default=0)
    for step, (logits, contexts) in enumerate(_next_token_logits(model, rows, max_new_tokens, use_cache)):
        previous = contexts if sampling.repetition_penalty is not None else None
        processed = process_logits(logits.float(), sampling, previous)  # (B, V)
        if sampling.greedy:  # the same choice as lmcourse.sampling.sample_next
            next_ids = processed.argmax(dim=-1)  # (B,)
        else:
            probs = torch.softmax(processed, dim=-1)  # (B, V)
            next_ids = torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)
        logp = torch.log_softmax(processed, dim=-1).gather(-1, next_ids.unsqueeze(-1)).squeeze(-1)

        chosen: list[int] = []
        for i, (token, lp) in enumerate(zip(next_ids.tolist(), logp.tolist())):
            contexts[i].append(token)  # finished rows keep a (discarded) history too
            if state.reasons[i] is not None:
                chosen.append(-1)
                continue
            chosen.append(token)
            state.new_tokens[i].append(token)
            state.logprobs[i].append(lp)
            if tokenizer is not None:
                old = len(state.text[i])
                state.text[i] = tokenizer.decode(state.new_tokens[i])
                # a stop string may span several tokens: search the part that can hold a new one
                tail = state.text[i][max(0, old - longest_stop + 1) :]
                if any(s in tail for s in stop_strings):
                    state.reasons[i] = "stop"
            if token in eos_ids:
                state.reasons[i] = "eos"
            elif state.reasons[i] is None and step + 1 == max_new_tokens:
                state.reasons[i] = "length"
        yield chosen
        if all(r is not None for r in state.reasons):
            return


def _check_common(
    model: GPT,
    prompt_ids: PromptIds,
    max_new_tokens: int,
    sampling: SamplingConfig,
    eos_token_id: Union[int, Sequence[int], None],
    stop_strings: Union[str, Sequence[str], None],
    tokenizer: Any,
) -> tuple[list[list[int]], set[int], list[str]]:
    """Validate the arguments shared by :func:`generate` and :func:`stream`."""
    if not isinstance(model, GPT):
        raise ValueError(f"model must be an lmcourse GPT, got {type(model).__name__}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    if not isinstance(sampling, SamplingConfig):
        raise ValueError(f"sampling must be a SamplingConfig, got {type(sampling).__name__}")
    if tokenizer is not None and not callable(getattr(tokenizer, "decode", None)):
        raise ValueError("tokenizer must have a decode(ids) -> str method")
    rows = _as_rows(prompt_ids, model.config.vocab_size)
    return rows, _as_id_set(eos_token_id), _as_stop_strings(stop_strings, tokenizer)


@torch.no_grad()
def generate(
    model: GPT,
    prompt_ids: PromptIds,
    max_new_tokens: int,
    sampling: Optional[SamplingConfig] = None,
    eos_token_id: Union[int, Sequence[int], None] = None,
    stop_strings: Union[str, Sequence[str], None] = None,
    tokenizer: Any = None,
    use_cache: bool = True,
    generator: Optional[torch.Generator] = None,
    return_logprobs: bool = False,
    callback: Optional[Callable[[int, list[int]], None]] = None,
) -> GenerationOutput:
    """Generate up to ``max_new_tokens`` tokens after each prompt.

    Args:
        model: an lmcourse :class:`~lmcourse.model.GPT` (put in eval mode for the call).
        prompt_ids: one prompt (list[int] or LongTensor (T,)) or several (a ragged
            list[list[int]] or LongTensor (B, T)).
        max_new_tokens: >= 0 tokens to add at most per prompt.
        sampling: a :class:`~lmcourse.sampling.SamplingConfig` (default: plain sampling at
            temperature 1); ``SamplingConfig(temperature=0)`` is greedy.
        eos_token_id: one id or a list of ids that end a sequence (the id is kept).
        stop_strings: strings that end a sequence when they appear in its decoded new text
            (possibly spanning several tokens); needs ``tokenizer``. Tokens are kept up to
            and including the one that completed the string.
        tokenizer: anything with ``decode(ids) -> str``; fills ``GenerationOutput.text``.
        use_cache: KV cache (prefill once, then one token per step); False recomputes the
            whole window every step (slow, same tokens).
        generator: ``torch.Generator`` for the random draws (same seed, same output).
        return_logprobs: also return the log-probability of each new token (see
            :class:`GenerationOutput`).
        callback: called after every step as ``callback(step, token_ids)`` with the B ids
            just chosen (-1 for rows already finished).
    Returns:
        A :class:`GenerationOutput`.
    """
    sampling = SamplingConfig() if sampling is None else sampling
    rows, eos_ids, stops = _check_common(
        model, prompt_ids, max_new_tokens, sampling, eos_token_id, stop_strings, tokenizer
    )
    if callback is not None and not callable(callback):
        raise ValueError("callback must be callable as callback(step, token_ids)")
    state = _State(len(rows))
    with eval_mode(model):
        steps = _steps(model, rows, max_new_tokens, sampling, eos_ids, stops, tokenizer, use_cache, generator, state)
        for step, chosen in enumerate(steps):
            if callback is not None:
                callback(step, chosen)
    return GenerationOutput(
        sequences=[r + t for r, t in zip(rows, state.new_tokens)],
        new_tokens=state.new_tokens,
        finish_reasons=[r or "length" for r in state.reasons],  # max_new_tokens = 0
        logprobs=state.logprobs if return_logprobs else None,
        text=[tokenizer.decode(t) for t in state.new_tokens] if tokenizer is not None else None,
    )


def stream(
    model: GPT,
    prompt_ids: PromptIds,
    max_new_tokens: int,
    sampling: Optional[SamplingConfig] = None,
    eos_token_id: Union[int, Sequence[int], None] = None,
    stop_strings: Union[str, Sequence[str], None] = None,
    tokenizer: Any = None,
    use_cache: bool = True,
    generator: Optional[torch.Generator] = None,
) -> Iterator[tuple[int, Optional[str]]]:
    """Generate for ONE prompt, yielding ``(token_id, text_piece)`` as each token is made.

    Same arguments and tokens as :func:`generate`. ``text_piece`` is the new text the
    token adds (None without a tokenizer). A token that ends inside a multi-byte
    character (decoded as U+FFFD) gives ``""`` and its text comes with a later piece; the
    pieces always join to the decoded new tokens.
    """
    sampling = SamplingConfig() if sampling is None else sampling
    rows, eos_ids, stops = _check_common(
        model, prompt_ids, max_new_tokens, sampling, eos_token_id, stop_strings, tokenizer
    )
    if len(rows) != 1:
        raise ValueError(f"stream takes one prompt, prompt_ids has {len(rows)}; use generate")
    state = _State(1)
    emitted = 0  # characters of the text already yielded
    with eval_mode(model):
        steps = _steps(model, rows, max_new_tokens, sampling, eos_ids, stops, tokenizer, use_cache, generator, state)
        for (token,) in steps:
            if tokenizer is None:
                yield token, None
                continue
            text = state.text[0]
            end = len(text)
            if text.endswith("\ufffd") and state.reasons[0] is None:
                end = len(text.rstrip("\ufffd"))  # wait for the rest of the character
            piece, emitted = text[emitted:end], max(emitted, end)
            yield token, piece
