"""Speculative decoding: a small draft model guesses, the big target model checks.

Chapter 11 (fast inference) teaches this file.

Leviathan et al. 2023 ("Fast Inference from Transformers via Speculative Decoding") and
Chen et al. 2023 ("Accelerating Large Language Model Decoding with Speculative Sampling").
One round:

1. The draft model proposes k tokens x_1..x_k one by one, sampling each from its
   (processed) distribution q_i.
2. The target model scores the last accepted token and the k drafts in ONE forward pass,
   giving its distributions p_1..p_{k+1} at every position.
3. For i = 1..k: accept x_i with probability min(1, p_i(x_i) / q_i(x_i)). At the first
   rejection, sample a replacement from normalize(max(0, p_i - q_i)) and end the round.
4. If all k were accepted, sample a bonus token from p_{k+1}.

Every round yields between 1 and k + 1 tokens for one target forward pass, and the tokens
are distributed *exactly* as if sampled from the target alone (see
:func:`accept_or_resample`). Rejected positions are removed from both KV caches with
``KVCache.crop``. With temperature 0 (greedy) p and q are one-hot, and the rule becomes
"accept iff the draft token is the target's argmax", so the output equals greedy decoding
of the target token for token.

The code below follows these steps by name: :func:`_draft` (1; each draft token is the
decode step of :mod:`lmcourse.sampling`), :func:`_verify` (2), :func:`_accept` (3-4, with
:func:`accept_or_resample`). :func:`expected_tokens_per_round` is the paper's formula for
what one round yields on average.

Shapes used in the comments:
    V  vocab_size    k  draft tokens per round
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import torch

from lmcourse.checks import (
    require_eos_ids,
    require_generator,
    require_instance,
    require_int,
    require_prompts,
    require_real,
)
from lmcourse.devices import draw_multinomial, draw_uniform
from lmcourse.model import GPT, KVCache, eval_mode
from lmcourse.sampling import SamplingConfig, decode_step, pick_token, process_logits

__all__ = [
    "SpeculativeOutput",
    "accept_or_resample",
    "expected_tokens_per_round",
    "speculative_generate",
    "speed_report",
]


@dataclass
class SpeculativeOutput:
    """Result of :func:`speculative_generate`.

    Attributes:
        tokens: the generated token ids (the prompt is not included).
        acceptance_rate: accepted draft tokens / proposed draft tokens (1.0 if none proposed).
        target_forward_passes: forward calls of the target model (prefill included).
        draft_forward_passes: forward calls of the draft model (prefill included).
        num_drafted: draft tokens proposed in all.
        num_accepted: draft tokens accepted in all.
        rounds: number of draft-then-verify rounds.
        accepted_per_round: how many drafts each round accepted.
    """

    tokens: list[int]
    acceptance_rate: float
    target_forward_passes: int
    draft_forward_passes: int
    num_drafted: int = 0
    num_accepted: int = 0
    rounds: int = 0
    accepted_per_round: list[int] = field(default_factory=list)

    @property
    def tokens_per_target_pass(self) -> float:
        """Generated tokens per target forward (1.0 for ordinary decoding)."""
        return len(self.tokens) / max(1, self.target_forward_passes)


def expected_tokens_per_round(alpha: float, k: int) -> float:
    """Expected tokens one round yields (one target pass), if each of the ``k`` draft tokens
    is accepted independently with probability ``alpha`` (Leviathan et al. 2023, eq. 1).

    The round yields the accepted prefix plus one token (the resample at the first
    rejection, or the bonus when all k pass): E = sum_{i=0..k} alpha^i
    = (1 - alpha^(k+1)) / (1 - alpha), and k + 1 when alpha = 1.
    """
    alpha = require_real("alpha", alpha, 0.0, 1.0)
    k = require_int("k", k, minimum=0)
    if alpha == 1.0:
        return float(k + 1)
    return (1 - alpha ** (k + 1)) / (1 - alpha)


# --------------------------------------------------------------------------------------
# The acceptance rule (a pure function on two distributions)
# --------------------------------------------------------------------------------------


def accept_or_resample(
    p: torch.Tensor,
    q: torch.Tensor,
    draft_token: int,
    generator: Optional[torch.Generator] = None,
) -> tuple[bool, int]:
    """Speculative sampling's accept/reject step for one drafted token.

    The draft sampled ``draft_token`` = x from q. Accept it with probability
    min(1, p(x) / q(x)); otherwise return a token drawn from the residual distribution
    normalize(max(0, p - q)). The token returned is then distributed exactly as p:

        P(token = y) = q(y) min(1, p(y)/q(y)) + P(reject) * max(0, p(y) - q(y)) / Z
                     = min(q(y), p(y)) + max(0, p(y) - q(y)) = p(y),

    because P(reject) = sum_x max(0, q(x) - p(x)) = Z = sum_y max(0, p(y) - q(y)).

    Args:
        p: (V,) target probabilities (sum to 1).
        q: (V,) draft probabilities (sum to 1) with q[draft_token] > 0.
        draft_token: the token the draft proposed.
        generator: random generator for the uniform draw and the resampling, on any
            device (the draws happen on its device; same seed, same result).
    Returns:
        ``(accepted, token)``: token is ``draft_token`` when accepted, else the resample.
    """
    require_generator("generator", generator)
    if p.dim() != 1 or p.shape != q.shape:
        raise ValueError(f"p and q must both have shape (V,), got {tuple(p.shape)} and {tuple(q.shape)}")
    if not 0 <= draft_token < p.numel():
        raise ValueError(f"draft_token must be in [0, {p.numel() - 1}], got {draft_token}")
    px, qx = float(p[draft_token]), float(q[draft_token])
    if qx <= 0:
        raise ValueError(f"q[draft_token] must be > 0 (the draft sampled it from q), got {qx}")
    if px >= qx:  # ratio >= 1: always accept, no coin needed
        return True, draft_token
    u = float(draw_uniform((), generator))  # U[0, 1), on the generator's device
    if u < px / qx:
        return True, draft_token
    residual = (p - q).clamp(min=0)  # (V,) where the target wants more than the draft gave
    if float(residual.sum()) <= 0:  # cannot happen when p != q; guard against rounding
        residual = p
    token = draw_multinomial((residual / residual.sum()).unsqueeze(0), generator)  # (1,)
    return False, int(token)


# --------------------------------------------------------------------------------------
# Generation: the named steps of one round
# --------------------------------------------------------------------------------------


def _acceptance_probs(processed: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    """(n, V) processed logits -> (n, V) the distributions the acceptance rule compares:
    softmax, or one-hot at the argmax when greedy (the token is then certain)."""
    if sampling.greedy:
        return torch.nn.functional.one_hot(processed.argmax(-1), processed.size(-1)).float()
    return torch.softmax(processed, dim=-1)


def _feed(model: GPT, cache: KVCache, tokens: list[int], last: int = 1) -> torch.Tensor:
    """Feed the tokens the cache has not seen yet; return the logits (last, V) of the last positions."""
    new = tokens[cache.length :]
    return model.step(torch.tensor([new], device=model.device), cache, last=last)[0]  # (last, V)


def _draft(
    draft: GPT, cache: KVCache, tokens: list[int], k: int, sampling: SamplingConfig,
    generator: Optional[torch.Generator], device: torch.device,
) -> tuple[list[int], list[torch.Tensor]]:
    """Step 1: the draft proposes k tokens one by one (the decode step of lmcourse.sampling);
    returns them and the k distributions q_i (V,) they were drawn from."""
    drafts: list[int] = []
    qs: list[torch.Tensor] = []
    for _ in range(k):
        logits = _feed(draft, cache, tokens + drafts).to(device)  # (1, V)
        choice = decode_step(logits, sampling, generator, [tokens + drafts])
        drafts.append(int(choice.token))
        qs.append(_acceptance_probs(choice.processed_logits, sampling)[0])  # (V,)
    return drafts, qs


def _verify(
    target: GPT, cache: KVCache, tokens: list[int], drafts: list[int], sampling: SamplingConfig
) -> torch.Tensor:
    """Step 2: ONE target forward over the pending tokens and the k drafts; returns the
    processed logits (k + 1, V): row i predicts the token after ``drafts[:i]``."""
    k = len(drafts)
    logits = _feed(target, cache, tokens + drafts, last=k + 1).float()  # (k + 1, V)
    previous = [tokens + drafts[:i] for i in range(k + 1)]  # each row's history (repetition penalty)
    return process_logits(logits, sampling, previous)  # (k + 1, V)


def _accept(
    processed: torch.Tensor, drafts: list[int], qs: list[torch.Tensor],
    sampling: SamplingConfig, generator: Optional[torch.Generator],
) -> tuple[list[int], int]:
    """Steps 3-4: accept drafts left to right; at the first rejection the resample ends the
    round, otherwise a bonus token from the last row. Returns (new tokens, accepted)."""
    ps = _acceptance_probs(processed, sampling)  # (k + 1, V)
    for i, (x, q) in enumerate(zip(drafts, qs)):
        ok, token = accept_or_resample(ps[i], q, x, generator)
        if not ok:
            return drafts[:i] + [token], i
    bonus = int(pick_token(processed[-1:], sampling, generator))  # the decode step's pick
    return drafts + [bonus], len(drafts)


def _check_arguments(
    target: GPT, draft: GPT, prompt_ids: object, max_new_tokens: int, num_draft_tokens: int,
    sampling: Optional[SamplingConfig], generator: Optional[torch.Generator], eos_token_id: object,
) -> tuple[list[int], SamplingConfig, set[int]]:
    """The shared decoder contract (see :mod:`lmcourse.checks`) plus the pair's."""
    require_instance("target", target, GPT, "an lmcourse GPT")
    require_instance("draft", draft, GPT, "an lmcourse GPT")
    V = target.config.vocab_size
    if draft.config.vocab_size != V:
        raise ValueError(f"draft vocab_size ({draft.config.vocab_size}) must equal target vocab_size ({V})")
    (prompt,) = require_prompts("prompt_ids", prompt_ids, V, one=True)
    require_int("max_new_tokens", max_new_tokens, minimum=1)
    require_int("num_draft_tokens", num_draft_tokens, minimum=1)
    sampling = require_instance("sampling", sampling, SamplingConfig, optional=True) or SamplingConfig()
    require_generator("generator", generator)
    eos_ids = require_eos_ids("eos_token_id", eos_token_id, V)
    total = len(prompt) + max_new_tokens
    limit = min(target.config.block_size, draft.config.block_size)
    if total > limit:
        raise ValueError(
            f"len(prompt_ids) + max_new_tokens = {total} must be <= block_size={limit} "
            "(the smaller of the two models')"
        )
    return prompt, sampling, eos_ids


@torch.no_grad()
def speculative_generate(
    target: GPT,
    draft: GPT,
    prompt_ids: Union[torch.Tensor, Sequence[int]],
    max_new_tokens: int,
    num_draft_tokens: int = 4,
    sampling: Optional[SamplingConfig] = None,
    generator: Optional[torch.Generator] = None,
    eos_token_id: Union[int, Sequence[int], None] = None,
) -> SpeculativeOutput:
    """Generate with ``target``'s distribution, using ``draft`` to propose tokens.

    Args:
        target: the large model whose distribution the output follows (run in eval mode,
            then its mode is restored; so is the draft's).
        draft: the small, fast model that proposes tokens; same vocabulary as target; may
            sit on another device (its logits are moved to the target's).
        prompt_ids: ONE prompt, in any form :func:`lmcourse.checks.require_prompts` accepts
            (a list of ids, a (T,) or (1, T) tensor); a (B, T) tensor with B > 1 is an error.
        max_new_tokens: number of tokens to generate (>= 1), fewer if an EOS id appears.
        num_draft_tokens: k >= 1, tokens the draft proposes per round.
        sampling: the :class:`~lmcourse.sampling.SamplingConfig` applied to *both* models'
            logits (default: plain sampling at temperature 1; temperature 0 is greedy).
        generator: random generator on any device (the draws happen on its device; same
            seed, same output).
        eos_token_id: stop after generating this token (or any of a list), or None.
    Returns:
        :class:`SpeculativeOutput` with the tokens and the acceptance statistics.
    """
    prompt, sampling, eos_ids = _check_arguments(
        target, draft, prompt_ids, max_new_tokens, num_draft_tokens, sampling, generator, eos_token_id
    )
    device = target.device
    total = len(prompt) + max_new_tokens
    # Invariant between rounds: each cache holds a prefix of `tokens`; at least the last
    # token of `tokens` is still to be fed to it.
    tokens = list(prompt)
    out = SpeculativeOutput(tokens=[], acceptance_rate=1.0, target_forward_passes=0, draft_forward_passes=0)
    with eval_mode(target), eval_mode(draft):
        target_cache = target.new_kv_cache(1, max_len=total)
        draft_cache = draft.new_kv_cache(1, max_len=total)
        while len(tokens) < total:
            k = min(num_draft_tokens, total - len(tokens) - 1)  # the round yields up to k + 1 tokens
            drafts, qs = _draft(draft, draft_cache, tokens, k, sampling, generator, device)  # 1.
            processed = _verify(target, target_cache, tokens, drafts, sampling)  # 2. (k + 1, V)
            new_tokens, accepted = _accept(processed, drafts, qs, sampling, generator)  # 3.-4.
            out.draft_forward_passes += k
            out.target_forward_passes += 1
            out.rounds += 1
            out.num_drafted += k
            out.num_accepted += accepted
            out.accepted_per_round.append(accepted)
            tokens += new_tokens
            # Roll back: keep only positions of kept tokens; the last token stays pending.
            target_cache.crop(min(target_cache.length, len(tokens) - 1))
            draft_cache.crop(min(draft_cache.length, len(tokens) - 1))
            hit = next((j for j, t in enumerate(new_tokens) if t in eos_ids), None)
            if hit is not None:
                del tokens[len(tokens) - len(new_tokens) + hit + 1 :]
                break
    out.tokens = tokens[len(prompt) :]
    out.acceptance_rate = out.num_accepted / out.num_drafted if out.num_drafted else 1.0
    return out


def speed_report(out: SpeculativeOutput, draft_cost: float) -> dict[str, float]:
    """Back-of-the-envelope speed-up of one :func:`speculative_generate` run.

    Args:
        out: the run's statistics.
        draft_cost: cost of a draft forward relative to a target forward (c in Leviathan
            et al.), in [0, 1]; e.g. the ratio of the parameter counts.
    Returns:
        ``acceptance_rate``, ``tokens_per_target_pass`` and ``estimated_speedup``: tokens
        generated / (target passes + c * draft passes), i.e. versus one target forward per
        token (the one-token-decode cost of both models is taken as constant).
    """
    draft_cost = require_real("draft_cost", draft_cost, 0.0, 1.0)
    require_instance("out", out, SpeculativeOutput)
    cost = out.target_forward_passes + draft_cost * out.draft_forward_passes
    return {
        "acceptance_rate": out.acceptance_rate,
        "tokens_per_target_pass": out.tokens_per_target_pass,
        "estimated_speedup": len(out.tokens) / cost if cost else 0.0,
    }
