"""Demo students for hw7_capstone (data only: answer cell grade_id -> source).

Honest students assemble the same model from pieces written in other styles (a tokeniser
with per-chunk caches and recursion, the fused attention, a float64 optimiser state, a
sampler class, prints). Partial students get one piece wrong; the attack wraps the
reference GPT, which is absent while the capstone is graded.
"""

_DICT_TOKENIZER = r'''
from collections import Counter


def merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if ids[i:i + 2] == list(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_bpe(text, n_merges):
    words = Counter(tuple(chunk.encode("utf-8")) for chunk in pretokenize(text))
    merges = []
    for r in range(n_merges):
        pairs = Counter()
        for word, n in words.items():
            for a, b in zip(word, word[1:]):
                pairs[a, b] += n
        if not pairs:
            break
        top = max(pairs.values())
        best = min(p for p, c in pairs.items() if c == top)
        merged = Counter()
        for word, n in words.items():
            merged[tuple(merge(list(word), best, 256 + r))] += n
        words = merged
        merges.append(best)
    return merges


def encode(text, merges):
    rank = {}
    for r, pair in enumerate(merges):
        rank.setdefault(tuple(pair), r)
    memo = {}
    out = []
    for chunk in pretokenize(text):
        if chunk not in memo:
            ids = list(chunk.encode("utf-8"))
            while True:
                ranks = [rank.get(p, len(merges)) for p in zip(ids, ids[1:])]
                if not ranks or min(ranks) == len(merges):
                    break
                r = min(ranks)
                ids = merge(ids, tuple(merges[r]), 256 + r)
            memo[chunk] = ids
        out += memo[chunk]
    return out


def decode(ids, merges):
    def expand(i):
        if i < 256:
            return bytes([i])
        a, b = merges[i - 256]
        return expand(a) + expand(b)

    return b"".join(expand(i) for i in ids).decode("utf-8", errors="replace")
'''

_SDPA_GPT = r'''
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class RefModule(nn.Module):
    def load_reference(self, state_dict):
        self.load_state_dict(state_dict)


class LayerNorm(RefModule):
    def __init__(self, dim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x):
        var, mean = torch.var_mean(x, dim=-1, keepdim=True, unbiased=False)
        y = (x - mean) * torch.rsqrt(var + self.eps) * self.weight
        return y + self.bias if self.bias is not None else y


class MLP(RefModule):
    def __init__(self, n_embd, hidden=None, bias=True):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, hidden or 4 * n_embd, bias=bias)
        self.c_proj = nn.Linear(hidden or 4 * n_embd, n_embd, bias=bias)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class CausalSelfAttention(RefModule):
    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # T queries, T keys: top-left is right
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class Block(RefModule):
    def __init__(self, n_embd, n_head, bias=True, eps=1e-5):
        super().__init__()
        self.ln_1, self.attn = LayerNorm(n_embd, eps, bias), CausalSelfAttention(n_embd, n_head, bias)
        self.ln_2, self.mlp = LayerNorm(n_embd, eps, bias), MLP(n_embd, bias=bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(RefModule):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, bias=True, tie_weights=True, eps=1e-5):
        super().__init__()
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(vocab_size, n_embd),
            "wpe": nn.Embedding(block_size, n_embd),
            "h": nn.ModuleList(Block(n_embd, n_head, bias, eps) for _ in range(n_layer)),
            "ln_f": LayerNorm(n_embd, eps, bias),
        })
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        if tie_weights:
            self.lm_head.weight = self.transformer.wte.weight
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx):
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(idx.size(1), device=idx.device))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))
'''

_FLOAT64_TRAINING = r'''
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class AdamW:
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0):
        params = list(params)
        if not params or not isinstance(params[0], dict):
            params = [{"params": params}]
        self.param_groups = [{"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, **g} for g in params]
        self.m, self.v, self.t = {}, {}, {}

    def zero_grad(self):
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            b1, b2 = g["betas"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                key = id(p)
                grad = p.grad.double()
                m = self.m.get(key, torch.zeros_like(grad)) * b1 + (1 - b1) * grad
                v = self.v.get(key, torch.zeros_like(grad)) * b2 + (1 - b2) * grad * grad
                t = self.t.get(key, 0) + 1
                self.m[key], self.v[key], self.t[key] = m, v, t
                m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
                new = p.double() * (1 - g["lr"] * g["weight_decay"]) - g["lr"] * m_hat / (v_hat.sqrt() + g["eps"])
                p.copy_(new.to(p.dtype))


def lr_at(step, lr, warmup, steps, min_lr):
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = (step - warmup) / max(1, steps - warmup)
    return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * min(frac, 1.0))) / 2


def clip_grad_norm(params, max_norm):
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = max_norm / (float(total) + 1e-6)
    if scale < 1:
        for g in grads:
            g.mul_(scale)
    return float(total)


def batch_at(data, starts, block_size):
    x = torch.stack([data[s:s + block_size] for s in starts.tolist()])
    y = torch.stack([data[s + 1:s + block_size + 1] for s in starts.tolist()])
    return x.long(), y.long()


def _groups(model, weight_decay):
    emb = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    seen, decay, keep = set(), [], []
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.ndim >= 2 and id(p) not in emb else keep).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def train(model, data, steps, batch_size, block_size, lr, warmup, min_lr, weight_decay, grad_clip, generator):
    opt = AdamW(_groups(model, weight_decay), lr=lr)
    params = [p for g in opt.param_groups for p in g["params"]]
    history = []
    model.train()
    for step in range(steps):
        rate = lr_at(step, lr, warmup, steps, min_lr)
        for g in opt.param_groups:
            g["lr"] = rate
        x, y = batch_at(data, torch.randint(len(data) - block_size, (batch_size,), generator=generator), block_size)
        logp = F.log_softmax(model(x), dim=-1)
        loss = -logp.gather(-1, y[..., None]).mean()
        opt.zero_grad()
        loss.backward()
        if grad_clip is not None:
            clip_grad_norm(params, grad_clip)
        opt.step()
        history.append(float(loss))
    model.eval()
    return history
'''

_CLASS_SAMPLER = r'''
import torch


def apply_temperature(logits, temperature):
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return logits * (1.0 / temperature)


def top_k_filter(logits, k):
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits, p):
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    probs = logits.softmax(-1)
    desc, order = probs.sort(dim=-1, descending=True)
    before = desc.cumsum(-1) - desc  # mass of the more likely tokens
    keep_sorted = before < p  # the smallest prefix whose mass reaches p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


class Sampler:
    """sample_next as an object: argmax at temperature 0, else the filtered draw."""

    def __init__(self, temperature, top_k, top_p, generator):
        self.temperature, self.top_k, self.top_p, self.generator = temperature, top_k, top_p, generator

    def __call__(self, logits):
        if self.temperature == 0:
            return int(torch.argmax(logits))
        z = apply_temperature(logits, self.temperature)
        z = z if self.top_k is None else top_k_filter(z, self.top_k)
        z = z if self.top_p is None else top_p_filter(z, self.top_p)
        return int(torch.multinomial(torch.softmax(z, -1)[None], 1, generator=self.generator)[0, 0])


def make_sample_next(temperature, top_k=None, top_p=None, generator=None):
    return Sampler(temperature, top_k, top_p, generator)
'''

_PRINTING_RUN = r'''
import math

import torch
import torch.nn.functional as F


def evaluate(model, ids, block_size):
    total, count = 0.0, 0
    with torch.no_grad():
        start = 0
        while start < len(ids) - 1:
            end = min(start + block_size, len(ids) - 1)
            logits = model(ids[start:end][None])[0]
            logp = torch.log_softmax(logits.double(), dim=-1)
            total -= float(logp.gather(1, ids[start + 1:end + 1][:, None]).sum())
            count += end - start
            start = end
    return total, count


def run_capstone(text, n_merges, bpe_chars, model_config, train_config, seed, prompt, n_new):
    split_at = int(0.9 * len(text))
    train_text, val_text = text[:split_at], text[split_at:]
    merges = train_bpe(train_text[:bpe_chars], n_merges)
    print(f"{len(merges)} merges learned")
    val_ids = torch.tensor(encode(val_text, merges))
    train_ids = torch.tensor(encode(train_text, merges))
    print(f"{len(train_ids)} training tokens, {len(val_ids)} validation tokens")
    torch.manual_seed(seed)
    model = GPT(256 + len(merges), **model_config)
    losses = train(model, train_ids, generator=torch.Generator().manual_seed(seed), **train_config)
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    nll, n = evaluate(model, val_ids, model_config["block_size"])
    n_bytes = len(val_text.encode("utf-8"))
    cfg = {"n_layer": model_config["n_layer"], "n_head": model_config["n_head"], "n_kv_head": model_config["n_head"],
           "n_embd": model_config["n_embd"], "layer_norm_eps": 1e-5, "block_size": model_config["block_size"],
           "vocab_size": 256 + len(merges), "bias": True}
    weights = dict(model.state_dict())
    gen = torch.Generator().manual_seed(seed)
    tokens, reason, sample = generate_cached(weights, cfg, encode(prompt, merges), n_new,
                                             make_sample_next(0.8, top_k=20, generator=gen),
                                             decode=lambda t: decode(t, merges))
    print(prompt + sample)
    return dict(merges=merges, losses=losses, val_loss=nll / n, bits_per_byte=nll / n_bytes / math.log(2),
                state_dict=weights, sample_tokens=tokens, sample_text=sample)
'''

_NO_WARMUP = r'''
def lr_at(step, lr, warmup, steps, min_lr):
    progress = min(1.0, step / max(1, steps))  # the warm-up is forgotten
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
'''

_UNBIASED_LAYERNORM = r'''
class LayerNorm(RefModule):
    def __init__(self, dim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x):
        y = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + self.eps)  # unbiased: wrong
        y = y * self.weight
        return y if self.bias is None else y + self.bias
'''

_REFERENCE_GPT = r'''
import torch.nn as nn

from lmcourse.model import GPT as _ReferenceGPT
from lmcourse.model import GPTConfig as _Config


class GPT(nn.Module):
    """The reference GPT behind the student's interface."""

    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, bias=True, tie_weights=True, eps=1e-5):
        super().__init__()
        self.inner = _ReferenceGPT(_Config(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                                           n_embd=n_embd, bias=bias, tie_weights=tie_weights, layer_norm_eps=eps,
                                           dropout=0.0))

    def load_reference(self, state_dict):
        self.inner.load_state_dict(state_dict)

    def state_dict(self, *args, **kwargs):
        return self.inner.state_dict(*args, **kwargs)

    def forward(self, idx):
        return self.inner(idx)[0]
'''


STUDENTS = {
    "dict-tokenizer-sdpa-gpt": {"kind": "honest", "answers": {"tokenizer": _DICT_TOKENIZER, "gpt": _SDPA_GPT}},
    "float64-optimiser": {"kind": "honest", "answers": {"training": _FLOAT64_TRAINING}},
    "sampler-class": {"kind": "honest", "answers": {"sampler": _CLASS_SAMPLER}},
    "printing-run": {"kind": "honest", "answers": {"run": _PRINTING_RUN}},
    "all-styles-together": {"kind": "honest", "answers": {
        "tokenizer": _DICT_TOKENIZER, "gpt": _SDPA_GPT, "training": _FLOAT64_TRAINING, "sampler": _CLASS_SAMPLER,
        "run": _PRINTING_RUN}},
    "no-warm-up": {"kind": "partial", "answers": {"training": _FLOAT64_TRAINING + "\n\n" + _NO_WARMUP},
                   "expect": {"test_training": 0}},
    "unbiased-layernorm": {"kind": "partial", "answers": {"gpt": _SDPA_GPT + "\n\n" + _UNBIASED_LAYERNORM},
                           "expect": {"test_model": 0.5, "test_training": 1, "test_run": 3}},
    "reference-gpt": {"kind": "attack", "answers": {"gpt": _REFERENCE_GPT},
                      "expect": {"test_model": 0, "test_training": 1, "test_run": 0}},
}
