"""Demo students for hw7_capstone (data only: answer cell grade_id -> source).

Honest students assemble the same model from pieces written in other styles (a tokeniser
with per-chunk caches and recursion, the fused attention, a float64 optimiser state, a
sampler class, prints). Partial students get one piece wrong; the attack wraps the
reference GPT, which is absent while the capstone is graded.
"""

from grader.students import given

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
from tqdm.auto import tqdm


def batch_at(data, starts, block_size):
    rows = [data[int(s):int(s) + block_size + 1] for s in starts]  # one window of T + 1 per row
    both = torch.stack(rows).long()
    return both[:, :-1], both[:, 1:]


def masked_cross_entropy(logits, targets, ignore_index=-100):
    flat, t = logits.reshape(-1, logits.size(-1)), targets.reshape(-1)
    keep = t != ignore_index
    picked = flat[keep].gather(1, t[keep][:, None]).squeeze(1)
    nll = torch.logsumexp(flat[keep], dim=-1) - picked
    return nll.sum() / keep.sum()  # 0 / 0 = nan when everything is padding


class AdamW(torch.optim.Optimizer):
    # moments kept in float64, the parameter rounded back to its dtype after each step

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for g in self.param_groups:
            b1, b2 = g["betas"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["t"] = 0
                    st["m"] = torch.zeros_like(p, dtype=torch.float64)
                    st["v"] = torch.zeros_like(p, dtype=torch.float64)
                grad = p.grad.double()
                st["t"] += 1
                st["m"] = st["m"] * b1 + (1 - b1) * grad
                st["v"] = st["v"] * b2 + (1 - b2) * grad * grad
                m_hat, v_hat = st["m"] / (1 - b1 ** st["t"]), st["v"] / (1 - b2 ** st["t"])
                new = p.double() * (1 - g["lr"] * g["weight_decay"]) - g["lr"] * m_hat / (v_hat.sqrt() + g["eps"])
                p.copy_(new.to(p.dtype))
        return loss

''' + given("hw4_training", "run_adamw") + r'''

def lr_at(step, lr, min_lr, warmup, max_iters):
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, max_iters - warmup))
    return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * frac)) / 2


def clip_grad_norm_(parameters, max_norm):
    gs = [p.grad for p in parameters if p.grad is not None]
    total = math.sqrt(sum(float((g.double() * g.double()).sum()) for g in gs))
    if total > max_norm:
        for g in gs:
            g.mul_(max_norm / (total + 1e-6))
    return total


def run_clip(grads, max_norm):
    params = [torch.zeros(1, requires_grad=True) if g is None else torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.detach().clone()
    norm = clip_grad_norm_((p for p in params), max_norm)
    return [p.grad for p in params], norm


def train_step(model, optimizer, x, y, grad_clip=1.0):
    for group in optimizer.param_groups:  # zero_grad by hand
        for p in group["params"]:
            p.grad = None
    loss = masked_cross_entropy(logits_of(model(x)), y)
    loss.backward()
    if grad_clip is not None:
        clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return float(loss)


def train_loop(model, optimizer, data, steps, batch_size, block_size, generator, grad_clip=1.0, lr_schedule=None):
    losses = []
    for step in tqdm(range(steps), leave=False):
        if lr_schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_schedule(step)
        x, y = batch_at(data, torch.randint(len(data) - block_size, (batch_size,), generator=generator), block_size)
        losses.append(train_step(model, optimizer, x, y, grad_clip))
    return losses
'''

_NAMED_GROUPS_TRAIN = r'''
import torch.nn as nn


def _groups(model, weight_decay):
    emb = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    seen, decay, keep = set(), [], []
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.ndim >= 2 and id(p) not in emb else keep).append(p)
    print(f"{len(decay)} decayed tensors, {len(keep)} not decayed")
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def train(model, data, steps, batch_size, block_size, lr, min_lr, warmup, betas, weight_decay, grad_clip, generator):
    opt = AdamW(_groups(model, weight_decay), lr=lr, betas=betas)
    schedule = lambda s: lr_at(s, lr, min_lr, warmup, steps)  # noqa: E731
    model.train()
    try:
        return train_loop(model, opt, data, steps, batch_size, block_size, generator, grad_clip, schedule)
    finally:
        model.eval()
'''

_DECAY_EVERYTHING = r'''
def train(model, data, steps, batch_size, block_size, lr, min_lr, warmup, betas, weight_decay, grad_clip, generator):
    opt = AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)  # embeddings and biases decay too
    model.train()
    losses = train_loop(model, opt, data, steps, batch_size, block_size, generator, grad_clip,
                        lambda s: lr_at(s, lr, min_lr, warmup, steps))
    model.eval()
    return losses
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
def lr_at(step, lr, min_lr, warmup, max_iters):
    progress = min(1.0, step / max(1, max_iters))  # the warm-up is forgotten
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
    "float64-optimiser": {"kind": "honest", "answers": {"training": _FLOAT64_TRAINING, "train": _NAMED_GROUPS_TRAIN}},
    "sampler-class": {"kind": "honest", "answers": {"sampler": _CLASS_SAMPLER}},
    "printing-run": {"kind": "honest", "answers": {"run": _PRINTING_RUN}},
    "all-styles-together": {"kind": "honest", "answers": {
        "tokenizer": _DICT_TOKENIZER, "gpt": _SDPA_GPT, "training": _FLOAT64_TRAINING, "train": _NAMED_GROUPS_TRAIN,
        "sampler": _CLASS_SAMPLER, "run": _PRINTING_RUN}},
    "no-warm-up": {"kind": "partial", "answers": {"training": _FLOAT64_TRAINING + "\n\n" + _NO_WARMUP},
                   "expect": {"test_training": 0.5}},
    "decays-everything": {"kind": "partial", "answers": {"train": _DECAY_EVERYTHING}, "expect": {"test_training": 1}},
    "unbiased-layernorm": {"kind": "partial", "answers": {"gpt": _SDPA_GPT + "\n\n" + _UNBIASED_LAYERNORM},
                           "expect": {"test_model": 0.5, "test_training": 1, "test_run": 3}},
    "reference-gpt": {"kind": "attack", "answers": {"gpt": _REFERENCE_GPT},
                      "expect": {"test_model": 0, "test_training": 1, "test_run": 0}},
}
