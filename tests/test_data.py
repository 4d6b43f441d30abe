"""Tests for lmcourse.data: the shipped corpus, splits, batches and toy sources."""

import gzip
import hashlib
import math
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
    with pytest.raises(TypeError, match="batch_size"):  # a wrong type is a TypeError
        D.get_batch(data, 2.0, 2, g)
    with pytest.raises(TypeError, match="generator"):
        D.get_batch(data, 1, 2, 0)
    with pytest.raises(TypeError, match="size"):
        D.shape_images(2, size=True)
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


# ---- MarkovSource ----------------------------------------------------------------------


@pytest.mark.parametrize("order", [1, 2])
def test_markov_empirical_entropy_matches_rate(order):
    src = D.MarkovSource(6, order=order, seed=3, concentration=0.5)
    pi = src.stationary_distribution()
    assert pi.shape == (6**order,) and abs(float(pi.sum()) - 1) < 1e-12
    # stationarity: one step of the chain leaves pi unchanged
    V, S = 6, 6**order
    step = (pi[:, None] * src.transition).view(V, S // V, V).sum(0).reshape(S)
    assert torch.allclose(step, pi, atol=1e-12)
    n = 60_000
    seq = src.sample(n, torch.Generator().manual_seed(0))
    assert seq.shape == (n,) and seq.dtype == torch.long and 0 <= seq.min() and seq.max() < 6
    nll = -float(src.log_prob(seq, conditional=True)) / (n - order)
    h = src.entropy_rate()
    assert 0 < h < math.log(6)
    assert abs(nll - h) < 0.03
    assert abs(src.entropy_rate("bits") - h / math.log(2)) < 1e-12


def test_markov_determinism_and_concentration():
    a, b = D.MarkovSource(5, seed=1), D.MarkovSource(5, seed=1)
    assert torch.equal(a.transition, b.transition)
    assert not torch.equal(a.transition, D.MarkovSource(5, seed=2).transition)
    s1 = a.sample(100, torch.Generator().manual_seed(7))
    assert torch.equal(s1, a.sample(100, torch.Generator().manual_seed(7)))
    peaky = D.MarkovSource(5, seed=0, concentration=0.05).entropy_rate()
    flat = D.MarkovSource(5, seed=0, concentration=100.0).entropy_rate()
    assert peaky < flat < math.log(5)


def test_markov_log_prob_by_hand():
    src = D.MarkovSource(3, order=1, seed=0)
    P, pi = src.transition, src.stationary_distribution()
    seq = torch.tensor([0, 2, 1, 1])
    want = math.log(pi[0]) + math.log(P[0, 2]) + math.log(P[2, 1]) + math.log(P[1, 1])
    assert abs(float(src.log_prob(seq)) - want) < 1e-12
    batch = torch.stack([seq, seq.flip(0)])
    assert src.log_prob(batch).shape == (2,)
    # probabilities of all length-3 sequences sum to 1
    grid = torch.cartesian_prod(*[torch.arange(3)] * 3)
    assert abs(float(src.log_prob(grid).exp().sum()) - 1) < 1e-10


def test_markov_errors():
    with pytest.raises(ValueError, match="vocab_size"):
        D.MarkovSource(1)
    with pytest.raises(ValueError, match="order"):
        D.MarkovSource(4, order=0)
    with pytest.raises(ValueError, match="concentration"):
        D.MarkovSource(4, concentration=0)
    with pytest.raises(ValueError, match="unit"):
        D.MarkovSource(4).entropy_rate("dits")
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        D.MarkovSource(4).log_prob(torch.tensor([0, 5]))


# ---- images and tones ------------------------------------------------------------------


def test_shape_images():
    g = torch.Generator().manual_seed(0)
    imgs, labels = D.shape_images(64, size=12, generator=g, return_labels=True)
    assert imgs.shape == (64, 12, 12) and imgs.dtype == torch.long
    assert set(imgs.unique().tolist()) == {0, 1}
    assert set(labels.tolist()) == set(range(len(D.SHAPES)))
    assert (imgs.flatten(1).sum(1) > 0).all()  # every image draws something
    again = D.shape_images(64, size=12, generator=torch.Generator().manual_seed(0))
    assert torch.equal(imgs, again)
    grey = D.shape_images(16, size=10, generator=g, levels=4)
    assert grey.max() <= 3 and grey.min() == 0
    seqs = D.flatten_images(imgs)
    assert seqs.shape == (64, 144) and torch.equal(D.unflatten_images(seqs, 12), imgs)
    with pytest.raises(ValueError, match="size"):
        D.shape_images(1, size=3)
    with pytest.raises(ValueError, match="levels"):
        D.shape_images(1, levels=1)


@pytest.mark.parametrize("mode", ["mu-law", "linear"])
def test_quantised_tones(mode):
    g = torch.Generator().manual_seed(0)
    q, f = D.quantised_tones(4, 200, levels=64, generator=g, mode=mode, return_freqs=True)
    assert q.shape == (4, 200) and q.dtype == torch.long
    assert q.min() >= 0 and q.max() <= 63 and ((100 <= f) & (f <= 1000)).all()
    x = D.dequantise(q, 64, mode=mode)
    assert x.abs().max() <= 1.0
    # quantise(dequantise(q)) is the identity on the integer levels
    assert torch.equal(D.quantise(D.dequantise(torch.arange(64), 64, mode), 64, mode), torch.arange(64))
    assert torch.equal(q, D.quantised_tones(4, 200, generator=torch.Generator().manual_seed(0), mode=mode))
    with pytest.raises(ValueError, match="freq_range"):
        D.quantised_tones(1, 10, sample_rate=1000, freq_range=(100, 900))
    with pytest.raises(ValueError, match="mode"):
        D.quantised_tones(1, 10, mode="alaw")
