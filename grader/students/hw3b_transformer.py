"""Demo students of hw3b_transformer: honest ones in other styles, partial ones, attacks.

Data only: each answer is the source of one answer cell (by grade_id); cells not listed
get the official solution. ``expect`` gives the exact points of the test cells that differ
from full marks.
"""

# ---- honest: other styles, other conventions that the tests accept --------------------

_LN_VAR = '''
class LayerNorm(RefModule):
    """LayerNorm with torch.var(unbiased=False) and rsqrt."""

    def __init__(self, dim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        if bias:
            self.bias = nn.Parameter(torch.zeros(dim))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        var, mean = torch.var_mean(x, dim=-1, unbiased=False, keepdim=True)
        out = (x - mean) * torch.rsqrt(var + self.eps) * self.weight
        if self.bias is not None:
            out = out + self.bias
        return out
'''

_MLP_FORMULA = '''
def gelu_tanh(u):
    return 0.5 * u * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u ** 3)))


class MLP(RefModule):
    def __init__(self, n_embd, hidden=None, bias=True):
        super().__init__()
        hidden = hidden or 4 * n_embd
        self.c_fc = nn.Linear(n_embd, hidden, bias=bias)
        self.c_proj = nn.Linear(hidden, n_embd, bias=bias)

    def forward(self, x):
        return self.c_proj(gelu_tanh(self.c_fc(x)))
'''

_ATTN_EINSUM = '''
def attend(q, k, v):
    D, T = q.shape[-1], q.shape[-2]
    scores = torch.einsum("bhtd,bhsd->bhts", q, k) * (1.0 / math.sqrt(D))
    allowed = torch.tril(torch.ones(T, T, device=q.device)).bool()
    scores = torch.where(allowed, scores, torch.full_like(scores, -float("inf")))
    return torch.einsum("bhts,bhsd->bhtd", scores.softmax(-1), v)


class CausalSelfAttention(RefModule):
    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)

    def forward(self, x):
        B, T, C = x.shape
        qkv = self.c_attn(x).reshape(B, T, 3, self.n_head, C // self.n_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, D)
        y = attend(q, k, v)
        return self.c_proj(torch.einsum("bhtd->bthd", y).reshape(B, T, C))
'''

_LN_FLOAT64 = '''
class LayerNorm(RefModule):
    """LayerNorm computed in float64 whatever the input, from the mean of squares."""

    def __init__(self, dim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x):
        x64 = x.double()
        mean = x64.sum(-1, keepdim=True) / x.shape[-1]
        mean_sq = (x64 * x64).sum(-1, keepdim=True) / x.shape[-1]
        var = mean_sq - mean * mean
        y = (x64 - mean) / (var + self.eps).sqrt() * self.weight.double()
        if self.bias is not None:
            y = y + self.bias.double()
        return y.to(x.dtype)
'''

_ATTN_LOOP = '''
def attend(q, k, v):
    """One head at a time, with a softmax written out."""
    T = q.shape[-2]
    outs = []
    for h in range(q.shape[1]):
        s = q[:, h] @ k[:, h].transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, T, T)
        s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool, device=q.device), 1), float("-inf"))
        s = s - s.max(dim=-1, keepdim=True).values
        w = s.exp()
        w = w / w.sum(dim=-1, keepdim=True)
        outs.append(w @ v[:, h])
    return torch.stack(outs, dim=1)


class CausalSelfAttention(RefModule):
    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)

    def forward(self, x):
        B, T, C = x.shape
        H = self.n_head
        q, k, v = self.c_attn(x).chunk(3, dim=-1)
        heads = [t.reshape(B, T, H, C // H).permute(0, 2, 1, 3) for t in (q, k, v)]
        y = attend(*heads)
        return self.c_proj(torch.cat([y[:, h] for h in range(H)], dim=-1))
'''

_BLOCK_RENAMED = '''
class Block(RefModule):
    """Other names (norm1, attention, norm2, ffn) and a name map in load_reference."""

    NAMES = {"ln_1": "norm1", "attn": "attention", "ln_2": "norm2", "mlp": "ffn"}

    def __init__(self, n_embd, n_head, bias=True, eps=1e-5):
        super().__init__()
        self.norm1 = LayerNorm(n_embd, eps, bias)
        self.attention = CausalSelfAttention(n_embd, n_head, bias)
        self.norm2 = LayerNorm(n_embd, eps, bias)
        self.ffn = MLP(n_embd, None, bias)

    def load_reference(self, state_dict):
        renamed = {}
        for key, value in state_dict.items():
            first, rest = key.split(".", 1)
            renamed[self.NAMES[first] + "." + rest] = value
        self.load_state_dict(renamed)

    def forward(self, x):
        h = x + self.attention(self.norm1(x))
        return h + self.ffn(self.norm2(h))
'''

_GPT_MODULEDICT = '''
class GPT(RefModule):
    """Own names in a ModuleDict; the tied head is the embedding matrix itself (no lm_head module)."""

    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, bias=True, tie_weights=True, eps=1e-5):
        super().__init__()
        self.block_size, self.tie_weights = block_size, tie_weights
        self.parts = nn.ModuleDict({
            "tok": nn.Embedding(vocab_size, n_embd),
            "pos": nn.Embedding(block_size, n_embd),
            "norm": LayerNorm(n_embd, eps, bias),
        })
        self.blocks = nn.ModuleList(Block(n_embd, n_head, bias, eps) for _ in range(n_layer))
        if not tie_weights:
            self.head = nn.Parameter(torch.randn(vocab_size, n_embd) * 0.02)

    def load_reference(self, state_dict):
        sd = dict(state_dict)
        self.parts["tok"].weight.data.copy_(sd.pop("transformer.wte.weight"))
        self.parts["pos"].weight.data.copy_(sd.pop("transformer.wpe.weight"))
        head = sd.pop("lm_head.weight")
        if not self.tie_weights:
            self.head.data.copy_(head)
        norm = {k.split(".")[-1]: sd.pop(k) for k in list(sd) if k.startswith("transformer.ln_f.")}
        self.parts["norm"].load_state_dict(norm)
        for i, block in enumerate(self.blocks):
            prefix = f"transformer.h.{i}."
            block.load_reference({k[len(prefix):]: sd.pop(k) for k in list(sd) if k.startswith(prefix)})
        assert not sd, f"unused weights: {sorted(sd)}"

    def forward(self, idx):
        T = idx.shape[1]
        assert T <= self.block_size
        x = self.parts["tok"](idx) + self.parts["pos"](torch.arange(T, device=idx.device))[None]
        for block in self.blocks:
            x = block(x)
        x = self.parts["norm"](x)
        W = self.parts["tok"].weight if self.tie_weights else self.head
        return x @ W.t()
'''

_LN_RECIPROCAL = '''
class LayerNorm(RefModule):
    def __init__(self, dim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x):
        n = x.shape[-1]
        centred = x - x.sum(-1, keepdim=True) * (1.0 / n)
        inv_std = (centred.pow(2).sum(-1, keepdim=True) * (1.0 / n) + self.eps) ** -0.5
        out = centred * inv_std * self.weight
        return out if self.bias is None else out + self.bias
'''

_GPT_PRINTS = '''
class GPT(RefModule):
    """Prints while it runs (the grader ignores the output); positions via index_select."""

    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, bias=True, tie_weights=True, eps=1e-5):
        super().__init__()
        self.block_size = block_size
        parts = {"wte": nn.Embedding(vocab_size, n_embd), "wpe": nn.Embedding(block_size, n_embd)}
        parts["h"] = nn.ModuleList(Block(n_embd, n_head, bias, eps) for _ in range(n_layer))
        parts["ln_f"] = LayerNorm(n_embd, eps, bias)
        self.transformer = nn.ModuleDict(parts)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        if tie_weights:
            self.lm_head.weight = self.transformer.wte.weight
        print(f"GPT with {sum(p.numel() for p in self.parameters()):,} parameters")

    def forward(self, idx):
        B, T = idx.shape
        tok = self.transformer.wte.weight[idx]
        pos = self.transformer.wpe.weight.index_select(0, torch.arange(T, device=idx.device))
        x = tok + pos.unsqueeze(0)
        for i, block in enumerate(self.transformer.h):
            x = block(x)
            print("block", i, "done, stream norm", float(x.norm()))
        return self.lm_head(self.transformer.ln_f(x))
'''

_RMS_EPS_OUTSIDE = '''
class RMSNorm(RefModule):
    """eps outside the square root (accepted: the tests use inputs where both agree)."""

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        rms = x.pow(2).mean(-1, keepdim=True).sqrt()
        return x / (rms + self.eps) * self.weight
'''

_ROPE_STACK_F64 = '''
def apply_rope(x, positions, theta=10000.0):
    """Rotate half, the rotated copy built with torch.stack; angles in float64."""
    D = x.shape[-1]
    i = torch.arange(D // 2, dtype=torch.float64)
    angle = positions.double()[:, None] * theta ** (-2.0 * i / D)[None, :]  # (T, D/2)
    cos = torch.cat([angle.cos()] * 2, -1).to(x.dtype)
    sin = torch.cat([angle.sin()] * 2, -1).to(x.dtype)
    first, second = x[..., : D // 2], x[..., D // 2:]
    rotated = torch.stack([-second, first], dim=-2).flatten(-2)  # (-x2, x1)
    return x * cos + rotated * sin
'''

_SWIGLU_SPLIT = '''
class SwiGLU(RefModule):
    """Three Linear layers (gate, up, down) as in transformers' Llama; load_reference splits c_fc."""

    def __init__(self, n_embd, hidden, bias=False):
        super().__init__()
        self.gate = nn.Linear(n_embd, hidden, bias=bias)
        self.up = nn.Linear(n_embd, hidden, bias=bias)
        self.down = nn.Linear(hidden, n_embd, bias=bias)

    def load_reference(self, state_dict):
        mine = {}
        for kind in ("weight", "bias"):
            if f"c_fc.{kind}" in state_dict:
                g, u = state_dict[f"c_fc.{kind}"].chunk(2, dim=0)
                mine[f"gate.{kind}"], mine[f"up.{kind}"] = g, u
                mine[f"down.{kind}"] = state_dict[f"c_proj.{kind}"]
        self.load_state_dict(mine)

    def forward(self, x):
        g = self.gate(x)
        return self.down(g * torch.sigmoid(g) * self.up(x))
'''

_GQA_EXPAND = '''
class GroupedQueryAttention(RefModule):
    """Keys and values shared through expand + reshape instead of repeat_interleave."""

    def __init__(self, n_embd, n_head, n_kv_head, bias=False, rope_theta=10000.0):
        super().__init__()
        self.n_head, self.n_kv_head, self.rope_theta = n_head, n_kv_head, rope_theta
        D = n_embd // n_head
        self.c_attn = nn.Linear(n_embd, (n_head + 2 * n_kv_head) * D, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)

    def forward(self, x):
        B, T, C = x.shape
        H, Hk = self.n_head, self.n_kv_head
        D, G = C // H, H // Hk
        qkv = self.c_attn(x)
        q = qkv[..., : H * D].reshape(B, T, H, D).transpose(1, 2)
        k = qkv[..., H * D: (H + Hk) * D].reshape(B, T, Hk, D).transpose(1, 2)
        v = qkv[..., (H + Hk) * D:].reshape(B, T, Hk, D).transpose(1, 2)
        pos = torch.arange(T)
        q, k = apply_rope(q, pos, self.rope_theta), apply_rope(k, pos, self.rope_theta)
        k = k[:, :, None].expand(B, Hk, G, T, D).reshape(B, H, T, D)
        v = v[:, :, None].expand(B, Hk, G, T, D).reshape(B, H, T, D)
        return self.c_proj(attend(q, k, v).transpose(1, 2).reshape(B, T, C))
'''

_ROPE_COMPLEX = '''
def interleave_rows(w, n_heads, D):
    """Reorder each head's D rows from rotate-half pairs (i, i + D/2) to neighbours (2i, 2i + 1)."""
    order = torch.stack([torch.arange(D // 2), torch.arange(D // 2, D)], dim=1).flatten()
    return w.reshape(n_heads, D, *w.shape[1:])[:, order].reshape(w.shape)


def apply_rope(x, positions, theta=10000.0):
    """The paper's pairing (2i, 2i + 1), as complex numbers."""
    B, H, T, D = x.shape
    freqs = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
    rot = torch.polar(torch.ones(T, D // 2, dtype=torch.float64), positions.double()[:, None] * freqs)
    z = torch.view_as_complex(x.double().reshape(B, H, T, D // 2, 2).contiguous())
    return torch.view_as_real(z * rot).reshape(B, H, T, D).to(x.dtype)
'''

_GQA_INTERLEAVED = '''
class GroupedQueryAttention(RefModule):
    """Interleaved RoPE, so load_reference reorders the query and key rows of every head."""

    def __init__(self, n_embd, n_head, n_kv_head, bias=False, rope_theta=10000.0):
        super().__init__()
        self.n_head, self.n_kv_head, self.rope_theta = n_head, n_kv_head, rope_theta
        self.D = n_embd // n_head
        self.c_attn = nn.Linear(n_embd, (n_head + 2 * n_kv_head) * self.D, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)

    def load_reference(self, state_dict):
        H, Hk, D = self.n_head, self.n_kv_head, self.D
        sd = dict(state_dict)
        for kind in ("weight", "bias"):
            key = f"c_attn.{kind}"
            if key in sd:
                q, k, v = sd[key].split([H * D, Hk * D, Hk * D], dim=0)
                sd[key] = torch.cat([interleave_rows(q, H, D), interleave_rows(k, Hk, D), v], dim=0)
        self.load_state_dict(sd)

    def forward(self, x):
        B, T, C = x.shape
        H, Hk, D = self.n_head, self.n_kv_head, self.D
        q, k, v = self.c_attn(x).split([H * D, Hk * D, Hk * D], dim=-1)
        q = q.view(B, T, H, D).transpose(1, 2)
        k = k.view(B, T, Hk, D).transpose(1, 2)
        v = v.view(B, T, Hk, D).transpose(1, 2)
        pos = torch.arange(T)
        q, k = apply_rope(q, pos, self.rope_theta), apply_rope(k, pos, self.rope_theta)
        k, v = k.repeat_interleave(H // Hk, 1), v.repeat_interleave(H // Hk, 1)
        return self.c_proj(attend(q, k, v).transpose(1, 2).reshape(B, T, C))
'''

_LLAMA_DELEGATING = '''
class LlamaBlock(RefModule):
    """Each part loads its own slice of the state dict (so the attention can reorder its rows)."""

    def __init__(self, n_embd, n_head, n_kv_head, hidden, bias=False, eps=1e-6, rope_theta=10000.0):
        super().__init__()
        self.ln_1 = RMSNorm(n_embd, eps)
        self.attn = GroupedQueryAttention(n_embd, n_head, n_kv_head, bias, rope_theta)
        self.ln_2 = RMSNorm(n_embd, eps)
        self.mlp = SwiGLU(n_embd, hidden, bias)

    def load_reference(self, state_dict):
        for name, part in self.named_children():
            part.load_reference({k[len(name) + 1:]: v for k, v in state_dict.items() if k.startswith(name + ".")})

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class LlamaGPT(RefModule):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_kv_head, n_embd, hidden=None, bias=False,
                 tie_weights=False, eps=1e-6, rope_theta=10000.0):
        super().__init__()
        if hidden is None:
            hidden = 8 * math.ceil(8 * n_embd / 3 / 8)
        self.embed = nn.Embedding(vocab_size, n_embd)
        self.layers = nn.ModuleList([LlamaBlock(n_embd, n_head, n_kv_head, hidden, bias, eps, rope_theta)
                                     for _ in range(n_layer)])
        self.norm = RMSNorm(n_embd, eps)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        if tie_weights:
            self.head.weight = self.embed.weight

    def load_reference(self, state_dict):
        with torch.no_grad():
            self.embed.weight.copy_(state_dict["transformer.wte.weight"])
            self.norm.weight.copy_(state_dict["transformer.ln_f.weight"])
            self.head.weight.copy_(state_dict["lm_head.weight"])
        for i, layer in enumerate(self.layers):
            p = f"transformer.h.{i}."
            layer.load_reference({k[len(p):]: v for k, v in state_dict.items() if k.startswith(p)})

    def forward(self, idx):
        x = self.embed(idx)
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x))
'''

# ---- partial: one real mistake each -------------------------------------------------------

_LN_UNBIASED = '''
class LayerNorm(RefModule):
    def __init__(self, dim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True)  # unbiased: divides by C - 1
        y = (x - mu) / torch.sqrt(var + self.eps) * self.weight
        return y if self.bias is None else y + self.bias
'''

_GPT_UNTIED = '''
class GPT(RefModule):
    """Correct logits, but the head is a second matrix (a copy) even with tie_weights=True."""

    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, bias=True, tie_weights=True, eps=1e-5):
        super().__init__()
        self.transformer = nn.ModuleDict({"wte": nn.Embedding(vocab_size, n_embd), "wpe": nn.Embedding(block_size, n_embd),
                                          "h": nn.ModuleList(Block(n_embd, n_head, bias, eps) for _ in range(n_layer)),
                                          "ln_f": LayerNorm(n_embd, eps, bias)})
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)

    def forward(self, idx):
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(idx.shape[1]))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))
'''

_GQA_REPEAT = '''
class GroupedQueryAttention(RefModule):
    """Wrong grouping: repeat (head h reads kv head h % n_kv_head) instead of repeat_interleave."""

    def __init__(self, n_embd, n_head, n_kv_head, bias=False, rope_theta=10000.0):
        super().__init__()
        self.n_head, self.n_kv_head, self.rope_theta = n_head, n_kv_head, rope_theta
        D = n_embd // n_head
        self.c_attn = nn.Linear(n_embd, (n_head + 2 * n_kv_head) * D, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)

    def forward(self, x):
        B, T, C = x.shape
        H, Hk, D = self.n_head, self.n_kv_head, C // self.n_head
        q, k, v = self.c_attn(x).split([H * D, Hk * D, Hk * D], dim=-1)
        q = q.view(B, T, H, D).transpose(1, 2)
        k = k.view(B, T, Hk, D).transpose(1, 2)
        v = v.view(B, T, Hk, D).transpose(1, 2)
        pos = torch.arange(T)
        q, k = apply_rope(q, pos, self.rope_theta), apply_rope(k, pos, self.rope_theta)
        k, v = k.repeat(1, H // Hk, 1, 1), v.repeat(1, H // Hk, 1, 1)
        return self.c_proj(attend(q, k, v).transpose(1, 2).reshape(B, T, C))
'''

_MLP_EXACT_GELU = '''
class MLP(RefModule):
    """The exact (erf) GELU: a correct GELU, but not the one the weights were trained with."""

    def __init__(self, n_embd, hidden=None, bias=True):
        super().__init__()
        hidden = hidden or 4 * n_embd
        self.c_fc = nn.Linear(n_embd, hidden, bias=bias)
        self.c_proj = nn.Linear(hidden, n_embd, bias=bias)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))
'''

# ---- attacks: the built-in kernels, the reference itself ------------------------------------

_LN_BUILTIN = '''
class LayerNorm(RefModule):
    def __init__(self, dim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)
'''

_RMS_BUILTIN = '''
class RMSNorm(RefModule):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return nn.functional.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
'''

_GPT_REFERENCE = '''
class GPT(RefModule):
    """Wraps the reference model instead of building one."""

    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, bias=True, tie_weights=True, eps=1e-5):
        super().__init__()
        from lmcourse.model import GPT as Reference, GPTConfig

        self.inner = Reference(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer,
                                         n_head=n_head, n_embd=n_embd, bias=bias, tie_weights=tie_weights,
                                         layer_norm_eps=eps))

    def load_reference(self, state_dict):
        self.inner.load_state_dict(state_dict)

    def forward(self, idx):
        return self.inner(idx)[0]
'''

_LLAMA_REFERENCE = '''
import lmcourse.model as _reference


class LlamaBlock(RefModule):
    def __init__(self, n_embd, n_head, n_kv_head, hidden, bias=False, eps=1e-6, rope_theta=10000.0):
        super().__init__()
        cfg = _reference.GPTConfig(n_embd=n_embd, n_head=n_head, n_kv_head=n_kv_head, mlp_hidden=hidden, bias=bias,
                                   layer_norm_eps=eps, rope_theta=rope_theta, pos_emb="rope", norm="rmsnorm",
                                   mlp="swiglu", tie_weights=False)
        self.inner, self.rotary = _reference.Block(cfg), _reference.RotaryEmbedding(cfg)

    def load_reference(self, state_dict):
        self.inner.load_state_dict(state_dict)

    def forward(self, x):
        return self.inner(x, None, None, self.rotary(torch.arange(x.shape[1])[None]))


class LlamaGPT(RefModule):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_kv_head, n_embd, hidden=None, bias=False,
                 tie_weights=False, eps=1e-6, rope_theta=10000.0):
        super().__init__()
        self.inner = _reference.GPT(_reference.GPTConfig(
            vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head, n_kv_head=n_kv_head,
            n_embd=n_embd, mlp_hidden=hidden, bias=bias, tie_weights=tie_weights, layer_norm_eps=eps,
            rope_theta=rope_theta, pos_emb="rope", norm="rmsnorm", mlp="swiglu"))

    def load_reference(self, state_dict):
        self.inner.load_state_dict(state_dict)

    def forward(self, idx):
        return self.inner(idx)[0]
'''

_ATTN_FUSED = '''
def attend(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


class CausalSelfAttention(RefModule):
    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.c_attn(x).split(C, dim=-1))
        return self.c_proj(attend(q, k, v).transpose(1, 2).reshape(B, T, C))
'''

_ATTN_TORCH_MHA = '''
def attend(q, k, v):
    T = q.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    return torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1) @ v


class CausalSelfAttention(RefModule):
    """PyTorch's own attention module, with the reference weights mapped into it."""

    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        self.mha = nn.MultiheadAttention(n_embd, n_head, bias=bias, batch_first=True)

    def load_reference(self, state_dict):
        with torch.no_grad():
            self.mha.in_proj_weight.copy_(state_dict["c_attn.weight"])
            self.mha.out_proj.weight.copy_(state_dict["c_proj.weight"])
            if "c_attn.bias" in state_dict:
                self.mha.in_proj_bias.copy_(state_dict["c_attn.bias"])
                self.mha.out_proj.bias.copy_(state_dict["c_proj.bias"])

    def forward(self, x):
        T = x.shape[1]
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        return self.mha(x, x, x, attn_mask=future, need_weights=True)[0]
'''

STUDENTS = {
    # honest: full marks in styles unlike the official solution
    "var-einsum-formula": {
        "kind": "honest",
        "answers": {"layernorm": _LN_VAR, "mlp": _MLP_FORMULA, "attention": _ATTN_EINSUM},
    },
    "float64-loops-moduledict": {
        "kind": "honest",
        "answers": {"layernorm": _LN_FLOAT64, "attention": _ATTN_LOOP, "block": _BLOCK_RENAMED,
                    "gpt": _GPT_MODULEDICT},
    },
    "reciprocal-prints-stack-rope": {
        "kind": "honest",
        "answers": {"layernorm": _LN_RECIPROCAL, "gpt": _GPT_PRINTS, "rmsnorm": _RMS_EPS_OUTSIDE,
                    "rope": _ROPE_STACK_F64, "swiglu": _SWIGLU_SPLIT, "gqa": _GQA_EXPAND},
    },
    "complex-rope-interleaved": {
        "kind": "honest",
        "answers": {"rope": _ROPE_COMPLEX, "gqa": _GQA_INTERLEAVED, "swiglu": _SWIGLU_SPLIT,
                    "llama": _LLAMA_DELEGATING},
    },
    # partial: exactly the points of what is right
    "unbiased-variance": {
        "kind": "partial",
        "answers": {"layernorm": _LN_UNBIASED},
        "expect": {"test_layernorm": 0, "test_block": 0, "test_gpt": 2},
    },
    "untied-head": {
        "kind": "partial",
        "answers": {"gpt": _GPT_UNTIED},
        "expect": {"test_gpt": 3},
    },
    "gqa-wrong-grouping": {
        "kind": "partial",
        "answers": {"gqa": _GQA_REPEAT},
        "expect": {"test_gqa": 0, "test_llama": 0.5},
    },
    "exact-gelu": {
        "kind": "partial",
        "answers": {"mlp": _MLP_EXACT_GELU},
        "expect": {"test_mlp": 0, "test_block": 0, "test_gpt": 2},
    },
    # attacks: the blocked kernels and the reference score 0 on every check that needs them
    "builtin-norms": {
        "kind": "attack",
        "answers": {"layernorm": _LN_BUILTIN, "rmsnorm": _RMS_BUILTIN},
        "expect": {"test_layernorm": 0, "test_block": 0, "test_gpt": 1, "test_rmsnorm": 0, "test_llama": 0},
    },
    "imports-reference": {
        "kind": "attack",
        "answers": {"gpt": _GPT_REFERENCE, "llama": _LLAMA_REFERENCE},
        "expect": {"test_gpt": 0, "test_llama": 0},
    },
    "torch-multihead-attention": {
        "kind": "attack",
        "answers": {"attention": _ATTN_TORCH_MHA},
        "expect": {"test_attention": 0, "test_block": 0, "test_gpt": 1},
    },
    "fused-attention": {
        "kind": "attack",
        "answers": {"attention": _ATTN_FUSED},
        "expect": {"test_attention": 0, "test_block": 0, "test_gpt": 1, "test_gqa": 0, "test_llama": 0},
    },
}
