"""Beam search: keep the ``num_beams`` most likely partial sequences at every step.

Chapter 8 (decoding strategies) teaches this file. Beam search is old (it was used in
speech recognition in the 1970s); its use for neural sequence models follows Graves (2012)
and Sutskever et al. (2014), and the length normalisation by a power of the length is the
one of Wu et al. (2016, Google's NMT system).

A **hypothesis** is a list of generated tokens with its *score*, the sum of the
log-probabilities of its tokens. The search keeps the N = ``num_beams`` best *running*
hypotheses (the beam) and a set of at most N *finished* ones, ranked by the
length-normalised score

    score / length ** length_penalty        (length = generated tokens, EOS included)

At every step:

1. **expand**: every running hypothesis proposes every token; a candidate's score is the
   hypothesis' score plus log p(token | prompt, hypothesis);
2. **rank** the candidates and keep the best 2N (enough that N can keep running even
   when the best ones end);
3. **select**, walking down that ranking: a candidate that ends (its token is EOS, or it
   reaches ``max_new_tokens``) is finished and joins the finished set, but only if it is
   among the N best candidates of the step (a worse one would displace nothing the beam
   would have kept); any other candidate joins the new beam, until the beam holds N;
4. **stop** when the finished set holds N hypotheses and either ``early_stopping=True``,
   or no running hypothesis can still beat the worst finished one (its best attainable
   normalised score is its score divided by its current length ** length_penalty; with
   ``early_stopping="never"`` and ``length_penalty > 0``, by ``max_new_tokens **
   length_penalty``, since a longer hypothesis could still score higher); or at the
   length limit.

These are the rules of Hugging Face ``transformers``' ``generate(num_beams=...)``, whose
results the tests use as the oracle (same sequences, same scores; scores are summed in
float32 as there). One deliberate difference in form, not in result: the search starts
from the prompt as ONE hypothesis, where ``transformers`` starts N copies and gives N - 1
of them a score of -1e9 so that they lose; the two agree whenever V >= 2N.

Shapes used in the comments:
    n  running hypotheses (1 at the first step, then N)    V  vocab_size    K  2N candidates
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence, Union

import torch

from lmcourse.checks import (
    require_choice,
    require_eos_ids,
    require_instance,
    require_int,
    require_prompts,
    require_real,
)
from lmcourse.model import GPT, KVCache, eval_mode

__all__ = ["BeamSearchOutput", "Hypothesis", "FinishedHypotheses", "beam_search"]


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


@dataclass
class Hypothesis:
    """Generated tokens (prompt excluded) and the sum of their log-probabilities."""

    tokens: list[int]
    score: float


@dataclass
class FinishedHypotheses:
    """The N best finished hypotheses, by length-normalised score, best first."""

    capacity: int
    items: list[tuple[float, Hypothesis]] = field(default_factory=list)  # (normalised score, hypothesis)

    @property
    def full(self) -> bool:
        return len(self.items) >= self.capacity

    @property
    def worst(self) -> float:
        return self.items[-1][0]

    def add(self, hypothesis: Hypothesis, normalised: float) -> None:
        """Insert; when more than ``capacity`` are held, drop the worst."""
        if self.full and normalised <= self.worst:
            return
        self.items.append((normalised, hypothesis))
        self.items.sort(key=lambda item: -item[0])  # stable: earlier arrivals first among equals
        del self.items[self.capacity :]


# --------------------------------------------------------------------------------------
# The named steps
# --------------------------------------------------------------------------------------


def _expand_and_rank(log_probs: torch.Tensor, scores: torch.Tensor, k: int) -> tuple[list[float], list[int], list[int]]:
    """Steps 1-2: scores (n,) + log_probs (n, V) -> the k best (score, parent, token), best first."""
    V = log_probs.size(-1)
    total = (scores[:, None] + log_probs).reshape(-1)  # (n * V,) every continuation
    best, index = torch.topk(total, k=min(k, total.numel()))  # (K,) best first
    return best.tolist(), (index // V).tolist(), (index % V).tolist()


def _select(
    running: list[Hypothesis],
    candidates: tuple[list[float], list[int], list[int]],
    finished: FinishedHypotheses,
    num_beams: int,
    eos_ids: set[int],
    at_length_limit: bool,
    length_penalty: float,
) -> tuple[list[Hypothesis], list[int]]:
    """Step 3: walk down the ranked candidates; return the new beam and each one's parent."""
    beam: list[Hypothesis] = []
    parents: list[int] = []
    for rank, (score, parent, token) in enumerate(zip(*candidates)):
        hypothesis = Hypothesis(running[parent].tokens + [token], score)
        if token in eos_ids or at_length_limit:
            if rank < num_beams:  # only the N best candidates of the step may finish
                normalised = _normalise(score, len(hypothesis.tokens), length_penalty)
                finished.add(hypothesis, normalised)
        elif len(beam) < num_beams:
            beam.append(hypothesis)
            parents.append(parent)
    return beam, parents


def _normalise(score: float, length: int, length_penalty: float) -> float:
    """Length-normalised score, computed in float32 like the log-probabilities."""
    return float(torch.tensor(score, dtype=torch.float32) / (length**length_penalty))


def _should_stop(
    beam: list[Hypothesis],
    finished: FinishedHypotheses,
    early_stopping: Union[bool, str],
    length_penalty: float,
    max_new_tokens: int,
) -> bool:
    """Step 4: the stopping rule (the length limit is the caller's loop bound)."""
    if not beam:
        return True
    if not finished.full:
        return False
    if early_stopping is True:
        return True
    length = len(beam[0].tokens)  # every running hypothesis has the current length
    if early_stopping == "never" and length_penalty > 0.0:
        length = max_new_tokens  # the best a running hypothesis could still reach
    best_attainable = _normalise(max(h.score for h in beam), length, length_penalty)
    return best_attainable <= finished.worst


# --------------------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------------------


def _check_arguments(
    model: GPT,
    prompt_ids: Union[torch.Tensor, Sequence[int]],
    num_beams: int,
    max_new_tokens: int,
    length_penalty: float,
    eos_token_id: Union[int, Sequence[int], None],
    early_stopping: Union[bool, str],
    num_return_sequences: int,
) -> tuple[list[int], set[int], float]:
    """The shared decoder contract (see :mod:`lmcourse.checks`) plus beam options."""
    require_instance("model", model, GPT, "an lmcourse GPT")
    V, block_size = model.config.vocab_size, model.config.block_size
    (prompt,) = require_prompts("prompt_ids", prompt_ids, V, one=True)
    num_beams = require_int("num_beams", num_beams, minimum=1)
    require_int("max_new_tokens", max_new_tokens, minimum=1)
    require_int("num_return_sequences", num_return_sequences, minimum=1, maximum=num_beams)
    length_penalty = require_real("length_penalty", length_penalty)
    if not isinstance(early_stopping, (bool, str)):
        raise TypeError(f"early_stopping must be True, False or 'never', got {type(early_stopping).__name__}")
    require_choice("early_stopping", early_stopping, (True, False, "never"))
    eos_ids = require_eos_ids("eos_token_id", eos_token_id, V)
    if len(prompt) + max_new_tokens > block_size:
        raise ValueError(
            f"len(prompt_ids) + max_new_tokens = {len(prompt) + max_new_tokens} must be <= block_size={block_size}"
        )
    return prompt, eos_ids, float(length_penalty)


@torch.no_grad()
def beam_search(
    model: GPT,
    prompt_ids: Union[torch.Tensor, Sequence[int]],
    num_beams: int,
    max_new_tokens: int,
    length_penalty: float = 1.0,
    eos_token_id: Union[int, Sequence[int], None] = None,
    early_stopping: Union[bool, str] = False,
    num_return_sequences: int = 1,
) -> BeamSearchOutput:
    """Beam search decoding of one prompt (same results as ``transformers``' ``generate``).

    Args:
        model: the :class:`~lmcourse.model.GPT` to decode with (run in eval mode, then
            its mode is restored).
        prompt_ids: ONE prompt, in any form :func:`lmcourse.checks.require_prompts` accepts
            (a list of ids, a (T,) or (1, T) tensor); a (B, T) tensor with B > 1 is an error.
        num_beams: number of beams N >= 1 (1 is greedy decoding).
        max_new_tokens: at most this many tokens are generated (>= 1); the prompt plus
            them must fit in ``model.config.block_size``.
        length_penalty: exponent of the length normalisation; > 0 favours longer
            sequences, < 0 shorter ones, 0 ranks by raw sum of log-probabilities.
        eos_token_id: token id (or list of ids) that ends a hypothesis, or None.
        early_stopping: True stops as soon as N hypotheses are finished; False when no
            running hypothesis can beat the worst finished one at its current length;
            ``"never"`` the same bound at the longest possible length (length_penalty > 0).
        num_return_sequences: how many hypotheses to return, in [1, num_beams].
    Returns:
        :class:`BeamSearchOutput` with the best hypotheses first.
    """
    prompt, eos_ids, length_penalty = _check_arguments(
        model, prompt_ids, num_beams, max_new_tokens, length_penalty, eos_token_id, early_stopping, num_return_sequences
    )
    device = model.device
    running = [Hypothesis(tokens=[], score=0.0)]  # the beam starts as the prompt alone
    scores = torch.zeros(1, device=device)  # (n,) float32, the running scores
    finished = FinishedHypotheses(capacity=num_beams)
    with eval_mode(model):
        cache: KVCache = model.new_kv_cache(1, max_len=len(prompt) + max_new_tokens)
        logits = model.step(torch.tensor([prompt], device=device), cache)[:, -1]  # (1, V) prefill
        for step in range(max_new_tokens):
            log_probs = torch.log_softmax(logits.float(), dim=-1)  # (n, V)
            candidates = _expand_and_rank(log_probs, scores, 2 * num_beams)
            running, parents = _select(
                running, candidates, finished, num_beams, eos_ids, step + 1 == max_new_tokens, length_penalty
            )
            if _should_stop(running, finished, early_stopping, length_penalty, max_new_tokens):
                break
            # the cache rows follow the surviving hypotheses; feed their newest tokens
            cache.reorder(torch.tensor(parents, device=device))
            scores = torch.tensor([h.score for h in running], device=device)  # (N,)
            last = torch.tensor([[h.tokens[-1]] for h in running], device=device)  # (N, 1)
            logits = model.step(last, cache)[:, -1]  # (N, V)
    best = finished.items[:num_return_sequences]
    return BeamSearchOutput(
        sequences=[prompt + h.tokens for _, h in best],
        scores=[s for s, _ in best],
    )
