"""Tests of lmcourse.train (chapter 4): schedule, weight decay, resume, divergence."""

from __future__ import annotations

import math

import pytest
import torch

from lmcourse.model import GPT, GPTConfig
from lmcourse.train import (
    PRESETS,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    list_checkpoints,
    lr_at,
    param_groups,
    preset,
)


def _data(n: int = 2000, vocab: int = 11) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(vocab, (n,), generator=g)


def _model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=16, dropout=0.1))


def _config(**kw) -> TrainConfig:
    base = dict(max_iters=8, batch_size=4, block_size=16, warmup_iters=2, eval_interval=4,
                eval_iters=2, log_interval=1, device="cpu", progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_config_validation_names_parameter():
    with pytest.raises(ValueError, match="max_iters"):
        TrainConfig(max_iters=0)
    with pytest.raises(ValueError, match="min_lr"):
        TrainConfig(lr=1e-3, min_lr=1e-2)
    with pytest.raises(ValueError, match="dtype"):
        TrainConfig(dtype="int8")
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup_iters=10, max_iters=110)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55)
    assert lr_at(110, cfg) == pytest.approx(0.1)


def test_weight_decay_only_on_matrices():
    model = _model()
    decay, no_decay = param_groups(model, 0.1)
    assert all(p.dim() >= 2 for p in decay["params"])
    ids = {id(p) for p in no_decay["params"]}
    assert id(model.transformer.wte.weight) in ids and id(model.transformer.wpe.weight) in ids
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_training_reduces_loss_and_records_history():
    torch.manual_seed(0)
    data = torch.arange(11).repeat(200)  # perfectly predictable
    trainer = Trainer(_model(), _config(max_iters=30, lr=3e-3), data, data)
    first = trainer.evaluate()["val_loss"]
    seen = []
    trainer.callbacks.append(lambda t, r: seen.append(r["kind"]))
    trainer.train()
    last = trainer.history[-1]
    assert last["kind"] == "eval" and last["val_loss"] < first - 0.5
    assert last["val_ppl"] == pytest.approx(math.exp(last["val_loss"]))
    assert "train" in seen and "eval" in seen


def test_resume_is_bitwise_identical(tmp_path):
    data = _data()
    full = Trainer(_model(), _config(grad_accum=2), data, data)
    full.train()

    first = Trainer(_model(), _config(grad_accum=2, ckpt_dir=str(tmp_path)), data, data)
    first.train(until=4)  # eval_interval=4 writes ckpt_0000004.pt
    torch.manual_seed(999)  # disturb the global RNG: resume must restore it
    second = Trainer(_model(seed=1), _config(grad_accum=2, ckpt_dir=str(tmp_path)), data, data)
    assert second.resume(tmp_path) == 4
    second.train()
    for a, b in zip(full.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    assert [h for h in full.history if h["kind"] == "eval"] == [
        h for h in second.history if h["kind"] == "eval"
    ]


def test_keep_last_and_bad_checkpoints(tmp_path):
    data = _data()
    trainer = Trainer(_model(), _config(eval_interval=2, keep_last=2, ckpt_dir=str(tmp_path)), data, data)
    trainer.train()
    assert [p[-10:] for p in list_checkpoints(tmp_path)] == ["0000006.pt", "0000008.pt"]
    corrupt = tmp_path / "ckpt_9999999.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        Trainer(_model(), _config(), data).resume(corrupt)
    other = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16))
    with pytest.raises(ValueError, match="different model"):
        Trainer(other, _config(), data).resume(list_checkpoints(tmp_path)[0])
    with pytest.raises(FileNotFoundError):
        Trainer(_model(), _config(), data).resume(tmp_path / "empty")


def test_nan_loss_raises_and_keeps_last_good_checkpoint(tmp_path):
    data = _data()
    trainer = Trainer(_model(), _config(eval_interval=2, ckpt_dir=str(tmp_path)), data, data)
    trainer.train(until=2)
    good = trainer.last_checkpoint
    with torch.no_grad():
        trainer.model.lm_head.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        trainer.train()
    assert list_checkpoints(tmp_path) == [good]


def test_scheduled_sampling_runs():
    data = _data()
    Trainer(_model(), _config(max_iters=3, scheduled_sampling=0.5), data, data).train()


def test_presets():
    assert set(PRESETS) >= {"cpu-tiny", "gpu-small"}
    model_kw, cfg = preset("cpu-tiny", max_iters=5)
    assert model_kw["n_embd"] == 128 and cfg.max_iters == 5 and cfg.batch_size == 12
    with pytest.raises(ValueError, match="available"):
        preset("nope")
