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

Shapes used in the comments:
    V  vocab_size    k  draft tokens per round
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import torch

from lmcourse.model import GPT
from lmcourse.sampling import SamplingConfig, process_logits

__all__ = ["SpeculativeOutput", "accept_or_resample", "speculative_generate", "speed_report"]


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
        generator: random generator for the uniform draw and the resampling.
    Returns:
        ``(accepted, token)``: token is ``draft_token`` when accepted, else the resample.
    """
    if p.dim() != 1 or p.shape != q.shape:
        raise ValueError(f"p and q must both have shape (V,), got {tuple(p.shape)} and {tuple(q.shape)}")
    if not 0 <= draft_token < p.numel():
        raise ValueError(f"draft_token must be in [0, {p.numel() - 1}], got {draft_token}")
    px, qx = float(p[draft_token]), float(q[draft_token])
    if qx <= 0:
        raise ValueError(f"q[draft_token] must be > 0 (the draft sampled it from q), got {qx}")
    if px >= qx:  # ratio >= 1: always accept, no coin needed
        return True, draft_token
    u = float(torch.rand((), generator=generator, device=p.device))  # U[0, 1)
    if u < px / qx:
        return True, draft_token
    residual = (p - q).clamp(min=0)  # (V,) where the target wants more than the draft gave
    if float(residual.sum()) <= 0:  # cannot happen when p != q; guard against rounding
        residual = p
    token = torch.multinomial(residual / residual.sum(), 1, generator=generator)
    return False, int(token)


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


def _distribution(
    logits: torch.Tensor, sampling: SamplingConfig, previous_ids: list[int]
) -> torch.Tensor:
    """(V,) logits -> (V,) probabilities after the sampling chain; one-hot when greedy."""
    logits = process_logits(logits.float(), sampling, previous_ids)  # (V,)
    if sampling.greedy:
        return torch.nn.functional.one_hot(logits.argmax(), logits.numel()).float()
    return torch.softmax(logits, dim=-1)


def _sample(
    probs: torch.Tensor, sampling: SamplingConfig, generator: Optional[torch.Generator]
) -> int:
    """One draw from (V,) probabilities; the argmax when greedy (no randomness used)."""
    if sampling.greedy:
        return int(probs.argmax())
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.no_grad()
def speculative_generate(
    target: GPT,
    draft: GPT,
    prompt_ids: Union[torch.Tensor, Sequence[int]],
    max_new_tokens: int,
    num_draft_tokens: int = 4,
    sampling: Optional[SamplingConfig] = None,
    generator: Optional[torch.Generator] = None,
    eos_token_id: Optional[int] = None,
) -> SpeculativeOutput:
    """Generate with ``target``'s distribution, using ``draft`` to propose tokens.

    Args:
        target: the large model whose distribution the output follows.
        draft: the small, fast model that proposes tokens; same vocabulary as target.
        prompt_ids: one prompt: a list of ids or a (T,) / (1, T) tensor.
        max_new_tokens: number of tokens to generate (>= 1), fewer if ``eos_token_id`` appears.
        num_draft_tokens: k >= 1, tokens the draft proposes per round.
        sampling: the :class:`~lmcourse.sampling.SamplingConfig` applied to *both* models'
            logits (default: plain sampling at temperature 1; temperature 0 is greedy).
        generator: random generator (same seed, same output).
        eos_token_id: stop after generating this token, or None.
    Returns:
        :class:`SpeculativeOutput` with the tokens and the acceptance statistics.
    """
    sampling = SamplingConfig() if sampling is None else sampling
    if isinstance(prompt_ids, torch.Tensor):
        prompt_ids = prompt_ids.reshape(-1).tolist() if prompt_ids.dim() <= 2 else None
    if not prompt_ids:
        raise ValueError("prompt_ids must be a non-empty list or a (T,) / (1, T) tensor")
    prompt = [int(t) for t in prompt_ids]
    V = target.config.vocab_size
    if draft.config.vocab_size != V:
        raise ValueError(
            f"draft vocab_size ({draft.config.vocab_size}) must equal target vocab_size ({V})"
        )
    if any(not 0 <= t < V for t in prompt):
        raise ValueError(f"prompt_ids must be in [0, {V - 1}]")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if isinstance(num_draft_tokens, bool) or not isinstance(num_draft_tokens, int) or num_draft_tokens < 1:
        raise ValueError(f"num_draft_tokens must be an integer >= 1, got {num_draft_tokens!r}")
    total = len(prompt) + max_new_tokens
    limit = min(target.config.block_size, draft.config.block_size)
    if total > limit:
        raise ValueError(
            f"len(prompt_ids) + max_new_tokens = {total} must be <= block_size={limit} "
            "(the smaller of the two models')"
        )
    device_t = target.transformer.wte.weight.device
    device_d = draft.transformer.wte.weight.device

    # Invariant between rounds: each cache holds a prefix of `tokens`; at least the last
    # token of `tokens` is still to be fed to it.
    tokens = list(prompt)
    target_cache = target.new_kv_cache(1, max_len=total)
    draft_cache = draft.new_kv_cache(1, max_len=total)
    out = SpeculativeOutput(tokens=[], acceptance_rate=1.0, target_forward_passes=0, draft_forward_passes=0)

    while len(tokens) - len(prompt) < max_new_tokens:
        remaining = max_new_tokens - (len(tokens) - len(prompt))
        k = min(num_draft_tokens, remaining - 1)  # the round yields up to k + 1 tokens

        # 1. Draft: k tokens, autoregressively, each sampled from its q.
        drafts: list[int] = []
        qs: list[torch.Tensor] = []  # k tensors (V,)
        for _ in range(k):
            new = (tokens + drafts)[draft_cache.length :]  # 1 token, or 2 after a bonus
            logits, _ = draft(torch.tensor([new], device=device_d), kv_cache=draft_cache)  # (1, T, V)
            out.draft_forward_passes += 1
            q = _distribution(logits[0, -1].to(device_t), sampling, tokens + drafts)  # (V,)
            drafts.append(_sample(q, sampling, generator))
            qs.append(q)

        # 2. Target: the pending tokens and the k drafts in one forward pass.
        new = (tokens + drafts)[target_cache.length :]  # ends with the k drafts
        logits, _ = target(torch.tensor([new], device=device_t), kv_cache=target_cache)  # (1, T, V)
        out.target_forward_passes += 1
        logits = logits[0, -(k + 1) :]  # (k + 1, V): position i predicts the token after drafts[:i]

        # 3. Accept drafts left to right; stop at the first rejection.
        accepted = 0
        for i in range(k):
            p = _distribution(logits[i], sampling, tokens + drafts[:i])  # (V,)
            ok, token = accept_or_resample(p, qs[i], drafts[i], generator)
            if not ok:
                new_tokens = drafts[:i] + [token]
                break
            accepted += 1
        else:  # 4. all k accepted: a bonus token from the target's last position
            p = _distribution(logits[k], sampling, tokens + drafts)  # (V,)
            new_tokens = drafts + [_sample(p, sampling, generator)]

        out.rounds += 1
        out.num_drafted += k
        out.num_accepted += accepted
        out.accepted_per_round.append(accepted)
        tokens += new_tokens

        # Roll back the caches: keep only positions of tokens that were kept, and leave
        # the last token pending (it has not been fed to either model yet).
        target_cache.crop(min(target_cache.length, len(tokens) - 1))
        draft_cache.crop(min(draft_cache.length, len(tokens) - 1))

        if eos_token_id is not None and eos_token_id in new_tokens:
            cut = len(tokens) - len(new_tokens) + new_tokens.index(eos_token_id) + 1
            tokens = tokens[:cut]
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
    if not 0.0 <= draft_cost <= 1.0:
        raise ValueError(f"draft_cost must be in [0, 1], got {draft_cost!r}")
    cost = out.target_forward_passes + draft_cost * out.draft_forward_passes
    return {
        "acceptance_rate": out.acceptance_rate,
        "tokens_per_target_pass": out.tokens_per_target_pass,
        "estimated_speedup": len(out.tokens) / cost if cost else 0.0,
    }
