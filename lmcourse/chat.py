"""Chat templates: turning a list of messages into the one string a chat model is trained on.

Chapter 14 (from API call to token stream) teaches this file. A chat model is still a next-token
predictor; a *template* lays the conversation out as text with special marker tokens, and
supervised fine-tuning trains only on the assistant's tokens (:func:`encode_chat` returns
the mask that selects them).

Templates, written from each format's documented specification:

``"chatml"`` (OpenAI ChatML, used by Qwen and many others)::

    <|im_start|>system\\nYou are helpful.<|im_end|>\\n<|im_start|>user\\nHi<|im_end|>\\n
    <|im_start|>assistant\\n                                   <- generation prompt

``"llama3"`` (Meta Llama 3 / 3.1 instruct)::

    <|begin_of_text|><|start_header_id|>system<|end_header_id|>\\n\\nYou are helpful.<|eot_id|>
    <|start_header_id|>user<|end_header_id|>\\n\\nHi<|eot_id|>
    <|start_header_id|>assistant<|end_header_id|>\\n\\n     <- generation prompt

``"zephyr"`` (Hugging Face Zephyr; ``</s>`` is the EOS token)::

    <|system|>\\nYou are helpful.</s>\\n<|user|>\\nHi</s>\\n
    <|assistant|>\\n                                        <- generation prompt

(The line breaks after the marker tokens above are for display only, except the ``\\n``
written out.) Contents are inserted verbatim; Meta's reference Jinja template additionally
strips surrounding whitespace from each content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch

__all__ = ["TEMPLATES", "ROLES", "apply_chat_template", "encode_chat", "render_segments"]

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class _Template:
    """A template: text before everything, and per message ``header + content + end + sep``."""

    begin: str  # once, before the first message (e.g. the BOS token)
    header: str  # before the content, ``{role}`` is replaced by the role
    end: str  # the end-of-turn token, right after the content (trained on for the assistant)
    sep: str  # after the end token (not trained on)


TEMPLATES: dict[str, _Template] = {
    "chatml": _Template(begin="", header="<|im_start|>{role}\n", end="<|im_end|>", sep="\n"),
    "llama3": _Template(
        begin="<|begin_of_text|>",
        header="<|start_header_id|>{role}<|end_header_id|>\n\n",
        end="<|eot_id|>",
        sep="",
    ),
    "zephyr": _Template(begin="", header="<|{role}|>\n", end="</s>", sep="\n"),
}


def _check(messages: Sequence[dict], template: str) -> _Template:
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; allowed: {sorted(TEMPLATES)}")
    if isinstance(messages, (str, dict)) or not isinstance(messages, Sequence) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"messages[{i}] must be a dict with 'role' and 'content' keys, got {m!r}")
        role, content = m["role"], m["content"]
        if role not in ROLES:
            raise ValueError(f"messages[{i}]['role'] must be one of {ROLES}, got {role!r}")
        if role == "system" and i != 0:
            raise ValueError(f"messages[{i}] is a system message; only the first message may be one")
        if not isinstance(content, str):
            raise ValueError(
                f"messages[{i}]['content'] must be a str, got {type(content).__name__}"
            )
    return TEMPLATES[template]


def render_segments(
    messages: Sequence[dict], template: str = "chatml", add_generation_prompt: bool = True
) -> list[tuple[str, bool]]:
    """The templated conversation as ``(text, is_trained)`` pieces, in order.

    ``is_trained`` is True exactly for assistant contents and the end-of-turn token that
    follows them: what supervised fine-tuning computes the loss on. Joining the texts gives
    :func:`apply_chat_template`.
    """
    t = _check(messages, template)
    segments: list[tuple[str, bool]] = []
    if t.begin:
        segments.append((t.begin, False))
    for m in messages:
        is_assistant = m["role"] == "assistant"
        segments.append((t.header.format(role=m["role"]), False))
        if m["content"]:
            segments.append((m["content"], is_assistant))
        segments.append((t.end, is_assistant))
        if t.sep:
            segments.append((t.sep, False))
    if add_generation_prompt:
        segments.append((t.header.format(role="assistant"), False))
    return segments


def apply_chat_template(
    messages: Sequence[dict], template: str = "chatml", add_generation_prompt: bool = True
) -> str:
    """Render ``messages`` with ``template`` into one string.

    Args:
        messages: list of ``{"role": "system" | "user" | "assistant", "content": str}``;
            a system message may only come first.
        template: one of :data:`TEMPLATES`: ``"chatml"``, ``"llama3"``, ``"zephyr"``.
        add_generation_prompt: end with the header of an assistant turn, so that the model's
            continuation is the assistant's reply (use True to generate, False to train).

    Example:
        >>> apply_chat_template([{"role": "user", "content": "Hi"}])
        '<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n'
    """
    return "".join(text for text, _ in render_segments(messages, template, add_generation_prompt))


class _Encoder(Protocol):
    def encode(self, text: str) -> list[int]: ...


def encode_chat(
    messages: Sequence[dict],
    tokenizer: _Encoder,
    template: str = "chatml",
    add_generation_prompt: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of the templated conversation and the mask of tokens to train on.

    Each piece of :func:`render_segments` is encoded separately and the ids concatenated, so
    that the mask boundaries are exact. For a byte or character tokenizer this equals
    ``tokenizer.encode(apply_chat_template(...))``; for BPE it may split differently at piece
    boundaries (marker tokens are special tokens, so in practice it rarely does).

    Args:
        messages: as for :func:`apply_chat_template`.
        tokenizer: any object with ``encode(text) -> list[int]``; the template's marker
            strings should be special tokens of it (e.g. ``CharTokenizer`` with specials).
        template: template name.
        add_generation_prompt: append the assistant header (default False: for training).

    Returns:
        ``(ids, assistant_mask)``, two LongTensors (N,); the mask is 1 on assistant content
        tokens and the end-of-turn token after each of them, 0 elsewhere.
    """
    ids: list[int] = []
    mask: list[int] = []
    for text, trained in render_segments(messages, template, add_generation_prompt):
        piece = list(tokenizer.encode(text))
        ids.extend(piece)
        mask.extend([int(trained)] * len(piece))
    return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)
