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

__all__ = ["DPOOutput", "dpo_loss", "sequence_logprob"]


def sequence_logprob(model: GPT, prompt_ids: list[int], completion_ids: list[int]) -> torch.Tensor:
    """log P(completion | prompt) under ``model``: the sum of the completion tokens' log-probs.

    Runs one forward pass on prompt + completion (which must fit in ``block_size``);
    gradients flow when called outside ``torch.no_grad``. Returns a scalar tensor.
    """
    if not prompt_ids or not completion_ids:
        raise ValueError("prompt_ids and completion_ids must both be non-empty")
    ids = list(prompt_ids) + list(completion_ids)
    if len(ids) > model.config.block_size:
        raise ValueError(f"prompt + completion has {len(ids)} tokens > block_size={model.config.block_size}")
    device = next(model.parameters()).device
    x = torch.tensor([ids[:-1]], device=device)  # (1, T-1)
    logits, _ = model(x)  # (1, T-1, V): position t predicts ids[t + 1]
    logprobs = F.log_softmax(logits[0].float(), dim=-1)  # (T-1, V)
    start = len(prompt_ids) - 1  # the position that predicts the first completion token
    targets = torch.tensor(completion_ids, device=device)
    return logprobs[start:].gather(1, targets[:, None]).sum()


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
