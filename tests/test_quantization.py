"""Tests of lmcourse.quantization (chapter 11's int8 demo)."""

import warnings

import torch

from lmcourse.model import GPT, GPTConfig
from lmcourse.quantization import (
    absmax_quantize,
    dequantize,
    quantize_linear_int8,
    state_dict_bytes,
)


def test_absmax_roundtrip_error_bound():
    w = torch.randn(8, 33, generator=torch.Generator().manual_seed(0))
    w[3] = 0.0
    q, s = absmax_quantize(w)
    assert q.dtype == torch.int8 and q.shape == w.shape and s.shape == (8, 1)
    assert int(q.abs().max()) == 127
    err = (dequantize(q, s) - w).abs()
    assert (err <= s / 2 + 1e-7).all()
    assert (dequantize(q, s)[3] == 0).all()
    rows_max = w.abs().argmax(dim=1)
    exact = dequantize(q, s).gather(1, rows_max[:, None]) - w.gather(1, rows_max[:, None])
    assert exact.abs().max() < 1e-6  # each row's largest entry is exact


def test_quantize_linear_int8_close_and_smaller():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=64)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        q = quantize_linear_int8(model)
    for k, v in model.state_dict().items():  # original untouched
        assert torch.equal(v, before[k])
    x = torch.randint(0, 20, (2, 16))
    with torch.no_grad():
        a, _ = model(x)
        b, _ = q(x)
    assert b.shape == a.shape
    assert (a - b).abs().max() < 0.1
    assert state_dict_bytes(q) < state_dict_bytes(model)
    assert q.transformer.h[0].mlp.c_fc.weight().dtype == torch.qint8
