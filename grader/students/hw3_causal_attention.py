"""Made-up students of HW3 (causal attention): data only, see grader/students/__init__.py."""

EINSUM_FLOAT64 = {
    "causal_mask": '''
def causal_mask(T):
    i = torch.arange(T)
    return i[:, None] >= i[None, :]
''',
    "masked_attention": '''
def masked_attention(q, k, v, mask=None):
    """einsum, the scores in float64, the result cast back to q's dtype."""
    scores = torch.einsum("...td,...sd->...ts", q.double(), k.double()) * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = torch.where(mask, scores, torch.tensor(float("-inf"), dtype=scores.dtype))
    weights = torch.softmax(scores, dim=-1)
    out = torch.einsum("...ts,...sd->...td", weights, v.double())
    return out.to(q.dtype), weights.to(q.dtype)
''',
}

NUMPY_MASK_LOOP_HEADS = {
    "causal_mask": '''
import numpy as np


def causal_mask(T):
    return torch.from_numpy(np.tril(np.ones((T, T), dtype=bool)))
''',
    "mhsa": '''
class MultiHeadCausalSelfAttention(nn.Module):
    """A Python loop over the heads (slower, same result)."""

    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        assert n_embd % n_head == 0, "n_embd must be divisible by n_head"
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)

    def forward(self, x):
        B, T, C = x.shape
        D = C // self.n_head
        q, k, v = self.c_attn(x).chunk(3, dim=-1)
        mask = causal_mask(T)
        heads = []
        for h in range(self.n_head):
            part = slice(h * D, (h + 1) * D)
            heads.append(masked_attention(q[..., part], k[..., part], v[..., part], mask)[0])
        return self.c_proj(torch.cat(heads, dim=-1))
''',
}

HELPERS_DECORATOR_PRINTS = {
    "masked_attention": '''
import functools


def checked(f):
    """A decorator that checks the shapes and prints them once."""
    seen = set()

    @functools.wraps(f)
    def wrapper(q, k, v, mask=None):
        assert q.shape[-1] == k.shape[-1] and k.shape[-2] == v.shape[-2]
        if q.shape not in seen:
            seen.add(q.shape)
            print("attention on", tuple(q.shape))
        return f(q, k, v, mask)
    return wrapper


def split_heads(t, n_head):
    B, T, C = t.shape
    return t.view(B, T, n_head, C // n_head).permute(0, 2, 1, 3)


def merge_heads(t):
    B, H, T, D = t.shape
    return t.permute(0, 2, 1, 3).reshape(B, T, H * D)


@checked
def masked_attention(q, k, v, mask=None):
    scores = torch.matmul(q, k.transpose(-1, -2)) * q.size(-1) ** -0.5
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), -math.inf)
    weights = scores.softmax(dim=-1)
    return torch.matmul(weights, v), weights
''',
    "mhsa": '''
class MultiHeadCausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)

    def forward(self, x):
        q, k, v = (split_heads(t, self.n_head) for t in self.c_attn(x).split(x.size(-1), dim=-1))
        return self.c_proj(merge_heads(masked_attention(q, k, v, causal_mask(x.size(1)))[0]))
''',
}

RECURSION_SUBCLASS = {
    "causal_mask": '''
def causal_mask(T):
    """Recursive: the mask of T - 1, one new row that sees everything, one new column."""
    if T == 0:
        return torch.zeros(0, 0, dtype=torch.bool)
    smaller = causal_mask(T - 1)
    top = torch.cat([smaller, torch.zeros(T - 1, 1, dtype=torch.bool)], dim=1)
    return torch.cat([top, torch.ones(1, T, dtype=torch.bool)], dim=0)
''',
    "mhsa": '''
class _Heads(nn.Module):
    """A base class with the head bookkeeping; the parameters live in the subclass."""

    def heads(self, t):
        B, T, C = t.shape
        return t.reshape(B, T, self.n_head, C // self.n_head).transpose(1, 2)


class MultiHeadCausalSelfAttention(_Heads):
    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)

    def forward(self, x):
        B, T, C = x.shape
        w, b = self.c_attn.weight, self.c_attn.bias
        qkv = x @ w.t() + (b if b is not None else 0.0)
        q, k, v = (self.heads(t) for t in qkv.split(C, dim=-1))
        y = masked_attention(q, k, v, causal_mask(T))[0]
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
''',
}

STUDENTS = {
    "einsum-float64": {"kind": "honest", "answers": EINSUM_FLOAT64},
    "numpy-mask-loop-over-heads": {"kind": "honest", "answers": NUMPY_MASK_LOOP_HEADS},
    "helpers-decorator-prints": {"kind": "honest", "answers": HELPERS_DECORATOR_PRINTS},
    "recursion-and-subclass": {"kind": "honest", "answers": RECURSION_SUBCLASS},
    # forgets the 1 / sqrt(D) scaling: the value checks fail, the causality checks and the
    # one-token module (whose only weight is 1) pass
    "no-scaling": {"kind": "partial", "answers": {"masked_attention": '''
def masked_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = torch.softmax(scores, dim=-1)
    return w @ v, w
'''}, "expect": {"test_masked_attention": 0.75, "test_mhsa": 1.0}},
    # the strict past only (no diagonal): every mask check fails; the module stays causal, so
    # its causality checks and the one-token case pass
    "strict-lower-mask": {"kind": "partial", "answers": {"causal_mask": '''
def causal_mask(T):
    return torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-1) | (torch.eye(T, dtype=torch.bool) & (T == 1))
'''}, "expect": {"test_causal_mask": 0.0, "test_mhsa": 1.0}},
    # PyTorch's own multi-head attention with the reference's weights (functional form)
    "functional-mha": {"kind": "attack", "answers": {"mhsa": '''
import torch.nn.functional as F


class MultiHeadCausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)

    def forward(self, x):
        T, C = x.size(1), x.size(2)
        xt = x.transpose(0, 1)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        y, _ = F.multi_head_attention_forward(
            xt, xt, xt, C, self.n_head, self.c_attn.weight, self.c_attn.bias, None, None, False, 0.0,
            self.c_proj.weight, self.c_proj.bias, training=False, need_weights=True, attn_mask=mask)
        return y.transpose(0, 1)
'''}, "expect": {"test_mhsa": 0}},
    # nn.MultiheadAttention as a submodule, its weights copied from c_attn / c_proj
    "module-mha": {"kind": "attack", "answers": {"mhsa": '''
class MultiHeadCausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.mha = nn.MultiheadAttention(n_embd, n_head, bias=bias, batch_first=True)

    def forward(self, x):
        with torch.no_grad():
            self.mha.in_proj_weight.copy_(self.c_attn.weight)
            self.mha.out_proj.weight.copy_(self.c_proj.weight)
            if self.c_attn.bias is not None:
                self.mha.in_proj_bias.copy_(self.c_attn.bias)
                self.mha.out_proj.bias.copy_(self.c_proj.bias)
        T = x.size(1)
        return self.mha(x, x, x, attn_mask=torch.ones(T, T, dtype=torch.bool).triu(1))[0]
'''}, "expect": {"test_mhsa": 0}},
}
