"""Hugging Face ``transformers`` checkpoints as lmcourse GPTs: GPT-2 and Llama.

Chapter 5c teaches the Llama options of :class:`lmcourse.model.GPTConfig`; this file
converts weights, it is not part of the architecture. ``transformers`` is optional: only
:func:`from_pretrained_hf` imports it (lazily); the other functions take a model or a
state dict that the caller already has.

* :func:`from_hf_gpt2`: a ``GPT2LMHeadModel`` (or its state dict). HF stores its Conv1D
  weights as (in, out); we transpose them to ``nn.Linear``'s (out, in).
* :func:`from_hf_llama`: a ``LlamaForCausalLM`` (or its state dict and config). The
  separate q/k/v projections are stacked into ``c_attn`` and the gate/up projections into
  ``c_fc``; :func:`config_from_hf_llama` translates the ``LlamaConfig``.
* :func:`from_pretrained_hf`: a hub name or a ``save_pretrained`` folder of either family.

Logits equal transformers' in fp32 (the tests compare them).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn as nn

from lmcourse.model import GPT, GPTConfig

__all__ = ["config_from_hf_llama", "from_hf_gpt2", "from_hf_llama", "from_pretrained_hf", "load_weights"]


def config_from_hf_llama(hf_config: Any, tie_weights: Optional[bool] = None) -> GPTConfig:
    """The GPTConfig of a transformers ``LlamaConfig`` (v4 ``rope_scaling`` or v5 ``rope_parameters``).

    Supported: default and ``"linear"`` rope scaling, SiLU, head_dim = hidden / heads,
    biases on all projections or on none. Anything else raises a ValueError.
    """
    c = hf_config
    rope = dict(getattr(c, "rope_parameters", None) or {})
    rope.update(getattr(c, "rope_scaling", None) or {})  # transformers 4 keeps it here
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", "linear"):
        raise ValueError(f"Llama rope type {rope_type!r} is not supported (only 'default' and 'linear')")
    if c.hidden_act != "silu":
        raise ValueError(f"Llama hidden_act must be 'silu' for SwiGLU, got {c.hidden_act!r}")
    head_dim = getattr(c, "head_dim", None)
    if head_dim is not None and head_dim != c.hidden_size // c.num_attention_heads:
        raise ValueError(f"Llama head_dim {head_dim} != hidden_size // num_attention_heads is not supported")
    attn_bias, mlp_bias = bool(getattr(c, "attention_bias", False)), bool(getattr(c, "mlp_bias", False))
    if attn_bias != mlp_bias:
        raise ValueError("Llama models with biases on only some projections are not supported")
    return GPTConfig(
        vocab_size=c.vocab_size,
        block_size=c.max_position_embeddings,
        n_layer=c.num_hidden_layers,
        n_head=c.num_attention_heads,
        n_kv_head=c.num_key_value_heads or c.num_attention_heads,
        n_embd=c.hidden_size,
        bias=attn_bias,
        tie_weights=bool(c.tie_word_embeddings) if tie_weights is None else tie_weights,
        layer_norm_eps=float(c.rms_norm_eps),
        pos_emb="rope",
        rope_theta=float(rope.get("rope_theta", getattr(c, "rope_theta", 10000.0))),
        rope_scaling=float(rope.get("factor", 1.0)) if rope_type == "linear" else 1.0,
        norm="rmsnorm",
        mlp="swiglu",
        mlp_hidden=c.intermediate_size,
    )


def load_weights(model: GPT, weights: dict[str, torch.Tensor]) -> GPT:
    """Copy ``weights`` (our parameter names) into every parameter of ``model``; return it.

    Every name must be given once (a tied LM head may be left out); a missing, unexpected
    or wrongly shaped weight raises a ValueError naming it.
    """
    ours = model.state_dict()
    missing = set(ours) - set(weights) - ({"lm_head.weight"} if model.config.tie_weights else set())
    if missing or set(weights) - set(ours):
        raise ValueError(f"weights do not match the model: missing {sorted(missing)}, "
                         f"unexpected {sorted(set(weights) - set(ours))}")
    with torch.no_grad():
        for key, src in weights.items():
            if src.shape != ours[key].shape:
                raise ValueError(f"shape mismatch for {key}: given {tuple(src.shape)}, model {tuple(ours[key].shape)}")
            ours[key].copy_(src)
    return model


def from_hf_llama(model_or_state_dict: Any, config: Any = None) -> GPT:
    """Build a GPT with the weights of a Hugging Face ``LlamaForCausalLM``.

    Accepts the model itself, or its ``state_dict`` together with its ``LlamaConfig``
    (``config``). The Llama architecture is this GPT with ``pos_emb="rope"``,
    ``norm="rmsnorm"``, ``mlp="swiglu"``. Logits equal transformers' in fp32 (default and
    ``"linear"`` rope scaling).
    """
    if isinstance(model_or_state_dict, nn.Module):
        hf_cfg = model_or_state_dict.config if config is None else config
        sd = model_or_state_dict.state_dict()
    else:
        if config is None:
            raise ValueError("from_hf_llama needs config (the LlamaConfig) when given a state_dict")
        hf_cfg, sd = config, dict(model_or_state_dict)
    sd = {k.removeprefix("model."): v for k, v in sd.items()}
    tied = "lm_head.weight" not in sd or bool(getattr(hf_cfg, "tie_word_embeddings", False))
    our_config = config_from_hf_llama(hf_cfg, tie_weights=tied)
    renamed = {"transformer.wte.weight": sd["embed_tokens.weight"], "transformer.ln_f.weight": sd["norm.weight"]}
    if not our_config.tie_weights:
        renamed["lm_head.weight"] = sd["lm_head.weight"]
    for i in range(our_config.n_layer):
        hf, ours = f"layers.{i}.", f"transformer.h.{i}."
        renamed[ours + "ln_1.weight"] = sd[hf + "input_layernorm.weight"]
        renamed[ours + "ln_2.weight"] = sd[hf + "post_attention_layernorm.weight"]
        names = ("weight", "bias") if our_config.bias else ("weight",)
        for w in names:
            a, m = hf + "self_attn.", hf + "mlp."
            renamed[ours + f"attn.c_attn.{w}"] = torch.cat([sd[a + f"q_proj.{w}"], sd[a + f"k_proj.{w}"], sd[a + f"v_proj.{w}"]])
            renamed[ours + f"attn.c_proj.{w}"] = sd[a + f"o_proj.{w}"]
            renamed[ours + f"mlp.c_fc.{w}"] = torch.cat([sd[m + f"gate_proj.{w}"], sd[m + f"up_proj.{w}"]])
            renamed[ours + f"mlp.c_proj.{w}"] = sd[m + f"down_proj.{w}"]
    return load_weights(GPT(our_config), renamed)


def from_hf_gpt2(model_or_state_dict: Any, n_head: Optional[int] = None) -> GPT:
    """Build a GPT with the weights of a Hugging Face ``GPT2LMHeadModel``.

    Accepts the model itself (its config gives n_head) or its ``state_dict`` (then pass
    ``n_head``). HF stores its Conv1D weights as (in, out); we transpose them to
    ``nn.Linear``'s (out, in). Logits then equal transformers' in fp32.
    """
    if isinstance(model_or_state_dict, nn.Module):
        hf_cfg = model_or_state_dict.config
        n_head = hf_cfg.n_head
        eps = hf_cfg.layer_norm_epsilon
        sd = model_or_state_dict.state_dict()
    else:
        sd, eps = dict(model_or_state_dict), 1e-5
        if n_head is None:
            raise ValueError("from_hf_gpt2 needs n_head when given a state_dict")
    sd = {k.removeprefix("transformer."): v for k, v in sd.items()}
    vocab_size, n_embd = sd["wte.weight"].shape
    block_size = sd["wpe.weight"].shape[0]
    n_layer = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("h."))
    tied = "lm_head.weight" not in sd or torch.equal(sd["lm_head.weight"], sd["wte.weight"])
    config = GPTConfig(
        vocab_size=vocab_size,
        block_size=block_size,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        bias=True,
        tie_weights=tied,
        layer_norm_eps=eps,
    )
    model = GPT(config)
    conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    weights = {}
    for key in model.state_dict():
        if key == "lm_head.weight" and tied:
            continue
        src_key = key.removeprefix("transformer.")  # HF names are ours without the prefix
        weights[key] = sd[src_key].t() if src_key.endswith(conv1d) else sd[src_key]
    return load_weights(model, weights)


def from_pretrained_hf(name_or_path: str, **kwargs: Any) -> tuple[GPT, Any]:
    """Load a GPT-2 or Llama checkpoint with transformers: ``(model, tokenizer or None)``.

    ``name_or_path`` is a folder written by ``save_pretrained`` or a Hugging Face hub
    name such as ``"gpt2"`` (downloaded by transformers, e.g. on Colab); ``kwargs``
    go to ``AutoModelForCausalLM.from_pretrained``. The model comes back in eval mode,
    on the CPU, in float32; the tokenizer is transformers' ``AutoTokenizer`` for the
    same name, or None when the folder has none.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer  # optional, imported lazily

    hf = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
    kind = hf.config.model_type
    if kind == "gpt2":
        model = from_hf_gpt2(hf)
    elif kind == "llama":
        model = from_hf_llama(hf)
    else:
        raise ValueError(f"from_pretrained_hf loads 'gpt2' or 'llama' models; {name_or_path!r} is {kind!r}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError, TypeError):  # no tokenizer files next to the weights
        tokenizer = None
    if tokenizer is not None and not getattr(tokenizer, "vocab_size", 0):
        tokenizer = None  # newer transformers build an empty tokenizer when the files are missing
    return model.eval(), tokenizer
