"""The GPT: a decoder-only transformer, written to be read top to bottom.

Chapter 5 (causal masking & the decoder) and chapter 7 (KV cache) teach this file.

Shapes used in the comments:
    B  batch size            T  number of new positions in this call
    L  positions already in the KV cache (0 without a cache)
    S  = L + T, key/value length
    C  n_embd                H  n_head        Hk  n_kv_head       D  head_dim = C // H
    V  vocab_size

The model is GPT-2 in structure (learned positions, pre-LayerNorm blocks, GELU MLP, tied
LM head), extended with grouped-query attention (n_kv_head < n_head) and a preallocated
KV cache for fast generation.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterator, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "GPTConfig",
    "GPT",
    "KVCache",
    "CausalSelfAttention",
    "MLP",
    "Block",
    "causal_mask",
    "eval_mode",
    "scaled_dot_product_attention",
    "kv_cache_bytes",
]


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------


@dataclass
class GPTConfig:
    """Hyper-parameters of a GPT. Validated on construction.

    Args:
        vocab_size: number of token ids V.
        block_size: longest context the model can see (number of learned positions).
        n_layer: number of transformer blocks.
        n_head: number of query heads.
        n_kv_head: number of key/value heads. ``None`` means ``n_head`` (multi-head
            attention); 1 is multi-query attention (MQA); anything in between that divides
            ``n_head`` is grouped-query attention (GQA).
        n_embd: width of the residual stream C; must be divisible by ``n_head``.
        dropout: dropout probability on attention weights and residual branches.
        bias: whether Linear layers and LayerNorms have a bias.
        tie_weights: share the token embedding matrix with the LM head.
        attn_impl: ``"sdpa"`` (fused ``F.scaled_dot_product_attention``, FlashAttention on
            GPU) or ``"explicit"`` (builds the mask and the T x T weights; same result).
        layer_norm_eps: epsilon of every LayerNorm (GPT-2 uses 1e-5).
    """

    vocab_size: int = 65
    block_size: int = 256
    n_layer: int = 6
    n_head: int = 6
    n_kv_head: Optional[int] = None
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True
    attn_impl: str = "sdpa"
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_kv_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
            )
        if self.n_head % self.n_kv_head != 0:
            raise ValueError(
                f"GPTConfig.n_head ({self.n_head}) must be divisible by n_kv_head "
                f"({self.n_kv_head}); allowed n_kv_head are the divisors of n_head"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.attn_impl not in ("sdpa", "explicit"):
            raise ValueError(
                f"GPTConfig.attn_impl must be 'sdpa' or 'explicit', got {self.attn_impl!r}"
            )
        if not self.layer_norm_eps > 0:
            raise ValueError(f"GPTConfig.layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")

    @property
    def head_dim(self) -> int:
        """Size D of one attention head."""
        return self.n_embd // self.n_head

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (what checkpoints store)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPTConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise a clear error."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown GPTConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


# --------------------------------------------------------------------------------------
# Attention building blocks
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block with ``model`` in eval mode (no dropout), then restore its previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def causal_mask(T: int, S: Optional[int] = None, device: Optional[torch.device] = None) -> torch.Tensor:
    """Boolean causal mask: ``mask[i, j]`` is True when query i may attend to key j.

    With ``S`` keys and ``T`` queries (S >= T, the queries being the *last* T positions,
    as after a KV-cache prefill) query i sits at absolute position ``S - T + i`` and may
    see keys ``j <= S - T + i``. With ``S = T`` this is the lower-triangular matrix.
    """
    S = T if S is None else S
    if T < 0 or S < T:
        raise ValueError(f"causal_mask needs 0 <= T <= S, got T={T}, S={S}")
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


def sliding_window_mask(T: int, window: int) -> torch.Tensor:
    """(T, T) bool: query i sees keys i - window + 1 .. i (itself and window - 1 before)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    i = torch.arange(T).unsqueeze(1)
    j = torch.arange(T).unsqueeze(0)
    return (j <= i) & (j > i - window)


def strided_mask(T: int, stride: int) -> torch.Tensor:
    """(T, T) bool, the strided sparse pattern of Child et al. (2019), both heads merged.

    Query i sees the previous ``stride`` keys (local head) and every key j <= i with
    (i - j) divisible by ``stride`` (strided head).
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    i = torch.arange(T).unsqueeze(1)
    j = torch.arange(T).unsqueeze(0)
    return (j <= i) & ((j > i - stride) | ((i - j) % stride == 0))


def global_window_mask(T: int, window: int, n_global: int) -> torch.Tensor:
    """(T, T) bool: a causal sliding window plus ``n_global`` global tokens at the start.

    The first ``n_global`` positions (memory / global tokens, as in Longformer) are seen by
    every later query and see every earlier key themselves.
    """
    mask = sliding_window_mask(T, window)
    g = min(n_global, T)
    mask[:, :g] = True
    mask[:g, :] = True
    return mask & causal_mask(T)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    dropout_p: float = 0.0,
    training: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention written out: softmax(q k^T / sqrt(D), masked with -inf) v.

    Args:
        q: (..., T, D) queries.  k, v: (..., S, D) keys and values.
        mask: boolean, broadcastable to (..., T, S); True where attending is allowed.
    Returns:
        ``(out, weights)`` with out (..., T, D) and the attention weights (..., T, S).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # each row sums to 1 over the visible keys
    if dropout_p > 0.0 and training:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


class KVCache:
    """Preallocated keys and values of every layer, for prefill + one-token decode.

    ``k[layer]`` and ``v[layer]`` have shape (B, n_kv_head, max_len, head_dim); the first
    ``length`` positions are filled. ``GPT.forward(idx, kv_cache=cache)`` writes the new
    positions and then advances ``length``.
    """

    def __init__(
        self,
        n_layer: int,
        batch_size: int,
        n_kv_head: int,
        max_len: int,
        head_dim: int,
        device: Optional[Union[str, torch.device]] = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if batch_size < 1 or max_len < 1:
            raise ValueError(
                f"KVCache needs batch_size >= 1 and max_len >= 1, got {batch_size}, {max_len}"
            )
        shape = (batch_size, n_kv_head, max_len, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.max_len = max_len
        self.length = 0

    @property
    def batch_size(self) -> int:
        """Number of sequences B held in the cache."""
        return self.k[0].size(0)

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new (B, Hk, T, D) keys/values of ``layer``; return all (B, Hk, L+T, D)."""
        start, end = self.length, self.length + k.size(2)
        if end > self.max_len:
            raise ValueError(
                f"KV cache is full: it holds {self.length} of max_len={self.max_len} positions "
                f"and {k.size(2)} more were given; create a larger cache (max_len) or crop it"
            )
        if k.size(0) != self.batch_size:
            raise ValueError(f"batch size {k.size(0)} does not match the cache's {self.batch_size}")
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def advance(self, n: int) -> None:
        """Mark ``n`` more positions as filled (called once per forward, after all layers)."""
        self.length += n

    def crop(self, length: int) -> None:
        """Forget every position from ``length`` on (speculative decoding rolls back this way)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"crop length must be in [0, {self.length}], got {length}")
        self.length = length

    def reset(self) -> None:
        """Empty the cache without freeing its memory."""
        self.length = 0

    def reorder(self, index: torch.Tensor) -> None:
        """Select/reorder rows of the batch (beam search keeps the surviving beams)."""
        self.k = [t.index_select(0, index) for t in self.k]
        self.v = [t.index_select(0, index) for t in self.v]

    def nbytes(self) -> int:
        """Bytes actually allocated by the key and value tensors."""
        return sum(t.numel() * t.element_size() for t in self.k + self.v)


def kv_cache_bytes(
    n_layer: int,
    n_kv_head: int,
    head_dim: int,
    seq_len: int,
    batch: int = 1,
    bytes_per_elem: int = 2,
) -> int:
    """Memory of a KV cache: 2 (keys and values) x L x h x d x n x batch x bytes.

    Example: a 70B model with grouped-query attention (80 layers, 8 KV heads, d=128) at
    4096 tokens in fp16 needs ``kv_cache_bytes(80, 8, 128, 4096)`` = 1.34e9 bytes.
    """
    for name, value in (
        ("n_layer", n_layer),
        ("n_kv_head", n_kv_head),
        ("head_dim", head_dim),
        ("seq_len", seq_len),
        ("batch", batch),
        ("bytes_per_elem", bytes_per_elem),
    ):
        if value < 0:
            raise ValueError(f"kv_cache_bytes: {name} must be >= 0, got {value}")
    return 2 * n_layer * n_kv_head * head_dim * seq_len * batch * bytes_per_elem


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with optional grouped-query heads and KV cache.

    One Linear ``c_attn`` produces queries (H heads) and keys/values (Hk heads each);
    ``c_proj`` mixes the heads back into the residual stream.
    """

    def __init__(self, config: GPTConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.n_head, self.n_kv_head = config.n_head, config.n_kv_head
        self.head_dim = config.head_dim
        self.layer_idx = layer_idx
        self.attn_impl = config.attn_impl
        self.dropout = config.dropout
        qkv_out = (config.n_head + 2 * config.n_kv_head) * self.head_dim
        self.c_attn = nn.Linear(config.n_embd, qkv_out, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.record_weights = False  # set by GPT.attention_maps
        self.last_weights: Optional[torch.Tensor] = None

    def forward(
        self,
        x: torch.Tensor,
        kv_cache: Optional[KVCache] = None,
        mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """x: (B, T, C) -> (B, T, C). ``mask`` (B or 1, 1, T, S) bool, or None for plain causal."""
        B, T, C = x.shape
        H, Hk, D = self.n_head, self.n_kv_head, self.head_dim
        q, k, v = self.c_attn(x).split([H * D, Hk * D, Hk * D], dim=2)
        q = q.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, Hk, D).transpose(1, 2)  # (B, Hk, T, D)
        v = v.view(B, T, Hk, D).transpose(1, 2)  # (B, Hk, T, D)
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer_idx, k, v)  # (B, Hk, S, D), S = L + T
        if Hk != H:  # grouped-query: each group of H // Hk query heads shares one k/v head
            k = k.repeat_interleave(H // Hk, dim=1)  # (B, H, S, D)
            v = v.repeat_interleave(H // Hk, dim=1)
        S = k.size(2)
        dropout_p = self.dropout if self.training else 0.0
        if self.attn_impl == "explicit" or self.record_weights:
            if mask is None:
                mask = causal_mask(T, S, device=x.device)
            y, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p, self.training)
            if self.record_weights:
                self.last_weights = weights.detach()
        elif mask is None and S == T:  # no cache, no padding: the fused causal kernel
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        elif mask is None and T == 1:  # one-token decode sees every cached key
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        else:
            if mask is None:
                mask = causal_mask(T, S, device=x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, H*D): heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward network: C -> 4C -> GELU (tanh form, as GPT-2) -> C."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.mlp = MLP(config)

    def forward(
        self, x: torch.Tensor, kv_cache: Optional[KVCache] = None, mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        x = x + self.attn(self.ln_1(x), kv_cache, mask)
        x = x + self.mlp(self.ln_2(x))
        return x


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


class GPT(nn.Module):
    """Decoder-only transformer language model.

    ``forward(idx, targets)`` returns ``(logits, loss)``: logits (B, T, V) for the next
    token at every position, and the mean cross-entropy against ``targets`` (positions with
    target -100 are ignored, e.g. padding); loss is None without targets.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embeddings
                wpe=nn.Embedding(config.block_size, config.n_embd),  # learned positions
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight  # one matrix, two uses
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections by 1/sqrt(2 * n_layer) so that the
        # variance of the residual stream does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    # ---- forward ---------------------------------------------------------------------

    def forward(
        self,
        idx: torch.Tensor,
        targets: Optional[torch.Tensor] = None,
        kv_cache: Optional[KVCache] = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Run the model on token ids.

        Args:
            idx: (B, T) token ids.
            targets: optional (B, T) next-token ids; -100 marks positions to ignore.
            kv_cache: optional :class:`KVCache`; the T new positions are appended to it and
                attend to everything already cached (prefill when empty, decode when T=1).
            attention_mask: optional (B, S) with S = cached + T; 1 for real tokens, 0 for
                padding (left-padded batches). Padding keys are never attended to.
            position_ids: optional (B, T) positions; default continues from the cache
                length (L, L+1, ..., L+T-1).
        Returns:
            ``(logits, loss)``: logits (B, T, V); loss a scalar or None.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
        B, T = idx.shape
        L = 0 if kv_cache is None else kv_cache.length
        if position_ids is None:
            if L + T > self.config.block_size:
                raise ValueError(
                    f"sequence of {L + T} positions exceeds block_size={self.config.block_size}; "
                    "crop the context to the last block_size tokens (lmcourse.generate does this)"
                )
            position_ids = torch.arange(L, L + T, device=idx.device).unsqueeze(0)  # (1, T)
        elif int(position_ids.max()) >= self.config.block_size or int(position_ids.min()) < 0:
            raise ValueError(f"position_ids must be in [0, {self.config.block_size - 1}]")

        mask = None
        if attention_mask is not None:
            S = L + T
            if attention_mask.shape != (B, S):
                raise ValueError(
                    f"attention_mask must have shape (B, cached + T) = {(B, S)}, "
                    f"got {tuple(attention_mask.shape)}"
                )
            keep = causal_mask(T, S, device=idx.device).unsqueeze(0)  # (1, T, S)
            keep = keep & attention_mask.bool().unsqueeze(1)  # (B, T, S): no padding keys
            # A padding query would see no key at all (softmax of all -inf is NaN): let
            # it see itself. Its output is never used.
            diag = torch.zeros(T, S, dtype=torch.bool, device=idx.device)
            diag[torch.arange(T), torch.arange(L, S)] = True
            mask = (keep | diag).unsqueeze(1)  # (B, 1, T, S), broadcast over heads

        x = self.transformer.wte(idx) + self.transformer.wpe(position_ids)  # (B, T, C)
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x, kv_cache, mask)  # (B, T, C)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)  # (B, T, V)
        if kv_cache is not None:
            kv_cache.advance(T)

        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100
            )
        return logits, loss

    # ---- KV cache --------------------------------------------------------------------

    def new_kv_cache(self, batch_size: int, max_len: Optional[int] = None) -> KVCache:
        """An empty :class:`KVCache` on the model's device and dtype (max_len defaults to block_size)."""
        max_len = self.config.block_size if max_len is None else max_len
        if not 1 <= max_len <= self.config.block_size:
            raise ValueError(f"max_len must be in [1, block_size={self.config.block_size}], got {max_len}")
        p = self.transformer.wte.weight
        return KVCache(
            self.config.n_layer,
            batch_size,
            self.config.n_kv_head,
            max_len,
            self.config.head_dim,
            device=p.device,
            dtype=p.dtype,
        )

    # ---- inspection ------------------------------------------------------------------

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights of every layer for ``idx`` (B, T): a list of (B, H, T, T) tensors.

        Runs the explicit attention path (the one that materialises the T x T weights).
        """
        blocks = [b.attn for b in self.transformer.h]
        for a in blocks:
            a.record_weights = True
        try:
            self.forward(idx)
            return [a.last_weights for a in blocks]
        finally:
            for a in blocks:
                a.record_weights = False
                a.last_weights = None

    def num_params(self, exclude_embeddings: bool = False) -> int:
        """Number of parameters (a tied matrix counts once).

        With ``exclude_embeddings`` the token and position embedding matrices are left out
        (the "non-embedding" count N of the scaling-law papers).
        """
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a tied matrix once
        if exclude_embeddings:
            n -= self.transformer.wte.weight.numel() + self.transformer.wpe.weight.numel()
        return n

    def flops_per_token(self, seq_len: Optional[int] = None) -> int:
        """Training FLOPs per token (forward + backward): 6N + 12 * n_layer * n_embd * T.

        N is the non-embedding parameter count plus the LM head's matmul; the second term is
        the attention scores and weighted sum (the PaLM appendix / nanoGPT MFU estimate).
        """
        T = self.config.block_size if seq_len is None else seq_len
        cfg = self.config
        n = self.num_params(exclude_embeddings=True) + cfg.vocab_size * cfg.n_embd  # + lm head
        return 6 * n + 12 * cfg.n_layer * cfg.n_embd * T

    # ---- save / load -----------------------------------------------------------------

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write config + weights to one file, atomically (temp file, then rename)."""
        payload = {"format": "lmcourse-gpt", "config": self.config.to_dict(), "state_dict": self.state_dict()}
        atomic_torch_save(payload, path)

    @classmethod
    def load(cls, path: Union[str, os.PathLike], map_location: Any = "cpu") -> GPT:
        """Load a model written by :meth:`save` (or a trainer checkpoint holding one)."""
        payload = load_checkpoint_file(path, map_location)
        if not isinstance(payload, dict) or "config" not in payload or "state_dict" not in payload:
            raise ValueError(f"{os.fspath(path)!r} is not an lmcourse model file (no config/state_dict)")
        config = payload["config"]
        if isinstance(config, dict) and "model" in config:  # a trainer checkpoint
            config = config["model"]
        model = cls(GPTConfig.from_dict(config))
        state = payload.get("model_state_dict", payload["state_dict"])
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"weights in {os.fspath(path)!r} do not match its config: {e}") from e
        return model

    # ---- Hugging Face GPT-2 -----------------------------------------------------------

    @classmethod
    def from_hf_gpt2(cls, model_or_state_dict: Any, n_head: Optional[int] = None) -> GPT:
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
        model = cls(config)
        conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
        ours = model.state_dict()
        with torch.no_grad():
            for key, target in ours.items():
                if key == "lm_head.weight" and tied:
                    continue
                src_key = key.removeprefix("transformer.")
                src = sd[src_key]
                if src_key.endswith(conv1d):
                    src = src.t()
                if src.shape != target.shape:
                    raise ValueError(f"shape mismatch for {key}: HF {tuple(src.shape)} vs {tuple(target.shape)}")
                target.copy_(src)
        return model


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def atomic_torch_save(obj: Any, path: Union[str, os.PathLike]) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``.

    A crash mid-write leaves the previous file intact, never a half-written one.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_checkpoint_file(path: Union[str, os.PathLike], map_location: Any = "cpu") -> Any:
    """``torch.load`` with clear errors for a missing or corrupt file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file at {path!r}")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # truncated zip, wrong format, ...
        raise ValueError(f"{path!r} is corrupt or not a torch checkpoint: {e}") from e
