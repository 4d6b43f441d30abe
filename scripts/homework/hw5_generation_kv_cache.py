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
# # HW5: The generation loop and the KV cache
#
# [Open this notebook in Colab](https://colab.research.google.com/github/lmcourse-org/lmcourse/blob/main/assignments/hw5_generation_kv_cache/hw5_generation_kv_cache.ipynb)
#
# In this homework you write the loop that turns a language model into a text generator
# ([Chapter 6, *The generation loop*](https://lmcourse-org.github.io/lmcourse/book/06_generation_loop.html)) and the cache that makes
# it fast ([Chapter 7, *KV cache: prefill and decode*](https://lmcourse-org.github.io/lmcourse/book/07_kv_cache.html)),
# then drive a whole model with a cache of your own:
#
# | part | what you write | points | graded by |
# |---|---|---|---|
# | 1 | `generate_loop`: predict, pick, append, repeat, with the stop conditions | 3 | `test_generate_loop` |
# | 2 | `CachedSelfAttention`: attention with a key/value cache | 4 | `test_cached_attention` |
# | 3 | `kv_cache_bytes`: how much memory the cache takes | 2 | `test_kv_cache_bytes` |
# | 4 | `prefill` and `decode_step`: the GPT forward with **your own cache** | 4 | `test_prefill_decode` |
# | 5 | `generate_cached`: the loop on your cache; cached equals uncached | 3 + 1 | `test_generate_cached`, `test_cached_equals_uncached` |
# | 6 | `find_stop` and stop strings in `generate_cached` | 3 + 2 | `test_find_stop`, `test_generate_stop` |
# | 7 | written: why decoding is limited by memory bandwidth (graded by hand) | 3 | `decode_bandwidth` |
#
# **Conventions the tests fix** (each is stated again in its part): token sequences are
# compared exactly only under greedy decoding or the tests' seeded `sample_next` (on models
# without near ties); logits and attention outputs within float32 rounding
# (`atol=1e-5, rtol=1e-4`; float64: `atol=1e-10, rtol=1e-8`); the MLP's GELU is the tanh
# form; a stop string is searched only where a new one can be, and the text returned stops
# just before it.
#
# **Available** while graded: torch, numpy and the standard library, and `lmcourse.model`
# in the checks that hand you a model (`test_generate_loop`, `test_cached_equals_uncached`).
# **Forbidden** (absent while graded): every other `lmcourse` module, and all of `lmcourse`
# in the other checks (the reference `KVCache` and `lmcourse.generate` included), so calling
# the reference instead of writing the code scores 0.
#
# Write your code between the `# YOUR CODE HERE` lines only and do not edit the test cells.
# Each test cell shows some checks; more (hidden) checks run when the homework is graded, on
# other models, shapes and seeds. Each check is worth its own points (partial credit). Run
# all cells (*Runtime / Run all*) before you submit; the last cell prints a summary.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false} tags=["setup"]
# The course setup cell (SETUP_CELL of scripts/new_chapter.py) is put here by scripts/build_homework.py.

# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false}
import copy
import math
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)  # the models here are tiny: one CPU thread is fastest (and fair on a shared machine)
VISIBLE_TESTS = {}  # name -> function re-run by the summary cell at the end


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-2", "locked": true, "schema_version": 3, "solution": false}
# ## 1. The generation loop
#
# A language model gives the distribution of the next token. To generate, repeat:
#
# 1. run the model on the tokens so far (`ids`, the prompt plus everything generated);
# 2. keep **only the logits of the last position**: they predict the next token;
# 3. pick a token with `sample_next(logits)` (it receives a 1-D tensor of shape `(V,)` and
#    returns the chosen id: greedy `argmax`, or a draw at some temperature; it is given to
#    you, so the same loop serves every decoding strategy);
# 4. append it and go on, until a **stop condition** holds:
#    - the token is `eos_id` (when `eos_id` is not `None`): the EOS token **is kept** in the
#      output, and the reason is `"eos"`;
#    - `max_new_tokens` tokens were generated: the reason is `"length"` (also when
#      `max_new_tokens == 0`).
#
# `model` is an `lmcourse.model.GPT`: `logits, _ = model(idx)` with `idx` a LongTensor of
# shape `(1, T)` gives logits of shape `(1, T, V)`. It has `model.config.block_size` learned
# positions: feed at most the last `block_size` tokens (the tests stay within it). Run the
# model under `torch.no_grad()` and recompute the whole context at every step (no cache:
# that is section 2). Return `(new_tokens, reason)`: the list of generated ids (Python ints,
# without the prompt) and the finish reason. This is what `lmcourse.generate.generate`
# returns in `new_tokens` and `finish_reasons` for one prompt.

# %% nbgrader={"grade": false, "grade_id": "generate_loop", "locked": false, "schema_version": 3, "solution": true}
def generate_loop(model, prompt, max_new_tokens, sample_next, eos_id=None):
    """Generate after `prompt` (list[int]); returns (new_tokens: list[int], reason: "eos" | "length")."""
    ### BEGIN SOLUTION
    ids = list(prompt)
    new_tokens = []
    block = model.config.block_size
    with torch.no_grad():  # no backward pass here: do not build the autograd graph
        for _ in range(max_new_tokens):
            idx = torch.tensor([ids[-block:]], dtype=torch.long)  # (1, T)
            logits, _ = model(idx)  # (1, T, V)
            token = int(sample_next(logits[0, -1]))  # only the last position predicts the next token
            ids.append(token)
            new_tokens.append(token)
            if eos_id is not None and token == eos_id:
                return new_tokens, "eos"
    return new_tokens, "length"
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_generate_loop", "locked": true, "points": 3, "schema_version": 3, "solution": false} lmcourse={"allow": ["lmcourse.model"]}
import lmcourse.generate as ref_gen
import lmcourse.long_context as ref_lc
import lmcourse.model as ref
from lmcourse.grading import check, check_float, check_tensor, checks_done
from lmcourse.sampling import SamplingConfig


def _tiny_gpt(seed, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=19, block_size=32, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    cfg.update(kw)
    return ref.GPT(ref.GPTConfig(**cfg)).eval()


def _sampler(temperature, seed=0):
    """A sample_next: argmax for temperature 0, else one draw from softmax(logits / temperature)."""
    g = torch.Generator().manual_seed(seed)

    def sample_next(logits):
        if temperature == 0:
            return int(logits.argmax())
        probs = torch.softmax(logits.float()[None] / temperature, dim=-1)  # (1, V)
        return int(torch.multinomial(probs, 1, generator=g))

    return sample_next


def _reference(model, prompt, n, temperature, seed=0, eos_id=None):
    out = ref_gen.generate(model, prompt, n, SamplingConfig(temperature=temperature), eos_token_id=eos_id,
                           use_cache=False, generator=torch.Generator().manual_seed(seed))
    return out.new_tokens[0], out.finish_reasons[0]


def _check_generation(got, expected, on):
    assert isinstance(got, tuple) and len(got) == 2, f"{on}: return (new_tokens, reason), got {got!r}"
    tokens, reason = got
    assert isinstance(tokens, list) and all(type(t) is int for t in tokens), f"{on}: new_tokens must be a list of ints, got {tokens!r}"
    exp_tokens, exp_reason = expected
    if tokens != exp_tokens:
        i = next((i for i, (a, b) in enumerate(zip(tokens, exp_tokens)) if a != b), min(len(tokens), len(exp_tokens)))
        raise AssertionError(f"{on}: tokens differ from step {i} on: expected {exp_tokens}, got {tokens}")
    assert type(reason) is str and reason == exp_reason, f"{on}: expected finish reason {exp_reason!r}, got {reason!r}"


def test_generate_loop_visible():
    model = _tiny_gpt(0)
    prompt = [1, 2, 3]
    with check("greedy and seeded sampling equal the reference", 1):
        _check_generation(generate_loop(model, prompt, 10, _sampler(0)), _reference(model, prompt, 10, 0),
                          on="seed 0, greedy, 10 tokens")
        _check_generation(generate_loop(model, prompt, 12, _sampler(0.8, seed=5)), _reference(model, prompt, 12, 0.8, seed=5),
                          on="seed 0, temperature 0.8 (generator seed 5), 12 tokens")
    with check("stop conditions and the logits given to sample_next", 1):
        sampled, _ = _reference(model, prompt, 12, 0.8, seed=5)
        eos = sampled[4]  # a token the sampler produces: generation must stop there and keep it
        expected = _reference(model, prompt, 12, 0.8, seed=5, eos_id=eos)
        assert expected[1] == "eos"
        _check_generation(generate_loop(model, prompt, 12, _sampler(0.8, seed=5), eos_id=eos), expected,
                          on=f"seed 0, temperature 0.8, eos_id={eos}")
        _check_generation(generate_loop(model, prompt, 0, _sampler(0)), ([], "length"), on="max_new_tokens=0")
        seen = []
        generate_loop(model, [4], 3, lambda logits: seen.append(tuple(logits.shape)) or 0)
        assert seen == [(19,)] * 3, f"sample_next must get the last position's logits, shape (V,) = (19,); got {seen}"
    return True


VISIBLE_TESTS["generate_loop"] = test_generate_loop_visible
test_generate_loop_visible()
### BEGIN HIDDEN TESTS
_models = [_tiny_gpt(1, n_layer=1, n_kv_head=1), _tiny_gpt(2, vocab_size=40, n_embd=32, n_head=4), _tiny_gpt(3)]
_cases = [  # (model index, prompt, max_new_tokens, temperature, seed, eos position or None)
    (0, [5], 20, 0, 0, None),
    (1, [0, 39, 7, 7, 2, 11], 15, 1.5, 7, None),
    (2, list(range(19)), 13, 1.0, 8, 6),  # prompt + new tokens = block_size exactly
    (0, [3, 3], 9, 0.7, 9, 0),  # EOS on the first token
    (1, [8], 6, 0, 0, "absent"),  # an EOS id that never comes: reason "length"
]
_expected = []
for m, p, n, t, s, e in _cases:
    free = _reference(_models[m], p, n, t, s)
    V = _models[m].config.vocab_size
    absent = next(i for i in range(V) if i not in free[0])  # a valid id the free run never produces
    eos = None if e is None else (absent if e == "absent" else free[0][e])
    _expected.append((eos, free if eos is None else _reference(_models[m], p, n, t, s, eos)))
with check("hidden models, prompts and stop conditions", 1):
    _got = [generate_loop(_models[m], p, n, _sampler(t, s), eos) for (m, p, n, t, s, _), (eos, _) in zip(_cases, _expected)]
    for (m, p, n, t, s, e), (eos, exp), got in zip(_cases, _expected, _got):
        _check_generation(got, exp, on=f"hidden model {m}, max_new_tokens={n}, temperature {t}, eos_id={eos}")
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-3", "locked": true, "schema_version": 3, "solution": false}
# ## 2. A KV cache for causal self-attention
#
# Without a cache, step $n$ of the loop recomputes the keys and values of all $n$ tokens,
# although only the newest one is new. A **KV cache** keeps the keys and values of the
# tokens already processed, per attention layer, so that each step only computes $q, k, v$
# for the new token and attends to everything cached:
#
# - **prefill**: the prompt (a chunk of $T$ tokens) goes through once; its keys and values
#   are stored;
# - **decode**: each new token (a chunk of $T = 1$) appends its key and value and attends to
#   all $L + 1$ stored positions.
#
# Write `CachedSelfAttention(n_embd, n_head, n_kv_head=None, bias=True)`, a module with
# exactly the parameters of `lmcourse.model.CausalSelfAttention` so that
# `mine.load_state_dict(reference.state_dict())` works:
#
# - `c_attn`: Linear `C → (n_head + 2 * n_kv_head) * D` producing, in this order along the
#   last dimension, the queries (`n_head` heads), the keys and the values (`n_kv_head` heads
#   each), with `D = C // n_head`; `n_kv_head=None` means `n_head`;
# - `c_proj`: Linear `C → C` applied after the heads are put back side by side.
#
# With grouped-query attention (`n_kv_head < n_head`) each key/value head serves
# `n_head // n_kv_head` consecutive query heads: repeat them with
# `k.repeat_interleave(n_head // n_kv_head, dim=1)` **after** reading the cache.
#
# `forward(x, use_cache=False)` with `x` of shape `(B, T, C)` returns `(B, T, C)`:
#
# - `use_cache=False`: ordinary causal self-attention over `x` alone; the cache is untouched;
# - `use_cache=True`: `x` holds the `T` positions that follow the `L` positions already in
#   the cache. Compute their `q, k, v`, append `k, v` to the cache attributes `self.k_cache`,
#   `self.v_cache` (shape `(B, n_kv_head, L + T, D)` afterwards, before any repeat), and let
#   new query $i$ (absolute position $L + i$) attend to the keys $0 \dots L + i$.
#
# `reset_cache()` empties the cache (`self.k_cache = self.v_cache = None`, also the state
# after construction). Careful: `F.scaled_dot_product_attention(..., is_causal=True)` aligns
# its mask to the **top-left** corner, which is wrong when there are more keys than queries;
# pass an explicit boolean mask instead (or write the attention out as in HW3).

# %% nbgrader={"grade": false, "grade_id": "cached_attention", "locked": false, "schema_version": 3, "solution": true}
class CachedSelfAttention(nn.Module):
    """Causal self-attention (parameters c_attn, c_proj) with a key/value cache."""

    def __init__(self, n_embd: int, n_head: int, n_kv_head=None, bias: bool = True):
        super().__init__()
        self.n_head = n_head
        self.n_kv_head = n_head if n_kv_head is None else n_kv_head
        self.head_dim = n_embd // n_head
        self.k_cache = None  # (B, n_kv_head, L, D) once something is cached
        self.v_cache = None
        ### BEGIN SOLUTION
        qkv_out = (self.n_head + 2 * self.n_kv_head) * self.head_dim
        self.c_attn = nn.Linear(n_embd, qkv_out, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        ### END SOLUTION

    def reset_cache(self) -> None:
        self.k_cache = None
        self.v_cache = None

    def forward(self, x: torch.Tensor, use_cache: bool = False) -> torch.Tensor:
        ### BEGIN SOLUTION
        B, T, C = x.shape
        H, Hk, D = self.n_head, self.n_kv_head, self.head_dim
        q, k, v = self.c_attn(x).split([H * D, Hk * D, Hk * D], dim=2)
        q = q.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, Hk, D).transpose(1, 2)  # (B, Hk, T, D)
        v = v.view(B, T, Hk, D).transpose(1, 2)
        if use_cache:
            if self.k_cache is not None:
                k = torch.cat([self.k_cache, k], dim=2)  # (B, Hk, L + T, D)
                v = torch.cat([self.v_cache, v], dim=2)
            self.k_cache, self.v_cache = k, v
        S = k.size(2)
        k = k.repeat_interleave(H // Hk, dim=1)  # (B, H, S, D)
        v = v.repeat_interleave(H // Hk, dim=1)
        mask = torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T)  # query i sees keys <= S - T + i
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(D)  # (B, H, T, S)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        y = (weights @ v).transpose(1, 2).reshape(B, T, C)  # heads side by side
        return self.c_proj(y)
        ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test_cached_attention", "locked": true, "points": 4, "schema_version": 3, "solution": false}
# Tolerances: float32 atol=1e-5, rtol=1e-4; float64 atol=1e-10, rtol=1e-8.


def _attn_pair(seed, C, H, Hk=None, bias=True, dtype=torch.float32):
    torch.manual_seed(seed)
    cfg = ref.GPTConfig(n_embd=C, n_head=H, n_kv_head=Hk, bias=bias, dropout=0.0, block_size=64)
    reference = ref.CausalSelfAttention(cfg).to(dtype).eval()
    mine = CachedSelfAttention(C, H, Hk, bias=bias).to(dtype).eval()
    mine.load_state_dict(reference.state_dict())  # same names and shapes: c_attn, c_proj
    return mine, reference


def _reference_keys(reference, x):
    """Uncached output and the keys/values the reference KVCache stores for x."""
    B, T, _ = x.shape
    cache = ref.KVCache(1, B, reference.n_kv_head, T, reference.head_dim, dtype=x.dtype)
    with torch.no_grad():
        y = reference(x)
        reference(x, kv_cache=cache)
    return y, cache.k[0], cache.v[0]


def _run_cached(mine, x, chunks):
    """Feed x in chunks of the given sizes with the cache; concatenate the outputs."""
    mine.reset_cache()
    outs, t = [], 0
    with torch.no_grad():
        for n in chunks:
            outs.append(mine(x[:, t:t + n], use_cache=True))
            t += n
    return torch.cat(outs, dim=1)


def _cached_gpt_logits(model, attns, ids, chunks):
    """A GPT's logits computed chunk by chunk with CachedSelfAttention modules in place of its attention."""
    for a in attns:
        a.reset_cache()
    outs, t = [], 0
    with torch.no_grad():
        for n in chunks:
            pos = torch.arange(t, t + n)
            h = model.transformer.wte(ids[:, t:t + n]) + model.transformer.wpe(pos)
            for block, a in zip(model.transformer.h, attns):
                h = h + a(block.ln_1(h), use_cache=True)
                h = h + block.mlp(block.ln_2(h))
            outs.append(model.lm_head(model.transformer.ln_f(h)))
            t += n
    return torch.cat(outs, dim=1)


def _gpt_with_cached_attention(seed, **kw):
    model = _tiny_gpt(seed, **kw)
    c = model.config
    attns = []
    for block in model.transformer.h:
        a = CachedSelfAttention(c.n_embd, c.n_head, c.n_kv_head, bias=c.bias).eval()
        a.load_state_dict(block.attn.state_dict())
        attns.append(a)
    return model, attns


def test_cached_attention_visible():
    x = torch.randn(2, 9, 32, generator=torch.Generator().manual_seed(1))
    with check("output without the cache; the cache stays empty", 1):
        mine, reference = _attn_pair(0, 32, 4)
        y_ref, k_ref, v_ref = _reference_keys(reference, x)
        with torch.no_grad():
            check_tensor("output without cache", mine(x), y_ref, 1e-5, 1e-4, on="seed 0, C=32, H=4, x (2,9,32)")
        assert mine.k_cache is None, "use_cache=False must not fill the cache"
    with check("prefill then decode: outputs and cached keys/values", 1):
        mine, reference = _attn_pair(0, 32, 4)
        y_ref, k_ref, v_ref = _reference_keys(reference, x)
        y = _run_cached(mine, x, [5, 1, 1, 1, 1])  # prefill 5 tokens, then decode 4 one at a time
        check_tensor("cached output (prefill 5, then 4 single tokens)", y, y_ref, 1e-5, 1e-4, on="seed 0, C=32, H=4")
        check_tensor("k_cache after 9 positions", mine.k_cache, k_ref, 1e-5, 1e-4, on="seed 0 (B, n_kv_head, L, D)")
        check_tensor("v_cache after 9 positions", mine.v_cache, v_ref, 1e-5, 1e-4, on="seed 0 (B, n_kv_head, L, D)")
        mine, reference = _attn_pair(1, 32, 4, Hk=2)
        y_ref, _, _ = _reference_keys(reference, x)
        check_tensor("cached output", _run_cached(mine, x, [1] * 9), y_ref, 1e-5, 1e-4,
                     on="seed 1, grouped-query n_head=4, n_kv_head=2, decode from the first token")
        model, attns = _gpt_with_cached_attention(2)
        ids = torch.randint(19, (1, 12), generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            full, _ = model(ids)
        check_tensor("GPT logits with your cache", _cached_gpt_logits(model, attns, ids, [6] + [1] * 6), full, 1e-5, 1e-4,
                     on="seed 2 tiny GPT, prompt of 6 then 6 decode steps (cached logits vs the uncached forward)")
    return True


VISIBLE_TESTS["CachedSelfAttention"] = test_cached_attention_visible
test_cached_attention_visible()
### BEGIN HIDDEN TESTS
_cases = [  # (seed, C, H, Hk, bias, dtype, B, T, chunks, atol, rtol)
    (10, 48, 6, 1, False, torch.float32, 3, 11, [4, 2, 1, 1, 3], 1e-5, 1e-4),  # multi-query
    (11, 16, 1, None, True, torch.float32, 1, 1, [1], 1e-5, 1e-4),
    (12, 64, 8, 2, True, torch.float64, 2, 20, [7] + [1] * 13, 1e-10, 1e-8),
    (13, 32, 4, 4, True, torch.float32, 4, 16, [16], 1e-5, 1e-4),  # prefill only
]
_g = torch.Generator().manual_seed(5)
with check("hidden shapes, dtypes and chunkings; reset_cache", 1):
    _runs = []
    for seed, C, H, Hk, bias, dt, B, T, chunks, atol, rtol in _cases:
        mine, reference = _attn_pair(seed, C, H, Hk, bias, dt)
        x = torch.randn(B, T, C, generator=_g, dtype=dt)
        _runs.append((mine, x, chunks, _reference_keys(reference, x)))
    _model, _attns = _gpt_with_cached_attention(20, n_kv_head=1, n_layer=3)
    _ids = torch.randint(19, (2, 30), generator=_g)
    with torch.no_grad():
        _full, _ = _model(_ids)
    _got = [(_run_cached(m, x, ch), m.k_cache, m.v_cache) for m, x, ch, _ in _runs]
    _again = _run_cached(_runs[0][0], _runs[0][1], [11])  # reset_cache() must really empty the cache
    with torch.no_grad():
        _plain = _runs[2][0](_runs[2][1])  # use_cache=False after caching
    _logits = _cached_gpt_logits(_model, _attns, _ids, [10, 1, 1, 5, 1, 1, 1, 10])
    for case, (_, _, _, (y_ref, k_ref, v_ref)), (y, k, v) in zip(_cases, _runs, _got):
        on = f"hidden case (C, H, n_kv_head, bias, dtype, B, T)={case[1:8]}"
        atol, rtol = case[9], case[10]
        check_tensor("cached output", y, y_ref, atol, rtol, on=on)
        check_tensor("k_cache", k, k_ref, atol, rtol, on=on)
        check_tensor("v_cache", v, v_ref, atol, rtol, on=on)
    check_tensor("output after reset_cache()", _again, _runs[0][3][0], 1e-5, 1e-4, on="a hidden case run twice")
    check_tensor("output with use_cache=False", _plain, _runs[2][3][0], 1e-10, 1e-8, on="a hidden float64 case")
    check_tensor("GPT logits with your cache", _logits, _full, 1e-5, 1e-4, on="a hidden multi-query GPT, batch 2")
with check("the past is read from the cache (new weights for the new tokens only)", 1):
    # prefill with one set of weights, then load another: the cached keys/values must stay as they were
    _a, _ref_a = _attn_pair(70, 32, 4, Hk=2)
    _, _ref_b = _attn_pair(71, 32, 4, Hk=2)
    _x = torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(6))
    _cache = ref.KVCache(1, 1, 2, 8, 8)
    with torch.no_grad():
        _ref_a(_x[:, :5], kv_cache=_cache)
        _cache.advance(5)
        _expected = _ref_b(_x[:, 5:], kv_cache=_cache)
        _a.reset_cache()
        _a(_x[:, :5], use_cache=True)
        _a.load_state_dict(_ref_b.state_dict())
        _y = _a(_x[:, 5:], use_cache=True)
    check_tensor("output after new weights were loaded", _y, _expected, 1e-5, 1e-4, on="prefill 5 with weights A, then 3 with weights B")
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-4", "locked": true, "schema_version": 3, "solution": false}
# ## 3. How big is the cache?
#
# Every layer stores one key and one value vector per KV head, per position, per sequence:
#
# $$\text{bytes} = 2 \times n_\text{layer} \times n_\text{kv\_head} \times d_\text{head} \times n_\text{tokens} \times \text{batch} \times \text{bytes per element}.$$
#
# Write `kv_cache_bytes(n_layer, n_kv_head, head_dim, seq_len, batch=1, bytes_per_elem=2)`
# returning a Python `int` (`bytes_per_elem=2` is fp16/bf16, 4 is fp32). The classic example:
# a 70B-parameter model with grouped-query attention (80 layers, 8 KV heads of size 128)
# holds about 1.34 GB of cache for one 4096-token sequence in fp16; with 64 KV heads (no
# GQA) it would be 8 times more.

# %% nbgrader={"grade": false, "grade_id": "kv_cache_bytes", "locked": false, "schema_version": 3, "solution": true}
def kv_cache_bytes(n_layer: int, n_kv_head: int, head_dim: int, seq_len: int, batch: int = 1,
                   bytes_per_elem: int = 2) -> int:
    """Bytes of keys + values for every layer, KV head, position and sequence."""
    ### BEGIN SOLUTION
    return 2 * n_layer * n_kv_head * head_dim * seq_len * batch * bytes_per_elem
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_kv_cache_bytes", "locked": true, "points": 2, "schema_version": 3, "solution": false}
def _check_int(name, got, expected, on):
    assert type(got) is int, f"{name} ({on}): expected a Python int, got {type(got).__name__}"
    assert got == expected, f"{name} ({on}): expected {expected:,} bytes, got {got:,}"


def test_kv_cache_bytes_visible():
    with check("the formula on the examples", 1):
        got = kv_cache_bytes(80, 8, 128, 4096)
        _check_int("70B/GQA at 4096 tokens, fp16", got, ref_lc.kv_cache_bytes(80, 8, 128, 4096), on="(80, 8, 128, 4096)")
        check_float("the same in GB", got / 1e9, 1.342177280, 1e-9, 0.0, on="(80, 8, 128, 4096)")
        _check_int("fp32, batch 4", kv_cache_bytes(12, 12, 64, 1024, batch=4, bytes_per_elem=4),
                   ref_lc.kv_cache_bytes(12, 12, 64, 1024, batch=4, bytes_per_elem=4), on="GPT-2 small shape, batch=4, fp32")
        model = _tiny_gpt(0)  # the bytes a real cache allocates
        c = model.config
        _check_int("a real lmcourse KVCache", kv_cache_bytes(c.n_layer, c.n_kv_head, c.head_dim, 32, 3, 4),
                   model.new_kv_cache(3, 32).nbytes(), on="tiny GPT, batch 3, 32 positions, float32")
    return True


VISIBLE_TESTS["kv_cache_bytes"] = test_kv_cache_bytes_visible
test_kv_cache_bytes_visible()
### BEGIN HIDDEN TESTS
_cases = [  # (positional arguments, keyword arguments)
    ((80, 64, 128, 4096), {}),  # the same 70B model without GQA: 8x
    ((32, 8, 128, 131072), {"batch": 1, "bytes_per_elem": 1}),  # fp8, 128k context
    ((1, 1, 1, 1), {}),
    ((24, 16, 64, 0), {"batch": 8}),  # nothing cached yet
    ((4, 2, 32, 100), {"bytes_per_elem": 4, "batch": 7}),
]
_expected = [ref_lc.kv_cache_bytes(*a, **k) for a, k in _cases]
_model = _tiny_gpt(1, n_kv_head=1, n_layer=3)
_real = _model.new_kv_cache(5, 17).nbytes()
with check("hidden shapes, dtypes, batch sizes and a real multi-query cache", 1):
    _got = [kv_cache_bytes(*a, **k) for a, k in _cases]
    _mine_real = kv_cache_bytes(3, 1, _model.config.head_dim, 17, 5, 4)
    for (a, k), e, g in zip(_cases, _expected, _got):
        _check_int("kv_cache_bytes", g, e, on=f"args {a}, {k}")
    _check_int("a real multi-query KVCache", _mine_real, _real, on="3 layers, 1 KV head, batch 5, 17 positions")
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-own-1", "locked": true, "schema_version": 3, "solution": false}
# ## 4. Your model with your cache: prefill and decode
#
# In section 2 the test wired your attention into a model. Now you drive the whole model
# yourself, with a cache **you** design. You get the model as its weights: `weights` is the
# `state_dict()` of an `lmcourse.model.GPT` (a dict of tensors) and `config` its
# `config.to_dict()` (`n_layer`, `n_head`, `n_kv_head`, `n_embd`, `vocab_size`,
# `block_size`, `layer_norm_eps`, ...). The tests use GPT-2-style models only (learned
# positions, LayerNorm, GELU MLP); with `bias=False` the `.bias` entries are absent. The
# names are those of `lmcourse.model.GPT`:
#
# | step | weights |
# |---|---|
# | token + position embedding | `transformer.wte.weight` (V, C), `transformer.wpe.weight` (block_size, C) |
# | each block `i`, attention | `transformer.h.{i}.ln_1.{weight,bias}`, `transformer.h.{i}.attn.c_attn.{weight,bias}`, `transformer.h.{i}.attn.c_proj.{weight,bias}` |
# | each block `i`, MLP | `transformer.h.{i}.ln_2.{weight,bias}`, `transformer.h.{i}.mlp.c_fc.{weight,bias}`, `transformer.h.{i}.mlp.c_proj.{weight,bias}` |
# | final norm, LM head | `transformer.ln_f.{weight,bias}`, `lm_head.weight` (V, C) |
#
# A block is `x = x + c_proj(attention(ln_1(x)))`, then `x = x + mlp(ln_2(x))` with
# `mlp(h) = c_proj(gelu(c_fc(h)))`, **GELU in its tanh form**
# (`F.gelu(u, approximate="tanh")`, as GPT-2 and `lmcourse.model.MLP`); the attention is
# that of section 2 (queries, keys, values side by side in `c_attn`, grouped-query heads
# repeated). LayerNorm uses `eps = config["layer_norm_eps"]` (`F.layer_norm` is allowed).
# The logits are `ln_f(x) @ lm_head.weight.T`.
#
# Write two functions, for one sequence (batch size 1):
#
# - `prefill(weights, config, prompt)`: one forward pass over the whole prompt (a non-empty
#   list of ids) that fills a new cache with every layer's keys and values. Returns
#   `(logits, cache)`: the logits of the **last** prompt position, a 1-D tensor of shape
#   `(V,)` in the weights' dtype, and your cache.
# - `decode_step(weights, config, token, cache)`: feed **only** the one new token (an int)
#   at the next position, attending to everything in the cache and appending its own key
#   and value. Returns `(logits, cache)` for that position.
#
# The cache is yours: a list of `(k, v)` tuples, a dict, tensors allocated up front, a class
# of your own... It must hold its own length (the position of the next token). Always
# **return** the cache, even when you update it in place: the grader keeps only what you
# return and hands it to the next call.
#
# Two rules the tests check (both are what a KV cache is):
#
# - the past is **read from the cache, never recomputed**: the tests call `decode_step`
#   with other weights than those `prefill` was given, and expect the keys and values of
#   the past as they were cached, and the new token run through the weights `decode_step`
#   receives (keep no weights inside your cache);
# - the logits equal those of an uncached forward pass within float32 rounding
#   (`atol=1e-5, rtol=1e-4`; float64 weights: `atol=1e-10, rtol=1e-8`).
#
# Here `lmcourse.model` is **not available** (it is absent while this part is graded); write
# the forward pass with tensor operations (you may reuse your section-2 attention). Run
# under `torch.no_grad()`. The tests stay within `block_size` positions.

# %% nbgrader={"grade": false, "grade_id": "prefill_decode", "locked": false, "schema_version": 3, "solution": true}
def forward_with_cache(weights, config, ids, cache):
    """The GPT on ``ids`` (T ints) at the positions after those in ``cache``: logits (T, V).

    Appends the T new keys and values of every layer to ``cache``. A suggested helper for
    prefill and decode_step (the tests call only those two); shape it as you like.
    """
    ### BEGIN SOLUTION
    def linear(x, name):
        return F.linear(x, weights[name + ".weight"], weights.get(name + ".bias"))

    def layer_norm(x, name):
        return F.layer_norm(x, x.shape[-1:], weights[name + ".weight"], weights.get(name + ".bias"),
                            config["layer_norm_eps"])

    H = config["n_head"]
    Hk = config["n_kv_head"] or H
    C = config["n_embd"]
    D = C // H
    L, T = cache["length"], len(ids)
    idx = torch.tensor(ids, dtype=torch.long)
    x = (weights["transformer.wte.weight"][idx] + weights["transformer.wpe.weight"][L:L + T])[None]  # (1, T, C)
    mask = torch.ones(T, L + T, dtype=torch.bool).tril(diagonal=L)  # new query i sees keys 0..L+i
    for i in range(config["n_layer"]):
        p = f"transformer.h.{i}."
        q, k, v = linear(layer_norm(x, p + "ln_1"), p + "attn.c_attn").split([H * D, Hk * D, Hk * D], dim=-1)
        q = q.view(1, T, H, D).transpose(1, 2)  # (1, H, T, D)
        k = k.view(1, T, Hk, D).transpose(1, 2)  # (1, Hk, T, D)
        v = v.view(1, T, Hk, D).transpose(1, 2)
        if cache["k"][i] is not None:
            k = torch.cat([cache["k"][i], k], dim=2)  # (1, Hk, L + T, D)
            v = torch.cat([cache["v"][i], v], dim=2)
        cache["k"][i], cache["v"][i] = k, v
        k, v = k.repeat_interleave(H // Hk, dim=1), v.repeat_interleave(H // Hk, dim=1)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(D)  # (1, H, T, L + T)
        y = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1) @ v  # (1, H, T, D)
        x = x + linear(y.transpose(1, 2).reshape(1, T, C), p + "attn.c_proj")
        x = x + linear(F.gelu(linear(layer_norm(x, p + "ln_2"), p + "mlp.c_fc"), approximate="tanh"), p + "mlp.c_proj")
    cache["length"] = L + T
    return F.linear(layer_norm(x, "transformer.ln_f"), weights["lm_head.weight"])[0]  # (T, V)
    ### END SOLUTION


def prefill(weights, config, prompt):
    """One forward pass over ``prompt``: (logits of the last position (V,), a new cache)."""
    ### BEGIN SOLUTION
    cache = {"length": 0, "k": [None] * config["n_layer"], "v": [None] * config["n_layer"]}
    with torch.no_grad():
        logits = forward_with_cache(weights, config, list(prompt), cache)
    return logits[-1], cache
    ### END SOLUTION


def decode_step(weights, config, token, cache):
    """Feed one new token after the cached positions: (its logits (V,), the updated cache)."""
    ### BEGIN SOLUTION
    with torch.no_grad():
        logits = forward_with_cache(weights, config, [int(token)], cache)
    return logits[-1], cache
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_prefill_decode", "locked": true, "points": 4, "schema_version": 3, "solution": false} lmcourse={"inplace": true}
# The GPT's weights go to your code as plain tensors; lmcourse is absent there.
from lmcourse.grading import check, checks_done


def _weights_of(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, model.config.to_dict()


def _tol(dtype):
    return (1e-10, 1e-8) if dtype == torch.float64 else (1e-5, 1e-4)


def _reference_cached(models, prompt, tokens):
    """Logits of the last prompt position, then of each token: prefill with models[0], the
    i-th token decoded with models[i + 1], all through one lmcourse KVCache."""
    cache = models[0].new_kv_cache(1, len(prompt) + len(tokens))
    out = []
    with torch.no_grad():
        logits, _ = models[0](torch.tensor([prompt]), kv_cache=cache)
        out.append(logits[0, -1])
        for m, t in zip(models[1:], tokens):
            logits, _ = m(torch.tensor([[t]]), kv_cache=cache)
            out.append(logits[0, -1])
    return out


def _mine_cached(weight_list, config, prompt, tokens):
    """Your prefill with weight_list[0], then decode_step with weight_list[i + 1] for each token."""
    logits, cache = prefill(weight_list[0], config, list(prompt))
    out = [logits]
    for w, t in zip(weight_list[1:], tokens):
        logits, cache = decode_step(w, config, t, cache)
        out.append(logits)
    return out


def _check_steps(got, expected, dtype, on):
    assert isinstance(got, list) and len(got) == len(expected), f"{on}: expected {len(expected)} logits"
    atol, rtol = _tol(dtype)
    for i, (g, e) in enumerate(zip(got, expected)):
        check_tensor("prefill logits" if i == 0 else f"decode step {i} logits", g, e, atol, rtol, on=on)


def test_prefill_decode_visible():
    model = _tiny_gpt(0)
    weights, config = _weights_of(model)
    prompt, tokens = [1, 2, 3, 4, 5], [6, 0, 18, 7, 7, 2]
    full, _ = model(torch.tensor([prompt + tokens]))
    with check("prefill: the last prompt position's logits", 1):
        logits, _ = prefill(weights, config, prompt)
        check_tensor("prefill logits", logits, full[0, len(prompt) - 1].detach(), 1e-5, 1e-4, on="seed 0 tiny GPT, prompt of 5")
    with check("decode: one token at a time equals the uncached forward", 1):
        got = _mine_cached([weights] * (len(tokens) + 1), config, prompt, tokens)
        expected = [full[0, len(prompt) - 1 + i].detach() for i in range(len(tokens) + 1)]
        _check_steps(got, expected, torch.float32, on="seed 0 tiny GPT, prompt of 5, then 6 decode steps")
    with check("decode reads the past from the cache", 1):
        other = _tiny_gpt(1)  # same shapes, other weights: the past must stay as cached
        expected = _reference_cached([model, other, other], prompt, tokens[:2])
        got = _mine_cached([weights, _weights_of(other)[0], _weights_of(other)[0]], config, prompt, tokens[:2])
        _check_steps(got, expected, torch.float32, on="prefill with the seed-0 weights, decode with the seed-1 weights")
    return True


VISIBLE_TESTS["prefill / decode_step"] = test_prefill_decode_visible
test_prefill_decode_visible()
### BEGIN HIDDEN TESTS
with check("other configurations (grouped-query, no bias, untied, float64, a one-token prompt)", 1):
    _cases = [  # (seed, config changes, dtype, prompt, decode steps, same or other weights for them)
        (30, dict(n_kv_head=1, n_head=4, n_embd=32, n_layer=3), torch.float32, [3, 1, 4, 1, 5, 9, 2, 6], 10, "same"),
        (31, dict(bias=False, tie_weights=False, vocab_size=27), torch.float32, [26], 6, "other"),
        (32, dict(n_kv_head=2, n_head=4, n_embd=16), torch.float64, [0, 0, 0, 1], 6, "other"),
        (33, dict(block_size=20), torch.float32, list(range(12)), 8, "same"),  # fills the context to block_size
    ]
    _g = torch.Generator().manual_seed(34)
    for seed, kw, dt, prompt, n, mode in _cases:
        _models = [_tiny_gpt(seed + 100 * j, **kw).to(dt) for j in range(3 if mode == "other" else 1)]
        V = _models[0].config.vocab_size
        toks = torch.randint(V, (n,), generator=_g).tolist()
        ms = [_models[0]] + [_models[(j % (len(_models) - 1)) + 1] if mode == "other" else _models[0] for j in range(n)]
        exp = _reference_cached(ms, prompt, toks)
        wl = [_weights_of(m)[0] for m in ms]
        _check_steps(_mine_cached(wl, _models[0].config.to_dict(), prompt, toks), exp, dt,
                     on=f"hidden model {seed}, {len(prompt)}-token prompt, {n} decode steps ({mode} weights)")
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-own-2", "locked": true, "schema_version": 3, "solution": false}
# ## 5. The generation loop with your cache
#
# Now put the two together: `generate_cached(weights, config, prompt, max_new_tokens,
# sample_next, eos_id=None, stop=(), decode=None)` calls `prefill` **once** on the prompt,
# picks the first token with `sample_next` from the logits it returns, then calls
# `decode_step` with each new token, one at a time, until a stop condition holds. The
# stop conditions are those of section 1 (`"eos"`, kept in the output; `"length"`); section 6
# adds stop strings (`stop`, `decode`): until then they are `()` and `None`, so ignore them
# for now. No forward pass is needed after the last token.
#
# Return `(new_tokens, reason, text)`: the new ids (Python ints), the finish reason, and
# `text`, which is `None` when `decode` is `None` (section 6 says what it is otherwise).
#
# **What the tests fix.** The token sequences are compared exactly with the reference's
# `lmcourse.generate.generate`, under greedy decoding (`argmax`) and seeded sampling: the
# tests' `sample_next` is deterministic (section 1's), and the test models have no near
# ties, so float32 rounding never changes a token. Every hidden call gets a new model;
# and the last check is a property of your own code: **cached equals uncached**, your
# `generate_cached` and your `generate_loop` of section 1 give the same tokens on the same
# model.

# %% nbgrader={"grade": false, "grade_id": "generate_cached", "locked": false, "schema_version": 3, "solution": true}
def generate_cached(weights, config, prompt, max_new_tokens, sample_next, eos_id=None, stop=(), decode=None):
    """Prefill once, then decode one token at a time: (new_tokens, reason, text or None)."""
    ### BEGIN SOLUTION
    new_tokens, reason = [], "length"
    n_checked = 0  # characters of the decoded text already searched for stop strings
    logits = cache = None
    for step in range(max_new_tokens):
        if step == 0:
            logits, cache = prefill(weights, config, list(prompt))
        else:
            logits, cache = decode_step(weights, config, new_tokens[-1], cache)
        token = int(sample_next(logits))
        new_tokens.append(token)
        if eos_id is not None and token == eos_id:
            reason = "eos"
            break
        if stop:
            text = decode(new_tokens)
            cut = find_stop(text, n_checked, stop)
            if cut >= 0:
                return new_tokens, "stop", text[:cut]
            n_checked = len(text)
    return new_tokens, reason, (None if decode is None else decode(new_tokens))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_generate_cached", "locked": true, "points": 3, "schema_version": 3, "solution": false}
def _reference3(model, prompt, n, temperature, seed=0, eos_id=None):
    tokens, reason = _reference(model, prompt, n, temperature, seed, eos_id)
    return tokens, reason, None


def _check_generation3(got, expected, on):
    assert isinstance(got, tuple) and len(got) == 3, f"{on}: return (new_tokens, reason, text), got {got!r}"
    _check_generation(got[:2], expected[:2], on)
    assert got[2] == expected[2], f"{on}: expected text {expected[2]!r}, got {got[2]!r}"


def _gen_cached(model, prompt, n, temperature, seed=0, eos_id=None):
    weights, config = _weights_of(model)
    return generate_cached(weights, config, list(prompt), n, _sampler(temperature, seed), eos_id)


def test_generate_cached_visible():
    model = _tiny_gpt(0)
    with check("greedy decoding equals the reference", 1):
        _check_generation3(_gen_cached(model, [1, 2, 3], 10, 0), _reference3(model, [1, 2, 3], 10, 0),
                           on="seed 0, greedy, 10 tokens")
    with check("seeded sampling and the stop conditions equal the reference", 1):
        _check_generation3(_gen_cached(model, [1, 2, 3], 12, 0.8, seed=5), _reference3(model, [1, 2, 3], 12, 0.8, seed=5),
                           on="seed 0, temperature 0.8 (generator seed 5), 12 tokens")
        eos = _reference(model, [1, 2, 3], 12, 0.8, seed=5)[0][4]
        _check_generation3(_gen_cached(model, [1, 2, 3], 12, 0.8, 5, eos), _reference3(model, [1, 2, 3], 12, 0.8, 5, eos),
                           on=f"seed 0, temperature 0.8, eos_id={eos}")
        _check_generation3(_gen_cached(model, [1], 0, 0), ([], "length", None), on="max_new_tokens=0")
    return True


VISIBLE_TESTS["generate_cached"] = test_generate_cached_visible
test_generate_cached_visible()
### BEGIN HIDDEN TESTS
with check("hidden models, prompts and stop conditions (a new model every call)", 1):
    _cases = [  # (model seed, config changes, prompt, max_new_tokens, temperature, sampler seed, eos position)
        (40, dict(n_kv_head=1), [1, 2, 3], 15, 0, 0, None),  # the visible prompt on new models:
        (41, dict(n_kv_head=1), [1, 2, 3], 15, 0, 0, None),  # answers remembered from earlier calls fail
        (42, dict(vocab_size=40, n_embd=32, n_head=4), [1, 2, 3], 12, 0.8, 5, None),
        (43, dict(bias=False, tie_weights=False), [0, 18, 7, 7], 20, 1.2, 11, 3),
        (44, dict(), list(range(19)), 13, 1.0, 8, 0),  # EOS on the first token; context reaches block_size
        (45, dict(n_layer=3), [9], 31, 0.7, 2, None),  # the full context: 1 + 31 = block_size
    ]
    for seed, kw, p, n, t, s, e in _cases:
        _m = _tiny_gpt(seed, **kw)
        eos = None if e is None else _reference(_m, p, n, t, s)[0][e]
        _check_generation3(_gen_cached(_m, p, n, t, s, eos), _reference3(_m, p, n, t, s, eos),
                           on=f"hidden model {seed}, prompt {p[:6]}, {n} tokens, temperature {t}, eos_id={eos}")
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks


# %% nbgrader={"grade": true, "grade_id": "test_cached_equals_uncached", "locked": true, "points": 1, "schema_version": 3, "solution": false} lmcourse={"allow": ["lmcourse.model"]}
def _same_tokens(cached, uncached, on):
    assert isinstance(cached, tuple) and isinstance(uncached, tuple), f"{on}: both functions return tuples"
    assert cached[:2] == uncached[:2], f"{on}: generate_cached gave {cached[:2]}, generate_loop gave {uncached[:2]}"


def test_cached_equals_uncached_visible():
    with check("your generate_cached equals your generate_loop", 1):
        for seed, t in ((50, 0), (51, 0.9)):
            model = _tiny_gpt(seed)
            _same_tokens(_gen_cached(model, [4, 2], 14, t, seed=seed),
                         generate_loop(model, [4, 2], 14, _sampler(t, seed)), on=f"model {seed}, temperature {t}")
        ### BEGIN HIDDEN TESTS
        for seed, t, kw in ((52, 0, dict(n_kv_head=1, n_layer=3)), (53, 1.1, dict(vocab_size=33, n_embd=24, n_head=3))):
            model = _tiny_gpt(seed, **kw)
            _same_tokens(_gen_cached(model, [0, 1, 2, 3], 20, t, seed=seed),
                         generate_loop(model, [0, 1, 2, 3], 20, _sampler(t, seed)), on=f"hidden model {seed}, temperature {t}")
        ### END HIDDEN TESTS
    return True


VISIBLE_TESTS["cached equals uncached"] = test_cached_equals_uncached_visible
test_cached_equals_uncached_visible()
assert checks_done() is None  # raises AssertionError naming the failed checks


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-own-3", "locked": true, "schema_version": 3, "solution": false}
# ## 6. Stop strings, checked incrementally
#
# A chat model should stop when it writes `"\nUser:"`, or a code model at `"\n\n\n"`: a
# **stop string** ends generation when it appears in the decoded new text. Searching the
# whole text again after every token costs O(length) per step. A new match must end inside
# the text the last token added, so it can only start in that new text or in the last
# `longest - 1` characters before it (`longest` = the length of the longest stop string):
# search only there.
#
# Write `find_stop(text, n_checked, stop)`:
#
# - `text` is the decoded text so far, whose first `n_checked` characters were searched at
#   earlier steps (and held no stop string then);
# - search **only** `text[max(0, n_checked - longest + 1):]` and return the index **in
#   `text`** where the first stop string found there starts, or `-1` when there is none;
# - a stop string lying entirely **before** that window is old: it must not be reported
#   (the tests check this: a search of the whole text fails them). When several stop strings
#   occur, return the smallest start (in the tests they never overlap).
#
# Then finish `generate_cached` (section 5) for `stop` (a tuple of non-empty strings) and
# `decode` (a function from a list of ids to a `str`), **with these conventions**:
#
# - after each new token, the text is `decode(new_tokens)` (the prompt is not part of it)
#   and it is searched with `find_stop`; then `n_checked = len(text)`;
# - on a match the reason is `"stop"`, the token that completed the stop string **is kept**
#   in `new_tokens`, and the returned `text` **stops just before** the stop string
#   (`text[:index]`);
# - EOS wins: a token equal to `eos_id` ends with `"eos"` before the stop strings are
#   searched; otherwise the returned text is `decode(new_tokens)` whole.
#
# With the tests' decoders every token decodes on its own (to one or several characters), so
# `decode(new_tokens)` is the concatenation of the tokens' texts.

# %% nbgrader={"grade": false, "grade_id": "find_stop", "locked": false, "schema_version": 3, "solution": true}
def find_stop(text: str, n_checked: int, stop) -> int:
    """Start (in ``text``) of the first stop string in the part that can hold a new one, else -1."""
    ### BEGIN SOLUTION
    if not stop:
        return -1
    start = max(0, n_checked - max(len(s) for s in stop) + 1)  # a new match cannot start earlier
    hits = [i for i in (text.find(s, start) for s in stop) if i >= 0]
    return min(hits) if hits else -1
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_find_stop", "locked": true, "points": 3, "schema_version": 3, "solution": false}
def _reference_find(text, n_checked, stop):
    begin = max(0, n_checked - max((len(x) for x in stop), default=1) + 1)
    found = [j for j in (text.find(x, begin) for x in stop) if j >= 0]
    return min(found, default=-1)


def _check_find(got, expected, on):
    assert type(got) is int, f"find_stop ({on}): expected an int, got {type(got).__name__}"
    assert got == expected, f"find_stop ({on}): expected {expected}, got {got}"


def test_find_stop_visible():
    with check("matches in the new text and across its start", 1):
        _check_find(find_stop("hello world", 0, ("wor",)), 6, on="'hello world', nothing checked, stop 'wor'")
        _check_find(find_stop("abcdef", 4, ("cde",)), 2, on="'abcdef', 4 checked, 'cde' straddles the boundary")
        _check_find(find_stop("a\n\nb END", 0, ("END", "\n\n")), 1, on="two stop strings: the first one found")
        _check_find(find_stop("no match here", 5, ("stop",)), -1, on="no stop string")
    with check("the old text before the window is not searched", 1):
        _check_find(find_stop("abc", 3, ("abc",)), -1, on="nothing new: the text was all checked")
        _check_find(find_stop("STOP" + "x" * 20 + "yz", 24, ("STOP",)), -1,
                    on="'STOP' + 20 x + 'yz', 24 checked: the old 'STOP' is not new")
    return True


VISIBLE_TESTS["find_stop"] = test_find_stop_visible
test_find_stop_visible()
### BEGIN HIDDEN TESTS
_rng = random.Random(7)
_cases = []
for _ in range(60):  # random texts over a small alphabet: stop strings appear at random places
    stops = tuple(sorted({"".join(_rng.choice("ab c") for _ in range(_rng.randint(1, 4))) for _ in range(_rng.randint(1, 3))}))
    text = "".join(_rng.choice("ab cd") for _ in range(_rng.randint(0, 30)))
    n_old = _rng.randint(0, len(text))
    if _reference_find(text[:n_old], 0, stops) >= 0:
        continue  # the old text held a stop string: generation would have stopped already
    start = max(0, n_old - max(len(s) for s in stops) + 1)
    found = sorted((i, s) for i, s in ((text.find(s, start), s) for s in stops) if i >= 0)
    if any(b < a + len(s) for (a, s), (b, _) in zip(found, found[1:])):
        continue  # two stop strings overlap: the convention leaves that open
    _cases.append((text, n_old, stops))
_cases += [
    ("🐉 dragon\n\nUser: hi", 9, ("\nUser:",)),  # multi-character code points before the match
    ("日本語のテキスト。終わり", 10, ("終わり", "。。")),
    ("x" * 5000 + "<|end|>", 5003, ("<|end|>",)),  # a long text: the match straddles the boundary
    ("<|end|>" + "x" * 5000, 5000, ("<|end|>",)),  # a long text: the old match is far behind
    ("abab", 3, ("ab",)),  # 'ab' at 0 is old; the one at 2 ends in the new character
    ("", 0, ("a",)),
]
with check("hidden texts, windows and Unicode", 1):
    for text, n_old, stops in _cases:
        _check_find(find_stop(text, n_old, stops), _reference_find(text, n_old, stops),
                    on=f"a hidden text of {len(text)} characters, {n_old} checked, {len(stops)} stop strings")
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks


# %% nbgrader={"grade": true, "grade_id": "test_generate_stop", "locked": true, "points": 2, "schema_version": 3, "solution": false}
def _char_decoder(V, seed):
    """A decode function: each id is one or more characters of 'abc \\n' (ids 0..V-1)."""
    rng = random.Random(seed)
    table = ["".join(rng.choice("abc \n") for _ in range(rng.choice((1, 1, 2, 3)))) for _ in range(V)]

    def decode(ids):
        return "".join(table[i] for i in ids)

    return decode, table


class _Tok:
    def __init__(self, decode):
        self.decode = decode


def _reference_stop(model, prompt, n, temperature, seed, stop, decode):
    out = ref_gen.generate(model, prompt, n, SamplingConfig(temperature=temperature), stop_strings=list(stop) or None,
                           tokenizer=_Tok(decode), use_cache=False, generator=torch.Generator().manual_seed(seed))
    tokens, reason = out.new_tokens[0], out.finish_reasons[0]
    text = decode(tokens)
    if reason == "stop":
        text = text[:min(i for i in (text.find(s) for s in stop) if i >= 0)]
    return tokens, reason, text


def _gen_stop(model, prompt, n, temperature, seed, stop, decode):
    weights, config = _weights_of(model)
    return generate_cached(weights, config, list(prompt), n, _sampler(temperature, seed), None, tuple(stop), decode)


def _stop_case(model, prompt, n, temperature, seed, decode, table):
    """Pick a stop string the free run produces (the text of two tokens in the middle), so that it stops."""
    free = _reference_stop(model, prompt, n, temperature, seed, (), decode)
    return (table[free[0][n // 2]] + table[free[0][n // 2 + 1]],)


def test_generate_stop_visible():
    model = _tiny_gpt(0)
    decode, table = _char_decoder(19, 0)
    with check("the text stops before the stop string; reason 'stop'", 1):
        stop = _stop_case(model, [1, 2, 3], 16, 0.8, 5, decode, table)
        expected = _reference_stop(model, [1, 2, 3], 16, 0.8, 5, stop, decode)
        assert expected[1] == "stop"
        _check_generation3(_gen_stop(model, [1, 2, 3], 16, 0.8, 5, stop, decode), expected, on=f"seed 0, stop {stop!r}")
        expected = _reference_stop(model, [1, 2, 3], 10, 0, 0, ("zzz",), decode)
        _check_generation3(_gen_stop(model, [1, 2, 3], 10, 0, 0, ("zzz",), decode), expected,
                           on="a stop string that never appears: reason 'length', the whole text")
    return True


VISIBLE_TESTS["generate_cached with stop strings"] = test_generate_stop_visible
test_generate_stop_visible()
### BEGIN HIDDEN TESTS
with check("hidden models, decoders and stop strings", 1):
    for seed, kw, prompt, n, t in ((60, dict(n_kv_head=1), [5, 6], 25, 1.0), (61, dict(vocab_size=30), [0], 20, 0),
                                   (62, dict(n_layer=3), [7, 7, 7], 18, 0.6)):
        _m = _tiny_gpt(seed, **kw)
        decode, table = _char_decoder(_m.config.vocab_size, seed)
        stop = _stop_case(_m, prompt, n, t, seed, decode, table) + ("never seen: ~",)
        _check_generation3(_gen_stop(_m, prompt, n, t, seed, stop, decode), _reference_stop(_m, prompt, n, t, seed, stop, decode),
                           on=f"hidden model {seed}, {n} tokens, temperature {t}")
### END HIDDEN TESTS
assert checks_done() is None  # raises AssertionError naming the failed checks

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-5", "locked": true, "schema_version": 3, "solution": false}
# ## 7. Written question: why is decoding memory-bandwidth-bound? (3 points, graded by hand)
#
# In the cell below, answer in 5–10 sentences. During **decode** (one new token per step,
# batch size 1) of a large model such as the 70B model of section 3 on a GPU:
#
# 1. which data must be read from GPU memory at every step, roughly how many bytes, and how
#    many floating-point operations are done with it (give the order of magnitude per byte);
# 2. why this makes the step time set by memory bandwidth rather than by compute, and how a
#    prefill of many prompt tokens differs;
# 3. one way to make decoding less memory-bound, and why it helps.
#
# Use numbers (yours, or from section 3) where you can. Replace the text of the answer cell
# with your answer (double-click it to edit).

# %% [markdown] nbgrader={"grade": true, "grade_id": "decode_bandwidth", "locked": false, "points": 3, "schema_version": 3, "solution": true}
# ### BEGIN SOLUTION
# **Rubric for graders (3 points; instructors' version only).**
#
# *Model answer.* At each decode step the model produces one token per sequence, yet every
# weight matrix is used: all parameters must be streamed from GPU memory (HBM) into the
# compute units once per step, about 140 GB for 70B parameters in fp16, plus the whole KV
# cache of every sequence (about 1.34 GB per 4096-token sequence for the GQA model). With a
# batch of one, each weight is used in one multiply-add, about 2 FLOPs per parameter, so
# about 1 FLOP per byte read. A modern GPU can do roughly 300 or more FLOPs in the time it
# reads one byte (e.g. about 1000 TFLOP/s of fp16 against about 3 TB/s of bandwidth on an
# H100), so the arithmetic units sit idle waiting for data: the step takes about (bytes
# read) / (bandwidth), around 140 GB / 3 TB/s ≈ 50 ms per token, whatever the FLOP rate.
# Prefill processes all T prompt tokens in one pass: each weight that is read is reused T
# times (a matrix-matrix product), giving about T FLOPs per byte, so for long prompts it is
# compute-bound. Remedies: batch many requests (the weights are read once per step for the
# whole batch, raising FLOPs per byte; continuous batching), quantise weights and KV cache
# (fewer bytes per step), shrink the KV cache with MQA/GQA, or speculative decoding (verify
# several drafted tokens in one pass, amortising one read of the weights).
#
# *Points.*
# - 1 point: names what is read per step (all weights, plus the KV cache) with a sensible
#   size, and says only about 1-2 FLOPs are done per byte (one matrix-vector product per
#   weight matrix; low arithmetic intensity).
# - 1 point: compares this with the GPU's compute/bandwidth ratio (hundreds of FLOPs per
#   byte), concludes the step time is bytes / bandwidth, and contrasts prefill (T tokens
#   reuse each weight read, so compute-bound).
# - 1 point: one valid remedy with the reason it helps (batching or continuous batching,
#   quantisation, GQA/MQA for the cache, speculative decoding, ...).
# - No point for "the GPU is slow" or "decoding is sequential" without the memory argument.
#   Half points are allowed.
# ### END SOLUTION
