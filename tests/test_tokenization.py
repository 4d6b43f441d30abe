"""Tests for lmcourse.tokenization (chapter 2, homework 2 reference)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmcourse.tokenization import (
    BOS,
    DEFAULT_SPECIAL_TOKENS,
    EOS,
    IM_END,
    IM_START,
    PAD,
    BPETokenizer,
    CharTokenizer,
    HFBPETokenizer,
    bytes_to_unicode,
    load_tokenizer,
    tokenizer_from_dict,
    tokenizer_to_dict,
)

CORPUS = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n"
    "Ça va? Naïve café, 東京 and emoji 😀👍🏽 — it's 2024, isn't it? 12345 6789\n"
) * 20
HELD_OUT = (
    "Second Citizen: we'll speak of famish'd citizens, 42 times!  \n\t tabs\r\n"
    "Ünïcödé 😀😀 東京都 <|im_start|>user\nhi<|im_end|>\n"
)

# Text strategy: any Unicode code point except lone surrogates (category Cs), so that
# emoji, combining marks, NUL and control characters all appear.
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train(CORPUS, 330)


@pytest.fixture(scope="module")
def hf() -> HFBPETokenizer:
    return HFBPETokenizer.train(CORPUS, 330)


@pytest.fixture(scope="module")
def char() -> CharTokenizer:
    return CharTokenizer.from_text(CORPUS)


# ---- CharTokenizer -------------------------------------------------------------------


def test_char_vocab_layout(char):
    chars = sorted(set(CORPUS))
    assert char.chars == chars
    assert char.vocab_size == len(chars) + len(DEFAULT_SPECIAL_TOKENS)
    assert char.encode("a", allow_special=False) == [chars.index("a")]
    assert char.bos_id == len(chars)
    assert [char.special_tokens[s] for s in DEFAULT_SPECIAL_TOKENS] == list(
        range(len(chars), len(chars) + len(DEFAULT_SPECIAL_TOKENS))
    )


def test_char_round_trip(char):
    assert char.decode(char.encode(CORPUS)) == CORPUS


def test_char_unknown_raises_naming_character(char):
    with pytest.raises(ValueError, match="'Z'"):
        char.encode("aZ")


def test_char_unk_mode():
    tok = CharTokenizer.from_text("abc", unk="<|unk|>")
    unk = tok.special_tokens["<|unk|>"]
    assert tok.unk_id == unk
    assert tok.encode("aZb") == [0, unk, 1]
    assert tok.vocab_size == 3 + len(DEFAULT_SPECIAL_TOKENS) + 1


def test_char_specials_rule():
    tok = CharTokenizer.from_text("<|>abcdefghijklmnopqrstuvwxyz_")
    ids = tok.encode(f"{IM_START}ab{IM_END}")
    assert ids[0] == tok.special_tokens[IM_START] and ids[-1] == tok.special_tokens[IM_END]
    assert len(ids) == 4
    plain = tok.encode(f"{IM_START}ab", allow_special=False)
    assert len(plain) == len(IM_START) + 2
    assert tok.decode(plain) == f"{IM_START}ab"


# ---- BPETokenizer --------------------------------------------------------------------


def test_bpe_hand_computed_merges():
    # "aaabdaaabac": aa (4) -> 256; then ab and (256, a) tie at 2 -> smallest pair ab -> 257;
    # then (256, 257) (2) -> 258.
    tok = BPETokenizer.train("aaabdaaabac", 256 + 3, pattern=None, special_tokens=[])
    assert tok.merges == [(97, 97), (97, 98), (256, 257)]
    assert tok.vocab[258] == b"aaab"
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]


def test_bpe_runs_out_of_pairs():
    tok = BPETokenizer.train("abab", 1000, pattern=None, special_tokens=[])
    assert tok.merges == [(97, 98), (256, 256)]
    assert tok.vocab_size == 258


def test_bpe_deterministic(bpe):
    again = BPETokenizer.train(CORPUS, 330)
    assert again.merges == bpe.merges


def test_bpe_vocab_size_as_requested(bpe):
    assert bpe.vocab_size == 330
    assert len(bpe.merges) == 330 - 256 - len(DEFAULT_SPECIAL_TOKENS)
    assert bpe.special_tokens[BOS] == 256 + len(bpe.merges)


@pytest.mark.parametrize("cls", [BPETokenizer, HFBPETokenizer])
def test_bad_vocab_size(cls):
    with pytest.raises(ValueError, match="vocab_size must be >= 256 \\+ 5"):
        cls.train("hello", 260)


def test_bpe_round_trip_corpus(bpe):
    assert bpe.decode(bpe.encode(CORPUS)) == CORPUS
    assert bpe.decode(bpe.encode(HELD_OUT)) == HELD_OUT
    assert len(bpe.encode(CORPUS)) < 0.6 * len(CORPUS.encode("utf-8"))


@settings(max_examples=60, deadline=None)
@given(text=any_text)
def test_bpe_round_trip_any_unicode(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text
    assert bpe.decode(bpe.encode(text, allow_special=False)) == text


def test_bpe_round_trip_edge_cases(bpe):
    for text in ["", "\x00", "e\u0301", "🏳️‍🌈", "a\x00b\U0010ffff", " " * 7, "\n\n\n"]:
        assert bpe.decode(bpe.encode(text)) == text


@pytest.mark.parametrize("make", ["bpe", "hf", "char"])
def test_lone_surrogate_rejected(make, request):
    tok = request.getfixturevalue(make)
    with pytest.raises(ValueError, match="surrogate"):
        tok.encode("ab\ud800c")


def test_bpe_decode_invalid_utf8_replaces(bpe):
    # The first byte of a 2-byte character alone is invalid UTF-8.
    assert bpe.decode([0xC3, ord("a")]) == "\ufffda"


def test_bpe_special_tokens(bpe):
    ids = bpe.encode(f"{IM_START}hi{IM_END}{EOS}")
    assert ids[0] == bpe.special_tokens[IM_START]
    assert ids[-2:] == [bpe.special_tokens[IM_END], bpe.eos_id]
    assert bpe.pad_id == bpe.special_tokens[PAD]
    plain = bpe.encode(IM_START, allow_special=False)
    assert all(i < 256 + len(bpe.merges) for i in plain)
    assert bpe.decode(plain) == IM_START


def test_bpe_special_tokens_not_learned():
    tok = BPETokenizer.train((IM_START + "ab ") * 50, 270)
    assert all(b"<|" not in tok.vocab[i] for i in tok.vocab)


def test_bpe_bad_id(bpe):
    with pytest.raises(ValueError, match="out of range"):
        bpe.decode([bpe.vocab_size])


# ---- HF wrapper and parity -------------------------------------------------------------


def test_bytes_to_unicode_table():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord("a")] == "a" and table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ"


def test_hf_round_trip_and_specials(hf):
    assert hf.vocab_size == 330
    assert hf.decode(hf.encode(HELD_OUT)) == HELD_OUT
    ids = hf.encode(f"{IM_START}hi")
    assert ids[0] == hf.special_tokens[IM_START]
    plain = hf.encode(IM_START, allow_special=False)
    assert hf.special_tokens[IM_START] not in plain and hf.decode(plain) == IM_START
    assert {hf.bos_id, hf.eos_id, hf.pad_id} == {0, 1, 2}


@settings(max_examples=40, deadline=None)
@given(text=any_text)
def test_hf_round_trip_any_unicode(hf, text):
    assert hf.decode(hf.encode(text)) == text


def test_parity_with_hf(hf):
    ref = BPETokenizer.from_hf(hf)
    assert ref.vocab_size == hf.vocab_size
    assert ref.special_tokens == hf.special_tokens
    for text in [HELD_OUT, CORPUS[:500], "   leading spaces", "a\u0301\x00 x"]:
        assert ref.encode(text) == hf.encode(text)
        assert ref.decode(hf.encode(text)) == text


@settings(max_examples=40, deadline=None)
@given(text=any_text)
def test_parity_with_hf_any_unicode(hf, text):
    assert BPETokenizer.from_hf(hf).encode(text) == hf.encode(text)


# ---- save / load -------------------------------------------------------------------------


@pytest.mark.parametrize("make", ["bpe", "hf", "char"])
def test_save_load_round_trip(make, request, tmp_path):
    tok = request.getfixturevalue(make)
    path = tmp_path / "tok.json"
    tok.save(path)
    for loaded in (type(tok).load(path), load_tokenizer(path)):
        assert type(loaded) is type(tok)
        assert loaded.vocab_size == tok.vocab_size
        assert loaded.special_tokens == tok.special_tokens
        text = CORPUS[:300] + IM_START
        assert loaded.encode(text) == tok.encode(text)


def test_save_load_from_hf_and_unk(hf, tmp_path):
    ref = BPETokenizer.from_hf(hf)
    ref.save(tmp_path / "ref.json")
    assert load_tokenizer(tmp_path / "ref.json").encode(HELD_OUT) == hf.encode(HELD_OUT)
    tok = CharTokenizer.from_text("abc", unk="<|unk|>")
    tok.save(tmp_path / "c.json")
    assert load_tokenizer(tmp_path / "c.json").encode("aZ") == tok.encode("aZ")


def test_load_tokenizer_rejects_other_files(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="not a tokenizer file"):
        load_tokenizer(path)


# ---- plain-dict (de)serialisation, for checkpoints --------------------------------------


def _plain(x) -> bool:
    """Only the types a checkpoint read with ``weights_only=True`` may hold."""
    if isinstance(x, dict):
        return all(isinstance(k, (str, int)) and _plain(v) for k, v in x.items())
    if isinstance(x, list):
        return all(_plain(v) for v in x)
    return x is None or isinstance(x, (str, int, float, bool))


@pytest.mark.parametrize("make", ["bpe", "hf", "char", "char_unk", "from_hf"])
def test_tokenizer_dict_round_trip(make, request, tmp_path):
    if make == "char_unk":
        tok = CharTokenizer.from_text(CORPUS, unk="<|unk|>")
    elif make == "from_hf":
        tok = BPETokenizer.from_hf(request.getfixturevalue("hf"))
    else:
        tok = request.getfixturevalue(make)
    d = tokenizer_to_dict(tok)
    assert d["kind"] == {"char": "char", "char_unk": "char", "bpe": "bpe", "from_hf": "bpe", "hf": "hf"}[make]
    assert _plain(d)
    # through a file read the safe way, as a checkpoint would be
    torch.save({"tokenizer": d}, tmp_path / "t.pt")
    back = tokenizer_from_dict(torch.load(tmp_path / "t.pt", weights_only=True)["tokenizer"])
    assert type(back) is type(tok)
    assert back.vocab_size == tok.vocab_size and back.special_tokens == tok.special_tokens
    text = HELD_OUT if make != "char" else CORPUS[:300]
    if make == "char_unk":
        text = HELD_OUT
    for allow in (False, True):
        assert back.encode(text, allow_special=allow) == tok.encode(text, allow_special=allow)
    ids = list(range(tok.vocab_size))
    assert back.decode(ids) == tok.decode(ids)
    assert tokenizer_to_dict(back) == d


def test_tokenizer_dict_errors(char):
    with pytest.raises(TypeError, match="tok must be"):
        tokenizer_to_dict(object())
    with pytest.raises(TypeError, match="d must be a dict"):
        tokenizer_from_dict(["char"])
    with pytest.raises(ValueError, match="'kind' must be"):
        tokenizer_from_dict({"kind": "wordpiece"})
    with pytest.raises(ValueError, match="lacks the key 'chars'"):
        tokenizer_from_dict({"kind": "char"})
    with pytest.raises(ValueError, match="version"):
        tokenizer_from_dict(dict(tokenizer_to_dict(char), version=99))
