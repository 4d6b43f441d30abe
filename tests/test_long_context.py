"""The long-context cost model against the formulas worked out by hand."""

import pytest

from lmcourse.long_context import (
    LLAMA3_8B,
    ModelShape,
    attention_flops,
    prefill_flops,
    ring_attention,
    ring_overlap_block,
)


def test_kv_bytes_llama3_8b_at_1m_tokens():
    # 2 * 32 layers * 8 heads * 128 * 2**20 tokens * 2 bytes = 128 GiB
    assert LLAMA3_8B.kv_bytes(2**20) == 2 * 32 * 8 * 128 * 2**20 * 2 == 128 * 2**30


def test_kv_bytes_equal_an_allocated_cache(tiny_gpt):
    shape = ModelShape("tiny", 1.0, 3, 4, 2, 8)
    cache = tiny_gpt(n_layer=3, n_head=4, n_kv_head=2, n_embd=32).new_kv_cache(batch_size=1, max_len=32)
    assert shape.kv_bytes(32, bytes_per_elem=4) == cache.nbytes()


def test_attention_flops_quadratic_and_causal_half():
    a1, a2 = attention_flops(LLAMA3_8B, 1000), attention_flops(LLAMA3_8B, 2000)
    assert a2 == pytest.approx(4 * a1)
    assert attention_flops(LLAMA3_8B, 1000, causal=False) == 2 * a1
    assert a1 == 2 * 32 * 32 * 128 * 1000**2
    weights, attn = prefill_flops(LLAMA3_8B, 1000)
    assert weights == 2 * 8.03e9 * 1000 and attn == a1


def test_ring_attention_splits_memory_and_flops():
    n, g = 2**20, 8
    one, ring = ring_attention(LLAMA3_8B, n, 1), ring_attention(LLAMA3_8B, n, g)
    assert one.kv_bytes_per_device == LLAMA3_8B.kv_bytes(n) and one.bytes_sent_per_device == 0
    assert ring.kv_bytes_per_device == pytest.approx(2 * LLAMA3_8B.kv_bytes(n) / g)
    assert ring.attention_flops_per_device == pytest.approx(one.attention_flops_per_device / g)
    assert ring.bytes_sent_per_device == pytest.approx(LLAMA3_8B.kv_bytes(n) * (g - 1) / g)


def test_overlap_block_equalises_compute_and_transfer_time():
    flops, bw = 1e15, 4e11
    b = ring_overlap_block(LLAMA3_8B, flops, bw)
    s = LLAMA3_8B
    compute = 4 * s.n_head * s.head_dim * b * b / flops  # one block pair, one layer
    send = 2 * s.n_kv_head * s.head_dim * b * 2 / bw
    assert compute == pytest.approx(send)
    assert ring_overlap_block(LLAMA3_8B, flops, 2 * bw) == pytest.approx(b / 2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_tokens"):
        attention_flops(LLAMA3_8B, 0)
    with pytest.raises(ValueError, match="devices"):
        ring_attention(LLAMA3_8B, 10, 0)
    with pytest.raises(ValueError, match="n_kv_head"):
        ModelShape("x", 1.0, 1, 4, 3, 8)
    with pytest.raises(TypeError, match="n_tokens"):
        attention_flops(LLAMA3_8B, 10.0)
    with pytest.raises(TypeError, match="causal"):
        attention_flops(LLAMA3_8B, 10, causal="no")
