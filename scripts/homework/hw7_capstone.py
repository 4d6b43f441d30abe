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
# # HW7 (capstone): your language model
#
# [Open this notebook in Colab](https://colab.research.google.com/github/lmcourse-org/lmcourse/blob/main/assignments/hw7_capstone/hw7_capstone.ipynb)
#
# Every piece of a language model is now something you wrote. In this capstone you put them
# together, with no `lmcourse` model, tokeniser, optimiser or sampler: **your** byte-level
# BPE tokeniser (HW2) cuts Shakespeare into tokens, **your** GPT (HW3b) is trained by
# **your** AdamW, learning-rate schedule, gradient clipping and batches (HW4), it is
# evaluated in validation loss and bits per byte, and it writes text through **your**
# sampler (HW6) and **your** KV cache (HW5).
#
# | part | what you paste or write | points | graded by |
# |---|---|---|---|
# | 1 | your tokeniser: `merge`, `train_bpe`, `encode`, `decode` (HW2) | 2 | `test_tokenizer` |
# | 2 | your GPT: `LayerNorm`, `MLP`, `attend`, `CausalSelfAttention`, `Block`, `GPT` (HW3b) | 2 | `test_model` |
# | 3 | your optimiser and loop: `batch_at`, `masked_cross_entropy`, `AdamW`, `lr_at`, `clip_grad_norm_`, `train_step`, `train_loop` (HW4); the glue `train` | 3 | `test_training` |
# | 4 | your sampler and cache: the HW6 filters, `make_sample_next`; HW5's `prefill`, `decode_step`, `generate_cached`, `find_stop` | 2 | `test_sampler_and_cache` |
# | 5 | the run: `evaluate`, `run_capstone` (tokenise, train, evaluate, generate) | 4 | `test_run` |
#
# **How it is graded: integration tests.** Each part is checked through the next ones: the
# run of part 5 uses every piece, so one piece left as a stub (or wrong) costs its own part
# *and* the run. The tests compare with the `lmcourse` reference computed outside your code
# (seeded, with the tolerances of float32).
#
# **Available** while graded: torch (with `torch.nn.functional`: `cross_entropy`, `gelu`,
# `softmax`, `layer_norm` in HW5's cache code), numpy, the standard library and
# `lmcourse.data` (the corpus). **Forbidden** (absent while graded): every other `lmcourse`
# module and the `tokenizers` library. The tests cannot tell your AdamW or clipping from
# `torch.optim.AdamW` or `torch.nn.utils.clip_grad_norm_` (they must be equal): the capstone
# asks for yours, and your instructor may review the answers.
#
# **The CPU budget.** The graded run (part 5) trains a tiny model for 120 steps on 100k
# characters: it takes a few seconds on a laptop CPU. On a Colab GPU the last cell offers a
# larger, ungraded run.
#
# Paste each piece into its cell: the cells below are the same functions and classes, with
# the same names and conventions, as in the homework where you wrote them. Write your code
# between the `# YOUR CODE HERE` lines only and do not edit the test cells.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false} tags=["setup"]
# The course setup cell (SETUP_CELL of scripts/new_chapter.py) is put here by scripts/build_homework.py.

# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false}
import math
import random
from collections import Counter

import torch
import torch.nn as nn
import torch.nn.functional as F

from lmcourse.data import shakespeare_text

torch.set_num_threads(1)  # tiny models: one CPU thread is fastest (and fair on a shared machine)
VISIBLE_TESTS = {}  # name -> function re-run by the summary cell at the end

# %% nbgrader={"grade": false, "grade_id": "hw3b_base", "locked": true, "schema_version": 3, "solution": false}
# HW3b's first cell, as there: RefModule (with load_reference) and load_by_name.
### SOLUTION FROM hw3b_transformer:imports

# %% nbgrader={"grade": false, "grade_id": "hw4_base", "locked": true, "schema_version": 3, "solution": false}
def logits_of(output):
    """The logits of a model's output: ``output`` itself, or its first item when the model
    returns a tuple (``lmcourse.model.GPT`` returns ``(logits, loss)``; your HW3b GPT returns
    the logits)."""
    return output[0] if isinstance(output, tuple) else output


# %% nbgrader={"grade": false, "grade_id": "pretokenize", "locked": true, "schema_version": 3, "solution": false}
# ruff: noqa: F821 - in this source file the pasted pieces are "### SOLUTION FROM" lines (scripts/build_homework.py)
### SOLUTION FROM hw2_tokenisation:pretokenize

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-2", "locked": true, "schema_version": 3, "solution": false}
# ## 1. Your tokeniser (HW2)
#
# Paste your `merge`, `train_bpe`, `encode` and `decode` from HW2 (same signatures: merges
# are a list of `(a, b)` tuples, merge `r` creates id `256 + r`, the GPT-2 pre-splitting of
# the locked `pretokenize` above, ties broken by the smallest pair).

# %% nbgrader={"grade": false, "grade_id": "tokenizer", "locked": false, "schema_version": 3, "solution": true}
### SOLUTION FROM hw2_tokenisation:train_bpe


### SOLUTION FROM hw2_tokenisation:merge


### SOLUTION FROM hw2_tokenisation:encode


### SOLUTION FROM hw2_tokenisation:decode

# %% nbgrader={"grade": true, "grade_id": "test_tokenizer", "locked": true, "points": 2, "schema_version": 3, "solution": false} lmcourse={"allow": ["lmcourse.data"]}
import lmcourse.generate as ref_gen
import lmcourse.model as ref
import lmcourse.tokenization as ref_tok
from lmcourse.grading import check, check_tensor, checks_done
from lmcourse.sampling import SamplingConfig
from lmcourse.train import lr_at as ref_lr_at
from lmcourse.train import param_groups as ref_param_groups

SHAKESPEARE = shakespeare_text()


def _visible(test):
    """For the summary cell: run a visible test; raise AssertionError if any of its checks failed."""
    def run():
        test()
        checks_done()
        return True

    return run


def reference_merges(text, n_merges):
    return ref_tok.BPETokenizer.train(text, 256 + n_merges, special_tokens=()).merges


def reference_tokenizer(merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for r, (a, b) in enumerate(merges):
        vocab[256 + r] = vocab[a] + vocab[b]
    return ref_tok.BPETokenizer(vocab, merges, special_tokens=())


def _as_pairs(merges):
    assert isinstance(merges, list), f"merges must be a list, got {type(merges).__name__}"
    return [tuple(int(i) for i in m) for m in merges]


def test_tokenizer_visible():
    text = SHAKESPEARE[:3000]
    expected = reference_merges(text, 40)
    with check("train_bpe learns the reference merges", 1):
        got = _as_pairs(train_bpe(text, 40))
        assert got == expected, f"train_bpe(Shakespeare[:3000], 40): first difference at merge {next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))}"
    with check("encode equals the reference; decode(encode(s)) == s", 0.5):
        tok = reference_tokenizer(expected)
        for s in ("To be, or not to be: that is the question.", SHAKESPEARE[5000:5600], "héllo 🐉"):
            ids = encode(s, expected)
            assert ids == tok.encode(s), f"encode({s[:30]!r}...) differs from the reference"
            assert decode(ids, expected) == s, f"decode(encode({s[:30]!r}...)) is not the text"
    return True


VISIBLE_TESTS["tokenizer"] = _visible(test_tokenizer_visible)
test_tokenizer_visible()
### BEGIN HIDDEN TESTS
with check("a hidden corpus: merges, encoding and the round trip", 0.5):
    _text = SHAKESPEARE[400000:404000] + " Ünïcödé 日本語 🐉🐉"
    _expected = reference_merges(_text, 50)
    assert _as_pairs(train_bpe(_text, 50)) == _expected, "train_bpe differs from the reference on a hidden corpus"
    _tok = reference_tokenizer(_expected)
    for _s in (SHAKESPEARE[700000:701000], "  spaces\n\n\ttabs 🐉 é", ""):
        _ids = encode(_s, _expected)
        assert _ids == _tok.encode(_s), "encode differs from the reference on a hidden text"
        assert decode(_ids, _expected) == _s, "decode(encode(s)) is not s on a hidden text"
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-3", "locked": true, "schema_version": 3, "solution": false}
# ## 2. Your GPT (HW3b)
#
# Paste your HW3b answers for part 1, as they are: `LayerNorm`, `MLP`, `attend` and
# `CausalSelfAttention`, `Block` and `GPT(vocab_size, block_size, n_layer, n_head, n_embd,
# bias=True, tie_weights=True, eps=1e-5)`, whose forward takes `idx` `(B, T)` and returns the
# logits `(B, T, V)`. The locked cell `hw3b_base` at the top is HW3b's first cell
# (`RefModule`, with its `load_reference`, and `load_by_name`), so your classes subclass the
# same `RefModule` as there. **One convention matters more here than in HW3b:** your model's `state_dict()` must
# use the reference's names (`transformer.wte.weight`, `transformer.h.0.attn.c_attn.weight`,
# ..., `lm_head.weight`; the table of HW3b section 1.5), because HW5's `prefill` and
# `decode_step` read the weights by those names. If you chose other names in HW3b (with your
# own `load_reference`), add a `state_dict` that maps them back.

# %% nbgrader={"grade": false, "grade_id": "gpt", "locked": false, "schema_version": 3, "solution": true}
### SOLUTION FROM hw3b_transformer:layernorm


### SOLUTION FROM hw3b_transformer:mlp


### SOLUTION FROM hw3b_transformer:attention


### SOLUTION FROM hw3b_transformer:block


### SOLUTION FROM hw3b_transformer:gpt

# %% nbgrader={"grade": true, "grade_id": "test_model", "locked": true, "points": 2, "schema_version": 3, "solution": false} lmcourse={"allow": ["lmcourse.data"]}
def _ref_gpt(seed, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=300, block_size=32, n_layer=2, n_head=2, n_embd=32, dropout=0.0)
    cfg.update(kw)
    return ref.GPT(ref.GPTConfig(**cfg)).eval()


def _mine_like(model):
    c = model.config
    mine = GPT(c.vocab_size, c.block_size, c.n_layer, c.n_head, c.n_embd, c.bias, c.tie_weights, c.layer_norm_eps)
    mine.load_reference({k: v.clone() for k, v in model.state_dict().items()})
    return mine.eval()


def test_model_visible():
    with check("your GPT gives the reference's logits", 1):
        model = _ref_gpt(0)
        idx = torch.randint(300, (2, 20), generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            check_tensor("logits", logits_of(_mine_like(model)(idx)), model(idx)[0], 1e-5, 1e-4, on="seed 0, V=300, 2 layers")
    with check("state_dict() uses the reference names", 0.5):
        model = _ref_gpt(2, n_layer=1)
        names = set(_mine_like(model).state_dict().keys())
        missing = sorted(set(model.state_dict().keys()) - names)
        assert not missing, f"your state_dict() lacks the reference names {missing[:4]}"
    ### BEGIN HIDDEN TESTS
    with check("untied, no bias, other sizes", 0.5):
        for seed, kw in ((3, dict(tie_weights=False, bias=False, n_layer=3, n_head=4)), (4, dict(vocab_size=259, n_embd=16))):
            model = _ref_gpt(seed, **kw)
            idx = torch.randint(model.config.vocab_size, (3, 32), generator=torch.Generator().manual_seed(seed))
            with torch.no_grad():
                check_tensor("logits", logits_of(_mine_like(model)(idx)), model(idx)[0], 1e-5, 1e-4, on=f"hidden configuration {seed}")
    ### END HIDDEN TESTS
    return True


VISIBLE_TESTS["GPT"] = _visible(test_model_visible)
test_model_visible()
assert checks_done() is None  # raises AssertionError naming the failed checks

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-4", "locked": true, "schema_version": 3, "solution": false}
# ## 3. Your optimiser and training loop (HW4)
#
# Paste your HW4 answers for parts 1 to 7 into the first cell below, as they are (same
# names, signatures and conventions; the locked cell `hw4_base` at the top is HW4's
# `logits_of`): `batch_at(data, starts, block_size)`, `masked_cross_entropy(logits, targets,
# ignore_index=-100)`, your `AdamW` (a `torch.optim.Optimizer` equal to `torch.optim.AdamW`),
# `lr_at(step, lr, min_lr, warmup, max_iters)`, `clip_grad_norm_(parameters, max_norm)`,
# `train_step(model, optimizer, x, y, grad_clip)` and `train_loop(model, optimizer, data,
# steps, batch_size, block_size, generator, grad_clip, lr_schedule)`. Keep HW4's given
# drivers `run_adamw` (below `AdamW`) and `run_clip` (below `clip_grad_norm_`) as they are:
# the tests call them, as in HW4.
#
# Then write the capstone's glue, `train(model, data, steps, batch_size, block_size, lr,
# min_lr, warmup, betas, weight_decay, grad_clip, generator)` (much like HW4's `build` and
# the run of its part 9): your `AdamW` over two parameter groups (the weight matrices decay
# with `weight_decay`; biases, norm weights and the embeddings, hence a tied LM head, do
# not), with the given `lr` and `betas` (the other options at their defaults); the model in
# training mode; then your `train_loop` on `data` with the schedule
# `lambda s: lr_at(s, lr, min_lr, warmup, steps)`; the model back in evaluation mode; return
# the list of losses. The test compares your weights after a few steps with
# `torch.optim.AdamW` on the same batches (the one `torch.randint` draw per step of HW4).

# %% nbgrader={"grade": false, "grade_id": "training", "locked": false, "schema_version": 3, "solution": true}
### SOLUTION FROM hw4_training:batch_at


### SOLUTION FROM hw4_training:masked_cross_entropy


### SOLUTION FROM hw4_training:adamw


### SOLUTION FROM hw4_training:lr_at


### SOLUTION FROM hw4_training:clip_grad_norm


### SOLUTION FROM hw4_training:train_step


### SOLUTION FROM hw4_training:train_loop

# %% nbgrader={"grade": false, "grade_id": "train", "locked": false, "schema_version": 3, "solution": true}
def train(model, data, steps, batch_size, block_size, lr, min_lr, warmup, betas, weight_decay, grad_clip, generator):
    """Train `model` on the token stream `data` (1-D LongTensor) with your AdamW and train_loop; return the losses."""
    ### BEGIN SOLUTION
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay = [p for p in model.parameters() if p.dim() >= 2 and id(p) not in embeddings]
    no_decay = [p for p in model.parameters() if not (p.dim() >= 2 and id(p) not in embeddings)]
    optimizer = AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                      lr=lr, betas=tuple(betas))
    model.train()
    losses = train_loop(model, optimizer, data, steps, batch_size, block_size, generator, grad_clip,
                        lambda s: lr_at(s, lr, min_lr, warmup, steps))
    model.eval()
    return losses
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_training", "locked": true, "points": 3, "schema_version": 3, "solution": false} lmcourse={"allow": ["lmcourse.data"]}
# References: lmcourse.train.lr_at, torch.optim.AdamW (foreach=False), torch.nn.utils.clip_grad_norm_.
def _lr(step, lr, min_lr, warmup, max_iters):
    return ref_lr_at(step, lr, min_lr, warmup, max_iters)


def _reference_train(model, data, steps, batch_size, block_size, lr, min_lr, warmup, betas, weight_decay, grad_clip, seed):
    opt = torch.optim.AdamW(ref_param_groups(model, weight_decay), lr=lr, betas=betas, eps=1e-8, foreach=False)
    g = torch.Generator().manual_seed(seed)
    model.train(True)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, lr, min_lr, warmup, steps)
        starts = torch.randint(len(data) - block_size, (batch_size,), generator=g)
        idx = starts[:, None] + torch.arange(block_size)[None]
        x, y = data[idx], data[idx + 1]
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
    return model.eval()


def _train_case(seed, steps, grad_clip, weight_decay=0.1, betas=(0.9, 0.95), **kw):
    model = _ref_gpt(seed, **kw)
    data = torch.randint(model.config.vocab_size, (3000,), generator=torch.Generator().manual_seed(seed))
    mine = _mine_like(model)
    args = dict(steps=steps, batch_size=4, block_size=16, lr=3e-3, min_lr=3e-4, warmup=2, betas=betas,
                weight_decay=weight_decay, grad_clip=grad_clip)
    losses = train(mine, data, generator=torch.Generator().manual_seed(seed + 1), **args)
    _reference_train(model, data, seed=seed + 1, **args)
    return mine.state_dict(), model.state_dict(), losses


def _check_weights(got, expected, on):
    """Every weight equal; but the attention key biases, whose true gradient is exactly 0 (a
    constant added to every key changes no softmax): Adam turns their rounding noise into steps."""
    for name, e in expected.items():
        assert name in got, f"{on}: your model has no parameter {name}"
        g, e = got[name].detach().clone(), e.detach().clone()
        if name.endswith("attn.c_attn.bias"):
            C = e.numel() // 3
            g[C:2 * C] = e[C:2 * C] = 0
        check_tensor(name, g, e, 1e-4, 1e-3, on=on)


def _adamw_matches(seed, n_steps, defaults, options):
    """Your AdamW (driven by HW4's run_adamw) and torch.optim.AdamW on the same tensors,
    gradients and per-step learning rates."""
    g = torch.Generator().manual_seed(seed)
    groups = [{"params": [torch.randn(*s, generator=g) for s in ss], **o} for ss, o in zip([[(3, 4), (5,)], [(6,)]], options)]
    flat = [p for group in groups for p in group["params"]]
    grads = [[torch.randn(p.shape, generator=g) for p in flat] for _ in range(n_steps)]
    lrs = [[0.01 * (k + 1) * (1 - t / (2 * n_steps)) for k in range(len(groups))] for t in range(n_steps)]
    params = [[p.clone().requires_grad_() for p in group["params"]] for group in groups]
    ref_opt = torch.optim.AdamW([{**group, "params": ps} for group, ps in zip(groups, params)], foreach=False, **defaults)
    expected = []
    for t in range(n_steps):
        for group, lr in zip(ref_opt.param_groups, lrs[t]):
            group["lr"] = lr
        for p, grad in zip(sum(params, []), grads[t]):
            p.grad = grad.clone()
        ref_opt.step()
        expected.append([p.detach().clone() for p in sum(params, [])])
    got = run_adamw(groups, grads, defaults, lrs)
    assert isinstance(got, list) and len(got) == n_steps, f"run_adamw: expected {n_steps} steps"
    for t, (row, exp_row) in enumerate(zip(got, expected)):
        for i, (a, b) in enumerate(zip(row, exp_row)):
            check_tensor(f"parameter {i} after step {t + 1}", a, b, 1e-6, 1e-5, on=f"seed {seed}, {defaults}")


def _clip_matches(seed, max_norm):
    """Your clip_grad_norm_ (driven by HW4's run_clip) and torch.nn.utils.clip_grad_norm_."""
    g = torch.Generator().manual_seed(seed)
    grads = [torch.randn(*s, generator=g) for s in ((4, 3), (5,), (2, 2, 2))]
    theirs = [torch.zeros_like(x, requires_grad=True) for x in grads]
    for p, x in zip(theirs, grads):
        p.grad = x.clone()
    expected = float(torch.nn.utils.clip_grad_norm_(theirs, max_norm))
    got, norm = run_clip(grads, max_norm)
    assert abs(float(norm) - expected) <= 1e-5 * expected, f"clip_grad_norm_ returned {float(norm)}, expected the norm {expected}"
    for i, (a, b) in enumerate(zip(got, theirs)):
        check_tensor(f"gradient {i} after clipping", a, b.grad, 1e-7, 1e-5, on=f"max_norm {max_norm}")


def test_training_visible():
    with check("lr_at: warm-up and cosine (HW4's convention)", 0.5):
        for args in ((0, 1.0, 0.1, 10, 100), (9, 1.0, 0.1, 10, 100), (10, 1.0, 0.1, 10, 100), (55, 3e-3, 3e-4, 10, 100),
                     (100, 1.0, 0.1, 10, 100), (120, 1.0, 0.1, 10, 100), (3, 0.5, 0.0, 0, 10)):
            got = lr_at(*args)
            assert abs(got - _lr(*args)) <= 1e-12 + 1e-9 * abs(_lr(*args)), f"lr_at{args}: expected {_lr(*args)!r}, got {got!r}"
    with check("AdamW equals torch.optim.AdamW (two groups, a schedule)", 0.5):
        _adamw_matches(5, 8, dict(lr=0.01, betas=(0.9, 0.95), weight_decay=0.1), [{}, {"weight_decay": 0.0}])
    with check("train: 6 steps of your AdamW with weight decay equal the reference", 1):
        got, expected, losses = _train_case(10, 6, None, n_layer=1)
        assert isinstance(losses, list) and len(losses) == 6, "train returns one loss per step"
        _check_weights(got, expected, on="seed 10, 6 steps, no clipping")
    with check("gradient clipping: clip_grad_norm_, and train with clipping", 0.5):
        _clip_matches(6, 0.5)
        got, expected, _ = _train_case(11, 6, 0.05, n_layer=1)
        _check_weights(got, expected, on="seed 11, 6 steps, grad_clip=0.05")
    return True


VISIBLE_TESTS["training"] = _visible(test_training_visible)
test_training_visible()
### BEGIN HIDDEN TESTS
with check("train: a hidden untied model, other betas, more steps, clipping and decay", 0.5):
    _got, _expected, _ = _train_case(12, 10, 0.5, weight_decay=0.3, betas=(0.8, 0.99), tie_weights=False, n_head=4)
    _check_weights(_got, _expected, on="a hidden untied 2-layer model, 10 steps")
    _adamw_matches(13, 12, dict(lr=0.02, betas=(0.5, 0.9), eps=1e-6, weight_decay=0.2), [{"weight_decay": 0.0}, {}])
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-5", "locked": true, "schema_version": 3, "solution": false}
# ## 4. Your sampler (HW6) and your cache (HW5)
#
# Paste `apply_temperature`, `top_k_filter` and `top_p_filter` from HW6, then write
# `make_sample_next(temperature, top_k=None, top_p=None, generator=None)`: it returns a
# function `sample_next(logits)` (1-D logits `(V,)` -> an int) that, for `temperature == 0`,
# returns the argmax; otherwise applies, **in this order**, the temperature, top-k (when
# `top_k` is not `None`), top-p (when `top_p` is not `None`), then draws one token with
# `torch.multinomial(torch.softmax(logits, -1)[None], 1, generator=generator)` (this order
# and this one draw per token are the reference's, `lmcourse.generate`).
#
# Then paste HW5's `forward_with_cache`, `prefill`, `decode_step`, `generate_cached` and
# `find_stop` (same conventions: the weights by their reference names, `config` a dict).

# %% nbgrader={"grade": false, "grade_id": "sampler", "locked": false, "schema_version": 3, "solution": true}
### SOLUTION FROM hw6_decoding:temperature


### SOLUTION FROM hw6_decoding:top_k


### SOLUTION FROM hw6_decoding:top_p


def make_sample_next(temperature, top_k=None, top_p=None, generator=None):
    """A sample_next(logits (V,)) -> int: argmax at temperature 0, else filtered multinomial."""
    ### BEGIN SOLUTION
    def sample_next(logits):
        if temperature == 0:
            return int(logits.argmax())
        z = apply_temperature(logits, temperature)
        if top_k is not None:
            z = top_k_filter(z, top_k)
        if top_p is not None:
            z = top_p_filter(z, top_p)
        return int(torch.multinomial(torch.softmax(z, dim=-1)[None], 1, generator=generator))

    return sample_next
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "cache", "locked": false, "schema_version": 3, "solution": true}
### SOLUTION FROM hw5_generation_kv_cache:prefill_decode


### SOLUTION FROM hw5_generation_kv_cache:generate_cached


### SOLUTION FROM hw5_generation_kv_cache:find_stop

# %% nbgrader={"grade": true, "grade_id": "test_sampler_and_cache", "locked": true, "points": 2, "schema_version": 3, "solution": false} lmcourse={"allow": ["lmcourse.data"]}
def _reference_generate(model, prompt, n, temperature=0.0, top_k=None, top_p=None, seed=0):
    out = ref_gen.generate(model, prompt, n, SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p),
                           generator=torch.Generator().manual_seed(seed))
    return out.new_tokens[0], out.finish_reasons[0]


def _my_generate(model, prompt, n, temperature=0.0, top_k=None, top_p=None, seed=0):
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    got = generate_cached(weights, model.config.to_dict(), list(prompt), n,
                          make_sample_next(temperature, top_k, top_p, torch.Generator().manual_seed(seed)))
    assert isinstance(got, tuple) and len(got) == 3, "generate_cached returns (new_tokens, reason, text)"
    return list(got[0]), got[1]


def test_sampler_and_cache_visible():
    model = _ref_gpt(20)
    with check("greedy generation with your cache equals the reference", 1):
        got, exp = _my_generate(model, [5, 6, 7], 20), _reference_generate(model, [5, 6, 7], 20)
        assert got == exp, f"greedy, 20 tokens: expected {exp}, got {got}"
    with check("top-k / top-p sampling with your sampler and cache equals the reference", 0.5):
        for t, k, p, s in ((0.9, 20, None, 1), (1.0, None, 0.8, 2), (0.7, 50, 0.9, 3)):
            got, exp = _my_generate(model, [1], 25, t, k, p, s), _reference_generate(model, [1], 25, t, k, p, s)
            assert got == exp, f"temperature {t}, top_k {k}, top_p {p}, seed {s}: expected {exp}, got {got}"
    return True


VISIBLE_TESTS["sampler and cache"] = _visible(test_sampler_and_cache_visible)
test_sampler_and_cache_visible()
### BEGIN HIDDEN TESTS
with check("hidden models and sampling settings (a new model every call)", 0.5):
    for _seed, _kw, _args in ((21, dict(n_layer=1, vocab_size=270), (1.3, None, 0.5, 4)),
                              (22, dict(n_head=4, tie_weights=False), (0.6, 5, 0.95, 5)), (23, dict(), (0.0, None, None, 0))):
        _m = _ref_gpt(_seed, **_kw)
        _got, _exp = _my_generate(_m, [5, 6, 7], 25, *_args), _reference_generate(_m, [5, 6, 7], 25, *_args)
        assert _got == _exp, f"hidden model {_seed}: the tokens differ from the reference's"
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-6", "locked": true, "schema_version": 3, "solution": false}
# ## 5. The run: your language model
#
# Write the glue:
#
# - `evaluate(model, ids, block_size)`: the total negative log-likelihood (nats, a float)
#   of the token stream `ids` and the number of tokens predicted, `(total_nll, n)`. Cut
#   `ids` into consecutive windows `x = ids[i : i + block_size]`,
#   `y = ids[i + 1 : i + block_size + 1]` for `i = 0, block_size, 2 * block_size, ...`
#   (the last one shorter), so every token but the first is predicted exactly once.
# - `run_capstone(text, n_merges, bpe_chars, model_config, train_config, seed, prompt,
#   n_new, device="cpu")`:
#   1. split `text`: the first 90% (`int(0.9 * len(text))` characters) is training text, the
#      rest validation text;
#   2. learn `n_merges` merges with **your** `train_bpe` on the first `bpe_chars` characters
#      of the training text, and encode both texts with **your** `encode` (1-D LongTensors);
#   3. `torch.manual_seed(seed)`, build **your** `GPT(vocab_size=256 + len(merges),
#      **model_config)` and train it with **your** `train(model, train_ids,
#      generator=torch.Generator().manual_seed(seed), **train_config)`;
#   4. evaluate on the validation ids: `val_loss = total_nll / n` (nats per token) and
#      `bits_per_byte = total_nll / (ln 2 * n_bytes)`, with `n_bytes` the UTF-8 bytes of
#      the validation text;
#   5. generate `n_new` tokens (prompt plus new tokens fit in `block_size`) after `encode(prompt)` with **your** `generate_cached`
#      and **your** sampler, `make_sample_next(0.8, top_k=20,
#      generator=torch.Generator().manual_seed(seed))`, with `config` the dict of HW5 (`n_layer`, `n_head`,
#      `n_kv_head`, `n_embd`, `layer_norm_eps`, ...) and the weights `model.state_dict()`;
#      decode them with **your** `decode`.
#
#   `device` is where the model trains and is evaluated (the graded run: the CPU; the GPU
#   cell at the end passes `"cuda"`); the weights for generation are a CPU copy.
#
#   Return a dict with the keys `"merges"`, `"losses"`, `"val_loss"`, `"bits_per_byte"`,
#   `"state_dict"` (your trained model's `state_dict()`), `"sample_tokens"` and
#   `"sample_text"`.
#
# The test runs it with the settings of the locked cell below, recomputes your validation
# loss from your returned weights with the reference, and asks your model to beat a
# **unigram model** (token frequencies of the training text) on the validation text.

# %% nbgrader={"grade": false, "grade_id": "run", "locked": false, "schema_version": 3, "solution": true}
def evaluate(model, ids, block_size):
    """(total NLL in nats of ids[1:] given what precedes them in windows, number of tokens predicted)."""
    ### BEGIN SOLUTION
    total, n = 0.0, 0
    with torch.inference_mode():  # no autograd graph, and no tensors that could join one
        for i in range(0, len(ids) - 1, block_size):
            x = ids[i:i + block_size][None]
            y = ids[i + 1:i + block_size + 1][None]
            x = x[:, :y.size(1)]
            logits = logits_of(model(x))
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").item()
            n += y.numel()
    return total, n
    ### END SOLUTION


def run_capstone(text, n_merges, bpe_chars, model_config, train_config, seed, prompt, n_new, device="cpu"):
    """Tokenise, train, evaluate and generate with your own pieces; return the results (a dict)."""
    ### BEGIN SOLUTION
    cut = int(0.9 * len(text))
    train_text, val_text = text[:cut], text[cut:]
    merges = train_bpe(train_text[:bpe_chars], n_merges)
    train_ids = torch.tensor(encode(train_text, merges), dtype=torch.long)
    val_ids = torch.tensor(encode(val_text, merges), dtype=torch.long)
    torch.manual_seed(seed)
    model = GPT(vocab_size=256 + len(merges), **model_config).to(device)
    losses = train(model, train_ids.to(device), generator=torch.Generator().manual_seed(seed), **train_config)
    total, n = evaluate(model, val_ids.to(device), model_config["block_size"])
    config = dict(model_config, vocab_size=256 + len(merges), n_kv_head=model_config["n_head"],
                  layer_norm_eps=model_config.get("eps", 1e-5))
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}  # generation on the CPU
    sample_next = make_sample_next(0.8, top_k=20, generator=torch.Generator().manual_seed(seed))
    tokens, _, sample = generate_cached(weights, config, encode(prompt, merges), n_new, sample_next,
                                        decode=lambda ids: decode(ids, merges))
    return {"merges": merges, "losses": losses, "val_loss": total / n,
            "bits_per_byte": total / (math.log(2) * len(val_text.encode("utf-8"))),
            "state_dict": weights, "sample_tokens": tokens, "sample_text": sample}
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "settings", "locked": true, "schema_version": 3, "solution": false}
# The graded run: small enough for the grader's CPU budget (a few seconds).
TEXT = shakespeare_text()[:100_000]
SETTINGS = dict(
    n_merges=64, bpe_chars=20_000,
    model_config=dict(block_size=32, n_layer=2, n_head=2, n_embd=48),
    train_config=dict(steps=120, batch_size=16, block_size=32, lr=3e-3, min_lr=3e-4, warmup=10,
                      betas=(0.9, 0.95), weight_decay=0.1, grad_clip=1.0),
    seed=0, prompt="ROMEO:", n_new=24,
)

# %% nbgrader={"grade": true, "grade_id": "test_run", "locked": true, "points": 4, "schema_version": 3, "solution": false} lmcourse={"allow": ["lmcourse.data"]}
def _unigram_loss(train_ids, val_ids, V):
    """Cross-entropy (nats per token) of the validation ids under the training ids' add-one frequencies."""
    counts = torch.bincount(train_ids, minlength=V).double() + 1.0
    logp = (counts / counts.sum()).log()
    return float(-logp[val_ids[1:]].mean())


def _reference_eval(model, ids, T):
    tot, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, T):
            tgt = ids[start + 1:start + T + 1][None]
            out, _ = model(ids[start:start + T][None][:, :tgt.size(1)])
            tot += F.cross_entropy(out.reshape(-1, out.size(-1)), tgt.reshape(-1), reduction="sum").item()
            count += tgt.numel()
    return tot, count


def test_run_visible():
    cut = int(0.9 * len(TEXT))
    expected_merges = reference_merges(TEXT[:cut][:SETTINGS["bpe_chars"]], SETTINGS["n_merges"])
    tok = reference_tokenizer(expected_merges)
    train_ids = torch.tensor(tok.encode(TEXT[:cut]))
    val_ids = torch.tensor(tok.encode(TEXT[cut:]))
    V = 256 + len(expected_merges)
    mc = SETTINGS["model_config"]
    model = ref.GPT(ref.GPTConfig(vocab_size=V, dropout=0.0, **mc)).eval()
    with check("the run's tokeniser: your merges are the reference's", 1):
        out = run_capstone(TEXT, **SETTINGS)  # the whole run: every later check reads its results
        assert isinstance(out, dict), f"run_capstone returns a dict, got {type(out).__name__}"
        assert _as_pairs(out["merges"]) == expected_merges, "the merges learned in the run differ from the reference's"
    with check("validation loss and bits per byte, recomputed from your weights", 1):
        model.load_state_dict(out["state_dict"])
        total, n = _reference_eval(model, val_ids, mc["block_size"])
        val_loss = total / n
        bpb = total / (math.log(2) * len(TEXT[cut:].encode("utf-8")))
        assert abs(out["val_loss"] - val_loss) <= 1e-4 * val_loss, f"val_loss: you report {out['val_loss']:.5f}, your weights give {val_loss:.5f}"
        assert abs(out["bits_per_byte"] - bpb) <= 1e-4 * bpb, f"bits_per_byte: you report {out['bits_per_byte']:.5f}, your weights give {bpb:.5f}"
    with check("your model beats a unigram model on the validation text", 1):
        baseline = _unigram_loss(train_ids, val_ids, V)
        assert val_loss < baseline - 0.25, f"validation loss {val_loss:.3f} nats/token; the unigram model gets {baseline:.3f}"
        print(f"validation loss {val_loss:.3f} nats/token, {bpb:.3f} bits per byte (unigram: {baseline:.3f} nats/token)")
    with check("generation with your cache equals the reference's on your weights", 0.5):
        prompt_ids = tok.encode(SETTINGS["prompt"])
        expected, _ = _reference_generate(model, prompt_ids, SETTINGS["n_new"], 0.8, 20, None, SETTINGS["seed"])
        assert list(out["sample_tokens"]) == expected, "the generated tokens differ from the reference's generation on your weights"
        assert out["sample_text"] == tok.decode(expected), "sample_text is not the decoded tokens"
        print(SETTINGS["prompt"] + out["sample_text"])
    return True


VISIBLE_TESTS["the run"] = _visible(test_run_visible)
test_run_visible()
### BEGIN HIDDEN TESTS
with check("evaluate on hidden models and window sizes", 0.5):
    for _seed, _T in ((30, 32), (31, 7)):
        _m = _ref_gpt(_seed)
        _ids = torch.randint(300, (101,), generator=torch.Generator().manual_seed(_seed))
        _total, _n = evaluate(_mine_like(_m), _ids, _T)
        _et, _en = _reference_eval(_m, _ids, _T)
        assert _n == _en, f"evaluate: {_n} tokens predicted, expected {_en}"
        assert abs(_total - _et) <= 1e-4 * abs(_et), f"evaluate: total NLL {_total:.5f}, expected {_et:.5f}"
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-7", "locked": true, "schema_version": 3, "solution": false}
# ## A larger run on a GPU (not graded)
#
# On a Colab GPU (*Runtime / Change runtime type / GPU*) the cell below trains a larger model
# of your own on the whole corpus with the same code, then samples from it with top-p. On a
# CPU it does nothing. Your pieces must then keep tensors on the model's device (positions
# on `idx.device` in the forward, the batch offsets moved to `data.device`); the graded run
# is on the CPU.

# %% nbgrader={"grade": false, "grade_id": "gpu_run", "locked": true, "schema_version": 3, "solution": false}
_device = globals().get("device")
if _device is not None and getattr(_device, "type", None) == "cuda" and "run_capstone" in globals():
    import time

    _t0 = time.perf_counter()
    _big = run_capstone(shakespeare_text(), n_merges=256, bpe_chars=200_000,
                        model_config=dict(block_size=128, n_layer=4, n_head=4, n_embd=256),
                        train_config=dict(steps=600, batch_size=32, block_size=128, lr=1e-3, min_lr=1e-4,
                                          warmup=50, betas=(0.9, 0.95), weight_decay=0.1, grad_clip=1.0),
                        seed=0, prompt="ROMEO:", n_new=120, device=_device)
    print(f"{time.perf_counter() - _t0:.0f} s; validation loss {_big['val_loss']:.3f} nats/token, "
          f"{_big['bits_per_byte']:.3f} bits per byte")
    print("ROMEO:" + _big["sample_text"])
else:
    print("no GPU here: the larger run is skipped (the graded run above is the CPU one)")
