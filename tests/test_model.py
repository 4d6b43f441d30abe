"""Tests of lmcourse.model: shapes, masking, KV cache, GQA/MQA, HF GPT-2 parity, files."""

import pytest
import torch
import torch.nn.functional as F

from lmcourse.hf import from_hf_gpt2
from lmcourse.long_context import kv_cache_bytes
from lmcourse.model import (
    GPT,
    GPTConfig,
    KVCache,
    causal_mask,
    scaled_dot_product_attention,
)


def tiny(**kw) -> GPTConfig:
    base = dict(vocab_size=37, block_size=32, n_layer=2, n_head=4, n_embd=32)
    base.update(kw)
    return GPTConfig(**base)


@pytest.fixture
def make(tiny_gpt):
    """``make(seed, **overrides)``: the tiny GPT of this file (its sizes, any field overridden)."""
    return lambda seed=0, **kw: tiny_gpt(seed, **{**tiny().to_dict(), **kw})


# ---- configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(n_embd=30), "divisible by n_head"),
        (dict(n_kv_head=3), "divisible by n_kv_head"),
        (dict(n_layer=0), "n_layer must be a positive integer"),
        (dict(vocab_size=-1), "vocab_size"),
        (dict(dropout=1.0), "dropout"),
        (dict(attn_impl="flash"), "attn_impl"),
        (dict(layer_norm_eps=float("nan")), "layer_norm_eps must be a finite number"),
        (dict(layer_norm_eps=float("inf")), "layer_norm_eps must be a finite number"),
        (dict(layer_norm_eps=0.0), "layer_norm_eps must be > 0"),
        (dict(pos_emb="alibi"), "pos_emb must be one of"),
        (dict(norm="batchnorm"), "norm must be one of"),
        (dict(mlp="relu"), "mlp must be one of"),
        (dict(mlp_hidden=0), "mlp_hidden must be a positive integer"),
        (dict(pos_emb="rope", n_embd=36, n_head=4), "head_dim .* must be even"),
        (dict(pos_emb="rope", rope_scaling=0.5), "rope_scaling must be >= 1"),
        (dict(pos_emb="rope", rope_theta=float("inf")), "rope_theta must be a finite number"),
        (dict(rope_scaling=2.0), "only apply with pos_emb='rope'"),
    ],
)
def test_config_validation(kw, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kw)


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(bias="False"), "bias must be True or False"),
        (dict(tie_weights=1), "tie_weights must be True or False"),
        (dict(n_head=True), "n_head must be a positive integer"),
        (dict(n_layer=2.0), "n_layer must be a positive integer"),
        (dict(dropout="0.1"), "dropout must be a finite number"),
    ],
)
def test_config_wrong_types_raise_type_error(kw, message):
    with pytest.raises(TypeError, match=message):
        tiny(**kw)


def test_config_defaults_and_roundtrip():
    cfg = tiny()
    assert cfg.n_kv_head == cfg.n_head and cfg.head_dim == 8
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown GPTConfig fields"):
        GPTConfig.from_dict({**cfg.to_dict(), "n_heads": 3})


# ---- forward, loss, masking ----------------------------------------------------------


def test_forward_shapes_and_loss_matches_cross_entropy(make):
    model = make()
    idx = torch.randint(0, 37, (3, 10))
    targets = torch.randint(0, 37, (3, 10))
    targets[0, :4] = -100  # padding
    logits, loss = model(idx, targets)
    assert logits.shape == (3, 10, 37)
    ref = F.cross_entropy(logits.reshape(-1, 37), targets.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(loss, ref)
    assert model(idx)[1] is None


def test_forward_rejects_bad_ids_and_targets_naming_them(make):
    model = make()
    good = torch.randint(0, 37, (2, 5))
    for bad, message in [
        (torch.tensor([[1, 37]]), r"idx must hold token ids in \[0, 36\]"),
        (torch.tensor([[-1, 3]]), r"idx must hold token ids in \[0, 36\]"),
        (torch.ones(1, 3), "idx must hold integer token ids"),
        (torch.ones(3, dtype=torch.long), "idx must be a \\(B, T\\) tensor"),
    ]:
        with pytest.raises(ValueError, match=message):
            model(bad)
    for bad_t, message in [
        (torch.full((2, 5), 37), "targets must be token ids in"),
        (torch.full((2, 5), -2), "targets must be token ids in"),
        (torch.zeros(2, 4, dtype=torch.long), "targets must have the shape of idx"),
    ]:
        with pytest.raises(ValueError, match=message):
            model(good, bad_t)
    ignored = torch.full((2, 5), -100)
    ignored[0, 0] = 3
    assert torch.isfinite(model(good, ignored)[1])
    model.train()  # training on the CPU is checked too (reading back a CPU value is free)
    with pytest.raises(ValueError, match="idx must hold token ids"):
        model(torch.tensor([[99]]))


def test_causal_mask_is_lower_triangular_and_offset():
    m = causal_mask(4)
    assert torch.equal(m, torch.tril(torch.ones(4, 4, dtype=torch.bool)))
    m2 = causal_mask(2, 5)  # two last queries of five keys
    assert m2.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]


def test_explicit_attention_matches_torch_sdpa():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 8) for _ in range(3))
    out, w = scaled_dot_product_attention(q, k, v, causal_mask(6))
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    assert torch.allclose(w.sum(-1), torch.ones(2, 3, 6))
    assert torch.all(w.triu(1) == 0)  # nothing from the future


@pytest.mark.parametrize("impl", ["sdpa", "explicit"])
@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_future_tokens_never_change_past_logits(make, impl, n_kv_head):
    model = make(attn_impl=impl, n_kv_head=n_kv_head)
    torch.manual_seed(1)
    a = torch.randint(0, 37, (2, 12))
    b = a.clone()
    b[:, 7:] = torch.randint(0, 37, (2, 5))  # change only positions 7..11
    la, _ = model(a)
    lb, _ = model(b)
    torch.testing.assert_close(la[:, :7], lb[:, :7], atol=1e-6, rtol=0)
    assert not torch.allclose(la[:, 7:], lb[:, 7:])


@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_sdpa_and_explicit_paths_agree(make, n_kv_head):
    a = make(attn_impl="sdpa", n_kv_head=n_kv_head)
    b = make(attn_impl="explicit", n_kv_head=n_kv_head)
    b.load_state_dict(a.state_dict())
    idx = torch.randint(0, 37, (2, 16))
    torch.testing.assert_close(a(idx)[0], b(idx)[0], atol=1e-5, rtol=1e-5)


def test_attention_maps_are_causal_distributions(make):
    model = make()
    maps = model.attention_maps(torch.randint(0, 37, (1, 9)))
    assert len(maps) == 2 and maps[0].shape == (1, 4, 9, 9)
    for w in maps:
        torch.testing.assert_close(w.sum(-1), torch.ones(1, 4, 9))
        assert torch.all(w.triu(1) == 0)


# ---- KV cache ------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["sdpa", "explicit"])
@pytest.mark.parametrize("n_kv_head", [4, 2, 1])  # MHA, GQA, MQA
def test_prefill_then_decode_equals_full_forward(make, impl, n_kv_head):
    model = make(attn_impl=impl, n_kv_head=n_kv_head)
    torch.manual_seed(2)
    idx = torch.randint(0, 37, (3, 20))
    full, _ = model(idx)
    cache = model.new_kv_cache(batch_size=3)
    pieces = [model(idx[:, :8], kv_cache=cache)[0]]  # prefill 8 tokens
    for t in range(8, 20):  # decode one token at a time
        pieces.append(model(idx[:, t : t + 1], kv_cache=cache)[0])
    cached = torch.cat(pieces, dim=1)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=0)
    assert cache.length == 20


def test_chunked_prefill_equals_full_forward(make):
    model = make(n_kv_head=2)
    idx = torch.randint(0, 37, (2, 15))
    cache = model.new_kv_cache(2)
    chunks = [model(idx[:, i : i + 5], kv_cache=cache)[0] for i in range(0, 15, 5)]
    torch.testing.assert_close(torch.cat(chunks, 1), model(idx)[0], atol=1e-5, rtol=0)


def test_left_padding_with_attention_mask_matches_unpadded_rows(make):
    model = make(n_kv_head=2)
    torch.manual_seed(3)
    short, long_ = torch.randint(0, 37, (1, 5)), torch.randint(0, 37, (1, 9))
    pad = 0
    batch = torch.cat([torch.cat([torch.full((1, 4), pad), short], 1), long_], 0)  # (2, 9)
    mask = (torch.arange(9) >= 4).long().unsqueeze(0).repeat(2, 1)
    mask[1] = 1
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    logits, _ = model(batch, attention_mask=mask, position_ids=positions)
    torch.testing.assert_close(logits[0, 4:], model(short)[0][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits[1], model(long_)[0][0], atol=1e-5, rtol=0)
    assert torch.isfinite(logits).all()


def test_cache_and_block_size_overflow_raise_clear_errors(make):
    model = make()
    cache = model.new_kv_cache(1, max_len=4)
    model(torch.zeros(1, 4, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="KV cache is full"):
        model(torch.zeros(1, 1, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="exceeds block_size"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="max_len"):
        model.new_kv_cache(1, max_len=33)


def test_cache_crop_allows_rollback(make):
    model = make()
    idx = torch.randint(0, 37, (1, 10))
    cache = model.new_kv_cache(1)
    model(idx[:, :6], kv_cache=cache)
    model(torch.randint(0, 37, (1, 3)), kv_cache=cache)  # a rejected draft
    cache.crop(6)
    rest, _ = model(idx[:, 6:], kv_cache=cache)
    torch.testing.assert_close(rest, model(idx)[0][:, 6:], atol=1e-5, rtol=0)


def test_kv_cache_bytes_formula_and_allocation(make):
    # documented example: 80 layers, 8 KV heads, d=128, 4096 tokens, fp16
    assert kv_cache_bytes(80, 8, 128, 4096) == 1_342_177_280
    model = make(n_kv_head=2)
    cache = model.new_kv_cache(batch_size=3, max_len=20)
    assert cache.nbytes() == kv_cache_bytes(2, 2, 8, 20, batch=3, bytes_per_elem=4)
    half = KVCache(2, 3, 2, 20, 8, dtype=torch.float16)
    assert half.nbytes() == kv_cache_bytes(2, 2, 8, 20, batch=3, bytes_per_elem=2)
    with pytest.raises(ValueError, match="seq_len"):
        kv_cache_bytes(1, 1, 1, -5)


# ---- counts, files ------------------------------------------------------------------


def test_param_counts_and_flops(make):
    model = make()
    cfg = model.config
    total = sum(p.numel() for p in model.parameters())
    assert model.num_params() == total
    emb = cfg.vocab_size * cfg.n_embd + cfg.block_size * cfg.n_embd
    assert model.num_params(exclude_embeddings=True) == total - emb
    n = total - emb + cfg.vocab_size * cfg.n_embd
    assert model.flops_per_token(16) == 6 * n + 12 * cfg.n_layer * cfg.n_embd * 16


def test_untied_head_has_own_matrix(make):
    model = make(tie_weights=False)
    assert model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr()
    tied = make()
    assert tied.lm_head.weight.data_ptr() == tied.transformer.wte.weight.data_ptr()


# ---- Hugging Face GPT-2 parity --------------------------------------------------------


def _hf_model(seed=0, **kw):
    transformers = pytest.importorskip("transformers")
    cfg = dict(vocab_size=50, n_positions=40, n_embd=48, n_layer=3, n_head=4)
    cfg.update(kw)
    torch.manual_seed(seed)
    hf = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(**cfg, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    ).eval()
    return hf


@pytest.mark.parametrize("kw", [{}, dict(n_layer=1, n_head=2, n_embd=16), dict(n_head=6, n_embd=48)])
def test_from_hf_gpt2_logits_match(kw):
    hf = _hf_model(**kw)
    ours = from_hf_gpt2(hf).eval()
    idx = torch.randint(0, 50, (2, 17))
    with torch.no_grad():
        ref = hf(idx).logits
        got, _ = ours(idx)
    assert (got - ref).abs().max().item() < 1e-4
    ours2 = from_hf_gpt2(hf.state_dict(), n_head=hf.config.n_head).eval()
    torch.testing.assert_close(ours2(idx)[0], got)


def test_from_hf_gpt2_greedy_generation_matches_for_20_tokens():
    hf = _hf_model(seed=1)
    ours = from_hf_gpt2(hf).eval()
    prompt = torch.randint(0, 50, (1, 5))
    with torch.no_grad():
        ref = hf.generate(
            prompt, max_new_tokens=20, do_sample=False, pad_token_id=0, attention_mask=torch.ones_like(prompt)
        )
        idx, cache = prompt, ours.new_kv_cache(1)
        logits, _ = ours(idx, kv_cache=cache)
        for _ in range(20):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            idx = torch.cat([idx, nxt], 1)
            logits, _ = ours(nxt, kv_cache=cache)
    assert idx.tolist() == ref.tolist()


def test_eval_mode_restores_the_previous_mode():
    from lmcourse.model import eval_mode

    m = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4, dropout=0.1))
    m.train()
    with eval_mode(m):
        assert not m.training and not any(x.training for x in m.modules())
    assert m.training
    with pytest.raises(RuntimeError), eval_mode(m):
        raise RuntimeError
    assert m.training
    m.eval()
    with eval_mode(m):
        pass
    assert not m.training
