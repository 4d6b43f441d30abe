"""Beam search: keep the ``num_beams`` most likely partial sequences at every step.

Chapter 8 (decoding strategies) teaches this file.

The algorithm is the one of Hugging Face ``transformers`` (v5 ``_beam_search``), step for
step, so that the tests can use ``generate(num_beams=...)`` as the oracle:

1. Every running beam proposes every token: score = beam log-probability + log p(token).
2. Keep the best ``2 * num_beams`` candidates (enough that ``num_beams`` survive even if
   the best ones all end with EOS).
3. The best ``num_beams`` candidates that did *not* finish become the new running beams;
   the KV cache rows are reordered to follow them (``KVCache.reorder``).
4. Candidates among the top ``num_beams`` that finished (EOS, or the length limit) enter
   the list of finished hypotheses with the length-normalised score

       score = sum of log-probabilities / (generated length ** length_penalty)

   where the generated length counts the new tokens (EOS included), *not* the prompt.
5. Stop when no running beam can beat the worst finished hypothesis (HF's heuristic), when
   ``early_stopping=True`` and ``num_beams`` hypotheses are finished, or at the length limit.

Shapes used in the comments:
    N  num_beams    K  2 * num_beams candidates    V  vocab_size    M  max_length
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch

from lmcourse.model import GPT

__all__ = ["BeamSearchOutput", "beam_search"]

NEG = -1.0e9  # "impossible" score, as in transformers (finite, so arithmetic stays defined)


@dataclass
class BeamSearchOutput:
    """Result of :func:`beam_search`, best first.

    Attributes:
        sequences: ``num_return_sequences`` token lists, each the prompt followed by the
            generated tokens (ending with EOS when the hypothesis finished with it).
        scores: their length-normalised scores (sum of log-probs / length ** length_penalty).
    """

    sequences: list[list[int]]
    scores: list[float]


def _prompt_list(prompt_ids: Union[torch.Tensor, Sequence[int]]) -> list[int]:
    """Accept a list of ids, a (T,) tensor or a (1, T) tensor; return a list of ids."""
    if isinstance(prompt_ids, torch.Tensor):
        if prompt_ids.dim() == 2 and prompt_ids.size(0) == 1:
            prompt_ids = prompt_ids[0]
        if prompt_ids.dim() != 1:
            raise ValueError(
                f"prompt_ids must be a list, a (T,) or a (1, T) tensor, got shape {tuple(prompt_ids.shape)}"
            )
        prompt_ids = prompt_ids.tolist()
    ids = [int(t) for t in prompt_ids]
    if not ids:
        raise ValueError("prompt_ids must hold at least one token")
    return ids


@torch.no_grad()
def beam_search(
    model: GPT,
    prompt_ids: Union[torch.Tensor, Sequence[int]],
    num_beams: int,
    max_new_tokens: int,
    length_penalty: float = 1.0,
    eos_token_id: Optional[int] = None,
    early_stopping: Union[bool, str] = False,
    num_return_sequences: int = 1,
) -> BeamSearchOutput:
    """Beam search decoding of one prompt (same results as ``transformers``' ``generate``).

    Args:
        model: the :class:`~lmcourse.model.GPT` to decode with (put in eval mode).
        prompt_ids: the prompt, a list of ids or a (T,) / (1, T) tensor.
        num_beams: number of beams N >= 1 (1 is greedy decoding).
        max_new_tokens: at most this many tokens are generated (>= 1); the prompt plus
            them must fit in ``model.config.block_size``.
        length_penalty: exponent of the length normalisation; > 0 favours longer
            sequences, < 0 shorter ones, 0 ranks by raw sum of log-probabilities.
        eos_token_id: token that ends a hypothesis, or None.
        early_stopping: True stops as soon as N hypotheses are finished; False uses HF's
            heuristic (stop when no running beam can improve); ``"never"`` the canonical
            bound (for length_penalty > 0, assumes running beams could reach the limit).
        num_return_sequences: how many hypotheses to return, in [1, num_beams].
    Returns:
        :class:`BeamSearchOutput` with the best hypotheses first.
    """
    prompt = _prompt_list(prompt_ids)
    V, block_size = model.config.vocab_size, model.config.block_size
    if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(f"num_beams must be an integer >= 1, got {num_beams!r}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if not 1 <= num_return_sequences <= num_beams:
        raise ValueError(
            f"num_return_sequences must be in [1, num_beams={num_beams}], got {num_return_sequences!r}"
        )
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")
    if eos_token_id is not None and not 0 <= eos_token_id < V:
        raise ValueError(f"eos_token_id must be in [0, {V - 1}] or None, got {eos_token_id!r}")
    if any(not 0 <= t < V for t in prompt):
        raise ValueError(f"prompt_ids must be in [0, {V - 1}]")
    P = len(prompt)
    max_length = P + max_new_tokens  # M
    if max_length > block_size:
        raise ValueError(
            f"len(prompt_ids) + max_new_tokens = {max_length} must be <= block_size={block_size}"
        )

    device = model.transformer.wte.weight.device
    N, K = num_beams, 2 * num_beams
    top_n_mask = torch.arange(K, device=device) < N  # (K,) only the top N may finish

    # Running beams. Only beam 0 is "alive" at first (the others start at NEG) so that the
    # first step does not pick the same token N times.
    running_seqs = torch.zeros(N, max_length, dtype=torch.long, device=device)  # (N, M)
    running_seqs[:, :P] = torch.tensor(prompt, device=device)
    running_scores = torch.zeros(N, device=device)  # (N,) sum of log-probs
    running_scores[1:] = NEG

    # Finished hypotheses, kept sorted best first (empty slots score NEG).
    done_seqs = running_seqs.clone()  # (N, M)
    done_scores = torch.full((N,), NEG, device=device)  # (N,) length-normalised
    done_lens = torch.full((N,), P, dtype=torch.long, device=device)  # (N,) total length
    is_done = torch.zeros(N, dtype=torch.bool, device=device)  # (N,) slot holds a hypothesis
    can_improve = True  # HF's "early stop heuristic unsatisfied"

    # Prefill: the N beams share the prompt; one cache row per beam.
    cache = model.new_kv_cache(N, max_len=max_length)
    logits, _ = model(running_seqs[:, :P], kv_cache=cache)  # (N, P, V)
    cur_len = P
    while True:
        # 1. Accumulated scores of every (beam, token) continuation.
        log_probs = torch.log_softmax(logits[:, -1, :].float(), dim=-1)  # (N, V)
        total = (log_probs + running_scores[:, None]).reshape(-1)  # (N*V,)

        # 2. The K best candidates, their parent beam and token.
        cand_scores, cand_idx = torch.topk(total, k=K)  # (K,), best first
        parent = cand_idx // V  # (K,)
        token = cand_idx % V  # (K,)
        cand_seqs = running_seqs[parent].clone()  # (K, M)
        cand_seqs[:, cur_len] = token
        finished = torch.zeros(K, dtype=torch.bool, device=device)  # (K,)
        if eos_token_id is not None:
            finished |= token == eos_token_id
        if cur_len + 1 >= max_length:
            finished[:] = True  # the length limit ends every candidate

        # 3. The N best unfinished candidates keep running.
        run_scores = cand_scores + finished.float() * NEG  # (K,)
        keep = torch.topk(run_scores, k=N)[1]  # (N,)
        running_seqs, running_scores = cand_seqs[keep], run_scores[keep]
        beam_parent = parent[keep]  # (N,) where each new running beam came from

        # 4. Finished candidates among the top N compete for the finished slots.
        just_done = finished & top_n_mask  # (K,)
        norm_scores = cand_scores / ((cur_len + 1 - P) ** length_penalty)  # (K,)
        if bool(is_done.all()) and early_stopping is True:
            norm_scores = norm_scores + NEG  # list already full: nothing may enter
        if not can_improve:
            norm_scores = norm_scores + NEG
        norm_scores = norm_scores + (~just_done) * NEG  # running candidates may not enter
        merged_scores = torch.cat((done_scores, norm_scores))  # (N + K,)
        best = torch.topk(merged_scores, k=N)[1]  # (N,)
        done_seqs = torch.cat((done_seqs, cand_seqs))[best]
        done_scores = merged_scores[best]
        done_lens = torch.cat((done_lens, torch.full((K,), cur_len + 1, device=device)))[best]
        is_done = torch.cat((is_done, just_done))[best]

        # 5. Stop? (HF's heuristic: can the best running beam still beat the worst finished?)
        cur_len += 1
        if early_stopping == "never" and length_penalty > 0.0:
            best_length = max_length - P
        else:
            best_length = cur_len - P
        best_running = running_scores[0] / (best_length**length_penalty)
        worst_done = torch.where(is_done, done_scores.min(), torch.tensor(NEG, device=device))
        can_improve = can_improve and bool((best_running > worst_done).any())
        open_beam = not (bool(is_done.all()) and early_stopping is True)
        if not (can_improve and open_beam and not bool(finished.all())):
            break

        # Next step: reorder the cache rows to follow the surviving beams, feed the new tokens.
        cache.reorder(beam_parent)
        logits, _ = model(running_seqs[:, cur_len - 1 : cur_len], kv_cache=cache)  # (N, 1, V)

    sequences = [
        done_seqs[i, : int(done_lens[i])].tolist() for i in range(num_return_sequences)
    ]
    scores = [float(s) for s in done_scores[:num_return_sequences]]
    return BeamSearchOutput(sequences=sequences, scores=scores)
