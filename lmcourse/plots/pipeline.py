"""Figures of the chat pipeline: JSON, template string, token strips, masks and per-token loss.

Chapter 14 (from API call to token stream) uses these; the pipeline stepper of
:func:`lmcourse.experiments.run_pipeline` records a request; :func:`plot_pipeline` draws all
its stages, :func:`plot_pipeline_stage` one (the static twin of :func:`lmcourse.explorers.pipeline_view`).
"""

from __future__ import annotations

import textwrap
from typing import Any, Optional, Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import Patch, Rectangle

from ..experiments import STAGES
from ..tokenization import split_specials
from .tokens import visible

__all__ = [
    "strip_layout",
    "plot_token_strip",
    "plot_text_panel",
    "plot_pipeline_stage",
    "plot_pipeline",
    "plot_masked_loss",
]

_SPECIAL_FACE = "0.25"
_MASK_COLOUR = "tab:red"
_PASTELS = ("#cfe2f3", "#fce5cd", "#d9ead3", "#ead1dc", "#fff2cc", "#d0e0e3")


def _cell_width(shown: str, token_id: Optional[int]) -> float:
    """Width of a token box in character cells (room for its id under the text)."""
    w = float(max(len(shown), 1))
    if token_id is not None:
        w = max(w, 0.62 * len(str(token_id)) + 0.3)
    return w


def strip_layout(
    tokens: Sequence[str], ids: Optional[Sequence[int]] = None, width: float = 48.0
) -> list[tuple[int, float, float, str]]:
    """Place token boxes on lines: ``(line, x, box width, shown text)`` per token.

    Whitespace is made visible (``·``, ``↵``); a box that would pass ``width`` starts a new
    line, and a token ending in a newline ends its line.
    """
    placed: list[tuple[int, float, float, str]] = []
    line, x = 0, 0.0
    for k, tok in enumerate(tokens):
        shown = visible(tok) or "\u2205"
        w = _cell_width(shown, None if ids is None else int(ids[k]))
        if x > 0 and x + w > width:
            line, x = line + 1, 0.0
        placed.append((line, x, w, shown))
        x += w
        if tok.endswith("\n"):
            line, x = line + 1, 0.0
    return placed


def plot_token_strip(
    tokens: Sequence[str],
    ids: Optional[Sequence[int]] = None,
    mask: Optional[Sequence[int]] = None,
    specials: Sequence[str] = (),
    width: float = 48.0,
    title: Optional[str] = None,
    colour_tokens: bool = True,
    fontsize: float = 9.0,
    ax: Optional[plt.Axes] = None,
) -> plt.Figure:
    """Draw tokens as boxes in reading order, one box per token, wrapped into lines.

    Args:
        tokens: the token strings (e.g. ``[tok.decode([i]) for i in ids]``).
        ids: optional token ids, printed small under each token.
        mask: optional 0/1 per token; tokens with 1 get a red bar under the box (the
            assistant mask of :func:`lmcourse.chat.encode_chat`: the tokens trained on).
        specials: token strings drawn as dark boxes with white text (special tokens).
        width: line width in character cells.
        title: axes title (default: the number of tokens).
        colour_tokens: cycle pastel colours over ordinary tokens (False: white boxes).
        fontsize: size of the token text.
        ax: axes to draw on; a new figure is made if ``None``.

    Returns:
        The matplotlib figure.
    """
    if ids is not None and len(ids) != len(tokens):
        raise ValueError(f"{len(ids)} ids for {len(tokens)} tokens")
    if mask is not None and len(mask) != len(tokens):
        raise ValueError(f"{len(mask)} mask values for {len(tokens)} tokens")
    specials = set(specials)
    placed = strip_layout(tokens, ids, width)
    n_lines = max((ln for ln, _, _, _ in placed), default=0) + 1
    row_h = 1.0 + (0.45 if ids is not None else 0.0) + (0.25 if mask is not None else 0.0)
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.16 * width + 0.4, 0.36 * row_h * n_lines + 0.5))
    else:
        fig = ax.figure
    k_plain = 0
    for k, (line, x, w, shown) in enumerate(placed):
        y = (n_lines - 1 - line) * row_h + (0.25 if mask is not None else 0.0)
        h = row_h - 0.12 - (0.25 if mask is not None else 0.0)
        is_special = tokens[k] in specials
        if is_special:
            face, colour = _SPECIAL_FACE, "white"
        else:
            face = _PASTELS[k_plain % len(_PASTELS)] if colour_tokens else "white"
            colour = "black"
            k_plain += 1
        ax.add_patch(Rectangle((x + 0.05, y + 0.06), w - 0.1, h, facecolor=face,
                               edgecolor="0.35", linewidth=0.5))
        text_y = y + 0.06 + h - 0.5 if ids is not None else y + 0.06 + h / 2
        ax.text(x + w / 2, text_y, shown, ha="center", va="center", family="monospace",
                fontsize=fontsize, color=colour, fontweight="bold" if is_special else "normal")
        if ids is not None:
            ax.text(x + w / 2, y + 0.28, str(int(ids[k])), ha="center", va="center",
                    fontsize=fontsize * 0.62, color=colour if is_special else "0.3")
        if mask is not None and int(mask[k]):
            ax.add_patch(Rectangle((x + 0.05, y - 0.17), w - 0.1, 0.16, facecolor=_MASK_COLOUR,
                                   edgecolor="none"))
    ax.set_xlim(0, width)
    ax.set_ylim(-0.05, n_lines * row_h)
    ax.axis("off")
    ax.set_title(title if title is not None else f"{len(tokens)} tokens", loc="left",
                 fontsize=fontsize + 1)
    if mask is not None:
        ax.legend(handles=[Patch(color=_MASK_COLOUR, label="mask = 1: in the loss")],
                  loc="upper right", bbox_to_anchor=(1.0, 1.12), fontsize=fontsize - 1,
                  frameon=False)
    return fig


def plot_text_panel(
    text: str, title: str = "", width: int = 64, fontsize: float = 9.0,
    ax: Optional[plt.Axes] = None,
) -> plt.Figure:
    """Draw ``text`` in a monospaced box, long lines wrapped at ``width`` characters."""
    lines: list[str] = []
    for raw in text.splitlines() or [""]:
        lines.extend(textwrap.wrap(raw, width, drop_whitespace=False, replace_whitespace=False) or [""])
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.125 * width + 0.4, 0.2 * len(lines) + 0.5))
    else:
        fig = ax.figure
    ax.text(0.01, 0.97, "\n".join(lines), ha="left", va="top", family="monospace",
            fontsize=fontsize, transform=ax.transAxes,
            bbox={"boxstyle": "round,pad=0.4", "facecolor": "#f6f6f6", "edgecolor": "0.6"})
    ax.axis("off")
    ax.set_title(title, loc="left", fontsize=fontsize + 1)
    return fig


def _short(token: str) -> str:
    """A tick label: ``<|im_end|>`` becomes ``im_end``, whitespace is made visible."""
    if token.startswith("<|") and token.endswith("|>") and len(token) > 4:
        return token[2:-2]
    return visible(token)


def _stage_title(step: int) -> str:
    return f"{step + 1}/{len(STAGES)}  {STAGES[step]}"


def plot_pipeline_stage(trace: Any, step: int, width: float = 48.0,
                        ax: Optional[plt.Axes] = None) -> plt.Figure:
    """Draw one stage of a :class:`lmcourse.experiments.PipelineTrace`.

    Stages: 0 the request JSON, 1 the chat-template string (special markers dark),
    2 the prompt's token ids, 3 the generated tokens, 4 the reassembled reply (response JSON).
    """
    if not 0 <= step < len(STAGES):
        raise ValueError(f"step must be in [0, {len(STAGES) - 1}], got {step}")
    specials = list(trace.specials)
    if step == 0:
        return plot_text_panel(trace.request_json, _stage_title(0), ax=ax)
    if step == 1:
        pieces = split_specials(trace.prompt, specials)
        return plot_token_strip(pieces, specials=specials, width=width, colour_tokens=False,
                                title=f"{_stage_title(1)}: {len(trace.prompt)} characters "
                                f"({trace.template})", ax=ax)
    if step == 2:
        return plot_token_strip(trace.prompt_tokens, trace.prompt_ids, specials=specials,
                                width=width, title=f"{_stage_title(2)}: "
                                f"{len(trace.prompt_ids)} tokens", ax=ax)
    if step == 3:
        return plot_token_strip(trace.new_tokens, trace.new_ids, specials=specials, width=width,
                                title=f"{_stage_title(3)}: {len(trace.new_ids)} tokens, "
                                f"finish: {trace.finish_reason}", ax=ax)
    return plot_text_panel(trace.response_json, _stage_title(4), ax=ax)


def plot_pipeline(trace: Any, width: float = 48.0) -> plt.Figure:
    """All five stages of a trace, top to bottom, in one figure."""
    heights = [
        trace.request_json.count("\n") * 0.2 + 0.7,
        0.4 * len({ln for ln, *_ in strip_layout(split_specials(trace.prompt, list(trace.specials)), None, width)}) + 0.5,
        0.58 * len({ln for ln, *_ in strip_layout(trace.prompt_tokens, trace.prompt_ids, width)}) + 0.5,
        0.58 * len({ln for ln, *_ in strip_layout(trace.new_tokens, trace.new_ids, width)}) + 0.5,
        trace.response_json.count("\n") * 0.2 + 0.7,
    ]
    fig, axes = plt.subplots(len(STAGES), 1, figsize=(0.16 * width + 0.4, sum(heights)),
                             gridspec_kw={"height_ratios": heights})
    for step, ax in enumerate(axes):
        plot_pipeline_stage(trace, step, width=width, ax=ax)
    fig.tight_layout()
    return fig


def plot_masked_loss(
    tokens: Sequence[str], losses: Sequence[float], mask: Sequence[int],
    title: str = "Per-token loss (nats); grey tokens are not in the loss",
    ax: Optional[plt.Axes] = None,
) -> plt.Figure:
    """Bar chart of each target token's loss, coloured by the assistant mask.

    Args:
        tokens: the target tokens (the sequence shifted by one).
        losses: their negative log-probabilities.
        mask: 1 where the token counts in the loss, 0 where it is ignored (ignore_index).
    """
    if not len(tokens) == len(losses) == len(mask):
        raise ValueError("tokens, losses and mask must have the same length")
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6.0, 0.11 * len(tokens) + 1), 2.8))
    else:
        fig = ax.figure
    colours = [_MASK_COLOUR if int(m) else "0.75" for m in mask]
    ax.bar(range(len(tokens)), losses, color=colours, width=0.85)
    ax.set_xticks(range(len(tokens)))
    ax.set_xticklabels([_short(t) for t in tokens],
                       family="monospace", fontsize=6)
    ax.set_xlim(-0.7, len(tokens) - 0.3)
    ax.set_ylabel("-log p (nats)")
    ax.set_title(title, loc="left", fontsize=10)
    ax.legend(handles=[Patch(color=_MASK_COLOUR, label="assistant token (mask 1)"),
                       Patch(color="0.75", label="ignored (-100)")], fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
