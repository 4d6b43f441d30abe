"""Tests for lmcourse.data: the shipped corpus, splits, batches and toy sources."""

import gzip
import hashlib
import re
from pathlib import Path

import pytest
import torch

from lmcourse import data as D

CARD = Path(D.__file__).resolve().parent / "assets" / "DATA_CARD.md"


def _card_value(field: str) -> str:
    m = re.search(rf"^\| {re.escape(field)} \| `?([0-9a-f]+)`? \|$", CARD.read_text(), re.MULTILINE)
    assert m, f"field {field!r} missing from the data card"
    return m.group(1)


# ---- corpus ----------------------------------------------------------------------------


def test_corpus_matches_data_card():
    text = D.shakespeare_text()
    raw = text.encode("utf-8")
    assert hashlib.sha256(raw).hexdigest() == _card_value("sha256 (uncompressed text)")
    assert len(text) == int(_card_value("characters"))
    assert len(raw) == int(_card_value("bytes (UTF-8, uncompressed)"))
    assert D.CORPUS_PATH.stat().st_size == int(_card_value("bytes (gzip)"))
    assert len(set(text)) == int(_card_value("distinct characters"))
    assert text.count("\n") == int(_card_value("lines"))


def test_corpus_shape_and_cache():
    text = D.shakespeare_text()
    assert 900_000 < len(text) < 1_300_000
    assert 60 <= len(set(text)) <= 100
    assert "\r" not in text and "\t" not in text
    assert "Gutenberg" not in text and "GUTENBERG" not in text
    assert "To be, or not to be" in text
    assert D.shakespeare_text() is text


def test_corpus_gzip_is_deterministic():
    with open(D.CORPUS_PATH, "rb") as f:
        header = f.read(10)
    assert header[:2] == b"\x1f\x8b"
    assert header[4:8] == b"\x00\x00\x00\x00"  # mtime = 0
    assert gzip.decompress(D.CORPUS_PATH.read_bytes()).decode() == D.shakespeare_text()


# ---- split / get_batch -----------------------------------------------------------------


def test_split_contiguous():
    t = torch.arange(100)
    tr, va = D.split(t, 0.1)
    assert tr.tolist() == list(range(90)) and va.tolist() == list(range(90, 100))
    tr, va = D.split("abcdefghij", 0.2)
    assert (tr, va) == ("abcdefgh", "ij")
    assert D.split(t, 0.0)[1].numel() == 0
    with pytest.raises(ValueError, match="val_fraction"):
        D.split(t, 1.0)


def test_get_batch_shift_and_determinism():
    data = torch.arange(1000)
    g = torch.Generator().manual_seed(0)
    x, y = D.get_batch(data, 8, 16, g)
    assert x.shape == y.shape == (8, 16) and x.dtype == torch.long
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(y, x + 1)  # data is arange, so the next token is x + 1
    x2, _ = D.get_batch(data, 8, 16, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)


def test_get_batch_edges_and_errors():
    data = torch.arange(5)
    g = torch.Generator().manual_seed(1)
    x, y = D.get_batch(data, 4, 4, g)  # exactly block_size + 1 tokens: one window
    assert x.tolist() == [[0, 1, 2, 3]] * 4 and y.tolist() == [[1, 2, 3, 4]] * 4
    with pytest.raises(ValueError, match="block_size=5"):
        D.get_batch(data, 1, 5, g)
    with pytest.raises(ValueError, match="batch_size"):
        D.get_batch(data, 0, 2, g)
    with pytest.raises(ValueError, match="1-D"):
        D.get_batch(data.view(1, 5), 1, 2, g)
    with pytest.raises(ValueError, match="integer"):
        D.get_batch(data.float(), 1, 2, g)


def test_get_batch_device_cpu():
    x, y = D.get_batch(torch.arange(50), 2, 3, torch.Generator().manual_seed(0), device="cpu")
    assert x.device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_get_batch_cuda():
    x, y = D.get_batch(torch.arange(50), 2, 3, torch.Generator().manual_seed(0), device="cuda")
    assert x.device.type == "cuda" and torch.equal(y[:, :-1], x[:, 1:])
