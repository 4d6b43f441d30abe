"""Exposure bias, measured: how a model does on its own samples versus on real data.

Chapter 9 (exposure bias) uses this file. :func:`exposure_curves` measures, position by
position, a model trained on a :class:`~lmcourse.data.MarkovSource` (whose true next-token
distribution is known exactly); :func:`plot_exposure` draws the curves of several models.
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..data import MarkovSource
from ..generate import generate
from ..model import eval_mode
from ..sampling import SamplingConfig

__all__ = ["exposure_curves", "plot_exposure"]


@torch.no_grad()
def _kl_to_truth(model, source: MarkovSource, seqs: torch.Tensor) -> torch.Tensor:
    """(B, N - K) KL(p_true(. | state_t) || q_model(. | x_<t)) at every predicted position."""
    K = source.order
    dev = next(model.parameters()).device
    logits, _ = model(seqs[:, :-1].to(dev))  # (B, N-1, V): position t predicts token t+1
    logq = torch.log_softmax(logits.double().cpu(), -1)[:, K - 1 :]  # (B, N-K, V)
    states = source._state_index(seqs.unfold(-1, K + 1, 1)[..., :K])  # (B, N-K)
    P = source.transition[states]  # (B, N-K, V)
    return (P * (P.log() - logq)).sum(-1)


@torch.no_grad()
def exposure_curves(
    model,
    source: MarkovSource,
    n_samples: int = 256,
    length: Optional[int] = None,
    seed: int = 0,
    temperature: float = 1.0,
) -> dict[str, np.ndarray]:
    """Per-position quality of ``model`` on its own samples and on samples of the source.

    Every sequence starts with ``K = source.order`` true tokens (a stationary start); the
    model then generates ``length - K`` tokens (sampling at ``temperature``). For every
    generated position t (1-based count of generated tokens) it returns, averaged over the
    ``n_samples`` sequences:

    - ``"true_logp_model"``: log p_true(x_t | state), the true source's log-probability (nats)
      of the token the *model* sampled;
    - ``"true_logp_data"``: the same for sequences drawn from the source itself (their mean
      is about ``-source.entropy_rate()``);
    - ``"kl_own"``: KL(p_true || q_model) of the model's next-token distribution when its
      context is its *own* earlier samples (free running);
    - ``"kl_data"``: the same KL when the context is real data (teacher forcing).

    Also ``"position"`` (1 .. length - K) and ``"entropy_rate"``.

    Args:
        model: a :class:`~lmcourse.model.GPT` trained on ``source``'s tokens.
        source: the :class:`~lmcourse.data.MarkovSource`.
        n_samples: number of sequences per curve.
        length: total sequence length (default the model's ``block_size``).
        seed: seeds the prompts, the source's sequences and the model's draws.
        temperature: sampling temperature of the model (1 is its own distribution).
    """
    K = source.order
    length = model.config.block_size if length is None else length
    if not K < length <= model.config.block_size:
        raise ValueError(f"length must be in ({K}, {model.config.block_size}], got {length}")
    g = torch.Generator().manual_seed(seed)
    data = torch.stack([source.sample(length, g) for _ in range(n_samples)])  # (B, N)
    prompts = data[:, :K]  # the same stationary starts for the model
    with eval_mode(model):
        out = generate(
            model, prompts, length - K, SamplingConfig(temperature=temperature),
            generator=torch.Generator().manual_seed(seed + 1),
        )
        own = torch.tensor(out.sequences, dtype=torch.long)  # (B, N)

        def true_logp(seqs: torch.Tensor) -> torch.Tensor:
            w = seqs.unfold(-1, K + 1, 1)  # (B, N-K, K+1)
            return source.transition.log()[source._state_index(w[..., :K]), w[..., K]]

        result = {
            "position": np.arange(1, length - K + 1),
            "true_logp_model": true_logp(own).mean(0).numpy(),
            "true_logp_data": true_logp(data).mean(0).numpy(),
            "kl_own": _kl_to_truth(model, source, own).mean(0).numpy(),
            "kl_data": _kl_to_truth(model, source, data).mean(0).numpy(),
            "entropy_rate": np.float64(source.entropy_rate()),
        }
    return result


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1:
        return np.asarray(y, dtype=float)
    kernel = np.ones(window) / window
    padded = np.pad(np.asarray(y, dtype=float), (window // 2, window - 1 - window // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def plot_exposure(
    curves: dict[str, dict[str, Sequence[float]]],
    smooth: int = 1,
    title: str = "",
    axes: Optional[Sequence[plt.Axes]] = None,
) -> plt.Figure:
    """Two panels over generation position, one line style per model.

    Left: true log-probability per token of the model's samples (and of real data, the
    dashed reference at -entropy rate). Right: KL from the true next-token distribution to
    the model's, with the model's own context (solid) and with real context (dotted).

    Args:
        curves: ``{model name: exposure_curves(...) result}`` (lists are fine: JSON).
        smooth: moving-average window over positions (1: none).
        title: the figure's title.
        axes: two axes to draw into (default: a new 1 x 2 figure).
    """
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    else:
        fig = axes[0].figure
    ax_lp, ax_kl = axes
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    h = None
    for i, (name, c) in enumerate(curves.items()):
        color = colors[i % len(colors)]
        x = np.asarray(c["position"])
        ax_lp.plot(x, _smooth(c["true_logp_model"], smooth), color=color, label=f"{name}: own samples")
        ax_kl.plot(x, _smooth(c["kl_own"], smooth), color=color, label=f"{name}: own context")
        ax_kl.plot(x, _smooth(c["kl_data"], smooth), color=color, ls=":", label=f"{name}: real context")
        h = float(c["entropy_rate"])
    if h is not None:
        ax_lp.axhline(-h, color="black", ls="--", lw=1, label="real data: \u2212entropy rate")
    ax_lp.set_xlabel("generated position t")
    ax_lp.set_ylabel("true log p(x_t | context) [nats]")
    ax_lp.set_title("quality of samples: the source's own judgement")
    ax_lp.legend(fontsize=8)
    ax_kl.set_xlabel("generated position t")
    ax_kl.set_ylabel("KL(p_true || q_model) [nats]")
    ax_kl.set_title("model error per position")
    ax_kl.set_ylim(bottom=0)
    ax_kl.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
