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


def test_quantize_linear_int8_is_per_row_absmax():
    """Default: one symmetric scale per output row, max|row| / 127.5 (PyTorch's range [-128, 127])."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 16)
    with torch.no_grad():
        lin.weight[3] *= 20  # one large row: a per-tensor scale would crush the others
    model = torch.nn.Sequential(lin)
    w = quantize_linear_int8(model)[0].weight()
    assert w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
    assert (w.q_per_channel_zero_points() == 0).all()
    amax = lin.weight.detach().double().abs().amax(dim=1)
    assert torch.allclose(w.q_per_channel_scales(), amax / 127.5, rtol=1e-6)
    err_row = (w.dequantize() - lin.weight).abs()
    assert (err_row <= (amax / 127.5 / 2 + 1e-7)[:, None]).all()
    # per tensor: one scale for all rows, so the small rows lose more
    w_t = quantize_linear_int8(model, per_row=False)[0].weight()
    assert w_t.qscheme() == torch.per_tensor_affine
    err_t = (w_t.dequantize() - lin.weight).abs()
    small = [r for r in range(16) if r != 3]
    assert err_t[small].mean() > 5 * err_row[small].mean()
