"""Tests of lmcourse.plots.inference (chapter 11's figures and simulations)."""

import matplotlib.pyplot as plt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmcourse.experiments import kv_allocation, simulate_batching
from lmcourse.plots.inference import (
    plot_batching,
    plot_exactness,
    plot_kv_allocation,
    plot_speculative,
    plot_throughput,
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=20), st.integers(1, 5))
def test_batching_schedules_every_request_exactly(lengths, slots):
    for policy in ("static", "continuous"):
        sim = simulate_batching(lengths, slots, policy)
        grid = sim["grid"]
        assert grid.shape == (slots, sim["steps"])
        for r, n in enumerate(lengths):
            assert int((grid == r).sum()) == n  # every request gets exactly its steps
            assert sim["finish"][r] >= n
        assert 0 < sim["utilisation"] <= 1
        assert sim["steps"] >= max(lengths)
    static = simulate_batching(lengths, slots, "static")
    cont = simulate_batching(lengths, slots, "continuous")
    assert cont["steps"] <= static["steps"]


def test_batching_examples():
    sim = simulate_batching([4, 1, 1, 1], 2, "static")
    assert sim["steps"] == 4 + 1 and sim["utilisation"] == 7 / 10
    cont = simulate_batching([4, 1, 1, 1], 2, "continuous")
    assert cont["steps"] == 4 and cont["utilisation"] == 7 / 8
    assert cont["grid"][1].tolist() == [1, 2, 3, -1]
    with pytest.raises(ValueError):
        simulate_batching([1], 2, "dynamic")


def test_kv_allocation():
    a = kv_allocation([1, 16, 17], max_len=64, block=16)
    assert a["used"] == 34
    assert a["contiguous"] == 3 * 64
    assert a["paged"] == 16 + 16 + 32
    assert 0 <= a["paged_waste"] < a["contiguous_waste"] < 1
    with pytest.raises(ValueError):
        kv_allocation([65], max_len=64)


def test_figures():
    figs = [
        plot_speculative([1, 2, 4], [1.5, 1.8, 2.0], [0.9, 1.0, 0.8], [1.1, 1.2, 1.0], alpha=0.55),
        plot_exactness([0.5, 0.5], [0.2, 0.8], [48, 52], labels=["a", "b"]),
        plot_throughput([1, 2, 4], [10.0, 19.0, 30.0]),
        plot_batching(simulate_batching([3, 1, 2], 2, "static"), simulate_batching([3, 1, 2], 2, "continuous")),
        plot_kv_allocation(kv_allocation([5, 40], 64), bytes_per_token=1024),
    ]
    assert len(figs[0].axes) == 2
    assert list(figs[0].axes[0].lines[0].get_ydata()) == [1.5, 1.8, 2.0]
    assert len(figs[3].axes) == 2
    assert "wasted" in figs[4].axes[0].texts[0].get_text()
    for f in figs:
        plt.close(f)
