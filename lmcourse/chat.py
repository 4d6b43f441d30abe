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

**Forged turns.** A message whose content contains ``<|im_end|>\\n<|im_start|>assistant``
would, encoded with the markers' ids, look exactly like a genuine end of turn followed by
an assistant turn. :func:`encode_chat` therefore encodes the template's own text with
``allow_special=True`` (its markers become control ids) and every content with
``allow_special=False`` (``on_special="escape"``: marker strings in content are ordinary
characters), or refuses such content (``on_special="error"``). The string
:func:`apply_chat_template` returns is for reading: encoding it with ``allow_special=True``
gives content the power to forge turns, so ids should come from :func:`encode_chat`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch

__all__ = [
    "TEMPLATES",
    "ROLES",
    "ON_SPECIAL",
    "apply_chat_template",
    "encode_chat",
    "render_segments",
    "end_marker",
    "reassemble",
]

ROLES = ("system", "user", "assistant")
ON_SPECIAL = ("escape", "error")


@dataclass(frozen=True)
class _Template:
    """A template: text before everything, and per message ``header + content + end + sep``."""

    begin: str  # once, before the first message (e.g. the BOS token)
    header: str  # before the content, ``{role}`` is replaced by the role
    end: str  # the end-of-turn token, right after the content (trained on for the assistant)
    sep: str  # after the end token (not trained on)
    markers: tuple[str, ...]  # the control strings above, which content must not produce


TEMPLATES: dict[str, _Template] = {
    "chatml": _Template(
        begin="",
        header="<|im_start|>{role}\n",
        end="<|im_end|>",
        sep="\n",
        markers=("<|im_start|>", "<|im_end|>"),
    ),
    "llama3": _Template(
        begin="<|begin_of_text|>",
        header="<|start_header_id|>{role}<|end_header_id|>\n\n",
        end="<|eot_id|>",
        sep="",
        markers=("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    ),
    "zephyr": _Template(
        begin="",
        header="<|{role}|>\n",
        end="</s>",
        sep="\n",
        markers=("<|system|>", "<|user|>", "<|assistant|>", "</s>"),
    ),
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


def _segments(
    messages: Sequence[dict], template: str, add_generation_prompt: bool
) -> list[tuple[str, bool, int]]:
    """``(text, is_trained, message index or -1 for the template's own text)`` pieces."""
    t = _check(messages, template)
    segments: list[tuple[str, bool, int]] = []
    if t.begin:
        segments.append((t.begin, False, -1))
    for i, m in enumerate(messages):
        is_assistant = m["role"] == "assistant"
        segments.append((t.header.format(role=m["role"]), False, -1))
        if m["content"]:
            segments.append((m["content"], is_assistant, i))
        segments.append((t.end, is_assistant, -1))
        if t.sep:
            segments.append((t.sep, False, -1))
    if add_generation_prompt:
        segments.append((t.header.format(role="assistant"), False, -1))
    return segments


def render_segments(
    messages: Sequence[dict], template: str = "chatml", add_generation_prompt: bool = True
) -> list[tuple[str, bool]]:
    """The templated conversation as ``(text, is_trained)`` pieces, in order.

    ``is_trained`` is True exactly for assistant contents and the end-of-turn token that
    follows them: what supervised fine-tuning computes the loss on. Joining the texts gives
    :func:`apply_chat_template`.
    """
    return [(text, trained) for text, trained, _ in _segments(messages, template, add_generation_prompt)]


def apply_chat_template(
    messages: Sequence[dict], template: str = "chatml", add_generation_prompt: bool = True
) -> str:
    """Render ``messages`` with ``template`` into one string, for reading.

    To get token ids use :func:`encode_chat`: encoding this string with
    ``allow_special=True`` would turn marker text inside a content into real markers.

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
    def encode(self, text: str, allow_special: bool = False) -> list[int]: ...


def _encode(tokenizer: _Encoder, text: str, allow_special: bool) -> list[int]:
    """``tokenizer.encode`` with the special-token switch, for tokenizers that have one.

    A tokenizer without ``special_tokens`` (e.g. raw bytes) has no control ids at all,
    so it is called as ``encode(text)``.
    """
    if isinstance(getattr(tokenizer, "special_tokens", None), dict):
        return list(tokenizer.encode(text, allow_special=allow_special))
    return list(tokenizer.encode(text))


def encode_chat(
    messages: Sequence[dict],
    tokenizer: _Encoder,
    template: str = "chatml",
    add_generation_prompt: bool = False,
    on_special: str = "escape",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of the templated conversation and the mask of tokens to train on.

    Each piece of :func:`render_segments` is encoded separately and the ids concatenated, so
    that the mask boundaries are exact. The template's own text is encoded with
    ``allow_special=True``, so its markers become the tokenizer's control ids; message
    contents are encoded with ``allow_special=False``, so no content can produce a control
    id and forge a turn (see the module docstring).

    Args:
        messages: as for :func:`apply_chat_template`.
        tokenizer: an lmcourse tokenizer (``encode(text, allow_special)`` and
            ``special_tokens``), whose special tokens should include the template's markers
            (e.g. ``CharTokenizer`` with the ChatML specials); or any object with
            ``encode(text) -> list[int]`` and no special tokens (e.g. raw bytes).
        template: template name.
        add_generation_prompt: append the assistant header (default False: for training).
        on_special: what to do with a content that contains a control string (a special
            token of the tokenizer or a marker of the template): ``"escape"`` (default)
            encodes it as ordinary text; ``"error"`` raises ``ValueError``. A content
            holding a marker the tokenizer has no special token for is always an error:
            its text would be indistinguishable from the template's marker.

    Returns:
        ``(ids, assistant_mask)``, two LongTensors (N,); the mask is 1 on assistant content
        tokens and the end-of-turn token after each of them, 0 elsewhere.
    """
    if on_special not in ON_SPECIAL:
        raise ValueError(f"on_special must be one of {ON_SPECIAL}, got {on_special!r}")
    t = _check(messages, template)
    specials = getattr(tokenizer, "special_tokens", None)
    specials = set(specials) if isinstance(specials, dict) else set()
    unrepresentable = [m for m in t.markers if m not in specials]  # markers that are only text
    ids: list[int] = []
    mask: list[int] = []
    for text, trained, i in _segments(messages, template, add_generation_prompt):
        if i >= 0:  # a message's content: text only
            forbidden = unrepresentable if on_special == "escape" else sorted(specials | set(t.markers))
            found = sorted((c for c in forbidden if c in text), key=text.find)  # first first
            if found:
                why = (
                    "on_special='error'" if on_special == "error"
                    else "the tokenizer has no special token for it, so it would read as the "
                    "template's marker"
                )
                raise ValueError(
                    f"messages[{i}]['content'] contains the control string {found[0]!r} ({why})"
                )
            piece = _encode(tokenizer, text, allow_special=False)
        else:  # the template's own text: markers become control ids
            piece = _encode(tokenizer, text, allow_special=True)
        ids.extend(piece)
        mask.extend([int(trained)] * len(piece))
    return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)


def end_marker(template: str) -> str:
    """The end-of-turn string of a template (``<|im_end|>`` for ChatML)."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; allowed: {sorted(TEMPLATES)}")
    return TEMPLATES[template].end


def reassemble(raw_output: str, template: str = "chatml") -> str:
    """The assistant's reply from the decoded generated text.

    The prompt ended with the assistant header, so the model's output *is* the reply up to
    the template's end-of-turn marker; anything after it is dropped, and surrounding
    whitespace is stripped.
    """
    return raw_output.split(end_marker(template), 1)[0].strip()
