"""Chapter 10's measurements (lmcourse.experiments), masks (lmcourse.model) and figures (plots.attention_cost)."""

import matplotlib.pyplot as plt
import pytest
import torch

from lmcourse.experiments import measure_attention_cost, peak_tensor_bytes
from lmcourse.long_context import global_window_mask, sliding_window_mask, strided_mask
from lmcourse.model import causal_mask
from lmcourse.plots.attention_cost import (
    plot_attention_cost,
    plot_long_context_masks,
    plot_position_loss,
)


def test_peak_tensor_bytes_counts_live_tensors():
    x = torch.randn(100, 100)
    n = 100 * 100 * 4
    # (x @ x) and its relu are alive together for a moment: two tensors of n bytes
    _, two = peak_tensor_bytes(lambda: (x @ x).relu())
    _, one = peak_tensor_bytes(lambda: (x @ x).relu_())  # in place: one tensor
    assert two == 2 * n
    assert one == n
    result, zero = peak_tensor_bytes(lambda: x[:10])  # a view of an input allocates nothing
    assert zero == 0 and result.shape == (10, 100)


def test_measure_attention_cost_explicit_is_quadratic_fused_linear():
    res = measure_attention_cost([32, 64, 128], n_head=2, head_dim=8, repeats=1)
    assert res["lengths"] == [32, 64, 128]
    assert max(res["max_abs_diff"]) < 1e-5
    assert res["weights_bytes"] == [2 * T * T * 4 for T in (32, 64, 128)]
    for e, w in zip(res["explicit_bytes"], res["weights_bytes"]):
        assert e >= 2 * w  # scores and weights are alive together
    assert res["fused_bytes"][-1] < res["weights_bytes"][-1] / 4  # far below one weight matrix
    # doubling T: explicit memory about x4, fused about x2
    assert res["explicit_bytes"][2] / res["explicit_bytes"][1] > 3.5
    assert res["fused_bytes"][2] / res["fused_bytes"][1] < 2.5
    assert all(t > 0 for t in res["explicit_ms"] + res["fused_ms"])
    fig = plot_attention_cost(res)
    assert len(fig.axes) == 2
    assert len(fig.axes[1].lines) == 5  # explicit, fused, two guides, computed weights
    plt.close(fig)


@pytest.mark.parametrize("T", [1, 7, 20])
def test_masks_are_causal_subsets(T):
    full = causal_mask(T)
    for m in (sliding_window_mask(T, 3), strided_mask(T, 4), global_window_mask(T, 3, 2)):
        assert m.shape == (T, T)
        assert not (m & ~full).any()  # never the future
        assert m.diagonal().all()  # always itself
    assert torch.equal(sliding_window_mask(T, T), full)
    assert (sliding_window_mask(T, 3).sum(1) <= 3).all()


def test_sliding_window_counts():
    m = sliding_window_mask(10, 4)
    assert m[9].nonzero().flatten().tolist() == [6, 7, 8, 9]
    assert global_window_mask(10, 2, 1)[9].nonzero().flatten().tolist() == [0, 8, 9]
    with pytest.raises(ValueError):
        sliding_window_mask(5, 0)


def test_other_figures():
    fig = plot_long_context_masks(T=12, window=3, stride=3, n_global=1)
    assert len(fig.axes) == 4
    assert "pairs" in fig.axes[0].get_title()
    plt.close(fig)
    fig = plot_position_loss([3.0, 2.5, 2.0, 1.9], block_size=4)
    assert list(fig.axes[0].lines[0].get_ydata()) == [3.0, 2.5, 2.0, 1.9]
    plt.close(fig)


def test_log2_buckets():
    from lmcourse.experiments import log2_buckets

    ends, means = log2_buckets(list(range(128)))
    assert ends == [1, 2, 4, 8, 16, 32, 64, 128]
    assert means[:4] == [0.0, 1.0, 2.5, 5.5]
    assert log2_buckets([3.0] * 5) == ([1, 2, 4, 5], [3.0] * 4)
