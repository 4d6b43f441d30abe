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


def test_seed_everything_returns_a_generator_on_the_requested_device():
    g = lmcourse.seed_everything(7, device="cpu")
    assert g.device.type == "cpu"
    assert lmcourse.seed_everything(7).device.type == "cpu"  # the default stays a CPU generator
    again = lmcourse.seed_everything(7, device=torch.device("cpu"))
    assert torch.equal(torch.rand(4, generator=g), torch.rand(4, generator=again))
    # the global streams are seeded too: python, numpy and torch
    import random

    import numpy as np

    lmcourse.seed_everything(3)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    lmcourse.seed_everything(3)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_seed_everything_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed must be"):
        lmcourse.seed_everything(seed)


def test_synchronize_is_a_noop_on_cpu_and_names_bad_devices():
    devices.synchronize("cpu")
    devices.synchronize(torch.device("cpu"))
    with pytest.raises(ValueError, match="device must be"):
        devices.synchronize("meta")


def test_synchronize_calls_the_backend(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: calls.append(("cuda", d)))
    monkeypatch.setattr(torch.mps, "synchronize", lambda: calls.append(("mps", None)))
    devices.synchronize("cuda:0")
    devices.synchronize("mps")
    assert calls == [("cuda", torch.device("cuda:0")), ("mps", None)]


def _tiny_model(device):
    from lmcourse.model import GPT, GPTConfig

    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=8, dropout=0.0)
    return GPT(cfg).to(device).eval()


def _sample(model, generator):
    from lmcourse.generate import generate
    from lmcourse.sampling import SamplingConfig

    out = generate(model, [[1, 2, 3]], 12, SamplingConfig(temperature=1.0), generator=generator)
    return out.sequences


def test_sampling_is_reproducible_for_a_seed_and_depends_on_it():
    # The device contract on the CPU: the same seed gives the same tokens, another seed others.
    model = _tiny_model("cpu")
    a = _sample(model, torch.Generator(device="cpu").manual_seed(0))
    b = _sample(model, lmcourse.seed_everything(0, device="cpu"))
    c = _sample(model, torch.Generator(device="cpu").manual_seed(1))
    assert a == b
    assert a != c


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_generator_drives_a_cuda_model_reproducibly():
    # A CPU generator with a CUDA model works and draws the same tokens as on the CPU
    # (logits agree closely enough on this tiny model for the draws to coincide).
    cpu = _sample(_tiny_model("cpu"), torch.Generator().manual_seed(0))
    cuda_model = _tiny_model("cuda")
    on_cuda = _sample(cuda_model, torch.Generator().manual_seed(0))
    assert on_cuda == cpu
    cuda_gen = [_sample(cuda_model, torch.Generator(device="cuda").manual_seed(0)) for _ in range(2)]
    assert cuda_gen[0] == cuda_gen[1]


# ---- draws on the generator's device -----------------------------------------------------


def test_draws_with_a_cpu_generator_are_torch_own_draws():
    from lmcourse.devices import draw_multinomial, draw_randint, draw_uniform

    def g():
        return torch.Generator().manual_seed(3)

    assert torch.equal(draw_randint(10, (5,), g(), low=2), torch.randint(2, 10, (5,), generator=g()))
    assert torch.equal(draw_uniform((4,), g(), dtype=torch.float64),
                       torch.rand(4, generator=g(), dtype=torch.float64))
    p = torch.tensor([[0.1, 0.9], [0.7, 0.3]])
    assert torch.equal(draw_multinomial(p, g()), torch.multinomial(p, 1, generator=g()).squeeze(-1))
    assert draw_multinomial(p[0], g()).shape == ()  # one distribution, one id


ACCELERATORS = [d for d in ("cuda", "mps") if (d == "cuda" and torch.cuda.is_available())
                or (d == "mps" and torch.backends.mps.is_available())]


@pytest.mark.skipif(not ACCELERATORS, reason="needs a CUDA or MPS device")
@pytest.mark.parametrize("dev", ACCELERATORS)
def test_data_functions_take_a_generator_on_an_accelerator(dev):
    from lmcourse import data as D

    def g():
        return torch.Generator(device=dev).manual_seed(0)

    x, y = D.get_batch(torch.arange(50), 2, 3, g())
    assert x.device.type == "cpu" and torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(D.get_batch(torch.arange(50), 2, 3, g())[0], x)  # reproducible
    src = D.MarkovSource(4, order=1, seed=0)
    assert torch.equal(src.sample(30, g()), src.sample(30, g()))
    assert D.shape_images(3, generator=g()).shape == (3, 12, 12)
    assert D.quantised_tones(2, 16, generator=g()).shape[0] == 2
