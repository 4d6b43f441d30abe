"""lmcourse.scaling: power-law fits, the compute frontier, Chinchilla split, the shipped runs."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmcourse.scaling import (
    CHINCHILLA_TOKENS_PER_PARAM,
    KAPLAN_ALPHA_N,
    chinchilla_loss,
    chinchilla_optimal,
    compute_frontier,
    fit_power_law,
    load_scaling_runs,
)


@settings(max_examples=30, deadline=None)
@given(alpha=st.floats(0.02, 1.0), xc=st.floats(1e2, 1e12))
def test_pure_power_law_recovered_exactly(alpha, xc):
    x = np.geomspace(1e4, 1e7, 6)
    fit = fit_power_law(x, (xc / x) ** alpha)
    assert fit.alpha == pytest.approx(alpha, rel=1e-6)
    assert fit.x_c == pytest.approx(xc, rel=1e-4)
    assert fit.E == 0.0
    assert fit.rmse_log < 1e-8


def test_irreducible_term_recovered():
    x = np.geomspace(1e3, 1e8, 12)
    y = 1.5 + (2e5 / x) ** 0.3
    fit = fit_power_law(x, y, irreducible=True, grid=1000)
    assert fit.E == pytest.approx(1.5, abs=0.02)
    assert fit.alpha == pytest.approx(0.3, abs=0.03)
    np.testing.assert_allclose(fit(x), y, rtol=0.01)
    # the E = 0 fit of the same data is worse
    assert fit_power_law(x, y).rmse_log > fit.rmse_log


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError):
        fit_power_law([1.0], [2.0])
    with pytest.raises(ValueError):
        fit_power_law([1.0, 2.0], [2.0, 1.0], irreducible=True)
    with pytest.raises(ValueError):
        fit_power_law([1.0, -2.0], [2.0, 1.0])


def test_compute_frontier_is_monotone_lower_envelope():
    runs = [
        {"curve": [{"flops": 1.0, "val_loss": 3.0}, {"flops": 2.0, "val_loss": 2.5}, {"flops": 4.0, "val_loss": 2.4}]},
        {"curve": [{"flops": 3.0, "val_loss": 2.6}, {"flops": 6.0, "val_loss": 2.0}, {"flops": 0.0, "val_loss": 9.0}]},
    ]
    c, loss = compute_frontier(runs)
    assert c.tolist() == [1.0, 2.0, 4.0, 6.0]
    assert loss.tolist() == [3.0, 2.5, 2.4, 2.0]
    assert np.all(np.diff(loss) < 0)


def test_chinchilla_split():
    n, d = chinchilla_optimal(6 * 20 * 1e6**2)
    assert n == pytest.approx(1e6)
    assert d == pytest.approx(20e6)
    assert d / n == pytest.approx(CHINCHILLA_TOKENS_PER_PARAM)
    # Chinchilla itself: 70B parameters, 1.4T tokens -> about 1.94 nats
    assert chinchilla_loss(70e9, 1.4e12) == pytest.approx(1.94, abs=0.02)
    assert KAPLAN_ALPHA_N == 0.076


def test_shipped_runs_are_consistent():
    data = load_scaling_runs()
    runs = data["runs"]
    assert len(runs) >= 5
    assert data["command"].startswith("python scripts/scaling_experiment.py")
    n = [r["non_embedding_params"] for r in runs]
    assert n == sorted(n) and n[0] < 20_000 and n[-1] > 400_000
    tokens = {r["tokens"] for r in runs}
    assert len(tokens) == 1  # the same training tokens for every size
    for r in runs:
        assert r["flops"] == r["tokens"] * r["flops_per_token"]
        assert 0 < r["val_loss"] < math.log(data["vocab_size"])
        assert r["non_embedding_params"] < r["params"]
        assert r["curve"][-1]["tokens"] == r["tokens"]
    fit = fit_power_law(n, [r["val_loss"] for r in runs])
    assert 0 < fit.alpha < 1  # bigger models reach a lower loss on the same tokens
