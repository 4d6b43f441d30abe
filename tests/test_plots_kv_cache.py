"""Chapter 7 figures: operation counts, timings plot, KV memory plot."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmcourse.long_context import MODEL_PRESETS, attention_ops, format_bytes, kv_cache_bytes
from lmcourse.plots.kv_cache import (
    plot_attention_ops,
    plot_decode_times,
    plot_kv_memory_vs_context,
)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=3000))
def test_attention_ops_closed_forms(n):
    ops = attention_ops(n)
    assert ops["cum_cache"][-1] == n * (n + 1) // 2  # 1 + 2 + ... + n
    assert ops["cum_no_cache"][-1] == n * (n + 1) * (n + 2) // 6
    assert np.all(ops["no_cache"] >= ops["cache"])
    assert ops["positions_no_cache"].sum() == n * (n + 1) // 2
    assert ops["positions_cache"].sum() == n


def test_attention_ops_rejects_bad_n():
    for bad in (0, -3):
        with pytest.raises(ValueError, match="n must be"):
            attention_ops(bad)
    for bad in (2.5, True, "3"):  # a wrong type is a TypeError, as everywhere in the package
        with pytest.raises(TypeError, match="n must be"):
            attention_ops(bad)


def test_format_bytes_and_70b_example():
    b = kv_cache_bytes(80, 8, 128, 4096)
    assert format_bytes(b) == "1.34 GB"
    assert format_bytes(999) == "999 B" and format_bytes(2048) == "2.05 kB"
    assert format_bytes(2**30, binary=True) == "1.00 GiB" and format_bytes(1536, binary=True) == "1.50 KiB"
    assert format_bytes(1023, binary=True) == "1023 B"
    assert MODEL_PRESETS["Llama-2-70B (GQA, 8 KV heads)"] == (80, 8, 128)


def test_figures():
    fig = plot_attention_ops(10)
    ax_step, ax_cum = fig.axes
    assert len(ax_step.patches) == 20  # two bars per step
    assert np.array_equal(ax_cum.lines[0].get_ydata(), attention_ops(10)["cum_no_cache"])
    plt.close(fig)
    fig = plot_decode_times([8, 16, 32], [1.0, 1.1, 1.2], [1.5, 3.0, 6.0])
    assert len(fig.axes[0].lines) == 2
    plt.close(fig)
    with pytest.raises(ValueError):
        plot_decode_times([8, 16], [1.0], [1.0, 2.0])
    configs = {"MHA": (80, 64, 128), "GQA": (80, 8, 128), "MQA": (80, 1, 128)}
    fig = plot_kv_memory_vs_context(configs, mark_context=4096, budget_bytes=80e9)
    ax = fig.axes[0]
    ys = [line.get_ydata() for line in ax.lines[:6:2]]
    # each line is 8x the next at every context: memory is linear in the KV heads
    assert np.allclose(ys[0] / ys[1], 8) and np.allclose(ys[1] / ys[2], 8)
    plt.close(fig)
