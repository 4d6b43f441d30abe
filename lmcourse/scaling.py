"""Scaling laws: power-law fits, the compute-efficient frontier, and the published constants.

Chapter 12 teaches this file. A scaling law says that the validation loss of a language
model falls as a power of its size N (non-embedding parameters), of its data D (tokens) or
of its training compute C (FLOPs, about ``6 * N * D``):

    L(N) = (N_c / N) ** alpha            (pure power law: a straight line on log-log axes)
    L(N) = E + (N_c / N) ** alpha        (with an irreducible loss E, the entropy of the text)

:func:`fit_power_law` fits either form to measured points; :func:`compute_frontier` takes
the learning curves of several model sizes and keeps, at each compute budget, the lowest
loss any size reached; :func:`chinchilla_optimal` splits a compute budget into parameters and
tokens with the Chinchilla rule of thumb. The published numbers below are CITED constants
from the papers, not measurements of this course.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

__all__ = [
    "KAPLAN_ALPHA_N",
    "KAPLAN_N_C",
    "KAPLAN_ALPHA_D",
    "KAPLAN_ALPHA_C",
    "CHINCHILLA_TOKENS_PER_PARAM",
    "CHINCHILLA_FIT",
    "SCALING_RUNS_PATH",
    "PowerLaw",
    "fit_power_law",
    "compute_frontier",
    "chinchilla_optimal",
    "chinchilla_loss",
    "load_scaling_runs",
]

# Kaplan et al. 2020, "Scaling laws for neural language models" (WebText2, BPE tokens):
# L(N) = (N_c / N)^alpha_N for models trained to convergence, N without embeddings.
KAPLAN_ALPHA_N = 0.076
KAPLAN_N_C = 8.8e13
# L(D) = (D_c / D)^alpha_D (early-stopped large models) and L(C_min) ~ C_min^-alpha_C.
KAPLAN_ALPHA_D = 0.095
KAPLAN_ALPHA_C = 0.050
# Hoffmann et al. 2022 ("Chinchilla"): compute-optimal training uses about 20 tokens per
# parameter, and their fitted L(N, D) = E + A / N^alpha + B / D^beta (MassiveText tokens).
CHINCHILLA_TOKENS_PER_PARAM = 20.0
CHINCHILLA_FIT = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}

SCALING_RUNS_PATH = Path(__file__).resolve().parent / "assets" / "scaling_runs.json"


class PowerLaw:
    """``L(x) = E + (x_c / x) ** alpha``: the result of :func:`fit_power_law`.

    Attributes:
        alpha: the exponent (how fast the loss falls; the slope on log-log axes when E = 0).
        x_c: the scale at which the reducible part equals 1.
        E: the irreducible loss (0 for a pure power law).
        rmse_log: root-mean-square error of the fit in log(loss).
    """

    def __init__(self, alpha: float, x_c: float, E: float = 0.0, rmse_log: float = float("nan")) -> None:
        self.alpha = float(alpha)
        self.x_c = float(x_c)
        self.E = float(E)
        self.rmse_log = float(rmse_log)

    def __call__(self, x: Union[float, np.ndarray, Sequence[float]]) -> np.ndarray:
        """Predicted loss at ``x`` (a number or an array)."""
        x = np.asarray(x, dtype=np.float64)
        return self.E + (self.x_c / x) ** self.alpha

    def __repr__(self) -> str:
        e = f"{self.E:.3f} + " if self.E else ""
        return f"PowerLaw(L = {e}({self.x_c:.3g} / x)^{self.alpha:.4f}, rmse_log={self.rmse_log:.4f})"


def _fit_pure(logx: np.ndarray, logy: np.ndarray) -> tuple[float, float]:
    """Least squares ``log y = alpha * log x_c - alpha * log x``; returns (alpha, log x_c)."""
    slope, intercept = np.polyfit(logx, logy, 1)
    alpha = -slope
    if alpha == 0:
        return 0.0, 0.0
    return float(alpha), float(intercept / alpha)


def fit_power_law(
    x: Sequence[float],
    loss: Sequence[float],
    irreducible: bool = False,
    grid: int = 400,
) -> PowerLaw:
    """Fit ``L = (x_c / x) ** alpha`` (or ``E + (x_c / x) ** alpha``) to measured points.

    The pure form is a straight line on log-log axes, fitted by least squares on
    ``log L`` against ``log x``. With ``irreducible=True`` the irreducible loss E is found
    by a grid search over ``[0, min(loss))``: for each E the reducible part ``L - E`` is fitted
    as a pure power law, and the E with the smallest error in ``log L`` wins (no optimiser,
    fully deterministic).

    Args:
        x: sizes (parameters, tokens or FLOPs), all > 0; at least 2 points (3 with E).
        loss: measured losses, all > 0.
        irreducible: also fit the constant E.
        grid: number of E values tried.
    Returns:
        A :class:`PowerLaw`.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(loss, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and loss must be 1-D of the same length, got {x.shape} and {y.shape}")
    need = 3 if irreducible else 2
    if x.size < need:
        raise ValueError(f"need at least {need} points, got {x.size}")
    if not (np.all(x > 0) and np.all(y > 0)):
        raise ValueError("x and loss must be > 0")
    logx, logy = np.log(x), np.log(y)

    def rmse(E: float, alpha: float, logxc: float) -> float:
        pred = np.log(E + np.exp(alpha * (logxc - logx)))
        return float(np.sqrt(np.mean((pred - logy) ** 2)))

    alpha, logxc = _fit_pure(logx, logy)
    best = (rmse(0.0, alpha, logxc), 0.0, alpha, logxc)
    if irreducible:
        for E in np.linspace(0.0, y.min(), grid, endpoint=False)[1:]:
            a, lc = _fit_pure(logx, np.log(y - E))
            err = rmse(E, a, lc)
            if err < best[0]:
                best = (err, float(E), a, lc)
    err, E, alpha, logxc = best
    return PowerLaw(alpha, math.exp(logxc), E, err)


def compute_frontier(runs: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """The compute-efficient frontier of several learning curves.

    Each run has ``curve``: a list of ``{"flops": C, "val_loss": L}`` points. All points are
    sorted by compute, and a point is kept when its loss is lower than every point that used
    less compute: at each budget, the best loss any model size reached.

    Returns:
        ``(flops, loss)`` arrays of the frontier points, increasing compute.
    """
    pts = sorted((p["flops"], p["val_loss"]) for r in runs for p in r["curve"] if p["flops"] > 0)
    flops, loss, best = [], [], math.inf
    for c, val in pts:
        if val < best:
            best = val
            flops.append(c)
            loss.append(val)
    return np.array(flops, dtype=np.float64), np.array(loss, dtype=np.float64)


def chinchilla_optimal(
    flops: float, tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM
) -> tuple[float, float]:
    """Split a budget of ``flops`` (= 6 N D) into (N params, D tokens) with ``D = r * N``.

    ``N = sqrt(C / (6 r))`` and ``D = r * N``; with r = 20 this is the Chinchilla rule of thumb.
    """
    if not flops > 0 or not tokens_per_param > 0:
        raise ValueError("flops and tokens_per_param must be > 0")
    n = math.sqrt(flops / (6.0 * tokens_per_param))
    return n, tokens_per_param * n


def chinchilla_loss(n_params: float, n_tokens: float, fit: Optional[dict[str, float]] = None) -> float:
    """Hoffmann et al.'s fitted ``L(N, D) = E + A / N^alpha + B / D^beta`` (their tokens, not ours)."""
    f = CHINCHILLA_FIT if fit is None else fit
    return f["E"] + f["A"] / n_params ** f["alpha"] + f["B"] / n_tokens ** f["beta"]


def load_scaling_runs(path: Union[str, Path, None] = None) -> dict[str, Any]:
    """The results written by ``scripts/scaling_experiment.py`` (default: the shipped file)."""
    path = SCALING_RUNS_PATH if path is None else Path(path)
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not data.get("runs"):
        raise ValueError(f"{path} has no runs")
    return data
