"""Demo students for hw5_generation_kv_cache (data only: answer cell grade_id -> source).

Honest students write the cache and the stop-string search in other styles than the official
solution: a list of (k, v) tuples with a hand-written LayerNorm and GELU, a preallocated
cache class with the fused attention, float64 arithmetic with a regex search, and the
section-2 attention modules reused as the cache. Partial students get one convention
wrong; the attacks remember inputs across calls or recompute the past instead of caching it.
"""

_TUPLES_MODEL = r'''
import math

import torch


def _lin(x, w, b):
    y = x @ w.T
    return y if b is None else y + b


def _ln(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    y = (x - mu) / torch.sqrt(var + eps) * w
    return y if b is None else y + b


def _gelu_tanh(h):
    return 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h ** 3)))


def _run(weights, config, ids, past):
    """Logits (T, V) and the new cache: a list with one (k, v) tuple per layer, k (Hk, L, D)."""
    g = weights.get
    H = config["n_head"]
    Hk = config.get("n_kv_head") or H
    C = config["n_embd"]
    D = C // H
    eps = config["layer_norm_eps"]
    L = past[0][0].shape[1] if past else 0
    T = len(ids)
    x = g("transformer.wte.weight")[ids] + g("transformer.wpe.weight")[L:L + T]  # (T, C)
    new = []
    for i in range(config["n_layer"]):
        p = "transformer.h.%d." % i
        h = _ln(x, g(p + "ln_1.weight"), g(p + "ln_1.bias"), eps)
        qkv = _lin(h, g(p + "attn.c_attn.weight"), g(p + "attn.c_attn.bias"))
        q = qkv[:, :H * D].reshape(T, H, D).permute(1, 0, 2)
        k = qkv[:, H * D:(H + Hk) * D].reshape(T, Hk, D).permute(1, 0, 2)
        v = qkv[:, (H + Hk) * D:].reshape(T, Hk, D).permute(1, 0, 2)
        if past:
            k = torch.cat([past[i][0], k], 1)
            v = torch.cat([past[i][1], v], 1)
        new.append((k, v))
        kk, vv = k.repeat_interleave(H // Hk, 0), v.repeat_interleave(H // Hk, 0)
        att = q @ kk.transpose(1, 2) / math.sqrt(D)  # (H, T, L + T)
        later = torch.arange(L + T)[None, :] > torch.arange(L, L + T)[:, None]
        att = att.masked_fill(later, float("-inf")).softmax(-1)
        y = (att @ vv).permute(1, 0, 2).reshape(T, C)
        x = x + _lin(y, g(p + "attn.c_proj.weight"), g(p + "attn.c_proj.bias"))
        h = _ln(x, g(p + "ln_2.weight"), g(p + "ln_2.bias"), eps)
        h = _gelu_tanh(_lin(h, g(p + "mlp.c_fc.weight"), g(p + "mlp.c_fc.bias")))
        x = x + _lin(h, g(p + "mlp.c_proj.weight"), g(p + "mlp.c_proj.bias"))
    x = _ln(x, g("transformer.ln_f.weight"), g("transformer.ln_f.bias"), eps)
    return x @ g("lm_head.weight").T, new


def prefill(weights, config, prompt):
    with torch.no_grad():
        logits, cache = _run(weights, config, list(prompt), [])
    return logits[-1], cache


def decode_step(weights, config, token, cache):
    with torch.no_grad():
        logits, cache = _run(weights, config, [int(token)], cache)
    return logits[-1], cache
'''

_TUPLES_GENERATE = r'''
def generate_cached(weights, config, prompt, max_new_tokens, sample_next, eos_id=None, stop=(), decode=None):
    out, text, checked = [], "", 0
    if max_new_tokens <= 0:
        return out, "length", (None if decode is None else "")
    logits, cache = prefill(weights, config, prompt)
    while True:
        tok = int(sample_next(logits))
        out.append(tok)
        if eos_id is not None and tok == eos_id:
            return out, "eos", (None if decode is None else decode(out))
        if decode is not None:
            text += decode([tok])  # every token decodes on its own here
        if stop:
            i = find_stop(text, checked, stop)
            if i >= 0:
                return out, "stop", text[:i]
            checked = len(text)
        if len(out) == max_new_tokens:
            return out, "length", (None if decode is None else text)
        logits, cache = decode_step(weights, config, tok, cache)
'''

_ENDSWITH_FIND = r'''
def find_stop(text, n_checked, stop):
    if not stop:
        return -1
    lo = max(0, n_checked - max(len(s) for s in stop) + 1)
    for end in range(lo + 1, len(text) + 1):  # the earliest end first
        for s in stop:
            if end - len(s) >= lo and text.endswith(s, 0, end):
                return end - len(s)
    return -1
'''

_PREALLOCATED_MODEL = r'''
import torch
import torch.nn.functional as F


class KVStore:
    """Keys and values of every layer, allocated once for block_size positions."""

    def __init__(self, n_layer, n_kv_head, max_len, head_dim, dtype):
        self.k = torch.zeros(n_layer, n_kv_head, max_len, head_dim, dtype=dtype)
        self.v = torch.zeros(n_layer, n_kv_head, max_len, head_dim, dtype=dtype)
        self.length = 0


def _forward(weights, config, ids, store):
    H, C = config["n_head"], config["n_embd"]
    Hk, D = config["n_kv_head"] or H, C // H
    L, T = store.length, len(ids)
    W = lambda name: weights[name + ".weight"]
    B = lambda name: weights.get(name + ".bias")
    ln = lambda x, name: F.layer_norm(x, (C,), W(name), B(name), config["layer_norm_eps"])
    lin = lambda x, name: F.linear(x, W(name), B(name))
    x = F.embedding(torch.tensor([ids]), W("transformer.wte")) + W("transformer.wpe")[L:L + T]
    allowed = torch.arange(L + T)[None, :] <= torch.arange(L, L + T)[:, None]  # (T, L + T), True = attend
    for i in range(config["n_layer"]):
        p = "transformer.h.%d." % i
        q, k, v = lin(ln(x, p + "ln_1"), p + "attn.c_attn").split([H * D, Hk * D, Hk * D], -1)
        store.k[i, :, L:L + T] = k[0].view(T, Hk, D).transpose(0, 1)
        store.v[i, :, L:L + T] = v[0].view(T, Hk, D).transpose(0, 1)
        keys = store.k[i, :, :L + T].repeat_interleave(H // Hk, 0)[None]
        vals = store.v[i, :, :L + T].repeat_interleave(H // Hk, 0)[None]
        q = q.view(1, T, H, D).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, keys, vals, attn_mask=allowed)
        x = x + lin(y.transpose(1, 2).reshape(1, T, C), p + "attn.c_proj")
        x = x + lin(F.gelu(lin(ln(x, p + "ln_2"), p + "mlp.c_fc"), approximate="tanh"), p + "mlp.c_proj")
    store.length = L + T
    return F.linear(ln(x, "transformer.ln_f"), W("lm_head"))[0, -1]


@torch.no_grad()
def prefill(weights, config, prompt):
    H = config["n_head"]
    store = KVStore(config["n_layer"], config["n_kv_head"] or H, config["block_size"], config["n_embd"] // H,
                    weights["transformer.wte.weight"].dtype)
    return _forward(weights, config, list(prompt), store), store


@torch.no_grad()
def decode_step(weights, config, token, cache):
    return _forward(weights, config, [int(token)], cache), cache
'''

_WINDOW_FIND = r'''
def find_stop(text, n_checked, stop):
    window_start = max(0, n_checked - max(map(len, stop), default=0) + 1)
    window = text[window_start:]
    best = -1
    for s in stop:
        j = window.find(s)
        if j != -1 and (best == -1 or j < best):
            best = j
    return -1 if best == -1 else window_start + best
'''

_FLOAT64_MODEL = r'''
import math

import torch
import torch.nn.functional as F


def _forward64(weights, config, ids, cache):
    """The forward pass in float64; the cache dict holds float64 keys/values per layer."""
    w = {k: v.double() for k, v in weights.items()}
    H, C = config["n_head"], config["n_embd"]
    Hk = config["n_kv_head"] or H
    D, L, T = C // H, cache["n"], len(ids)
    eps = config["layer_norm_eps"]
    x = w["transformer.wte.weight"][torch.tensor(ids)] + w["transformer.wpe.weight"][L:L + T]
    for i in range(config["n_layer"]):
        p = f"transformer.h.{i}."
        h = F.layer_norm(x, (C,), w[p + "ln_1.weight"], w.get(p + "ln_1.bias"), eps)
        qkv = F.linear(h, w[p + "attn.c_attn.weight"], w.get(p + "attn.c_attn.bias"))
        q = qkv[:, :H * D].reshape(T, H, D).transpose(0, 1)
        k = qkv[:, H * D:(H + Hk) * D].reshape(T, Hk, D).transpose(0, 1)
        v = qkv[:, (H + Hk) * D:].reshape(T, Hk, D).transpose(0, 1)
        cache["k"][i] = k if cache["k"][i] is None else torch.cat([cache["k"][i], k], dim=1)
        cache["v"][i] = v if cache["v"][i] is None else torch.cat([cache["v"][i], v], dim=1)
        ks = cache["k"][i].repeat_interleave(H // Hk, 0)
        vs = cache["v"][i].repeat_interleave(H // Hk, 0)
        scores = torch.einsum("htd,hsd->hts", q, ks) * (1.0 / math.sqrt(D))
        mask = torch.ones(T, L + T, dtype=torch.bool).tril(L)
        y = torch.einsum("hts,hsd->htd", scores.masked_fill(~mask, -math.inf).softmax(-1), vs)
        x = x + F.linear(y.transpose(0, 1).reshape(T, C), w[p + "attn.c_proj.weight"], w.get(p + "attn.c_proj.bias"))
        h = F.layer_norm(x, (C,), w[p + "ln_2.weight"], w.get(p + "ln_2.bias"), eps)
        h = F.gelu(F.linear(h, w[p + "mlp.c_fc.weight"], w.get(p + "mlp.c_fc.bias")), approximate="tanh")
        x = x + F.linear(h, w[p + "mlp.c_proj.weight"], w.get(p + "mlp.c_proj.bias"))
    cache["n"] = L + T
    x = F.layer_norm(x, (C,), w["transformer.ln_f.weight"], w.get("transformer.ln_f.bias"), eps)
    return (x[-1] @ w["lm_head.weight"].T).to(weights["lm_head.weight"].dtype)


def prefill(weights, config, prompt):
    cache = {"n": 0, "k": [None] * config["n_layer"], "v": [None] * config["n_layer"]}
    with torch.no_grad():
        return _forward64(weights, config, list(prompt), cache), cache


def decode_step(weights, config, token, cache):
    with torch.no_grad():
        return _forward64(weights, config, [int(token)], cache), cache
'''

_RECURSIVE_GENERATE = r'''
def _more(weights, config, sample_next, eos_id, stop, decode, left, logits, cache, tokens, checked):
    token = int(sample_next(logits))
    tokens = tokens + [token]
    if eos_id is not None and token == eos_id:
        return tokens, "eos", None if decode is None else decode(tokens)
    if stop:
        text = decode(tokens)
        at = find_stop(text, checked, stop)
        if at >= 0:
            return tokens, "stop", text[:at]
        checked = len(text)
    if left == 1:
        return tokens, "length", None if decode is None else decode(tokens)
    logits, cache = decode_step(weights, config, token, cache)
    return _more(weights, config, sample_next, eos_id, stop, decode, left - 1, logits, cache, tokens, checked)


def generate_cached(weights, config, prompt, max_new_tokens, sample_next, eos_id=None, stop=(), decode=None):
    if max_new_tokens == 0:
        return [], "length", None if decode is None else decode([])
    logits, cache = prefill(weights, config, prompt)
    return _more(weights, config, sample_next, eos_id, tuple(stop), decode, max_new_tokens, logits, cache, [], 0)
'''

_REGEX_FIND = r'''
import re


def find_stop(text, n_checked, stop):
    if not stop:
        return -1
    start = max(0, n_checked - max(len(s) for s in stop) + 1)
    pattern = re.compile("|".join(re.escape(s) for s in sorted(stop, key=len, reverse=True)))
    m = pattern.search(text, start)
    return m.start() if m else -1
'''

_MODULES_MODEL = r'''
import torch
import torch.nn.functional as F


def _attn_weights(weights, prefix, bias):
    names = ["c_attn.weight", "c_proj.weight"] + (["c_attn.bias", "c_proj.bias"] if bias else [])
    return {n: weights[prefix + "attn." + n] for n in names}


def _step(weights, config, ids, cache):
    """Run the GPT with my section-2 CachedSelfAttention modules: they hold the past keys/values."""
    C, eps, pos = config["n_embd"], config["layer_norm_eps"], cache["pos"]
    ln = lambda x, n: F.layer_norm(x, (C,), weights[n + ".weight"], weights.get(n + ".bias"), eps)
    lin = lambda x, n: F.linear(x, weights[n + ".weight"], weights.get(n + ".bias"))
    x = weights["transformer.wte.weight"][torch.tensor([ids])] + weights["transformer.wpe.weight"][pos:pos + len(ids)]
    for i, attn in enumerate(cache["attn"]):
        p = f"transformer.h.{i}."
        attn.load_state_dict(_attn_weights(weights, p, config["bias"]))  # the weights of this call
        x = x + attn(ln(x, p + "ln_1"), use_cache=True)
        x = x + lin(F.gelu(lin(ln(x, p + "ln_2"), p + "mlp.c_fc"), approximate="tanh"), p + "mlp.c_proj")
    cache["pos"] = pos + len(ids)
    return F.linear(ln(x, "transformer.ln_f"), weights["lm_head.weight"])[0, -1]


def prefill(weights, config, prompt):
    dtype = weights["transformer.wte.weight"].dtype
    layers = [CachedSelfAttention(config["n_embd"], config["n_head"], config["n_kv_head"], bias=config["bias"]).to(dtype)
              for _ in range(config["n_layer"])]
    cache = {"attn": layers, "pos": 0}
    with torch.no_grad():
        return _step(weights, config, list(prompt), cache), cache


def decode_step(weights, config, token, cache):
    with torch.no_grad():
        return _step(weights, config, [int(token)], cache), cache
'''

_FULL_SEARCH_FIND = r'''
def find_stop(text, n_checked, stop):
    hits = [text.find(s) for s in stop if s in text]  # searches the whole text every time
    return min(hits) if hits else -1
'''

_EOS_DROPPED_GENERATE = r'''
def generate_cached(weights, config, prompt, max_new_tokens, sample_next, eos_id=None, stop=(), decode=None):
    new_tokens, n_checked = [], 0
    logits = cache = None
    for step in range(max_new_tokens):
        if step == 0:
            logits, cache = prefill(weights, config, list(prompt))
        else:
            logits, cache = decode_step(weights, config, new_tokens[-1], cache)
        token = int(sample_next(logits))
        if eos_id is not None and token == eos_id:
            return new_tokens, "eos", (None if decode is None else decode(new_tokens))  # EOS not kept
        new_tokens.append(token)
        if stop:
            text = decode(new_tokens)
            cut = find_stop(text, n_checked, stop)
            if cut >= 0:
                return new_tokens, "stop", text[:cut]
            n_checked = len(text)
    return new_tokens, "length", (None if decode is None else decode(new_tokens))
'''

_NO_GQA_ATTENTION = r'''
import math

import torch
import torch.nn as nn


class CachedSelfAttention(nn.Module):
    """Multi-head only: n_kv_head is ignored (keys and values get n_head heads)."""

    def __init__(self, n_embd, n_head, n_kv_head=None, bias=True):
        super().__init__()
        self.n_head, self.head_dim = n_head, n_embd // n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.k_cache = self.v_cache = None

    def reset_cache(self):
        self.k_cache = self.v_cache = None

    def forward(self, x, use_cache=False):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, self.head_dim).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        if use_cache:
            if self.k_cache is not None:
                k, v = torch.cat([self.k_cache, k], 2), torch.cat([self.v_cache, v], 2)
            self.k_cache, self.v_cache = k, v
        S = k.size(2)
        w = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        w = w.masked_fill(~torch.ones(T, S, dtype=torch.bool).tril(S - T), float("-inf")).softmax(-1)
        return self.c_proj((w @ v).transpose(1, 2).reshape(B, T, C))
'''

_MEMO_GENERATE = r'''
_SEEN = {}  # (prompt, max_new_tokens, eos_id) -> the answer of an earlier call


def generate_cached(weights, config, prompt, max_new_tokens, sample_next, eos_id=None, stop=(), decode=None):
    key = (tuple(prompt), max_new_tokens, bool(stop), decode is None)
    if key in _SEEN:
        return _SEEN[key]
    new_tokens, reason, n_checked = [], "length", 0
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
                _SEEN[key] = (new_tokens, "stop", text[:cut])
                return _SEEN[key]
            n_checked = len(text)
    _SEEN[key] = (new_tokens, reason, (None if decode is None else decode(new_tokens)))
    return _SEEN[key]
'''

_RECOMPUTE_MODEL = r'''
import math

import torch
import torch.nn.functional as F


def _full_forward(weights, config, ids):
    """The uncached forward over every token so far (nothing is really cached)."""
    H, C = config["n_head"], config["n_embd"]
    Hk, D, T = config["n_kv_head"] or H, C // H, len(ids)
    ln = lambda x, n: F.layer_norm(x, (C,), weights[n + ".weight"], weights.get(n + ".bias"), config["layer_norm_eps"])
    lin = lambda x, n: F.linear(x, weights[n + ".weight"], weights.get(n + ".bias"))
    x = weights["transformer.wte.weight"][torch.tensor(ids)] + weights["transformer.wpe.weight"][:T]
    for i in range(config["n_layer"]):
        p = f"transformer.h.{i}."
        q, k, v = lin(ln(x, p + "ln_1"), p + "attn.c_attn").split([H * D, Hk * D, Hk * D], -1)
        q = q.view(T, H, D).transpose(0, 1)
        k = k.view(T, Hk, D).transpose(0, 1).repeat_interleave(H // Hk, 0)
        v = v.view(T, Hk, D).transpose(0, 1).repeat_interleave(H // Hk, 0)
        a = (q @ k.transpose(1, 2) / math.sqrt(D)).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), -math.inf)
        x = x + lin((a.softmax(-1) @ v).transpose(0, 1).reshape(T, C), p + "attn.c_proj")
        x = x + lin(F.gelu(lin(ln(x, p + "ln_2"), p + "mlp.c_fc"), approximate="tanh"), p + "mlp.c_proj")
    return F.linear(ln(x, "transformer.ln_f"), weights["lm_head.weight"])[-1]


def prefill(weights, config, prompt):
    with torch.no_grad():
        return _full_forward(weights, config, list(prompt)), {"tokens": list(prompt)}


def decode_step(weights, config, token, cache):
    tokens = cache["tokens"] + [int(token)]  # the "cache" keeps the tokens and recomputes the past
    with torch.no_grad():
        return _full_forward(weights, config, tokens), {"tokens": tokens}
'''

_INPUT_HISTORY_ATTENTION = r'''
import math

import torch
import torch.nn as nn


class CachedSelfAttention(nn.Module):
    """Keeps the inputs seen so far and recomputes keys and values from them at every call."""

    def __init__(self, n_embd, n_head, n_kv_head=None, bias=True):
        super().__init__()
        self.n_head = n_head
        self.n_kv_head = n_head if n_kv_head is None else n_kv_head
        self.head_dim = n_embd // n_head
        self.c_attn = nn.Linear(n_embd, (n_head + 2 * self.n_kv_head) * self.head_dim, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.k_cache = self.v_cache = None
        self.seen = None

    def reset_cache(self):
        self.k_cache = self.v_cache = self.seen = None

    def forward(self, x, use_cache=False):
        B, T, C = x.shape
        H, Hk, D = self.n_head, self.n_kv_head, self.head_dim
        full = x
        if use_cache:
            full = x if self.seen is None else torch.cat([self.seen, x], 1)
            self.seen = full
        S = full.size(1)
        q = self.c_attn(x)[..., :H * D].view(B, T, H, D).transpose(1, 2)
        _, k, v = self.c_attn(full).split([H * D, Hk * D, Hk * D], dim=2)
        k = k.view(B, S, Hk, D).transpose(1, 2)
        v = v.view(B, S, Hk, D).transpose(1, 2)
        if use_cache:
            self.k_cache, self.v_cache = k, v
        k, v = k.repeat_interleave(H // Hk, 1), v.repeat_interleave(H // Hk, 1)
        w = (q @ k.transpose(-2, -1)) / math.sqrt(D)
        w = w.masked_fill(~torch.ones(T, S, dtype=torch.bool).tril(S - T), float("-inf")).softmax(-1)
        return self.c_proj((w @ v).transpose(1, 2).reshape(B, T, C))
'''

STUDENTS = {
    "tuple-list-endswith": {"kind": "honest", "answers": {
        "prefill_decode": _TUPLES_MODEL, "generate_cached": _TUPLES_GENERATE, "find_stop": _ENDSWITH_FIND}},
    "preallocated-window": {"kind": "honest", "answers": {
        "prefill_decode": _PREALLOCATED_MODEL, "find_stop": _WINDOW_FIND}},
    "float64-recursive-regex": {"kind": "honest", "answers": {
        "prefill_decode": _FLOAT64_MODEL, "generate_cached": _RECURSIVE_GENERATE, "find_stop": _REGEX_FIND}},
    "section2-modules": {"kind": "honest", "answers": {"prefill_decode": _MODULES_MODEL}},
    "full-search-stop": {"kind": "partial", "answers": {"find_stop": _FULL_SEARCH_FIND},
                         "expect": {"test_find_stop": 1}},
    "eos-dropped": {"kind": "partial", "answers": {"generate_cached": _EOS_DROPPED_GENERATE},
                    "expect": {"test_generate_cached": 1}},
    "no-grouped-query": {"kind": "partial", "answers": {"cached_attention": _NO_GQA_ATTENTION},
                         "expect": {"test_cached_attention": 1}},
    "remembers-answers": {"kind": "attack", "answers": {"generate_cached": _MEMO_GENERATE},
                          "expect": {"test_generate_cached": 1, "test_cached_equals_uncached": 0}},
    "recomputes-the-past": {"kind": "attack", "answers": {"prefill_decode": _RECOMPUTE_MODEL},
                            "expect": {"test_prefill_decode": 2}},
    "remembers-inputs-attention": {"kind": "attack", "answers": {"cached_attention": _INPUT_HISTORY_ATTENTION},
                                   "expect": {"test_cached_attention": 3}},
}
