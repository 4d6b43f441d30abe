"""lmcourse.checkpoint: one safe format. Malicious, corrupt and foreign files are refused
through every public loading path (API and CLI); run folders are read in step order."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
import torch

from lmcourse import checkpoint
from lmcourse.__main__ import main
from lmcourse.model import GPT, GPTConfig
from lmcourse.tokenization import CharTokenizer

CONFIG = dict(vocab_size=12, block_size=8, n_layer=1, n_head=2, n_embd=8)


def _model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(**CONFIG))


def _tok() -> CharTokenizer:
    return CharTokenizer(list("abcdefgh"), ["<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>"])


class _Payload:
    """Unpickling this creates ``marker``: the proof that code from the file ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil(path, marker) -> str:
    """A file that looks like our format but carries code (``torch.save`` pickles it)."""
    good = {"format": checkpoint.FORMAT, "version": 1, "model_config": CONFIG,
            "model": _model().state_dict(), "step": 1, "x": _Payload(str(marker))}
    torch.save(good, path)
    return str(path)


def test_round_trip_with_tokenizer(tmp_path):
    model, tok = _model(), _tok()
    path = checkpoint.save(tmp_path / "m.pt", model, tok, step=5, metrics={"val_loss": 1.5},
                           meta={"command": "test", "torch": torch.__version__})
    loaded, tok2 = checkpoint.load_model(path)
    x = torch.randint(0, 12, (2, 8))
    assert torch.equal(loaded(x)[0], model.eval()(x)[0]) and not loaded.training
    assert tok2.itos == tok.itos
    raw = torch.load(path, weights_only=True)  # plain types only
    assert raw["format"] == "lmcourse-checkpoint" and raw["version"] == checkpoint.VERSION
    assert raw["step"] == 5 and raw["meta"]["command"] == "test"
    with pytest.raises(TypeError, match="meta"):
        checkpoint.save(tmp_path / "o.pt", model, meta={"when": object()})
    with pytest.raises(ValueError, match="unknown checkpoint fields"):
        checkpoint.save(tmp_path / "o.pt", model, weights=1)


def test_files_get_normal_permissions_and_no_temp_files(tmp_path):
    old = os.umask(0o022)
    try:
        path = checkpoint.save(tmp_path / "m.pt", _model())
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(tmp_path) == ["m.pt"]


def test_full_disk_keeps_the_previous_file(tmp_path, monkeypatch):
    path = checkpoint.save(tmp_path / "m.pt", _model(), step=1)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="m.pt.*No space left"):
        checkpoint.save(path, _model(), step=2)
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1 and os.listdir(tmp_path) == ["m.pt"]


def _corrupt_files(tmp_path) -> dict[str, tuple[str, str]]:
    """name -> (path, expected error pattern)."""
    good = checkpoint.save(tmp_path / "good.pt", _model())
    raw = torch.load(good, weights_only=True)
    out = {}
    nan = dict(raw, model=dict(raw["model"]))
    nan["model"]["transformer.wte.weight"] = nan["model"]["transformer.wte.weight"].clone()
    nan["model"]["transformer.wte.weight"][3, 1] = float("nan")
    torch.save(nan, tmp_path / "nan.pt")
    out["nan"] = (tmp_path / "nan.pt", "wte.*NaN or infinite")
    shape = dict(raw, model_config=dict(CONFIG, n_embd=16))
    torch.save(shape, tmp_path / "shape.pt")
    out["shape"] = (tmp_path / "shape.pt", "shape")
    data = open(good, "rb").read()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    out["truncated"] = (tmp_path / "trunc.pt", "corrupt")
    torch.save({"state_dict": raw["model"]}, tmp_path / "foreign.pt")
    out["foreign"] = (tmp_path / "foreign.pt", "not an lmcourse checkpoint")
    torch.save(dict(raw, version=99), tmp_path / "newer.pt")
    out["newer"] = (tmp_path / "newer.pt", "version 99")
    return {k: (str(p), pat) for k, (p, pat) in out.items()}


def test_corrupt_files_are_refused_naming_the_file(tmp_path):
    for name, (path, pattern) in _corrupt_files(tmp_path).items():
        with pytest.raises(ValueError, match=pattern) as e:
            checkpoint.load_model(path)
        assert os.path.basename(path) in str(e.value), name
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        checkpoint.load(tmp_path / "missing.pt")


def test_malicious_pickle_runs_nothing_through_the_api(tmp_path):
    from lmcourse.pretrained import load_pretrained, metadata
    from lmcourse.sft import load_herald
    from lmcourse.train import TrainConfig, Trainer

    marker = tmp_path / "PWNED"
    evil = _evil(tmp_path / "evil.pt", marker)
    run = tmp_path / "run"
    run.mkdir()
    _evil(run / "ckpt_0000009.pt", marker)
    _evil(run / "best.pt", marker)
    data = torch.randint(12, (200,))
    trainer = Trainer(_model(), TrainConfig(block_size=8, device="cpu", progress=False), data)
    attempts = {
        "checkpoint.load": lambda: checkpoint.load(evil),
        "checkpoint.load_model": lambda: checkpoint.load_model(evil),
        "load_model(folder)": lambda: checkpoint.load_model(run),
        "Trainer.resume(file)": lambda: trainer.resume(evil),
        "load_herald": lambda: load_herald(evil),
        "load_pretrained(path)": lambda: load_pretrained(evil),
        "metadata(path)": lambda: metadata(evil),
    }
    for name, attempt in attempts.items():
        with pytest.raises(ValueError, match="refusing|unknown pretrained"):
            attempt()
        assert not marker.exists(), f"{name} ran code from the file"
    with pytest.warns(UserWarning, match="refusing"):  # a folder: the bad file is skipped
        assert trainer.resume(run) == 0
    assert not marker.exists()
    torch.load(evil, weights_only=False)  # the unsafe way: the payload is live, the test can fail
    assert marker.exists()


def test_malicious_pickle_runs_nothing_through_the_cli(tmp_path):
    marker = tmp_path / "PWNED"
    evil = _evil(tmp_path / "evil.pt", marker)
    run = tmp_path / "run"
    run.mkdir()
    _evil(run / "ckpt_0000002.pt", marker)
    _evil(run / "best.pt", marker)
    for argv in (["sample", "--ckpt", evil, "--max-new-tokens", "2"],
                 ["sample", "--ckpt", str(run), "--max-new-tokens", "2"],
                 ["sample", "--pretrained", evil, "--max-new-tokens", "2"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and not marker.exists(), argv
    # train --resume in a folder holding only the malicious file: skipped, fresh start
    env = dict(os.environ, PYTHONPATH=os.getcwd(), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "lmcourse", "train", "--preset", "cpu-tiny", "--out", str(run),
         "--device", "cpu", "--no-progress", "--max-iters", "1", "--n-layer", "1", "--n-embd", "16",
         "--resume"], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "starting at step 0" in proc.stdout and "refusing" in proc.stderr
    assert not marker.exists()


def test_pretrained_accepts_only_known_names():
    from lmcourse.pretrained import CHECKPOINT_DIR, load_pretrained

    for name in ("../checkpoints/shakespeare-char", str(CHECKPOINT_DIR / "shakespeare-char.pt"),
                 "shakespeare-char.pt", "/etc/passwd", "", "../../chat_herald"):
        with pytest.raises(ValueError, match="unknown pretrained checkpoint"):
            load_pretrained(name)


def test_shipped_files_are_the_current_format():
    from lmcourse.pretrained import available, checkpoint_path
    from lmcourse.sft import HERALD_PATH

    for path in [checkpoint_path(n) for n in available()] + [HERALD_PATH]:
        raw = torch.load(path, weights_only=True)
        assert raw["format"] == checkpoint.FORMAT and raw["version"] == 1 and raw["tokenizer"]["kind"] in ("char", "bpe")


def test_run_folder_order_and_foreign_files(tmp_path):
    model = _model()
    for step in (9_999_999, 10_000_000, 2):
        checkpoint.save(tmp_path / checkpoint.checkpoint_name(step), model, step=step)
    (tmp_path / "ckpt_0000100 (1).pt").write_bytes(b"a copy")
    (tmp_path / "ckpt_old.pt").write_bytes(b"x")
    names = [os.path.basename(p) for p in checkpoint.list_checkpoints(tmp_path)]
    assert names == ["ckpt_0000002.pt", "ckpt_9999999.pt", "ckpt_10000000.pt"]
    assert checkpoint.latest_checkpoint(tmp_path).endswith("ckpt_10000000.pt")
    torch.save({"mine": torch.ones(1)}, tmp_path / "ckpt_20000000.pt")  # a user's own file
    with pytest.warns(UserWarning, match="ckpt_20000000"):
        assert checkpoint.latest_checkpoint(tmp_path).endswith("ckpt_10000000.pt")
    assert checkpoint.list_checkpoints(tmp_path / "nowhere") == []


def test_stale_temp_files_are_cleaned(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".ckpt_0000004.pt.tmp-{dead}-0badc0de"
    live = tmp_path / f".ckpt_0000004.pt.tmp-{os.getpid()}-0badc0de"
    mine = tmp_path / ".notes.txt"
    for p in (stale, live, mine):
        p.write_bytes(b"partial")
    assert checkpoint.clean_stale_temp_files(tmp_path) == [str(stale)]
    assert live.exists() and mine.exists() and not stale.exists()
