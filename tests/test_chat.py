"""Tests for lmcourse.chat: templates against literal strings written from each spec."""

import pytest
import torch

from lmcourse.chat import TEMPLATES, apply_chat_template, encode_chat
from lmcourse.tokenization import CharTokenizer

CONVO = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "2+2?"},
]


class ByteTokenizer:
    def encode(self, text):
        return list(text.encode("utf-8"))


def test_chatml_literal():
    want = (
        "<|im_start|>system\nYou are helpful.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert apply_chat_template(CONVO) == want
    assert apply_chat_template(CONVO, "chatml", add_generation_prompt=False) == want[: -len("<|im_start|>assistant\n")]


def test_llama3_literal():
    want = (
        "<|begin_of_text|>"
        "<|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert apply_chat_template(CONVO, template="llama3") == want


def test_zephyr_literal():
    msgs = [{"role": "system", "content": "Be a pirate."}, {"role": "user", "content": "Hello"}]
    want = "<|system|>\nBe a pirate.</s>\n<|user|>\nHello</s>\n<|assistant|>\n"
    assert apply_chat_template(msgs, template="zephyr") == want


def test_validation_errors():
    with pytest.raises(ValueError, match=r"allowed: \['chatml', 'llama3', 'zephyr'\]"):
        apply_chat_template(CONVO, template="alpaca")
    with pytest.raises(ValueError, match="role"):
        apply_chat_template([{"role": "bot", "content": "x"}])
    with pytest.raises(ValueError, match="only the first"):
        apply_chat_template([{"role": "user", "content": "x"}, {"role": "system", "content": "y"}])
    with pytest.raises(ValueError, match="must be a str"):
        apply_chat_template([{"role": "user", "content": ["x"]}])
    with pytest.raises(ValueError, match="'role' and 'content'"):
        apply_chat_template([{"role": "user"}])
    with pytest.raises(ValueError, match="non-empty"):
        apply_chat_template([])


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_encode_chat_bytes_mask(template):
    tok = ByteTokenizer()
    ids, mask = encode_chat(CONVO[:3], tok, template=template)
    text = apply_chat_template(CONVO[:3], template, add_generation_prompt=False)
    assert ids.tolist() == tok.encode(text)
    assert ids.shape == mask.shape and mask.dtype == torch.long
    trained = bytes(ids[mask.bool()].tolist()).decode()
    assert trained == "Hello!" + TEMPLATES[template].end
    # the mask is one contiguous run ending on the end-of-turn token
    on = mask.nonzero().flatten()
    assert on.tolist() == list(range(int(on[0]), int(on[-1]) + 1))


def test_encode_chat_char_tokenizer_specials():
    specials = ["<|im_start|>", "<|im_end|>"]
    tok = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyz!\n ", specials=specials)
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo!"},
            {"role": "user", "content": "ok"}, {"role": "assistant", "content": "bye"}]
    ids, mask = encode_chat(msgs, tok)
    assert ids.tolist() == tok.encode(apply_chat_template(msgs, add_generation_prompt=False))
    end = tok.special_tokens["<|im_end|>"]
    assert tok.decode(ids[mask.bool()].tolist()) == "yo!<|im_end|>bye<|im_end|>"
    assert (ids[mask.bool()] == end).sum() == 2
    ids_g, mask_g = encode_chat(msgs[:1], tok, add_generation_prompt=True)
    assert tok.decode(ids_g.tolist()).endswith("<|im_start|>assistant\n") and mask_g.sum() == 0
