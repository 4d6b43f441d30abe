"""Device choice and mixed-precision dtype rules."""

import pytest
import torch

import lmcourse
from lmcourse import devices


def test_cpu_gets_fp32_and_no_scaler():
    assert devices.autocast_dtype("cpu") == torch.float32
    assert not devices.needs_grad_scaler("cpu")
    assert devices.autocast_dtype("mps") == torch.float32


@pytest.mark.parametrize("capability, dtype", [((7, 5), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16), ((6, 0), torch.float16)])
def test_cuda_dtype_follows_compute_capability(monkeypatch, capability, dtype):
    # a T4 is 7.5: fp16 + GradScaler even though torch says bf16 is "supported" there
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: capability)
    assert devices.autocast_dtype("cuda") == dtype
    assert devices.needs_grad_scaler("cuda") == (dtype == torch.float16)


def test_device_choice_and_override(monkeypatch):
    monkeypatch.delenv("LMCOURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert lmcourse.device().type == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert lmcourse.device().type == "cpu"
    assert lmcourse.device("cpu").type == "cpu"
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        lmcourse.device("cuda")
    with pytest.raises(ValueError, match="device must be"):
        lmcourse.device("xla")


def test_seed_everything_is_reproducible():
    g1 = lmcourse.seed_everything(5)
    a = torch.rand(3), torch.rand(3, generator=g1)
    g2 = lmcourse.seed_everything(5)
    b = torch.rand(3), torch.rand(3, generator=g2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
