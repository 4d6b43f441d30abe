"""Figures of the chat pipeline: token strips, masks, text panels, per-token loss."""

import matplotlib.pyplot as plt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmcourse.plots.pipeline import (
    plot_masked_loss,
    plot_text_panel,
    plot_token_strip,
    strip_layout,
)
from lmcourse.tokenization import split_specials

SPECIALS = ["<|im_start|>", "<|im_end|>", "<|im"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", " ", "\n", "<|im_start|>", "<|im_end|>", "<|im", "|>"]), max_size=20))
def test_split_specials_round_trips_and_isolates_markers(parts):
    text = "".join(parts)
    pieces = split_specials(text, SPECIALS)
    assert "".join(pieces) == text
    for p in pieces:  # a piece is a special or holds no complete special
        assert p in SPECIALS or not any(s in p for s in ("<|im_start|>", "<|im_end|>"))


def test_split_specials_prefers_longest():
    assert split_specials("x<|im_end|>y", SPECIALS) == ["x", "<|im_end|>", "y"]


def test_layout_wraps_within_width_and_breaks_on_newline():
    toks = ["hello", " ", "world", "\n", "abc"] * 5
    placed = strip_layout(toks, None, width=12)
    for _line, x, w, _ in placed:
        assert x + w <= 12 or x == 0
    # the token after a newline starts a line at x = 0
    for k, tok in enumerate(toks[:-1]):
        if tok.endswith("\n"):
            assert placed[k + 1][1] == 0 and placed[k + 1][0] == placed[k][0] + 1


def test_token_strip_draws_one_box_per_token_and_mask_bars():
    toks = ["<|im_start|>", "u", "s", "e", "r", "\n", "h", "i", "<|im_end|>"]
    ids = list(range(len(toks)))
    mask = [0, 0, 0, 0, 0, 0, 1, 1, 1]
    fig = plot_token_strip(toks, ids, mask=mask, specials=SPECIALS)
    ax = fig.axes[0]
    # one box per token + one bar per masked token
    assert len(ax.patches) == len(toks) + sum(mask)
    texts = [t.get_text() for t in ax.texts]
    assert "<|im_end|>" in texts and "8" in texts
    plt.close(fig)
    with pytest.raises(ValueError):
        plot_token_strip(toks, ids[:-1])
    with pytest.raises(ValueError):
        plot_token_strip(toks, mask=mask[:-1])


def test_text_panel_and_masked_loss():
    fig = plot_text_panel('{\n  "a": 1\n}', "JSON")
    assert fig.axes[0].get_title(loc="left") == "JSON"
    plt.close(fig)
    fig = plot_masked_loss(["a", "b", "<|im_end|>"], [1.0, 2.0, 0.5], [0, 1, 1])
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == [1.0, 2.0, 0.5]
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels[-1] == "im_end"
    plt.close(fig)
    with pytest.raises(ValueError):
        plot_masked_loss(["a"], [1.0, 2.0], [1])
