"""Modern-architecture options of lmcourse.model (RoPE, RMSNorm, SwiGLU, GQA, no bias, untied
head) against transformers' Llama as the independent oracle, plus their own properties."""

import pytest
import torch

from lmcourse.generate import generate
from lmcourse.hf import config_from_hf_llama, from_hf_llama, from_pretrained_hf
from lmcourse.model import GPT, GPTConfig, RMSNorm, RotaryEmbedding, apply_rotary
from lmcourse.sampling import SamplingConfig

transformers = pytest.importorskip("transformers")

LLAMA_STYLE = dict(pos_emb="rope", norm="rmsnorm", mlp="swiglu", bias=False, tie_weights=False)


def _hf_llama(seed=0, rope_scaling=None, **kw):
    """A small random LlamaForCausalLM; weights spread out (std 0.2) so that greedy choices
    are not near-ties, norm weights random so that a swapped norm would show."""
    cfg = dict(
        vocab_size=61,
        hidden_size=48,
        intermediate_size=80,
        num_hidden_layers=3,
        num_attention_heads=6,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        bos_token_id=None,
        eos_token_id=None,  # generate for exactly max_new_tokens, as ours does without eos
    )
    cfg.update(kw)
    if rope_scaling is not None:
        cfg["rope_parameters"] = {"rope_type": "linear", "factor": rope_scaling, "rope_theta": 10000.0}
    torch.manual_seed(seed)
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**cfg)).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.2)
    return hf


def _max_diff(hf, ours, idx):
    with torch.no_grad():
        return (hf(idx).logits - ours(idx)[0]).abs().max().item()


@pytest.mark.parametrize(
    "kw",
    [
        {},  # GQA: 6 query heads share 2 key/value heads
        dict(num_key_value_heads=6),  # multi-head
        dict(num_key_value_heads=1, tie_word_embeddings=True),  # multi-query, tied head
        dict(attention_bias=True, mlp_bias=True, rope_parameters={"rope_type": "default", "rope_theta": 500.0}),
    ],
)
def test_from_hf_llama_logits_match(kw):
    hf = _hf_llama(**kw)
    ours = from_hf_llama(hf).eval()
    cfg = ours.config
    assert (cfg.pos_emb, cfg.norm, cfg.mlp) == ("rope", "rmsnorm", "swiglu")
    assert cfg.n_kv_head == hf.config.num_key_value_heads and cfg.tie_weights == hf.config.tie_word_embeddings
    assert ours.num_params() == sum(p.numel() for p in hf.parameters())
    idx = torch.randint(0, 61, (2, 40))
    assert _max_diff(hf, ours, idx) < 1e-4
    again = from_hf_llama(hf.state_dict(), config=hf.config).eval()
    assert torch.equal(again(idx)[0], ours(idx)[0])


def test_from_hf_llama_linear_rope_scaling_matches_position_interpolation():
    hf = _hf_llama(rope_scaling=4.0)
    ours = from_hf_llama(hf).eval()
    assert ours.config.rope_scaling == 4.0
    idx = torch.randint(0, 61, (1, 64))
    assert _max_diff(hf, ours, idx) < 1e-4
    unscaled = GPT(GPTConfig(**{**ours.config.to_dict(), "rope_scaling": 1.0})).eval()
    unscaled.load_state_dict(ours.state_dict())
    assert _max_diff(hf, unscaled, idx) > 1e-2  # the scaling is not a no-op


@pytest.mark.parametrize("n_kv", [2, 6])
def test_from_hf_llama_greedy_generation_matches_with_and_without_cache(n_kv):
    hf = _hf_llama(seed=1, num_key_value_heads=n_kv)
    ours = from_hf_llama(hf)
    prompt = torch.randint(0, 61, (1, 6))
    with torch.no_grad():
        ref = hf.generate(prompt, max_new_tokens=24, do_sample=False, attention_mask=torch.ones_like(prompt))
    for use_cache in (True, False):
        out = generate(ours, prompt, 24, SamplingConfig(temperature=0), use_cache=use_cache)
        assert out.sequences[0] == ref[0].tolist()


def test_llama_config_in_the_transformers_4_layout():
    """transformers 4 keeps ``rope_theta`` as an attribute and the scaling in ``rope_scaling``."""
    from types import SimpleNamespace

    v4 = SimpleNamespace(
        vocab_size=61, max_position_embeddings=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, hidden_size=32, intermediate_size=40, hidden_act="silu", head_dim=None,
        rms_norm_eps=1e-5, tie_word_embeddings=False, rope_theta=500000.0,
        rope_scaling={"type": "linear", "factor": 2.0},
    )
    cfg = config_from_hf_llama(v4)
    assert (cfg.rope_theta, cfg.rope_scaling, cfg.n_kv_head, cfg.mlp_hidden) == (500000.0, 2.0, 2, 40)
    v4.rope_scaling = {"rope_type": "dynamic", "factor": 2.0}
    with pytest.raises(ValueError, match="dynamic"):
        config_from_hf_llama(v4)


def test_from_hf_llama_rejects_what_it_cannot_represent():
    cfg = transformers.LlamaConfig(
        vocab_size=10, hidden_size=16, intermediate_size=8, num_hidden_layers=1, num_attention_heads=2,
        hidden_act="gelu",
    )
    with pytest.raises(ValueError, match="silu"):
        config_from_hf_llama(cfg)
    with pytest.raises(ValueError, match="needs config"):
        from_hf_llama({})


# ---- properties of the pieces ---------------------------------------------------------


def test_rope_scores_depend_only_on_relative_position():
    cfg = GPTConfig(n_embd=16, n_head=1, block_size=40, pos_emb="rope")
    rotary = RotaryEmbedding(cfg)
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(m, n):
        qm = apply_rotary(q, *rotary(torch.tensor([[m]])))
        kn = apply_rotary(k, *rotary(torch.tensor([[n]])))
        return (qm * kn).sum().item()

    assert score(7, 3) == pytest.approx(score(30, 26), abs=1e-5)
    assert score(7, 3) == pytest.approx(score(4, 0), abs=1e-5)
    assert score(7, 3) != pytest.approx(score(7, 5), abs=1e-3)
    x = torch.randn(2, 3, 5, 16)
    rotated = apply_rotary(x, *rotary(torch.arange(5)[None]))
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))  # rotations keep lengths


def test_position_interpolation_divides_positions():
    base = RotaryEmbedding(GPTConfig(n_embd=16, n_head=2, block_size=20, pos_emb="rope"))
    scaled = RotaryEmbedding(GPTConfig(n_embd=16, n_head=2, block_size=40, pos_emb="rope", rope_scaling=2.0))
    even = torch.arange(0, 40, 2)[None]
    torch.testing.assert_close(scaled(even)[0], base(torch.arange(20)[None])[0])
    torch.testing.assert_close(scaled(even)[1], base(torch.arange(20)[None])[1])


def test_rmsnorm_matches_torch():
    torch.manual_seed(0)
    ours, ref = RMSNorm(12, eps=1e-6), torch.nn.RMSNorm(12, eps=1e-6)
    with torch.no_grad():
        ours.weight.normal_()
        ref.weight.copy_(ours.weight)
    x = 3 * torch.randn(4, 5, 12)
    torch.testing.assert_close(ours(x), ref(x))


def test_swiglu_default_width_keeps_the_gelu_parameter_count(tiny_gpt):
    gelu = tiny_gpt(vocab_size=11, n_layer=1, n_embd=48, block_size=8)
    swiglu = tiny_gpt(vocab_size=11, n_layer=1, n_embd=48, block_size=8, mlp="swiglu", bias=False)
    assert swiglu.config.hidden_dim == 128 and gelu.config.hidden_dim == 192
    mlp_params = lambda m: sum(p.numel() for p in m.transformer.h[0].mlp.parameters())  # noqa: E731
    assert mlp_params(swiglu) == 3 * 48 * 128 and mlp_params(gelu) == 2 * 48 * 192 + 192 + 48


@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_llama_style_model_cached_equals_uncached_and_padding_is_invisible(n_kv_head):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=37, block_size=32, n_layer=2, n_head=4, n_kv_head=n_kv_head, n_embd=32,
                          **LLAMA_STYLE)).eval()
    assert "transformer.wpe.weight" not in model.state_dict()
    idx = torch.randint(0, 37, (2, 20))
    full, _ = model(idx)
    cache = model.new_kv_cache(2)
    pieces = [model(idx[:, :7], kv_cache=cache)[0]] + [model(idx[:, t : t + 1], kv_cache=cache)[0] for t in range(7, 20)]
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=0)
    # a left-padded row gives the logits of the same tokens alone (positions from the mask)
    out = generate(model, [idx[0, :5].tolist(), idx[1].tolist()], 6, SamplingConfig(temperature=0))
    alone = generate(model, idx[0, :5].tolist(), 6, SamplingConfig(temperature=0))
    assert out.sequences[0] == alone.sequences[0]


def test_rope_model_runs_longer_context_with_position_interpolation():
    """Trained positions 0..15; with rope_scaling=2 the same weights accept 32 positions and
    every position maps inside the trained range."""
    torch.manual_seed(0)
    short = GPT(GPTConfig(vocab_size=13, block_size=16, n_layer=1, n_head=2, n_embd=16, **LLAMA_STYLE)).eval()
    long_ = GPT(GPTConfig(**{**short.config.to_dict(), "block_size": 32, "rope_scaling": 2.0})).eval()
    long_.load_state_dict(short.state_dict())
    idx = torch.randint(0, 13, (1, 32))
    assert torch.isfinite(long_(idx)[0]).all()
    with pytest.raises(ValueError, match="block_size"):
        short(idx)


# ---- pretrained checkpoints through transformers' from_pretrained ---------------------------


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz ")}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="a"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok)


def test_from_pretrained_hf_gpt2_with_tokenizer(tmp_path):
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(vocab_size=27, n_positions=32, n_embd=32, n_layer=2, n_head=4)
    ).eval()
    hf.save_pretrained(tmp_path)
    _tiny_tokenizer().save_pretrained(tmp_path)
    ours, tok = from_pretrained_hf(str(tmp_path))
    assert not ours.training and ours.config.pos_emb == "learned"
    ids = torch.tensor([tok.encode("hello world")])
    assert ids.shape == (1, 11) and tok.decode(ids[0]).replace(" ", "") == "helloworld"
    assert _max_diff(hf, ours, ids) < 1e-4


def test_from_pretrained_hf_llama_without_tokenizer(tmp_path):
    hf = _hf_llama()
    hf.save_pretrained(tmp_path)
    ours, tok = from_pretrained_hf(str(tmp_path))
    assert tok is None
    assert _max_diff(hf, ours, torch.randint(0, 61, (2, 12))) < 1e-4


def test_llama_style_explicit_attention_matches_sdpa_and_maps_are_causal():
    kw = dict(vocab_size=23, block_size=16, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, **LLAMA_STYLE)
    torch.manual_seed(0)
    a = GPT(GPTConfig(**kw)).eval()
    b = GPT(GPTConfig(**kw, attn_impl="explicit")).eval()
    b.load_state_dict(a.state_dict())
    idx = torch.randint(0, 23, (2, 16))
    torch.testing.assert_close(a(idx)[0], b(idx)[0], atol=1e-5, rtol=1e-5)
    for w in a.attention_maps(idx):
        assert w.shape == (2, 4, 16, 16) and torch.all(w.triu(1) == 0)
