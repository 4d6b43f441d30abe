"""DPO loss against its formula, gradient signs, sequence log-probs against the chain rule."""

import math

import pytest
import torch
import torch.nn.functional as F

from lmcourse.model import GPT, GPTConfig
from lmcourse.preference import dpo_loss, sequence_logprob, sequence_logprobs


def tiny_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=16)).eval()


def test_loss_is_log2_at_the_reference_and_matches_the_formula():
    lp = torch.tensor([-3.0, -1.0])
    out = dpo_loss(lp, lp - 1, lp, lp - 1)
    assert out.loss.item() == pytest.approx(math.log(2))
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (-5 * torch.rand(6, generator=g) for _ in range(4))
    beta = 0.3
    expected = torch.stack([
        -torch.log(torch.sigmoid(beta * ((pc[i] - rc[i]) - (pr[i] - rr[i])))) for i in range(6)
    ]).mean()
    out = dpo_loss(pc, pr, rc, rr, beta=beta)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(out.chosen_reward, beta * (pc - rc))


def test_gradient_raises_chosen_and_lowers_rejected():
    pc, pr = torch.tensor([-2.0], requires_grad=True), torch.tensor([-2.0], requires_grad=True)
    dpo_loss(pc, pr, torch.tensor([-2.0]), torch.tensor([-2.0])).loss.backward()
    assert pc.grad.item() < 0 < pr.grad.item()  # descent raises log p(chosen)


def test_sequence_logprob_is_the_chain_rule():
    model = tiny_model()
    prompt, completion = [1, 2, 3], [4, 5, 6, 7]
    with torch.no_grad():
        total = sequence_logprob(model, prompt, completion).item()
        by_steps = 0.0
        ids = list(prompt)
        for tok in completion:  # one forward pass per prefix: an independent computation
            logits, _ = model(torch.tensor([ids]))
            by_steps += F.log_softmax(logits[0, -1], dim=-1)[tok].item()
            ids.append(tok)
    assert total == pytest.approx(by_steps, abs=1e-5)


def test_batched_equals_row_by_row():
    model = tiny_model(1)
    g = torch.Generator().manual_seed(0)
    prompts, completions = torch.randint(0, 11, (4, 5), generator=g), torch.randint(0, 11, (4, 3), generator=g)
    with torch.no_grad():
        batched = sequence_logprobs(model, prompts, completions)
        rows = [sequence_logprob(model, p.tolist(), c.tolist()) for p, c in zip(prompts, completions)]
    assert torch.allclose(batched, torch.stack(rows), atol=1e-5)


def test_a_few_dpo_steps_prefer_the_chosen_completion():
    policy, reference = tiny_model(), tiny_model()
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    prompt, chosen, rejected = [1, 2], [3, 4], [5, 6]
    with torch.no_grad():
        ref_c = sequence_logprob(reference, prompt, chosen).reshape(1)
        ref_r = sequence_logprob(reference, prompt, rejected).reshape(1)
    for _ in range(20):
        out = dpo_loss(sequence_logprob(policy, prompt, chosen).reshape(1),
                       sequence_logprob(policy, prompt, rejected).reshape(1), ref_c, ref_r)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert out.loss.item() < math.log(2) and out.accuracy == 1.0


def test_bad_arguments():
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(x, x, x, x, beta=0)
    with pytest.raises(ValueError, match="same shape"):
        dpo_loss(x, x, x, torch.zeros(3))
    with pytest.raises(ValueError, match="block_size"):
        sequence_logprob(tiny_model(), list(range(10)), list(range(10)))
    with pytest.raises(ValueError, match="non-empty"):
        sequence_logprob(tiny_model(), [], [1])
