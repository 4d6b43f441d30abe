"""Chapter 7 explorers build headless and follow their controls."""

import matplotlib.pyplot as plt
import pytest

from lmcourse.long_context import kv_cache_bytes
from lmcourse.widgets.kv_cache import AttentionOpsExplorer, KVMemoryCalculator


def test_attention_ops_explorer():
    ex = AttentionOpsExplorer(n=16, max_n=256)
    assert ex.n == 16 and ex.renders == 1
    assert ex.totals == {"no_cache": 16 * 17 * 18 // 6, "cache": 16 * 17 // 2}
    ex.slider.value = 100  # as a user would
    assert ex.n == 100 and ex.renders == 2
    assert ex.totals["cache"] == 5050
    ex.update(100)
    assert ex.renders == 3
    ex.update(4)
    assert ex.slider.value == 4 and "fewer" in ex.info.value
    fig = ex.figure()
    assert len(fig.axes) == 2
    plt.close(fig)


def test_kv_memory_calculator():
    calc = KVMemoryCalculator()
    assert calc.nbytes == kv_cache_bytes(80, 8, 128, 4096) and "1.34 GB" in calc.info.value
    r = calc.renders
    calc.n_kv_head.value = 64  # a user moves one slider
    assert calc.nbytes == kv_cache_bytes(80, 64, 128, 4096) and calc.renders == r + 1
    calc.preset.value = "GPT-2 small (MHA)"  # one redraw for the whole preset
    assert calc.shape == (12, 12, 64) and calc.renders == r + 2
    calc.set(context=8192, dtype="fp32", batch=4)
    assert calc.nbytes == kv_cache_bytes(12, 12, 64, 8192, 4, 4) and calc.renders == r + 3
    with pytest.raises(ValueError):
        calc.set(layers=3)
    with pytest.raises(ValueError):
        KVMemoryCalculator(preset="nope")
    fig = calc.figure()
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) >= 2
    plt.close(fig)
