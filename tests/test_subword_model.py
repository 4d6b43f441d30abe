"""The shipped subword model: ``lmcourse/assets/checkpoints/shakespeare-bpe.pt``.

Made by ``scripts/train_subword_model.py``. The file must load safely, carry its BPE
tokenizer, and its recorded validation numbers must be what the weights give.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lmcourse.data import shakespeare_text, split
from lmcourse.model import GPT, GPTConfig
from lmcourse.tokenization import BPETokenizer, tokenizer_from_dict

ROOT = Path(__file__).resolve().parents[1]
PATH = ROOT / "lmcourse" / "assets" / "checkpoints" / "shakespeare-bpe.pt"


@pytest.fixture(scope="module")
def ckpt() -> dict:
    return torch.load(PATH, weights_only=True)  # plain types and tensors only


@pytest.fixture(scope="module")
def model_and_tokenizer(ckpt):
    model = GPT(GPTConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval(), tokenizer_from_dict(ckpt["tokenizer"])


def test_file_format_and_size(ckpt):
    assert ckpt["format"] == "lmcourse-checkpoint" and ckpt["version"] == 1
    assert ckpt["tokenizer"]["kind"] == "bpe"
    assert PATH.stat().st_size < 8e6  # "a few MB"
    meta = ckpt["meta"]
    for key in ("command", "seed", "steps", "train_seconds", "val_loss_nats_per_token",
                "val_bits_per_byte", "char_model_val_bits_per_byte"):
        assert key in meta, key
    assert meta["command"].startswith("python scripts/train_subword_model.py")
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_tokenizer_is_the_one_the_script_trains(model_and_tokenizer):
    """The shipped tokenizer equals a fresh BPE training on the train split (seconds, fast path)."""
    _, tok = model_and_tokenizer
    assert isinstance(tok, BPETokenizer)
    assert 1000 <= tok.vocab_size <= 4096
    train_text, val_text = split(shakespeare_text())
    again = BPETokenizer.train(train_text, tok.vocab_size, fast=True)
    assert again.merges == tok.merges and again.special_tokens == tok.special_tokens
    assert tok.decode(tok.encode(val_text[:5000])) == val_text[:5000]


def test_recorded_validation_numbers_are_reproduced(ckpt, model_and_tokenizer, script):
    model, tok = model_and_tokenizer
    val_text = split(shakespeare_text())[1]
    ids = torch.tensor(tok.encode(val_text), dtype=torch.long)
    token_bytes = [len(tok.vocab.get(i, b"")) for i in range(tok.vocab_size)]
    got = script("train_subword_model").evaluate_whole(model, ids, token_bytes)
    meta = ckpt["meta"]
    assert got["loss_nats_per_token"] == pytest.approx(meta["val_loss_nats_per_token"], abs=1e-4)
    assert got["bits_per_byte"] == pytest.approx(meta["val_bits_per_byte"], abs=1e-4)
    # bits per byte is the loss per token rescaled by tokens per byte
    assert got["bits_per_byte"] == pytest.approx(
        got["loss_nats_per_token"] * got["tokens"] / got["bytes"] / math.log(2), rel=1e-9
    )
    assert got["bytes"] == len(val_text.encode("utf-8")) - len(tok.vocab[int(ids[0])])


def test_subword_model_generates_words(model_and_tokenizer):
    model, tok = model_and_tokenizer
    ids = torch.tensor([tok.encode("ROMEO:\n")])
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(40):
            logits, _ = model(ids[:, -model.config.block_size :])
            nxt = torch.multinomial(torch.softmax(logits[0, -1], -1), 1, generator=gen)
            ids = torch.cat([ids, nxt[None]], dim=1)
    text = tok.decode(ids[0].tolist())
    # subword tokens: on average more than one character per generated token
    assert len(text) - len("ROMEO:\n") > 40
