"""Generation: the autoregressive loop that turns a model into a text generator.

Chapter 6 (the generation loop) and chapter 8 (decoding strategies) teach this file; the
KV cache it relies on is chapter 7 (``lmcourse.model.KVCache``).

The loop, for a batch of prompts:

1. **prefill**: run the (left-padded) prompts through the model once, filling the KV cache;
   the logits at the last position give the first new token;
2. **decode**: feed only the token just chosen, one position per step; it attends to
   everything cached. Each step picks the next token with the decode step of
   :mod:`lmcourse.sampling` (:func:`~lmcourse.sampling.decode_step`: process the logits,
   then pick); ``record_steps=True`` returns what every step saw and chose
   (:class:`DecodeStep`), which is what the book's tracing draws;
3. **stop** each sequence on its own (end-of-sequence id, stop string, or length limit);
   finished sequences stop growing while the others continue. Stop strings are checked
   on the newly decoded tail only, so their cost per step does not grow with the text.

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

**One argument contract** for every decoder (:func:`generate`, :func:`stream`,
``lmcourse.beam.beam_search``, ``lmcourse.speculative.speculative_generate``,
``lmcourse.fastgen.fast_generate``): the checks of :mod:`lmcourse.checks` (the prompt
forms of :func:`~lmcourse.checks.require_prompts`, EOS ids, counts, flags, generators);
wrong types raise TypeError, wrong values ValueError, both naming the parameter. Every
decoder runs the model in eval mode and restores its mode, and feeds it through one model
step, :meth:`lmcourse.model.GPT.step` (ids through the KV cache, logits of the last
positions).

Shapes used in the comments:
    B  batch size    W  window width (columns, padding included)    V  vocabulary size
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import torch

from lmcourse.checks import (
    require_bool,
    require_callable,
    require_eos_ids,
    require_generator,
    require_instance,
    require_int,
    require_prompts,
)
from lmcourse.model import GPT, KVCache, eval_mode
from lmcourse.sampling import SamplingConfig, decode_step

__all__ = [
    "DecodeStep",
    "GenerationOutput",
    "generate",
    "stream",
]

PromptIds = Union[Sequence[int], Sequence[Sequence[int]], torch.Tensor]


@dataclass
class DecodeStep:
    """One step of the loop, as recorded by ``generate(..., record_steps=True)``.

    Attributes:
        position: the step index: 0 for the first new token, 1 for the next, ...
        input_ids: (B, t) the ids fed to the model at this step: the left-padded prompt
            window at the prefill (or at every step without the cache), then (B, 1).
        logits: (B, V) the model's raw next-token logits (float32).
        processed_logits: (B, V) after the sampling chain (see
            :func:`lmcourse.sampling.process_logits`).
        probs: (B, V) ``softmax(processed_logits)``, the distribution the token came from.
        token: (B,) the chosen ids (rows already finished still get one; it is discarded).
        cache_len: positions held by the KV cache after this step's forward (0 without
            the cache).
    """

    position: int
    input_ids: torch.Tensor
    logits: torch.Tensor
    processed_logits: torch.Tensor
    probs: torch.Tensor
    token: torch.Tensor
    cache_len: int


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
        steps: with ``record_steps``, one :class:`DecodeStep` per step of the loop.
    """

    sequences: list[list[int]]
    new_tokens: list[list[int]]
    finish_reasons: list[str]
    logprobs: Optional[list[list[float]]] = None
    text: Optional[list[str]] = None
    steps: Optional[list[DecodeStep]] = None


def _as_stop_strings(stop_strings: Union[str, Sequence[str], None], tokenizer: Any) -> list[str]:
    """None, one string or a list -> list of non-empty strings (needs a tokenizer)."""
    if stop_strings is None:
        return []
    if not isinstance(stop_strings, (str, list, tuple)):
        raise TypeError(f"stop_strings must be a string, a list of strings or None, got {type(stop_strings).__name__}")
    strings = [stop_strings] if isinstance(stop_strings, str) else list(stop_strings)
    if not all(isinstance(s, str) for s in strings):
        raise TypeError(f"stop_strings must be a string, a list of strings or None, got {stop_strings!r}")
    if not strings or not all(strings):
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


def _next_token_logits(
    model: GPT,
    prompts: list[list[int]],
    max_new_tokens: int,
    use_cache: bool,
) -> Iterator[tuple[torch.Tensor, list[list[int]], torch.Tensor, int]]:
    """Yield, at every step, the next-token logits (B, V), the contexts so far, the ids
    fed to the model (B, t) and the cache length after the forward (0 without cache).

    The caller appends its chosen token to every row of the yielded ``contexts`` before
    asking for the next step. This is where the KV cache and the sliding window live.
    """
    block = model.config.block_size
    keep = max(1, block // 2)  # tokens kept when the window slides
    contexts = [list(p) for p in prompts]  # full history of every row
    starts = [max(0, len(c) - block) for c in contexts]  # window = contexts[i][starts[i]:]
    cache: Optional[KVCache] = None
    mask: Optional[torch.Tensor] = None
    device = model.device
    for step in range(max_new_tokens):
        width = max(len(c) - s for c, s in zip(contexts, starts))
        if width > block:  # slide: keep the last `keep` tokens of every row
            starts = [max(s, len(c) - keep) for c, s in zip(contexts, starts)]
            cache = None  # the cached keys have the old positions: re-prefill
            width = max(len(c) - s for c, s in zip(contexts, starts))
        if not use_cache or cache is None:  # prefill the window (every step without a cache)
            windows = [c[s:] for c, s in zip(contexts, starts)]
            ids, mask = _left_pad(windows, device)  # (B, W), (B, W) or None
            if use_cache:
                remaining = max_new_tokens - step  # positions this cache will ever need
                cache = model.new_kv_cache(len(windows), max_len=min(block, width + remaining))
            positions = None if mask is None else (mask.cumsum(-1) - 1).clamp(min=0)  # (B, W)
        else:  # decode: only the newest token of every row
            ids = torch.tensor([[c[-1]] for c in contexts], dtype=torch.long, device=device)  # (B, 1)
            positions = None
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(len(contexts), 1)], dim=1)  # (B, L + 1)
                positions = mask.sum(-1, keepdim=True) - 1  # (B, 1) each row's own position
        # left padding: the last column is a real token in every row
        logits = model.step(ids, kv_cache=cache, attention_mask=mask, position_ids=positions)[:, -1]  # (B, V)
        yield logits, contexts, ids, (cache.length if cache is not None else 0)


# --------------------------------------------------------------------------------------
# Stop strings, checked incrementally
# --------------------------------------------------------------------------------------

_SPLIT_CHAR_MARGIN = 3  # U+FFFD characters a window may start with when it cuts a UTF-8 character


def _completes_stop_string(tokens: list[int], stop_strings: list[str], longest: int, tokenizer: Any) -> bool:
    """Did the last of ``tokens`` complete one of ``stop_strings`` in their decoded text?

    Only a stop string that ends in the last token's text is new (the others were found
    at an earlier step), so only a tail of the tokens is decoded: the last token plus
    enough tokens before it to hold ``longest - 1`` characters (and a margin; the window
    doubles until it does). This keeps the check O(longest) per step instead of O(text so
    far), with the same answer as searching the whole text, for tokenizers whose ``decode`` of a
    concatenation is the concatenation of the decodes (character and byte-level BPE
    tokenizers; a window that starts inside a multi-byte character has a margin).
    """
    n = len(tokens)
    w = min(n, longest + _SPLIT_CHAR_MARGIN + 1)  # most tokens decode to >= 1 character
    before = tokenizer.decode(tokens[n - w : n - 1])  # the window's text before the last token
    while w < n and len(before) < longest + _SPLIT_CHAR_MARGIN:  # too short (partial bytes): widen
        w = min(n, 2 * w)
        before = tokenizer.decode(tokens[n - w : n - 1])
    text = tokenizer.decode(tokens[n - w :])
    tail = text[max(0, len(before) - longest + 1) :]  # where a string ending in the new token can start
    return any(s in tail for s in stop_strings)


# --------------------------------------------------------------------------------------
# The loop with stop conditions
# --------------------------------------------------------------------------------------


class _State:
    """Per-row bookkeeping of a generation: new tokens, log-probs, finish reasons, steps."""

    def __init__(self, n_rows: int) -> None:
        self.new_tokens: list[list[int]] = [[] for _ in range(n_rows)]
        self.logprobs: list[list[float]] = [[] for _ in range(n_rows)]
        self.reasons: list[Optional[str]] = [None] * n_rows
        self.steps: list[DecodeStep] = []


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
    record_steps: bool = False,
) -> Iterator[list[int]]:
    """Run the loop; after each step yield the B chosen ids (-1 for rows already finished)."""
    longest_stop = max((len(s) for s in stop_strings), default=0)
    for step, (logits, contexts, fed, cache_len) in enumerate(
        _next_token_logits(model, rows, max_new_tokens, use_cache)
    ):
        previous = contexts if sampling.repetition_penalty is not None else None
        choice = decode_step(logits, sampling, generator, previous)  # process, then pick
        logp = torch.log_softmax(choice.processed_logits, dim=-1).gather(-1, choice.token.unsqueeze(-1))  # (B, 1)
        if record_steps:
            state.steps.append(
                DecodeStep(
                    position=step,
                    input_ids=fed,
                    logits=logits.float().clone(),  # a copy: not a view holding (B, t, V)
                    processed_logits=choice.processed_logits,
                    probs=choice.probs,
                    token=choice.token,
                    cache_len=cache_len,
                )
            )

        chosen: list[int] = []
        for i, (token, lp) in enumerate(zip(choice.token.tolist(), logp.squeeze(-1).tolist())):
            contexts[i].append(token)  # finished rows keep a (discarded) history too
            if state.reasons[i] is not None:
                chosen.append(-1)
                continue
            chosen.append(token)
            state.new_tokens[i].append(token)
            state.logprobs[i].append(lp)
            if stop_strings and _completes_stop_string(state.new_tokens[i], stop_strings, longest_stop, tokenizer):
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
    sampling: Optional[SamplingConfig],
    eos_token_id: Union[int, Sequence[int], None],
    stop_strings: Union[str, Sequence[str], None],
    tokenizer: Any,
    use_cache: bool,
    generator: Optional[torch.Generator],
) -> tuple[list[list[int]], SamplingConfig, set[int], list[str]]:
    """Validate the arguments shared by :func:`generate` and :func:`stream`."""
    require_instance("model", model, GPT, "an lmcourse GPT")
    require_int("max_new_tokens", max_new_tokens, minimum=0)
    sampling = require_instance("sampling", sampling, SamplingConfig, optional=True) or SamplingConfig()
    if tokenizer is not None:
        require_callable("tokenizer.decode", getattr(tokenizer, "decode", None), "decode(ids) -> str")
    require_bool("use_cache", use_cache)
    require_generator("generator", generator)
    V = model.config.vocab_size
    rows = require_prompts("prompt_ids", prompt_ids, V)
    return rows, sampling, require_eos_ids("eos_token_id", eos_token_id, V), _as_stop_strings(stop_strings, tokenizer)


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
    record_steps: bool = False,
) -> GenerationOutput:
    """Generate up to ``max_new_tokens`` tokens after each prompt.

    Args:
        model: an lmcourse :class:`~lmcourse.model.GPT` (put in eval mode for the call,
            then restored).
        prompt_ids: one prompt (list[int] or LongTensor (T,)) or several (a ragged
            list[list[int]] or LongTensor (B, T)); see :func:`lmcourse.checks.require_prompts`.
        max_new_tokens: >= 0 tokens to add at most per prompt.
        sampling: a :class:`~lmcourse.sampling.SamplingConfig` (default: plain sampling at
            temperature 1); ``SamplingConfig(temperature=0)`` is greedy.
        eos_token_id: one id or a list of ids in the vocabulary that end a sequence (the
            id is kept).
        stop_strings: strings that end a sequence when they appear in its decoded new text
            (possibly spanning several tokens); needs ``tokenizer``. Tokens are kept up to
            and including the one that completed the string. Checked incrementally (see
            :func:`_completes_stop_string`).
        tokenizer: anything with ``decode(ids) -> str``; fills ``GenerationOutput.text``.
        use_cache: KV cache (prefill once, then one token per step); False recomputes the
            whole window every step (slow, same tokens).
        generator: ``torch.Generator`` for the random draws, on any device: the draws
            happen on the generator's device, so a seed gives the same tokens whether the
            model is on the CPU or a GPU (up to the model's own floating-point
            differences) and a CPU generator works with a CUDA model.
        return_logprobs: also return the log-probability of each new token (see
            :class:`GenerationOutput`).
        callback: called after every step as ``callback(step, token_ids)`` with the B ids
            just chosen (-1 for rows already finished).
        record_steps: also return every :class:`DecodeStep` (the tensors of each step;
            for the book's tracing of small runs, it keeps B x V floats per step).
    Returns:
        A :class:`GenerationOutput`.
    """
    rows, sampling, eos_ids, stops = _check_common(
        model, prompt_ids, max_new_tokens, sampling, eos_token_id, stop_strings, tokenizer, use_cache, generator
    )
    require_bool("return_logprobs", return_logprobs)
    require_bool("record_steps", record_steps)
    require_callable("callback", callback, "callback(step, token_ids)", optional=True)
    state = _State(len(rows))
    with eval_mode(model):
        steps = _steps(
            model, rows, max_new_tokens, sampling, eos_ids, stops, tokenizer, use_cache, generator, state, record_steps
        )
        for step, chosen in enumerate(steps):
            if callback is not None:
                callback(step, chosen)
    return GenerationOutput(
        sequences=[r + t for r, t in zip(rows, state.new_tokens)],
        new_tokens=state.new_tokens,
        finish_reasons=[r or "length" for r in state.reasons],  # max_new_tokens = 0
        logprobs=state.logprobs if return_logprobs else None,
        text=[tokenizer.decode(t) for t in state.new_tokens] if tokenizer is not None else None,
        steps=state.steps if record_steps else None,
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
    token adds (None without a tokenizer): only the tokens not yet shown are decoded. A
    token that ends inside a multi-byte character (decoded as U+FFFD) gives ``""`` and its
    text comes with a later piece; the pieces join to the decoded new tokens.
    """
    rows, sampling, eos_ids, stops = _check_common(
        model, prompt_ids, max_new_tokens, sampling, eos_token_id, stop_strings, tokenizer, use_cache, generator
    )
    if len(rows) != 1:
        raise ValueError(f"stream takes one prompt, prompt_ids has {len(rows)}; use generate")
    state = _State(1)
    shown = 0  # new tokens whose text has been yielded
    with eval_mode(model):
        steps = _steps(model, rows, max_new_tokens, sampling, eos_ids, stops, tokenizer, use_cache, generator, state)
        for (token,) in steps:
            if tokenizer is None:
                yield token, None
                continue
            piece = tokenizer.decode(state.new_tokens[0][shown:])
            if piece.endswith("\ufffd") and state.reasons[0] is None:
                yield token, ""  # wait for the rest of the character
                continue
            shown = len(state.new_tokens[0])
            yield token, piece
