"""Tests of lmcourse.train (chapter 4): schedule, weight decay, resume, divergence."""

from __future__ import annotations

import math

import pytest
import torch

from lmcourse import checkpoint
from lmcourse.data import get_batch
from lmcourse.model import GPT, GPTConfig
from lmcourse.train import (
    PRESETS,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    draw_windows,
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
    assert lr_at(0, lr=1.0, min_lr=0.1, warmup=10, max_iters=110) == pytest.approx(0.1)
    assert lr_at(9, 1.0, 0.1, 10, 110) == pytest.approx(1.0)
    assert lr_at(60, 1.0, 0.1, 10, 110) == pytest.approx(0.55)
    assert lr_at(110, 1.0, 0.1, 10, 110) == pytest.approx(0.1)
    assert lr_at(500, 1.0, 0.1, 10, 110) == pytest.approx(0.1)  # past the end: min_lr
    with pytest.raises(TypeError, match="step"):
        lr_at(1.5, 1.0, 0.1, 10, 110)
    with pytest.raises(ValueError, match="min_lr"):
        lr_at(1, 1.0, 2.0, 10, 110)


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
        Trainer(_model(), _config(), data).resume(tmp_path / "missing.pt")
    # a run folder without a checkpoint yet: resume starts fresh (the same command restarts)
    fresh = Trainer(_model(), _config(), data)
    assert fresh.resume(tmp_path / "empty") == 0 and fresh.last_checkpoint is None


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


def test_draw_windows_on_cpu_are_get_batch():
    data = _data()
    a = draw_windows(data, 5, 16, torch.Generator().manual_seed(4))
    b = get_batch(data, 5, 16, torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_train_step_does_not_read_the_loss_back():
    """The step returns the loss as a tensor; the loop reads it only on logging steps."""
    trainer = Trainer(_model(), _config(log_interval=3, eval_interval=0, max_iters=6), _data())
    loss = trainer.train_step()
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0 and not loss.requires_grad
    trainer.train()
    assert [h["step"] for h in trainer.history if h["kind"] == "train"] == [3, 6]


def _overfit_setup(tmp_path, **kw):
    """A model big enough to memorise 300 tokens of a Markov chain, judged on fresh text."""
    from lmcourse.data import MarkovSource

    source = MarkovSource(vocab_size=11, order=1, seed=0, concentration=0.3)
    train_ids = source.sample(300, generator=torch.Generator().manual_seed(1))
    val_ids = source.sample(3000, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=48))
    cfg = _config(max_iters=120, lr=1e-2, min_lr=1e-2, warmup_iters=5, weight_decay=0.0,
                  batch_size=16, eval_interval=10, eval_iters=4, log_interval=10,
                  ckpt_dir=str(tmp_path), **kw)
    return Trainer(model, cfg, train_ids, val_ids)


def test_overfitting_run_keeps_its_best(tmp_path):
    trainer = _overfit_setup(tmp_path)
    trainer.train()
    evals = [h for h in trainer.history if h["kind"] == "eval"]
    best = min(evals, key=lambda h: h["val_loss"])
    assert evals[-1]["val_loss"] > best["val_loss"] + 0.05, "the run should overfit"
    assert (trainer.best_step, trainer.best_val_loss) == (best["step"], best["val_loss"])
    saved = checkpoint.load(tmp_path / checkpoint.BEST_NAME)
    assert saved["step"] == best["step"] and saved["optimizer"] is None
    # the folder's model (what `sample --ckpt DIR` and checkpoint.load_model use) is the best one
    model, _ = checkpoint.load_model(tmp_path)
    from lmcourse.train import estimate_loss

    val = trainer.val_data
    assert estimate_loss(model, val, 4, 16, 16, 3) == pytest.approx(best["val_loss"], abs=1e-5)
    # ...while resume takes the latest
    assert Trainer(_overfit_setup(tmp_path / "x").model, trainer.config, trainer.train_data).resume(tmp_path) == 120
    assert trainer.load_best() == best["step"]


def test_early_stopping(tmp_path):
    trainer = _overfit_setup(tmp_path, patience=3)
    trainer.train()
    evals = [h for h in trainer.history if h["kind"] == "eval"]
    assert trainer.stopped_early and trainer.step < 120
    assert evals[-1]["step"] == trainer.best_step + 30  # three evaluations without a new best


def test_batch_source_and_hooks():
    data = _data()
    g = torch.Generator().manual_seed(0)
    seen = []

    def source():
        return get_batch(data, 4, 16, g)

    def hook(trainer, x, y):
        seen.append(trainer.step)
        return x, y

    trainer = Trainer(_model(), _config(max_iters=3, eval_interval=0), source, data, batch_hooks=[hook])
    trainer.train()
    assert seen == [0, 1, 2] and trainer.history[-1]["kind"] == "eval"
    batches = iter([get_batch(data, 4, 16, g) for _ in range(2)])
    with pytest.raises(ValueError, match="ran out"):
        Trainer(_model(), _config(max_iters=3), batches).train()
    with pytest.raises(TypeError, match="train_data"):
        Trainer(_model(), _config(), 3.5)


def test_sft_finetune_is_the_plain_loop():
    """sft.finetune (now the Trainer with a batch source) equals a hand-written SFT loop."""
    import random

    from lmcourse.chat import encode_chat
    from lmcourse.sft import finetune, sft_batch, training_conversations
    from lmcourse.tokenization import CharTokenizer

    tok = CharTokenizer.from_text("".join(m["content"] for c in training_conversations() for m in c) + "\n")
    data = [encode_chat(c, tok) for c in training_conversations()]

    def fresh():
        torch.manual_seed(0)
        return GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=128, n_layer=1, n_head=2, n_embd=16))

    ours = fresh()
    losses = finetune(ours, tok, steps=3, batch_size=4, lr=1e-3, seed=0, device="cpu")
    ref = fresh()
    rng = random.Random(0)
    opt = torch.optim.AdamW(ref.parameters(), lr=1e-3, weight_decay=0.0)
    ref_losses = []
    for _ in range(3):
        x, y = sft_batch(rng.sample(data, 4))
        _, loss = ref(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ref_losses.append(loss.item())
    assert losses == pytest.approx(ref_losses, abs=1e-6)
    for a, b in zip(ours.state_dict().values(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert not ours.training
