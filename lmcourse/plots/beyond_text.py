"""Figures of chapter 13: images as pixel sequences, generated images, waveforms, spectrograms."""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def plot_raster_order(image: torch.Tensor, t: int, ax: Optional[plt.Axes] = None) -> plt.Figure:
    """One image read in raster order, frozen at step ``t``.

    Pixels ``0 .. t - 1`` (the context the model has seen) are drawn with their values,
    pixel ``t`` (the one being predicted) is outlined in red, later pixels are hidden. Each
    cell carries its index in the sequence.
    """
    img = torch.as_tensor(image).detach().cpu()
    if img.dim() != 2 or img.shape[0] != img.shape[1]:
        raise ValueError(f"image must be square (size, size), got {tuple(img.shape)}")
    size = img.shape[0]
    if not 0 <= t < size * size:
        raise ValueError(f"t must be in [0, {size * size}), got {t}")
    vmax = max(1, int(img.max()))
    shown = np.full((size, size), np.nan)
    flat = img.reshape(-1).float().numpy()
    shown.reshape(-1)[:t] = flat[:t]
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.2, 4.2))
    cmap = plt.get_cmap("Blues").with_extremes(bad="#f2f2f2")
    ax.imshow(shown, cmap=cmap, vmin=-0.3 * vmax, vmax=vmax)
    fs = max(5, 11 - size // 3)
    for k in range(size * size):
        r, c = divmod(k, size)
        ax.text(c, r, str(k), ha="center", va="center", fontsize=fs,
                color="white" if k < t and flat[k] > 0 else "#555555")
    r, c = divmod(t, size)
    ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, ec="#d62728", lw=2.5))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"predict pixel {t} from pixels 0..{t - 1}" if t else "predict pixel 0 from nothing",
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_image_rows(
    rows: Sequence[torch.Tensor], titles: Sequence[str], levels: int = 2, ncols: int = 8
) -> plt.Figure:
    """Rows of small images, e.g. training examples above model samples.

    Args:
        rows: each a (n, size, size) tensor of pixel levels; the first ``ncols`` are drawn.
        titles: one label per row.
        levels: number of pixel levels (sets the colour scale).
        ncols: images per row.
    """
    if len(rows) != len(titles):
        raise ValueError(f"{len(rows)} rows but {len(titles)} titles")
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.1 * ncols, 1.25 * len(rows) + 0.2), squeeze=False)
    for i, (imgs, title) in enumerate(zip(rows, titles)):
        imgs = torch.as_tensor(imgs).detach().cpu()
        for j in range(ncols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < imgs.shape[0]:
                ax.imshow(imgs[j].numpy(), cmap="gray", vmin=0, vmax=levels - 1)
            else:
                ax.axis("off")
        axes[i, 0].set_ylabel(title, fontsize=9, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def plot_waveforms(
    signals: Sequence[np.ndarray],
    titles: Sequence[str],
    sample_rate: int = 8000,
    prompt_len: int = 0,
) -> plt.Figure:
    """Amplitude against time (ms) of each signal, one panel each, prompt shaded grey."""
    if len(signals) != len(titles):
        raise ValueError(f"{len(signals)} signals but {len(titles)} titles")
    fig, axes = plt.subplots(len(signals), 1, figsize=(7.5, 1.7 * len(signals) + 0.3), squeeze=False,
                             sharex=True)
    for ax, sig, title in zip(axes[:, 0], signals, titles):
        sig = np.asarray(sig, dtype=np.float64)
        t_ms = np.arange(sig.size) / sample_rate * 1000
        ax.plot(t_ms, sig, lw=1.0, color="C0")
        if prompt_len:
            ax.axvspan(0, prompt_len / sample_rate * 1000, color="grey", alpha=0.2, label="prompt")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_ylim(-1.1, 1.1)
        ax.set_ylabel("amplitude")
        ax.set_title(title, fontsize=9)
    axes[-1, 0].set_xlabel("time (ms)")
    fig.tight_layout()
    return fig


def plot_spectrograms(
    signals: Sequence[np.ndarray],
    titles: Sequence[str],
    sample_rate: int = 8000,
    nfft: int = 128,
) -> plt.Figure:
    """Side-by-side spectrograms (``matplotlib.pyplot.specgram``) of the signals."""
    if len(signals) != len(titles):
        raise ValueError(f"{len(signals)} signals but {len(titles)} titles")
    fig, axes = plt.subplots(1, len(signals), figsize=(3.4 * len(signals), 3.0), squeeze=False, sharey=True)
    for ax, sig, title in zip(axes[0], signals, titles):
        sig = np.asarray(sig, dtype=np.float64)
        with np.errstate(divide="ignore"):  # an exactly silent bin is -inf dB, not an error
            ax.specgram(sig, NFFT=nfft, Fs=sample_rate, noverlap=nfft * 3 // 4, cmap="magma")
        ax.set_ylim(0, sample_rate / 4)
        ax.set_xlabel("time (s)")
        ax.set_title(title, fontsize=9)
    axes[0, 0].set_ylabel("frequency (Hz)")
    fig.tight_layout()
    return fig
