"""The architecture diagrams draw headlessly, follow the configuration they are given, and
reject bad arguments with a clear error."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from lmcourse.model import GPTConfig  # noqa: E402
from lmcourse.plots.architecture import block_labels, plot_gpt_block, plot_residual_stream  # noqa: E402

LLAMA = GPTConfig(vocab_size=2048, pos_emb="rope", norm="rmsnorm", mlp="swiglu", bias=False,
                  tie_weights=False, n_head=8, n_kv_head=2, n_embd=256)


def _texts(fig):
    return " ".join(t.get_text() for t in fig.axes[0].texts)


def test_gpt_block_shows_the_gpt2_parts_of_its_config():
    cfg = GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384)
    fig = plot_gpt_block(cfg)
    text = _texts(fig)
    assert isinstance(fig, plt.Figure)
    for part in ("LayerNorm", "65 × 384", "256 × 384", "× 6 blocks", "6 heads", "GELU", "tied"):
        assert part in text, part
    assert "RMSNorm" not in text and "RoPE" not in text
    plt.close(fig)


def test_gpt_block_shows_the_llama_parts_of_its_config():
    fig = plot_gpt_block(LLAMA)
    text = _texts(fig)
    for part in ("RMSNorm", "RoPE", "SwiGLU", "8 query / 2 key-value heads", "its own matrix", "Llama"):
        assert part in text, part
    assert "LayerNorm" not in text and "position embedding" not in text
    plt.close(fig)


def test_block_labels_needs_a_config():
    with pytest.raises(TypeError, match="GPTConfig"):
        block_labels(object())
    assert block_labels(LLAMA)["norm"] == "RMSNorm"


def test_residual_stream_draws_one_plus_per_branch_and_the_norms():
    fig = plot_residual_stream(3, norms=[1.0, 2.0, 3.5, 7.25])
    text = _texts(fig)
    assert [t.get_text() for t in fig.axes[0].texts].count("+") == 2 * 3  # one add per branch
    assert "|x| = 7.2" in text and "block 3" in text and "block 4" not in text
    plt.close(fig)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (13, ValueError), (2.0, TypeError), (True, TypeError)])
def test_residual_stream_rejects_bad_n_layer(bad, error):
    with pytest.raises(error, match="n_layer"):
        plot_residual_stream(bad)


def test_residual_stream_rejects_norms_of_the_wrong_length():
    with pytest.raises(ValueError, match="norms"):
        plot_residual_stream(2, norms=[1.0, 2.0])
