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
# it fast ([Chapter 7, *KV cache: prefill and decode*](https://lmcourse-org.github.io/lmcourse/book/07_kv_cache.html)):
#
# 1. `generate_loop(model, prompt, max_new_tokens, sample_next, eos_id)`: predict, pick,
#    append, repeat, with the stop conditions (3 points);
# 2. `CachedSelfAttention`: causal self-attention with a key/value cache, whose cached
#    outputs equal the uncached ones (4 points);
# 3. `kv_cache_bytes(...)`: how much memory the cache takes (2 points);
# 4. a short written answer: why decoding is limited by memory bandwidth (3 points, graded
#    by hand).
#
# Write your code between the `# YOUR CODE HERE` lines only and do not edit the test cells.
# Each test cell shows some checks; more (hidden) checks run when the homework is graded, on
# other models, shapes and seeds, **with the `lmcourse` reference disabled**: calling it
# instead of writing the code scores 0. Run all cells (*Runtime / Run all*) before you submit;
# the last cell prints a summary.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false} tags=["setup"]
# The course setup cell (SETUP_CELL of scripts/new_chapter.py) is put here by scripts/build_homework.py.

# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false}
import copy
import math

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
from lmcourse.grading import check_float, check_tensor
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
    _check_generation(generate_loop(model, prompt, 10, _sampler(0)), _reference(model, prompt, 10, 0),
                      on="seed 0, greedy, 10 tokens")
    _check_generation(generate_loop(model, prompt, 12, _sampler(0.8, seed=5)), _reference(model, prompt, 12, 0.8, seed=5),
                      on="seed 0, temperature 0.8 (generator seed 5), 12 tokens")
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
_got = [generate_loop(_models[m], p, n, _sampler(t, s), eos) for (m, p, n, t, s, _), (eos, _) in zip(_cases, _expected)]
for (m, p, n, t, s, e), (eos, exp), got in zip(_cases, _expected, _got):
    _check_generation(got, exp, on=f"model {m}, prompt {p}, max_new_tokens={n}, temperature {t}, seed {s}, eos_id={eos}")
### END HIDDEN TESTS
assert test_generate_loop_visible()


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
    mine, reference = _attn_pair(0, 32, 4)
    x = torch.randn(2, 9, 32, generator=torch.Generator().manual_seed(1))
    y_ref, k_ref, v_ref = _reference_keys(reference, x)
    with torch.no_grad():
        check_tensor("output without cache", mine(x), y_ref, 1e-5, 1e-4, on="seed 0, C=32, H=4, x (2,9,32)")
    assert mine.k_cache is None, "use_cache=False must not fill the cache"
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
### BEGIN HIDDEN TESTS
_cases = [  # (seed, C, H, Hk, bias, dtype, B, T, chunks, atol, rtol)
    (10, 48, 6, 1, False, torch.float32, 3, 11, [4, 2, 1, 1, 3], 1e-5, 1e-4),  # multi-query
    (11, 16, 1, None, True, torch.float32, 1, 1, [1], 1e-5, 1e-4),
    (12, 64, 8, 2, True, torch.float64, 2, 20, [7] + [1] * 13, 1e-10, 1e-8),
    (13, 32, 4, 4, True, torch.float32, 4, 16, [16], 1e-5, 1e-4),  # prefill only
]
_g = torch.Generator().manual_seed(5)
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
    on = f"(seed, C, H, n_kv_head, bias, dtype, B, T, chunks)={case[:9]}"
    atol, rtol = case[9], case[10]
    check_tensor("cached output", y, y_ref, atol, rtol, on=on)
    check_tensor("k_cache", k, k_ref, atol, rtol, on=on)
    check_tensor("v_cache", v, v_ref, atol, rtol, on=on)
check_tensor("output after reset_cache()", _again, _runs[0][3][0], 1e-5, 1e-4, on="case 0 run twice")
check_tensor("output with use_cache=False", _plain, _runs[2][3][0], 1e-10, 1e-8, on="case 2, float64")
check_tensor("GPT logits with your cache", _logits, _full, 1e-5, 1e-4, on="3-layer multi-query GPT, batch 2, chunks [10,1,1,5,1,1,1,10]")
### END HIDDEN TESTS
assert test_cached_attention_visible()


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
_got = [kv_cache_bytes(*a, **k) for a, k in _cases]
_mine_real = kv_cache_bytes(3, 1, _model.config.head_dim, 17, 5, 4)
for (a, k), e, g in zip(_cases, _expected, _got):
    _check_int("kv_cache_bytes", g, e, on=f"args {a}, {k}")
_check_int("a real multi-query KVCache", _mine_real, _real, on="3 layers, 1 KV head, batch 5, 17 positions")
### END HIDDEN TESTS
assert test_kv_cache_bytes_visible()

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-5", "locked": true, "schema_version": 3, "solution": false}
# ## 4. Written question: why is decoding memory-bandwidth-bound? (3 points, graded by hand)
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

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-6", "locked": true, "schema_version": 3, "solution": false}
# ## Summary
#
# The cell below re-runs every visible test (the written answer is graded by hand). When
# everything passes, save the notebook and submit it (on Colab: *File / Download / Download
# .ipynb*, then upload it to the course LMS).

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
