# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-1", "locked": true, "schema_version": 3, "solution": false}
# # HW4: Training a language model
#
# [Open this notebook in Colab](https://colab.research.google.com/github/lmcourse-org/lmcourse/blob/main/assignments/hw4_training/hw4_training.ipynb)
#
# In this homework you write the pieces of the training loop from
# [Chapter 4, *Training: next-token prediction*](https://lmcourse-org.github.io/lmcourse/book/04_training.html) and use them to
# train a small character-level model on Shakespeare:
#
# 1. `batch_at(data, starts, block_size)`: the shifted input/target windows (2 points);
# 2. `masked_cross_entropy(logits, targets, ignore_index)`: the loss, skipping padding (3 points);
# 3. `train_step(model, optimizer, x, y, grad_clip)`: one optimisation step (3 points);
# 4. `train_loop(...)`: many steps on random batches (2 points), and a short training run on
#    the shipped corpus that must beat a validation-loss threshold (2 points).
#
# Write your code between the `# YOUR CODE HERE` lines only and do not edit the test cells.
# Each test cell shows some checks; more (hidden) checks run when the homework is graded, on
# other shapes, dtypes and seeds, **with the `lmcourse` reference, `F.cross_entropy` and
# `F.nll_loss` disabled**: calling them instead of writing the code scores 0. Use `torch`
# operations (indexing, `torch.log_softmax`, `gather`, ...). Run all cells (*Runtime / Run
# all*) before you submit; the last cell prints a summary.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false} tags=["setup"]
# The course setup cell (SETUP_CELL of scripts/new_chapter.py) is put here by scripts/build_homework.py.

# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false}
import copy
import math

import torch
import torch.nn as nn

torch.set_num_threads(1)  # the models here are tiny: one CPU thread is fastest (and fair on a shared machine)
VISIBLE_TESTS = {}  # name -> function re-run by the summary cell at the end


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-2", "locked": true, "schema_version": 3, "solution": false}
# ## 1. Shifted batches
#
# A language model is trained to predict every next token of a window at once. From a 1-D
# stream of token ids `data` (shape `(N,)`) a window starting at offset $i$ gives
#
# $$x = \text{data}[i : i + T], \qquad y = \text{data}[i + 1 : i + T + 1],$$
#
# so $y_t$ is the token that follows $x_0 \dots x_t$: one window of $T$ tokens holds $T$
# training signals. A batch stacks $B$ windows whose offsets `starts` (a LongTensor `(B,)`,
# each in `[0, N - T - 1]`) are given.
#
# Return `(x, y)`, two `torch.int64` tensors of shape `(B, T)`, whatever the integer dtype
# of `data` (token streams are often stored as `int32` or `uint16` to save memory).
# `lmcourse.data.get_batch` draws its offsets with one call
# `torch.randint(N - T, (B,), generator=generator)` and then does exactly this.

# %% nbgrader={"grade": false, "grade_id": "batch_at", "locked": false, "schema_version": 3, "solution": true}
def batch_at(data: torch.Tensor, starts: torch.Tensor, block_size: int):
    """data (N,) integer ids, starts (B,) offsets -> (x, y), both int64 of shape (B, block_size)."""
    ### BEGIN SOLUTION
    idx = starts.long()[:, None] + torch.arange(block_size)[None, :]  # (B, T)
    return data[idx].long(), data[idx + 1].long()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_batch_at", "locked": true, "points": 2, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["cross_entropy_loss", "nll_loss", "nll_loss_nd", "nll_loss2d", "nll_loss_forward"]}
import torch.nn.functional as F

import lmcourse.data as ref_data
import lmcourse.metrics as ref_metrics
from lmcourse.grading import check_float, check_tensor, value_and_grad


def _ref_batch(data, B, T, seed):
    """The reference batch and the offsets it used (same generator seed)."""
    starts = torch.randint(data.numel() - T, (B,), generator=torch.Generator().manual_seed(seed))
    return starts, ref_data.get_batch(data, B, T, torch.Generator().manual_seed(seed))


def test_batch_at_visible():
    data = torch.arange(100, 150)  # token ids 100..149: easy to read
    x, y = batch_at(data, torch.tensor([0, 7, 42]), 4)
    check_tensor("x", x, torch.tensor([[100, 101, 102, 103], [107, 108, 109, 110], [142, 143, 144, 145]]),
                 on="data=arange(100, 150), starts=[0, 7, 42], T=4")
    check_tensor("y", y, torch.tensor([[101, 102, 103, 104], [108, 109, 110, 111], [143, 144, 145, 146]]),
                 on="data=arange(100, 150), starts=[0, 7, 42], T=4")
    data = torch.randint(65, (500,), generator=torch.Generator().manual_seed(0))
    starts, (x_ref, y_ref) = _ref_batch(data, 8, 16, seed=1)
    x, y = batch_at(data, starts, 16)
    check_tensor("x", x, x_ref, on="seed 1, B=8, T=16 (compared with lmcourse.data.get_batch)")
    check_tensor("y", y, y_ref, on="seed 1, B=8, T=16 (compared with lmcourse.data.get_batch)")
    assert torch.equal(y[:, :-1], x[:, 1:]), "y must be x shifted left by one token"
    x, y = batch_at(data.to(torch.int32), starts, 16)
    assert x.dtype == torch.int64 and y.dtype == torch.int64, f"x, y must be int64 for int32 data, got {x.dtype}, {y.dtype}"
    return True


VISIBLE_TESTS["batch_at"] = test_batch_at_visible
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(11)
_cases = [  # (data, B, T, seed)
    (torch.randint(81, (1000,), generator=_g), 32, 8, 2),
    (torch.randint(50000, (300,), generator=_g).to(torch.int32), 3, 64, 3),
    (torch.randint(200, (40,), generator=_g).to(torch.uint8), 1, 1, 4),
    (torch.randint(81, (17,), generator=_g), 5, 16, 5),  # T = N - 1: every offset is 0
]
_inputs = [(_ref_batch(d, B, T, s), d, T) for d, B, T, s in _cases]
_last = torch.tensor([0, 1000 - 8 - 1])  # the last valid offset N - T - 1
_got = [batch_at(d, starts, T) for (starts, _), d, T in _inputs]
_edge = batch_at(_cases[0][0], _last, 8)
for (d, B, T, s), ((_, (x_ref, y_ref)), _, _), (x, y) in zip(_cases, _inputs, _got):
    check_tensor("x", x, x_ref, on=f"seed {s}, B={B}, T={T}, data {d.dtype} of length {d.numel()}")
    check_tensor("y", y, y_ref, on=f"seed {s}, B={B}, T={T}, data {d.dtype} of length {d.numel()}")
check_tensor("y", _edge[1], torch.stack([_cases[0][0][1:9], _cases[0][0][-8:]]).long(), on="starts=[0, N - T - 1]")
### END HIDDEN TESTS
assert test_batch_at_visible()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-3", "locked": true, "schema_version": 3, "solution": false}
# ## 2. Cross-entropy with padding
#
# The model returns logits of shape `(B, T, V)`: a score for every token of the vocabulary at
# every position. The loss is the mean negative log-likelihood of the targets,
#
# $$\mathcal{L} = -\frac{1}{|\mathcal{K}|} \sum_{(b, t) \in \mathcal{K}} \log \operatorname{softmax}(\text{logits}_{b,t})_{y_{b,t}},$$
#
# where $\mathcal{K}$ is the set of positions whose target is **not** `ignore_index`. Padding
# (sequences shorter than the batch) gets the target `ignore_index` (PyTorch's convention is
# -100), so it adds nothing to the sum and does not count in the mean.
#
# Accept `logits` of shape `(..., V)` with `targets` of shape `(...)` (e.g. `(B, T, V)` with
# `(B, T)`, or `(N, V)` with `(N,)`) and return a 0-dimensional tensor in the dtype of
# `logits` that supports `.backward()`. When every target is ignored the mean is $0/0$:
# return NaN, like PyTorch. Use `torch.log_softmax` (numerically stable) and `gather`; do not
# use `F.cross_entropy` or `F.nll_loss`.

# %% nbgrader={"grade": false, "grade_id": "masked_cross_entropy", "locked": false, "schema_version": 3, "solution": true}
def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean -log softmax(logits)[target] over the positions whose target != ignore_index."""
    ### BEGIN SOLUTION
    V = logits.size(-1)
    logits, targets = logits.reshape(-1, V), targets.reshape(-1)  # (N, V), (N,)
    keep = targets != ignore_index  # (N,)
    safe = torch.where(keep, targets, torch.zeros_like(targets))  # any valid id where ignored
    logp = torch.log_softmax(logits, dim=-1).gather(1, safe[:, None]).squeeze(1)  # (N,)
    return -(logp * keep).sum() / keep.sum()
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_masked_cross_entropy", "locked": true, "points": 3, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["cross_entropy_loss", "nll_loss", "nll_loss_nd", "nll_loss2d", "nll_loss_forward"]}
# Tolerances: float32 atol=1e-5, rtol=1e-5; float64 atol=1e-10, rtol=1e-10.


def _ce_inputs(seed, shape, V, n_pad=0, ignore_index=-100, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(*shape, V, generator=g, dtype=dtype)).requires_grad_()
    targets = torch.randint(V, shape, generator=g)
    if n_pad:
        targets[..., -n_pad:] = ignore_index  # right padding
    return logits, targets


def _ref_ce(logits, targets, ignore_index=-100):
    """Value and gradient of F.cross_entropy on a detached copy."""
    lg = logits.detach().clone().requires_grad_()
    loss = F.cross_entropy(lg.reshape(-1, lg.size(-1)), targets.reshape(-1), ignore_index=ignore_index)
    loss.backward()
    return loss.detach(), lg.grad


def test_masked_cross_entropy_visible():
    logits, targets = _ce_inputs(0, (2, 5), 7)
    loss = masked_cross_entropy(logits, targets)
    exp, exp_grad = _ref_ce(logits, targets)
    check_tensor("loss", loss, exp, 1e-5, 1e-5, on="seed 0, logits (2,5,7), no padding")
    check_float("loss", loss, float(ref_metrics.cross_entropy(logits.detach(), targets)), 1e-5, 1e-5,
                on="seed 0 (compared with lmcourse.metrics.cross_entropy)")
    logits, targets = _ce_inputs(1, (3, 6), 11, n_pad=2)
    loss, (grad,) = value_and_grad(masked_cross_entropy, logits, targets)  # loss.backward(), then logits.grad
    exp, exp_grad = _ref_ce(logits, targets)
    check_tensor("loss", loss, exp, 1e-5, 1e-5, on="seed 1, logits (3,6,11), last 2 targets of each row = -100")
    check_tensor("logits.grad", grad, exp_grad, 1e-6, 1e-5, on="seed 1, with padding")
    assert bool((grad[:, -2:] == 0).all()), "padding positions must get zero gradient"
    uniform = masked_cross_entropy(torch.zeros(4, 10), torch.tensor([1, 2, 3, 4]))
    check_float("loss of uniform logits", uniform, math.log(10), 1e-6, 1e-6, on="zeros(4, 10): expected ln 10")
    return True


VISIBLE_TESTS["masked_cross_entropy"] = test_masked_cross_entropy_visible
### BEGIN HIDDEN TESTS
_cases = [  # (seed, shape, V, n_pad, ignore_index, dtype, atol)
    (10, (4, 9), 81, 3, -100, torch.float32, 1e-5),
    (11, (13,), 5, 0, -100, torch.float32, 1e-5),
    (12, (2, 3, 4), 17, 1, 0, torch.float64, 1e-10),  # padding id 0 as ignore_index
    (13, (1, 8), 3, 7, -1, torch.float32, 1e-5),  # one scored position
]
_inputs = [_ce_inputs(s, sh, V, p, ii, dt) for s, sh, V, p, ii, dt, _ in _cases]
_all_pad = (torch.randn(2, 3, 5), torch.full((2, 3), -100))
_got = [value_and_grad(masked_cross_entropy, lg, t, ii) for (lg, t), (_, _, _, _, ii, _, _) in zip(_inputs, _cases)]
_nan = masked_cross_entropy(*_all_pad)
for (s, sh, V, p, ii, dt, atol), (lg, t), (loss, (grad,)) in zip(_cases, _inputs, _got):
    exp, exp_grad = _ref_ce(lg, t, ii)
    on = f"seed {s}, targets {sh}, V={V}, {p} padded, ignore_index={ii}, {dt}"
    check_tensor("loss", loss, exp, atol, atol, on=on)
    check_tensor("logits.grad", grad, exp_grad, atol, atol * 10, on=on)
check_float("loss with every target ignored", _nan, float("nan"), on="all targets = -100 (expected NaN)")
### END HIDDEN TESTS
assert test_masked_cross_entropy_visible()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-4", "locked": true, "schema_version": 3, "solution": false}
# ## 3. One optimisation step
#
# One step of gradient descent on a batch `(x, y)`:
#
# 1. `optimizer.zero_grad()`: forget the previous step's gradients (PyTorch accumulates them);
# 2. forward: `logits, _ = model(x)` (an `lmcourse.model.GPT` returns `(logits, loss)`; call
#    it **without** targets) and `loss = masked_cross_entropy(logits, y)`;
# 3. `loss.backward()`;
# 4. if `grad_clip` is not `None`, rescale the gradients so that their global norm is at most
#    `grad_clip`: `torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)`;
# 5. `optimizer.step()`.
#
# Return the loss of this batch (computed before the update) as a Python `float`.

# %% nbgrader={"grade": false, "grade_id": "train_step", "locked": false, "schema_version": 3, "solution": true}
def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               grad_clip=1.0) -> float:
    """One step on the batch (x, y) of shape (B, T); returns the batch loss as a float."""
    ### BEGIN SOLUTION
    optimizer.zero_grad(set_to_none=True)
    logits, _ = model(x)  # (B, T, V)
    loss = masked_cross_entropy(logits, y)
    loss.backward()  # d loss / d parameter for every parameter
    if grad_clip is not None:  # rescale so that the global gradient norm is <= grad_clip
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=grad_clip)
    optimizer.step()
    return loss.item()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_train_step", "locked": true, "points": 3, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["cross_entropy_loss", "nll_loss", "nll_loss_nd", "nll_loss2d", "nll_loss_forward"], "allow": ["lmcourse.model"]}
# Tolerance on the updated weights: atol=1e-5, rtol=1e-4 (float32); on the loss: 1e-5.
import lmcourse.model as ref_model


def _tiny_gpt(seed, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=23, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    cfg.update(kw)
    return ref_model.GPT(ref_model.GPTConfig(**cfg))


def _make_opt(kind, model):
    if kind == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    return torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)


def _reference_steps(model, opt, batches, grad_clip):
    """The reference step, written out with torch."""
    losses = []
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        losses.append(loss.item())
    return losses


def _step_case(seed, kind, grad_clip, n_steps=1, B=4, T=8, pad=0, **kw):
    """(student model, student optimizer, batches, reference model, reference losses)."""
    mine = _tiny_gpt(seed, **kw)
    theirs = copy.deepcopy(mine)
    g = torch.Generator().manual_seed(seed + 100)
    V = mine.config.vocab_size
    batches = []
    for _ in range(n_steps):
        x = torch.randint(V, (B, T), generator=g)
        y = torch.randint(V, (B, T), generator=g)
        if pad:
            y[:, -pad:] = -100
        batches.append((x, y))
    ref_losses = _reference_steps(theirs, _make_opt(kind, theirs), batches, grad_clip)
    return mine, _make_opt(kind, mine), batches, theirs, ref_losses


def _check_weights(mine, theirs, on):
    for (name, p), q in zip(mine.named_parameters(), theirs.parameters()):
        check_tensor(f"parameter {name} after the step", p.detach(), q.detach(), 1e-5, 1e-4, on=on)


def test_train_step_visible():
    mine, opt, batches, theirs, ref_losses = _step_case(0, "adamw", grad_clip=1.0)
    before = [p.detach().clone() for p in mine.parameters()]
    loss = train_step(mine, opt, *batches[0], grad_clip=1.0)
    check_float("returned loss", loss, ref_losses[0], 1e-5, 1e-5, on="seed 0, AdamW, grad_clip=1.0")
    assert type(loss) is float, f"train_step must return a Python float (loss.item()), got {type(loss).__name__}"
    assert any(not torch.equal(a, p) for a, p in zip(before, mine.parameters())), "the weights did not change: call optimizer.step()"
    _check_weights(mine, theirs, on="seed 0, AdamW lr=1e-2, grad_clip=1.0, one step")
    mine, opt, batches, theirs, ref_losses = _step_case(1, "sgd", grad_clip=0.05, n_steps=3)
    losses = [train_step(mine, opt, x, y, grad_clip=0.05) for x, y in batches]
    for i, (a, b) in enumerate(zip(losses, ref_losses)):
        check_float(f"loss of step {i}", a, b, 1e-5, 1e-5, on="seed 1, SGD momentum 0.9, grad_clip=0.05, 3 steps")
    _check_weights(mine, theirs, on="seed 1, SGD momentum 0.9, grad_clip=0.05, after 3 steps (zero_grad? clipping?)")
    return True


VISIBLE_TESTS["train_step"] = test_train_step_visible
### BEGIN HIDDEN TESTS
_cases = [  # (seed, optimizer, grad_clip, n_steps, B, T, pad, model overrides)
    (20, "sgd", None, 2, 3, 5, 0, {}),  # no clipping
    (21, "adamw", 0.01, 3, 2, 16, 4, {"n_kv_head": 1}),  # padding and strong clipping
    (22, "sgd", 1e-3, 1, 8, 4, 0, {"n_layer": 1, "bias": False}),
]
_runs = [_step_case(s, k, c, n, B, T, p, **kw) for s, k, c, n, B, T, p, kw in _cases]
_got = [[train_step(m, o, x, y, grad_clip=c) for x, y in b] for (m, o, b, _, _), (_, _, c, *_r) in zip(_runs, _cases)]
for case, (mine, _, _, theirs, ref_losses), losses in zip(_cases, _runs, _got):
    on = f"(seed, optimizer, grad_clip, steps, B, T, padded)={case[:7]}"
    for i, (a, b) in enumerate(zip(losses, ref_losses)):
        check_float(f"loss of step {i}", a, b, 1e-5, 1e-5, on=on)
    _check_weights(mine, theirs, on=on)
### END HIDDEN TESTS
assert test_train_step_visible()

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-5", "locked": true, "schema_version": 3, "solution": false}
# ## 4. The training loop, and a real training run
#
# `train_loop` repeats `train_step` on random batches: at every step draw the `batch_size`
# offsets with **one** call
#
# ```python
# starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
# ```
#
# (the same draw as `lmcourse.data.get_batch`, so your run is reproducible and checkable),
# build the batch with your `batch_at`, take one `train_step` and record its loss. Return the
# list of the `steps` losses (Python floats).
#
# The last test then trains a small model on the shipped Shakespeare corpus
# (`lmcourse.data.shakespeare_text()`, character-level `CharTokenizer`, the last 10 % held
# out for validation) **with your functions**: a 1-layer GPT of width 32, `block_size` 32,
# batches of 32, AdamW with learning rate `1e-2`, `grad_clip` 1.0, for **200 steps**
# (about 3 s on one CPU thread). Its mean validation loss must be **below 2.8 nats**.
# For scale: an untrained model scores about $\ln 81 \approx 4.39$ nats (81 token ids,
# roughly uniform), a model that only knows how often each character occurs about 3.3, and
# the reference solution about 2.54.

# %% nbgrader={"grade": false, "grade_id": "corpus", "locked": true, "schema_version": 3, "solution": false}
from lmcourse.data import shakespeare_text, split
from lmcourse.tokenization import CharTokenizer

text = shakespeare_text()
tokenizer = CharTokenizer.from_text(text)
corpus = torch.tensor(tokenizer.encode(text), dtype=torch.long)  # (N,) token ids
train_data, val_data = split(corpus, 0.1)  # contiguous: the last 10 % is validation
print(f"{len(corpus):,} tokens, vocabulary of {tokenizer.vocab_size}: train {len(train_data):,}, val {len(val_data):,}")


# %% nbgrader={"grade": false, "grade_id": "train_loop", "locked": false, "schema_version": 3, "solution": true}
def train_loop(model, optimizer, data, steps, batch_size, block_size, generator, grad_clip=1.0):
    """`steps` train_step calls on random batches of data (N,); returns the list of losses."""
    ### BEGIN SOLUTION
    history = []
    for _ in range(steps):
        starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
        x, y = batch_at(data, starts, block_size)
        history.append(train_step(model, optimizer, x, y, grad_clip))
    return history
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_train_loop", "locked": true, "points": 2, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["cross_entropy_loss", "nll_loss", "nll_loss_nd", "nll_loss2d", "nll_loss_forward"], "allow": ["lmcourse.model"]}
# Reference loop: lmcourse.data.get_batch + the written-out reference step; losses atol 1e-5.


def _loop_case(seed, steps, B, T, N=2000, clip=1.0):
    model = _tiny_gpt(seed, block_size=T)
    theirs = copy.deepcopy(model)
    data = torch.randint(model.config.vocab_size, (N,), generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed + 1)
    batches = [ref_data.get_batch(data, B, T, g) for _ in range(steps)]
    ref_losses = _reference_steps(theirs, _make_opt("adamw", theirs), batches, clip)
    return model, _make_opt("adamw", model), data, theirs, ref_losses


def test_train_loop_visible():
    model, opt, data, theirs, ref_losses = _loop_case(0, 5, 4, 8)
    losses = train_loop(model, opt, data, 5, 4, 8, torch.Generator().manual_seed(1))
    assert isinstance(losses, list) and len(losses) == 5, f"expected a list of 5 losses, got {losses!r}"
    for i, (a, b) in enumerate(zip(losses, ref_losses)):
        check_float(f"loss of step {i}", a, b, 1e-5, 1e-5,
                    on="seed 0, 5 steps, B=4, T=8 (same offsets as lmcourse.data.get_batch?)")
    _check_weights(model, theirs, on="seed 0, after 5 steps")
    assert train_loop(model, opt, data, 0, 4, 8, torch.Generator()) == [], "0 steps must return []"
    return True


VISIBLE_TESTS["train_loop"] = test_train_loop_visible
### BEGIN HIDDEN TESTS
_cases = [(30, 7, 2, 16, 100, 0.5), (31, 3, 16, 4, 5000, None), (32, 4, 1, 1, 50, 1.0)]  # seed, steps, B, T, N, clip
_runs = [_loop_case(s, n, B, T, N, c) for s, n, B, T, N, c in _cases]
_got = [train_loop(m, o, d, n, B, T, torch.Generator().manual_seed(s + 1), c)
        for (m, o, d, _, _), (s, n, B, T, N, c) in zip(_runs, _cases)]
for case, (model, _, _, theirs, ref_losses), losses in zip(_cases, _runs, _got):
    on = f"(seed, steps, B, T, N, grad_clip)={case}"
    assert isinstance(losses, list) and len(losses) == case[1], f"{on}: expected {case[1]} losses, got {losses!r}"
    for i, (a, b) in enumerate(zip(losses, ref_losses)):
        check_float(f"loss of step {i}", a, b, 1e-5, 1e-5, on=on)
    _check_weights(model, theirs, on=on)
### END HIDDEN TESTS
assert test_train_loop_visible()

# %% nbgrader={"grade": true, "grade_id": "test_training_run", "locked": true, "points": 2, "schema_version": 3, "solution": false} lmcourse={"block_ops": ["cross_entropy_loss", "nll_loss", "nll_loss_nd", "nll_loss2d", "nll_loss_forward"], "allow": ["lmcourse.model"]}
# The real run: 200 steps on Shakespeare with your functions, validation loss < 2.8 nats.
# (Not re-run by the summary cell: it takes a few seconds.)
THRESHOLD, STEPS = 2.8, 200


def _shakespeare_model():
    torch.manual_seed(0)
    cfg = ref_model.GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=32, dropout=0.0)
    model = ref_model.GPT(cfg)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)


def _val_loss(model):
    """Mean reference loss on 8 fixed validation batches of 64 windows."""
    g = torch.Generator().manual_seed(1234)
    model.eval()
    with torch.no_grad():
        losses = [model(*ref_data.get_batch(val_data, 64, 32, g))[1].item() for _ in range(8)]
    model.train()
    return sum(losses) / len(losses)


def _train_shakespeare():
    model, opt = _shakespeare_model()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is fastest, and fair to shared CPUs
    try:
        losses = train_loop(model, opt, train_data, STEPS, 32, 32, torch.Generator().manual_seed(0), 1.0)
    finally:
        torch.set_num_threads(threads)
    return losses, _val_loss(model)


_untrained = _val_loss(_shakespeare_model()[0])
assert _untrained > 4.0, f"an untrained model should score about ln(81) = 4.39, got {_untrained:.3f}"
### BEGIN HIDDEN TESTS
### END HIDDEN TESTS
_losses, _val = _train_shakespeare()
assert isinstance(_losses, list) and len(_losses) == STEPS, f"train_loop must return a list of {STEPS} losses"
print(f"training loss: first step {_losses[0]:.3f}, last step {_losses[-1]:.3f}; validation loss {_val:.3f} (threshold {THRESHOLD})")
assert _val < THRESHOLD, f"validation loss {_val:.3f} after {STEPS} steps is not below {THRESHOLD}"

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-6", "locked": true, "schema_version": 3, "solution": false}
# ## Summary
#
# The cell below re-runs every visible test. When everything passes, save the notebook and
# submit it (on Colab: *File / Download / Download .ipynb*, then upload it to the course LMS).

# %% nbgrader={"grade": false, "grade_id": "summary", "locked": true, "schema_version": 3, "solution": false}
# Run every visible test again and print a summary (hidden tests run only when graded).
_results = {}
for _name, _test in VISIBLE_TESTS.items():
    try:
        _test()
        _results[_name] = "passed"
    except NotImplementedError:
        _results[_name] = "not implemented yet"
    except Exception as _e:  # noqa: BLE001 - report any failure
        _results[_name] = f"FAILED: {type(_e).__name__}: {_e}"
for _name, _r in _results.items():
    print(f"{_name:32s} {_r}")
_n = sum(r == "passed" for r in _results.values())
print(f"{_n}/{len(_results)} visible test groups passed; hidden tests run when the homework is graded.")
