"""Figures and small simulations for chapter 11 (fast inference).

- :func:`plot_speculative`: acceptance, tokens per target pass and speed-up against k.
- :func:`plot_exactness`: the empirical distribution of speculative sampling's output
  against the target and draft distributions.
- :func:`plot_throughput`: generated tokens per second against batch size.
- :func:`plot_batching`: static against continuous batching of requests of different
  lengths on a fixed number of slots (simulated by :func:`lmcourse.experiments.simulate_batching`).
- :func:`plot_kv_allocation`: KV-cache memory reserved by a contiguous allocator against a
  paged one (PagedAttention), from :func:`lmcourse.experiments.kv_allocation`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..long_context import BYTE_UNITS

# re-exported: chapter 11 imports them from here
from ..speculative import expected_tokens_per_round

__all__ = [
    "expected_tokens_per_round",
    "plot_speculative",
    "plot_exactness",
    "plot_throughput",
    "plot_batching",
    "plot_kv_allocation",
]


# --------------------------------------------------------------------------------------
# Speculative decoding
# --------------------------------------------------------------------------------------


def plot_speculative(
    ks: Sequence[int],
    tokens_per_pass: Sequence[float],
    measured_speedup: Sequence[float],
    estimated_speedup: Sequence[float],
    alpha: Optional[float] = None,
) -> plt.Figure:
    """Two panels against the number of draft tokens k.

    Left: measured tokens per target forward pass (and, with ``alpha``, the curve
    :func:`expected_tokens_per_round`). Right: wall-clock speed-up over plain decoding,
    measured and estimated from the cost model, with the break-even line at 1.
    """
    ks = np.asarray(ks)
    fig, (ax_a, ax_s) = plt.subplots(1, 2, figsize=(10.5, 3.6))
    ax_a.plot(ks, tokens_per_pass, "o-", color="tab:blue", label="measured")
    if alpha is not None:
        grid = np.arange(0, ks.max() + 1)
        ax_a.plot(grid, [expected_tokens_per_round(alpha, int(k)) for k in grid], ":", color="grey",
                  label=f"(1-\u03b1^(k+1))/(1-\u03b1), \u03b1={alpha:.2f}")
        ax_a.axhline(1 / (1 - alpha) if alpha < 1 else ks.max() + 1, color="grey", lw=0.6)
    ax_a.set_xlabel("draft tokens per round k")
    ax_a.set_ylabel("tokens per target forward")
    ax_a.set_title("what one target pass buys")
    ax_a.legend(fontsize=8)
    ax_s.plot(ks, measured_speedup, "o-", color="tab:red", label="measured wall-clock")
    ax_s.plot(ks, estimated_speedup, "s--", color="tab:green", label="cost model (speed_report)")
    ax_s.axhline(1.0, color="black", lw=0.8)
    ax_s.set_xlabel("draft tokens per round k")
    ax_s.set_ylabel("speed-up vs target alone")
    ax_s.set_title("speed-up (1 = break even)")
    ax_s.legend(fontsize=8)
    for ax in (ax_a, ax_s):
        ax.grid(True, alpha=0.3)
        ax.set_xticks(ks)
    fig.tight_layout()
    return fig


def plot_exactness(
    p: Sequence[float], q: Sequence[float], counts: Sequence[int], labels: Optional[Sequence[str]] = None
) -> plt.Figure:
    """Bars of the target p, the draft q and the empirical frequencies of the output tokens."""
    p, q, counts = np.asarray(p, float), np.asarray(q, float), np.asarray(counts, float)
    freq = counts / counts.sum()
    x = np.arange(len(p))
    w = 0.27
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    ax.bar(x - w, q, w, color="tab:orange", label="draft q")
    ax.bar(x, p, w, color="tab:blue", label="target p")
    ax.bar(x + w, freq, w, color="tab:green", label=f"speculative output ({int(counts.sum())} draws)")
    ax.set_xticks(x, labels if labels is not None else [str(i) for i in x])
    ax.set_xlabel("token")
    ax.set_ylabel("probability")
    ax.legend(fontsize=8)
    ax.set_title("accept_or_resample turns draws from q into draws from p")
    fig.tight_layout()
    return fig


def plot_throughput(batch_sizes: Sequence[int], tokens_per_s: Sequence[float]) -> plt.Figure:
    """Generated tokens per second against batch size (log-log), with the ideal linear line."""
    b = np.asarray(batch_sizes, float)
    t = np.asarray(tokens_per_s, float)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.plot(b, t, "o-", color="tab:blue", label="measured")
    ax.plot(b, t[0] * b / b[0], ":", color="grey", label="ideal: batch of B costs as much as 1")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("generated tokens / s")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("batched decoding throughput")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# Static and continuous batching
# --------------------------------------------------------------------------------------


def plot_batching(static: dict, continuous: dict) -> plt.Figure:
    """Two slot-by-step charts from :func:`lmcourse.experiments.simulate_batching`; colour = request, white = idle."""
    steps = max(static["steps"], continuous["steps"])
    n_req = int(max(static["grid"].max(), continuous["grid"].max())) + 1
    cmap = plt.get_cmap("tab20", max(n_req, 1))
    fig, axes = plt.subplots(2, 1, figsize=(10, 5.0), sharex=True)
    for ax, (name, sim) in zip(axes, (("static batching", static), ("continuous batching", continuous))):
        grid = sim["grid"].astype(float)
        img = np.ones(grid.shape + (4,))
        busy = grid >= 0
        img[busy] = cmap(grid[busy].astype(int))
        ax.imshow(img, aspect="auto", interpolation="nearest", extent=(0, grid.shape[1], grid.shape[0], 0))
        ax.set_xlim(0, steps)
        ax.set_yticks(np.arange(grid.shape[0]) + 0.5, [f"slot {s}" for s in range(grid.shape[0])], fontsize=10)
        ax.set_title(f"{name}: {sim['steps']} steps, slots busy {sim['utilisation']:.0%} of the time", fontsize=11)
    axes[-1].set_xlabel("decode step")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# KV-cache allocation: contiguous vs paged
# --------------------------------------------------------------------------------------


def plot_kv_allocation(alloc: dict, bytes_per_token: Optional[int] = None) -> plt.Figure:
    """Bars of used vs reserved KV-cache memory for the two allocators of :func:`lmcourse.experiments.kv_allocation`."""
    scale = (bytes_per_token or 1) / (BYTE_UNITS["GiB"] if bytes_per_token else 1)
    unit = "GiB" if bytes_per_token else "token slots"
    names = ["contiguous\n(reserve max_len)", "paged\n(blocks on demand)"]
    reserved = np.array([alloc["contiguous"], alloc["paged"]]) * scale
    used = alloc["used"] * scale
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.bar(names, reserved, color="lightgrey", label="reserved")
    ax.bar(names, [used, used], color="tab:blue", label="holding real tokens")
    for i, (r, waste) in enumerate(zip(reserved, (alloc["contiguous_waste"], alloc["paged_waste"]))):
        ax.text(i, r, f"{waste:.0%} wasted", ha="center", va="bottom", fontsize=9)
    ax.set_ylabel(f"KV cache ({unit})")
    ax.set_ylim(0, reserved.max() * 1.15)
    ax.legend(fontsize=8)
    ax.set_title("KV-cache memory for the same requests")
    fig.tight_layout()
    return fig
