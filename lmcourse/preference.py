"""Preference optimisation: the DPO objective (Rafailov et al. 2023).

Chapter 15b teaches this file.

Given a prompt x and two completions, a preferred one y_w ("chosen") and a dispreferred
one y_l ("rejected"), direct preference optimisation trains the policy pi_theta directly,
without a separate reward model or reinforcement learning. With a frozen reference model
pi_ref (usually the model before this training) and a strength beta > 0:

    r(x, y)  = beta * (log pi_theta(y | x) - log pi_ref(y | x))      (implicit reward)
    L_DPO    = -log sigmoid( r(x, y_w) - r(x, y_l) )

The loss pushes the chosen completion's log-probability up and the rejected one's down,
each *relative to the reference*; beta sets how far the policy may move from it. At the
start (policy = reference) both rewards are 0 and the loss is log 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lmcourse.model import GPT

__all__ = ["DPOOutput", "dpo_loss", "sequence_logprob", "sequence_logprobs"]


def sequence_logprobs(model: GPT, prompt_ids: torch.Tensor, completion_ids: torch.Tensor) -> torch.Tensor:
    """log P(completion | prompt) for a batch: prompts (B, Tp) and completions (B, Tc) -> (B,).

    Every row has the same prompt length and the same completion length (pad and use
    :func:`sequence_logprob` row by row otherwise). One forward pass on the (B, Tp + Tc - 1)
    inputs; gradients flow when called outside ``torch.no_grad``.
    """
    if prompt_ids.dim() != 2 or completion_ids.dim() != 2 or prompt_ids.size(0) != completion_ids.size(0):
        raise ValueError(
            f"prompt_ids (B, Tp) and completion_ids (B, Tc) must be 2-D with the same B, got "
            f"{tuple(prompt_ids.shape)} and {tuple(completion_ids.shape)}"
        )
    if prompt_ids.size(1) < 1 or completion_ids.size(1) < 1:
        raise ValueError("prompt_ids and completion_ids must both be non-empty")
    ids = torch.cat([prompt_ids, completion_ids], dim=1)  # (B, T)
    if ids.size(1) > model.config.block_size:
        raise ValueError(f"prompt + completion has {ids.size(1)} tokens > block_size={model.config.block_size}")
    logits, _ = model(ids[:, :-1])  # (B, T-1, V): position t predicts ids[:, t + 1]
    start = prompt_ids.size(1) - 1  # the position that predicts the first completion token
    logprobs = F.log_softmax(logits[:, start:].float(), dim=-1)  # (B, Tc, V)
    return logprobs.gather(2, completion_ids[:, :, None]).squeeze(2).sum(1)  # (B,)


def sequence_logprob(model: GPT, prompt_ids: list[int], completion_ids: list[int]) -> torch.Tensor:
    """log P(completion | prompt) of one pair of id lists: a scalar tensor."""
    if not prompt_ids or not completion_ids:
        raise ValueError("prompt_ids and completion_ids must both be non-empty")
    device = next(model.parameters()).device
    prompt = torch.tensor([list(prompt_ids)], device=device)  # (1, Tp)
    completion = torch.tensor([list(completion_ids)], device=device)  # (1, Tc)
    return sequence_logprobs(model, prompt, completion)[0]


@dataclass
class DPOOutput:
    """The DPO loss and its parts (each a tensor of shape (B,) except ``loss``)."""

    loss: torch.Tensor
    chosen_reward: torch.Tensor
    rejected_reward: torch.Tensor

    @property
    def accuracy(self) -> float:
        """Fraction of pairs whose chosen completion has the higher implicit reward."""
        return (self.chosen_reward > self.rejected_reward).float().mean().item()


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
) -> DPOOutput:
    """The DPO loss from sequence log-probabilities, each of shape (B,).

    Args:
        policy_chosen, policy_rejected: log pi_theta(y_w | x), log pi_theta(y_l | x).
        ref_chosen, ref_rejected: the same under the frozen reference model.
        beta: > 0, inverse strength of the pull towards the reference.
    Returns:
        :class:`DPOOutput` with the mean loss and the per-pair implicit rewards.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    shapes = {tuple(t.shape) for t in (policy_chosen, policy_rejected, ref_chosen, ref_rejected)}
    if len(shapes) != 1:
        raise ValueError(f"the four log-probability tensors must have the same shape, got {sorted(shapes)}")
    chosen = beta * (policy_chosen - ref_chosen.detach())  # (B,)
    rejected = beta * (policy_rejected - ref_rejected.detach())  # (B,)
    loss = -F.logsigmoid(chosen - rejected).mean()
    return DPOOutput(loss, chosen.detach(), rejected.detach())
