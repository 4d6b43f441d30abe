"""The building blocks of lmcourse.model, each built from its own sizes and tested alone.

References are written out here from the definitions (matmuls, softmax, the rotation
formula), never by calling the block under test a second time.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from lmcourse.model import (
    GPT,
    MLP,
    Block,
    CausalSelfAttention,
    GPTConfig,
    KVCache,
    RMSNorm,
    RotaryEmbedding,
    causal_mask,
)


def _attention_by_hand(attn: CausalSelfAttention, x: torch.Tensor, rope=None) -> torch.Tensor:
    """(B, T, C) -> (B, T, C): q, k, v from c_attn, heads, causal softmax, c_proj."""
    B, T, C = x.shape
    H, Hk, D = attn.n_head, attn.n_kv_head, attn.head_dim
    qkv = x @ attn.c_attn.weight.T + (attn.c_attn.bias if attn.c_attn.bias is not None else 0)
    q, k, v = qkv.split([H * D, Hk * D, Hk * D], dim=-1)
    q = q.view(B, T, H, D).transpose(1, 2)
    k = k.view(B, T, Hk, D).transpose(1, 2).repeat_interleave(H // Hk, dim=1)
    v = v.view(B, T, Hk, D).transpose(1, 2).repeat_interleave(H // Hk, dim=1)
    if rope is not None:
        q, k = rope(q), rope(k)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    scores = scores.masked_fill(~causal_mask(T), float("-inf"))
    y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
    return y @ attn.c_proj.weight.T + (attn.c_proj.bias if attn.c_proj.bias is not None else 0)


def _rotate(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """RoPE by its definition: pair (i, i + D/2) of position m turned by m * theta^(-2i/D)."""
    D = x.size(-1)
    freqs = theta ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)  # (D/2,)
    angle = positions.double()[:, None] * freqs[None, :]  # (T, D/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    a, b = x[..., : D // 2], x[..., D // 2 :]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


# ---- MLP ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_mlp_from_sizes_gelu_and_swiglu(bias):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 12)  # (..., C): any leading dimensions
    gelu = MLP(12, 20, bias=bias, activation="gelu")
    assert gelu.c_fc.weight.shape == (20, 12) and (gelu.c_fc.bias is not None) == bias
    h = F.linear(x, gelu.c_fc.weight, gelu.c_fc.bias)
    expected = F.linear(0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3))), gelu.c_proj.weight, gelu.c_proj.bias)
    torch.testing.assert_close(gelu(x), expected, atol=1e-5, rtol=1e-5)

    swiglu = MLP(12, 8, bias=bias, activation="swiglu")
    W1, W3 = swiglu.c_fc.weight[:8], swiglu.c_fc.weight[8:]
    b1, b3 = (swiglu.c_fc.bias[:8], swiglu.c_fc.bias[8:]) if bias else (0, 0)
    gate, value = x @ W1.T + b1, x @ W3.T + b3
    expected = (gate * torch.sigmoid(gate) * value) @ swiglu.c_proj.weight.T + (swiglu.c_proj.bias if bias else 0)
    torch.testing.assert_close(swiglu(x), expected, atol=1e-5, rtol=1e-5)


def test_mlp_default_width_and_config_route():
    assert MLP(10).c_fc.out_features == 40  # 4C, no n_head needed
    assert MLP(384, activation="swiglu").c_fc.out_features == 2 * 1024  # 2/3 of 4C, multiple of 8
    cfg = GPTConfig(n_embd=32, n_head=4, mlp="swiglu", bias=False, mlp_hidden=24)
    m = MLP(cfg)
    assert m.c_fc.weight.shape == (48, 32) and m.c_fc.bias is None and m.gated
    with pytest.raises(ValueError, match="activation"):
        MLP(8, activation="relu")
    with pytest.raises(TypeError, match="n_embd"):
        MLP(8.0)
    with pytest.raises(TypeError, match="bias"):
        MLP(8, bias="no")


# ---- RMSNorm -----------------------------------------------------------------------------


def test_rmsnorm_alone():
    torch.manual_seed(0)
    norm = RMSNorm(6, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 7.0))
    x = torch.randn(4, 2, 6)
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-6) * torch.arange(1.0, 7.0)
    torch.testing.assert_close(norm(x), expected)
    with pytest.raises(ValueError, match="dim"):
        RMSNorm(0)


# ---- RotaryEmbedding ---------------------------------------------------------------------


def test_rotary_from_its_own_sizes_matches_the_definition():
    rot = RotaryEmbedding(8, theta=100.0, max_len=12)
    x = torch.randn(1, 2, 12, 8)
    cos, sin = rot(torch.arange(12))  # (T,) positions are one row
    assert cos.shape == (1, 1, 12, 8)
    half = x.chunk(2, dim=-1)
    rotated = x * cos + torch.cat([-half[1], half[0]], dim=-1) * sin
    torch.testing.assert_close(rotated, _rotate(x, torch.arange(12), 100.0), atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(7)


def test_rotary_from_config_is_the_same_table():
    cfg = GPTConfig(n_embd=16, n_head=2, block_size=20, pos_emb="rope", rope_theta=500.0, rope_scaling=2.0)
    a, b = RotaryEmbedding(cfg), RotaryEmbedding(8, theta=500.0, max_len=20, scaling=2.0)
    assert torch.equal(a.cos, b.cos) and torch.equal(a.sin, b.sin)


# ---- CausalSelfAttention -----------------------------------------------------------------


@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_attention_from_sizes_matches_attention_by_hand(n_kv_head):
    torch.manual_seed(0)
    attn = CausalSelfAttention(16, 4, n_kv_head, bias=False).eval()
    x = torch.randn(3, 7, 16)
    torch.testing.assert_close(attn(x), _attention_by_hand(attn, x), atol=1e-5, rtol=1e-4)


def test_attention_takes_any_leading_dimensions():
    torch.manual_seed(0)
    attn = CausalSelfAttention(16, 2).eval()
    x = torch.randn(2, 3, 5, 16)  # (..., T, C)
    y = attn(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y[1, 2], attn(x[1, 2]))  # (T, C) alone: the same rows
    torch.testing.assert_close(y.reshape(6, 5, 16), attn(x.reshape(6, 5, 16)))


def test_attention_is_causal():
    torch.manual_seed(0)
    attn = CausalSelfAttention(8, 2).eval()
    x = torch.randn(1, 6, 8)
    changed = x.clone()
    changed[:, 4:] += 1.0
    y, y2 = attn(x), attn(changed)
    torch.testing.assert_close(y[:, :4], y2[:, :4])
    assert not torch.allclose(y[:, 4:], y2[:, 4:])


def test_attention_with_its_own_rotary_and_positions():
    torch.manual_seed(0)
    attn = CausalSelfAttention(16, 2, rotary=RotaryEmbedding(8, theta=10000.0, max_len=64)).eval()
    x = torch.randn(2, 5, 16)
    by_hand = _attention_by_hand(attn, x, rope=lambda t: _rotate(t, torch.arange(5), 10000.0))
    torch.testing.assert_close(attn(x), by_hand, atol=1e-5, rtol=1e-4)  # default positions 0..T-1
    # RoPE scores depend on m - n only: shifting every position leaves the output unchanged
    torch.testing.assert_close(attn(x, positions=torch.arange(30, 35)), attn(x), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="positions"):
        attn(x, positions=torch.arange(60, 65))
    with pytest.raises(ValueError, match="rotary"):
        CausalSelfAttention(16, 2, rotary=True)(x)  # told the caller brings (cos, sin); it did not


def test_attention_with_a_kv_cache_continues_the_positions():
    torch.manual_seed(0)
    attn = CausalSelfAttention(16, 4, 2, rotary=RotaryEmbedding(4, max_len=16)).eval()
    x = torch.randn(1, 6, 16)
    cache = KVCache(1, 1, 2, 16, 4)
    parts = []
    for a, b in ((0, 4), (4, 5), (5, 6)):  # prefill, then one token at a time
        parts.append(attn(x[:, a:b], cache))
        cache.advance(b - a)
    torch.testing.assert_close(torch.cat(parts, 1), attn(x), atol=1e-5, rtol=1e-4)


def test_attention_sizes_are_checked():
    with pytest.raises(ValueError, match="divide"):
        CausalSelfAttention(10, 4)
    with pytest.raises(ValueError, match="divide"):
        CausalSelfAttention(16, 4, 3)
    with pytest.raises(TypeError, match="n_head"):
        CausalSelfAttention(16, "4")
    with pytest.raises(ValueError, match="head_dim"):
        CausalSelfAttention(16, 2, rotary=RotaryEmbedding(4))


# ---- Block -------------------------------------------------------------------------------


def test_block_from_sizes_is_prenorm_residual():
    torch.manual_seed(0)
    block = Block(16, 4, 2, norm="rmsnorm", mlp="swiglu", bias=False, eps=1e-6).eval()
    assert isinstance(block.ln_1, RMSNorm) and block.mlp.gated and block.attn.n_kv_head == 2
    x = torch.randn(2, 5, 16)
    h = x + _attention_by_hand(block.attn, block.ln_1(x))
    torch.testing.assert_close(block(x), h + block.mlp(block.ln_2(h)), atol=1e-5, rtol=1e-4)


def test_block_config_routes_keep_working():
    cfg = GPTConfig(n_embd=16, n_head=4, n_layer=3, pos_emb="rope", norm="rmsnorm")
    for block in (Block(cfg, 2), Block(cfg, layer_idx=2)):
        assert block.attn.layer_idx == 2 and block.attn.uses_rope and isinstance(block.ln_2, RMSNorm)
    assert CausalSelfAttention(cfg, 1).layer_idx == 1
    a, b = GPT(cfg).transformer.h[1], Block(cfg, 1)
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]


# ---- the model step ----------------------------------------------------------------------


def test_gpt_step_is_the_last_logits_of_forward(tiny_gpt):
    model = tiny_gpt(vocab_size=11, block_size=16, n_embd=8)
    assert model.device == torch.device("cpu")
    idx = torch.randint(11, (2, 6))
    full, _ = model(idx)
    torch.testing.assert_close(model.step(idx), full[:, -1:])
    torch.testing.assert_close(model.step(idx, last=3), full[:, -3:])
    cache = model.new_kv_cache(2)
    first = model.step(idx[:, :4], cache)
    nxt = model.step(idx[:, 4:5], cache)
    assert cache.length == 5
    torch.testing.assert_close(torch.cat([first, nxt], 1), full[:, [3, 4]], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="last"):
        model.step(idx, last=7)
