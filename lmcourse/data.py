"""Data for training and studying language models: corpora, batches and toy sources.

Chapter 2 (data & tokens) teaches the first half of this file; chapter 4 (training) uses
:func:`get_batch`; the exposure-bias chapter uses :class:`MarkovSource`; the "beyond text"
chapter uses :func:`shape_images` and :func:`quantised_tones`.

1. :func:`shakespeare_text`: the shipped public-domain Shakespeare corpus (~1 MB), see
   ``lmcourse/assets/DATA_CARD.md``.
2. :func:`split` and :func:`get_batch`: train/val split and random next-token batches.
3. :class:`MarkovSource`: a seeded random Markov chain whose entropy rate is known exactly,
   the floor any model of it can reach.
4. :func:`shape_images` / :func:`quantised_tones`: tiny non-text sequences.

Shapes used in the comments:
    N  number of tokens in a 1-D data tensor
    B  batch size          T  block_size (context length)
    V  vocab_size          K  order of a Markov source
"""

from __future__ import annotations

import bisect
import gzip
import math
from functools import lru_cache
from pathlib import Path
from typing import Optional, Union

import torch

from .checks import require_int
from .devices import draw_multinomial, draw_randint, draw_uniform

__all__ = [
    "CORPUS_PATH",
    "shakespeare_text",
    "split",
    "get_batch",
    "MarkovSource",
    "shape_images",
    "SHAPES",
    "flatten_images",
    "unflatten_images",
    "quantised_tones",
    "quantise",
    "dequantise",
]

CORPUS_PATH = Path(__file__).resolve().parent / "assets" / "shakespeare.txt.gz"


# --------------------------------------------------------------------------------------
# 1. The shipped corpus
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def shakespeare_text() -> str:
    """The shipped Shakespeare corpus as one string (about 1.07M characters, 76 distinct).

    Eight public-domain plays from Project Gutenberg, boilerplate removed; provenance, size
    and checksum are in ``lmcourse/assets/DATA_CARD.md``. The result is cached.
    """
    with gzip.open(CORPUS_PATH, "rb") as f:
        return f.read().decode("utf-8")


# --------------------------------------------------------------------------------------
# 2. Splits and batches
# --------------------------------------------------------------------------------------


def split(data, val_fraction: float = 0.1):
    """Contiguous train/validation split: the last ``val_fraction`` of ``data`` is validation.

    Works on anything sliceable with ``len`` (a string, a list, a 1-D tensor). Contiguous, not
    shuffled, so that validation text is text the model never saw in any window.

    Returns:
        ``(train, val)``.
    """
    if not isinstance(val_fraction, (int, float)) or not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    n = len(data)
    n_train = n - int(round(n * val_fraction))
    return data[:n_train], data[n_train:]


def get_batch(
    data: torch.Tensor,
    batch_size: int,
    block_size: int,
    generator: torch.Generator,
    device: Optional[Union[str, torch.device]] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of ``data``: inputs ``x`` and next-token targets ``y``.

    Window ``b`` starts at a random offset ``i`` drawn from ``generator`` and is
    ``x[b] = data[i : i + T]``, ``y[b] = data[i + 1 : i + T + 1]``: ``y`` is ``x`` shifted
    left by one, so ``y[b, t]`` is the token that follows ``x[b, :t + 1]``.

    Args:
        data: 1-D integer tensor of token ids (N,), usually on the CPU.
        batch_size: number of windows B (>= 1).
        block_size: window length T (>= 1); ``data`` needs at least T + 1 tokens.
        generator: a seeded CPU ``torch.Generator``; the same seed gives the same batches.
        device: where to put the batch. On CUDA the batch goes through pinned memory and
            is copied with ``non_blocking=True``.

    Returns:
        ``(x, y)``, two int64 tensors of shape (B, T). The offsets are one ``torch.randint(N - T, (B,))`` call,
        the same draw the Trainer makes on the device, so both give the same batches from
        the same generator state.
    """
    if not isinstance(data, torch.Tensor) or data.dim() != 1:
        raise ValueError("data must be a 1-D tensor of token ids")
    if data.dtype.is_floating_point or data.dtype == torch.bool:
        raise ValueError(f"data must hold integer token ids, got dtype {data.dtype}")
    require_int("batch_size", batch_size, minimum=1)
    require_int("block_size", block_size, minimum=1)
    if data.numel() < block_size + 1:
        raise ValueError(
            f"data has {data.numel()} tokens; block_size={block_size} needs at least "
            f"{block_size + 1} (one window plus its next-token target)"
        )
    if not isinstance(generator, torch.Generator):
        raise TypeError("generator must be a torch.Generator (seed it for reproducible batches)")

    # offsets drawn on the generator's device (any device), gathered where the data lives
    starts = draw_randint(data.numel() - block_size, (batch_size,), generator, device=data.device)  # (B,)
    idx = starts[:, None] + torch.arange(block_size, device=data.device)[None, :]  # (B, T)
    x = data[idx].long()  # (B, T)
    y = data[idx + 1].long()  # (B, T)
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda" and x.device.type == "cpu":
            # page-locked host memory lets the copy run asynchronously with compute
            x = x.pin_memory().to(device, non_blocking=True)
            y = y.pin_memory().to(device, non_blocking=True)
        else:
            x, y = x.to(device), y.to(device)
    return x, y


# --------------------------------------------------------------------------------------
# 3. A synthetic source with a known entropy rate
# --------------------------------------------------------------------------------------


class MarkovSource:
    """A seeded random Markov chain of order K over V symbols, with an exact entropy rate.

    The state is the last K tokens; each of the V**K states has its own next-token
    distribution (a row of ``transition``), drawn from a symmetric Dirichlet with parameter
    ``concentration`` (small: peaky rows, low entropy; large: near uniform rows). Because every
    transition probability is positive the chain has a unique stationary distribution, and
    its entropy rate

        H = sum_s pi(s) * H(P[s, :])

    is the lowest cross-entropy per token any model can reach on long samples.

    Args:
        vocab_size: number of symbols V (>= 2).
        order: K, how many previous tokens the next one depends on (1 or more; V**K states
            must stay <= 2**20).
        seed: seed of the random transition matrix.
        concentration: Dirichlet parameter (> 0).
    """

    def __init__(self, vocab_size: int, order: int = 1, seed: int = 0, concentration: float = 1.0):
        require_int("vocab_size", vocab_size, minimum=2)
        require_int("order", order, minimum=1)
        if vocab_size**order > 2**20:
            raise ValueError(
                f"vocab_size**order = {vocab_size}**{order} states is too many (at most 2**20)"
            )
        if not concentration > 0:
            raise ValueError(f"concentration must be > 0, got {concentration!r}")
        self.vocab_size = vocab_size
        self.order = order
        self.seed = seed
        self.concentration = float(concentration)
        self.n_states = vocab_size**order
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            alpha = torch.full((self.n_states, vocab_size), self.concentration, dtype=torch.float64)
            P = torch.distributions.Dirichlet(alpha).sample()  # (V**K, V)
        P = P.clamp_min(1e-12)
        self.transition = P / P.sum(-1, keepdim=True)  # (V**K, V), rows sum to 1
        self._pi: Optional[torch.Tensor] = None

    def __repr__(self) -> str:
        return (
            f"MarkovSource(vocab_size={self.vocab_size}, order={self.order}, seed={self.seed}, "
            f"concentration={self.concentration})"
        )

    # state index of the context (c_1, ..., c_K) is sum_i c_i * V**(K - i), base-V digits
    def _state_index(self, ctx: torch.Tensor) -> torch.Tensor:
        """(..., K) contexts -> (...) state indices."""
        weights = self.vocab_size ** torch.arange(self.order - 1, -1, -1)  # (K,)
        return (ctx.long() * weights).sum(-1)

    def stationary_distribution(self) -> torch.Tensor:
        """pi over the V**K states (float64, sums to 1), by power iteration; cached.

        For order 1 the states are the tokens, so this is a distribution over the vocabulary.
        """
        if self._pi is None:
            V, S = self.vocab_size, self.n_states
            pi = torch.full((S,), 1.0 / S, dtype=torch.float64)
            for _ in range(100_000):
                joint = pi[:, None] * self.transition  # (S, V): P(state s, next token v)
                # next state = (last K-1 tokens of s, v): sum out the oldest token of s
                new = joint.view(V, S // V, V).sum(0).reshape(S)  # (S,)
                if torch.abs(new - pi).sum() < 1e-14:
                    pi = new
                    break
                pi = new
            self._pi = pi / pi.sum()
        return self._pi

    def entropy_rate(self, unit: str = "nats") -> float:
        """Exact entropy rate sum_s pi(s) H(P[s]) in ``"nats"`` or ``"bits"`` per token."""
        if unit not in ("nats", "bits"):
            raise ValueError(f"unit must be 'nats' or 'bits', got {unit!r}")
        P = self.transition
        row_entropy = -(P * P.log()).sum(-1)  # (S,)
        h = float((self.stationary_distribution() * row_entropy).sum())
        return h / math.log(2) if unit == "bits" else h

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """A stationary sample of ``n`` tokens (LongTensor (n,)), reproducible from ``generator``.

        The first K tokens are the digits of a state drawn from the stationary distribution;
        each later token is drawn from the row of the current state.
        """
        require_int("n", n, minimum=1)
        V, K = self.vocab_size, self.order
        s0 = int(draw_multinomial(self.stationary_distribution(), generator))
        first = [(s0 // V ** (K - 1 - i)) % V for i in range(K)]
        u = draw_uniform((max(n - K, 0),), generator, dtype=torch.float64).tolist()
        cum = self.transition.cumsum(-1).tolist()  # inverse-CDF sampling, one row per state
        out = first[:n]
        state = s0
        for r in u:
            v = min(bisect.bisect_right(cum[state], r), V - 1)
            out.append(v)
            state = (state * V) % self.n_states + v
        return torch.tensor(out, dtype=torch.long)

    def log_prob(self, seq: torch.Tensor, conditional: bool = False) -> torch.Tensor:
        """Log-probability (nats) of ``seq`` under the true source.

        Args:
            seq: token ids, (N,) or (B, N), with N >= K.
            conditional: if False, log pi(first K tokens) + sum of transition log-probs, the
                log-probability of the whole sequence under a stationary start; if True, only
                the N - K transition terms, log p(x_{K+1:} | x_{1:K}).

        Returns:
            A float64 tensor, () for a 1-D ``seq`` or (B,).
        """
        seq = torch.as_tensor(seq).long()
        if seq.dim() not in (1, 2):
            raise ValueError(f"seq must be (N,) or (B, N), got shape {tuple(seq.shape)}")
        K = self.order
        if seq.shape[-1] < K:
            raise ValueError(f"seq needs at least order={K} tokens, got {seq.shape[-1]}")
        if seq.numel() and (seq.min() < 0 or seq.max() >= self.vocab_size):
            raise ValueError(f"seq ids must be in [0, {self.vocab_size}), got values out of range")
        windows = seq.unfold(-1, K + 1, 1)  # (..., N - K, K + 1): context + next token
        states = self._state_index(windows[..., :K])  # (..., N - K)
        logp = self.transition.log()[states, windows[..., K]].sum(-1)  # (...)
        if not conditional:
            logp = logp + self.stationary_distribution().log()[self._state_index(seq[..., :K])]
        return logp


# --------------------------------------------------------------------------------------
# 4. Small non-text sequences: raster images and quantised tones
# --------------------------------------------------------------------------------------

SHAPES = ("square", "circle", "cross", "ring")


def shape_images(
    n: int,
    size: int = 12,
    generator: Optional[torch.Generator] = None,
    levels: int = 2,
    return_labels: bool = False,
):
    """``n`` small raster images of one simple shape each, as integer pixel levels.

    Each image has a black background (0) and one shape from :data:`SHAPES` (filled square,
    filled circle, plus-shaped cross, ring) at a random centre and radius, drawn with a random
    intensity in ``1 .. levels - 1`` (always 1 for binary images). Read in raster order
    (:func:`flatten_images`) an image is a sequence of ``size * size`` tokens over a vocabulary
    of ``levels`` symbols.

    Args:
        n: number of images (>= 1).
        size: side length in pixels (6..64).
        generator: seeded ``torch.Generator``; ``None`` uses seed 0.
        levels: number of grey levels (2..256); 2 is binary.
        return_labels: also return the shape index into :data:`SHAPES` of each image.

    Returns:
        LongTensor (n, size, size), and with ``return_labels`` a LongTensor (n,) of labels.
    """
    require_int("n", n, minimum=1)
    require_int("size", size, 6, 64)
    require_int("levels", levels, 2, 256)
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    cpu = torch.device("cpu")  # drawn on the generator's device, built on the CPU
    labels = draw_randint(len(SHAPES), (n,), g, device=cpu)  # (n,)
    r = draw_randint(size // 2, (n,), g, device=cpu, low=2).float()  # (n,) radius in pixels
    # centre so that the shape stays inside the image
    cy = (r + draw_uniform((n,), g, device=cpu) * (size - 1 - 2 * r)).round()  # (n,)
    cx = (r + draw_uniform((n,), g, device=cpu) * (size - 1 - 2 * r)).round()  # (n,)
    intensity = draw_randint(levels, (n,), g, device=cpu, low=1)  # (n,)

    coords = torch.arange(size, dtype=torch.float32)
    dy = coords[None, :, None] - cy[:, None, None]  # (n, size, 1)
    dx = coords[None, None, :] - cx[:, None, None]  # (n, 1, size)
    rr = r[:, None, None]  # (n, 1, 1)
    d2 = dy**2 + dx**2  # (n, size, size)
    arm = (rr / 3).floor()  # half-width of the cross arms
    masks = torch.stack(
        [
            (dy.abs() <= rr) & (dx.abs() <= rr),  # square
            d2 <= rr**2 + 0.5,  # circle
            ((dy.abs() <= arm) & (dx.abs() <= rr)) | ((dx.abs() <= arm) & (dy.abs() <= rr)),  # cross
            (d2 <= rr**2 + 0.5) & (d2 >= (rr - 1.2) ** 2),  # ring
        ],
        dim=1,
    )  # (n, 4, size, size)
    mask = masks[torch.arange(n), labels]  # (n, size, size)
    images = mask.long() * intensity[:, None, None]  # (n, size, size)
    return (images, labels) if return_labels else images


def flatten_images(images: torch.Tensor) -> torch.Tensor:
    """(n, H, W) images -> (n, H * W) token sequences in raster (row-major) order."""
    if images.dim() != 3:
        raise ValueError(f"images must be (n, H, W), got shape {tuple(images.shape)}")
    return images.reshape(images.shape[0], -1)


def unflatten_images(seqs: torch.Tensor, size: int) -> torch.Tensor:
    """(n, size * size) raster-order sequences -> (n, size, size) images."""
    if seqs.dim() != 2 or seqs.shape[1] != size * size:
        raise ValueError(f"seqs must be (n, {size * size}) for size={size}, got {tuple(seqs.shape)}")
    return seqs.reshape(seqs.shape[0], size, size)


def _check_quantiser(levels: int, mode: str) -> None:
    require_int("levels", levels, 2, 65536)
    if mode not in ("mu-law", "linear"):
        raise ValueError(f"mode must be 'mu-law' or 'linear', got {mode!r}")


def quantise(x: torch.Tensor, levels: int = 64, mode: str = "mu-law") -> torch.Tensor:
    """Map amplitudes in [-1, 1] to integers in [0, levels - 1] (mu-law with mu = levels - 1)."""
    _check_quantiser(levels, mode)
    x = x.clamp(-1.0, 1.0)
    if mode == "mu-law":
        mu = levels - 1
        x = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return ((x + 1) / 2 * (levels - 1)).round().long()


def dequantise(q: torch.Tensor, levels: int = 64, mode: str = "mu-law") -> torch.Tensor:
    """Inverse of :func:`quantise`: integers in [0, levels - 1] -> float amplitudes in [-1, 1]."""
    _check_quantiser(levels, mode)
    y = q.double() / (levels - 1) * 2 - 1
    if mode == "mu-law":
        mu = levels - 1
        y = torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu
    return y.float()


def quantised_tones(
    n: int,
    length: int,
    levels: int = 64,
    sample_rate: int = 8000,
    generator: Optional[torch.Generator] = None,
    mode: str = "mu-law",
    freq_range: tuple[float, float] = (100.0, 1000.0),
    return_freqs: bool = False,
):
    """``n`` pure sine tones of random frequency, amplitude and phase, quantised to integers.

    Tone i is ``a_i * sin(2 pi f_i t / sample_rate + phi_i)`` for t = 0 .. length - 1 with
    ``f_i`` uniform in ``freq_range`` (Hz), ``a_i`` uniform in [0.5, 1], then quantised to
    ``levels`` symbols (:func:`quantise`; mu-law like WaveNet, or linear).

    Returns:
        LongTensor (n, length) in [0, levels - 1]; with ``return_freqs`` also the float
        frequencies (n,).
    """
    require_int("n", n, minimum=1)
    require_int("length", length, minimum=1)
    require_int("sample_rate", sample_rate, minimum=1)
    lo, hi = freq_range
    if not 0 < lo <= hi <= sample_rate / 2:
        raise ValueError(
            f"freq_range must satisfy 0 < low <= high <= sample_rate / 2 = {sample_rate / 2}, "
            f"got {freq_range!r}"
        )
    _check_quantiser(levels, mode)
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    cpu, f64 = torch.device("cpu"), torch.float64  # drawn on the generator's device, built on the CPU
    freqs = lo + (hi - lo) * draw_uniform((n,), g, device=cpu, dtype=f64)  # (n,)
    amp = 0.5 + 0.5 * draw_uniform((n,), g, device=cpu, dtype=f64)  # (n,)
    phase = 2 * math.pi * draw_uniform((n,), g, device=cpu, dtype=f64)  # (n,)
    t = torch.arange(length, dtype=torch.float64)  # (length,)
    x = amp[:, None] * torch.sin(2 * math.pi * freqs[:, None] * t / sample_rate + phase[:, None])
    q = quantise(x, levels, mode)  # (n, length)
    return (q, freqs.float()) if return_freqs else q
