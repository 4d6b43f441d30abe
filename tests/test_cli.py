"""The train / sample / bench-train sub-commands (chapter 4), kept tiny; bad input is a usage
error naming the option, or a one-line error, never a traceback."""

from __future__ import annotations

import os

import pytest
import torch

from lmcourse.__main__ import main

TINY = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--batch-size", "4"]


def test_bench_train_compares_trainer_with_plain_loop(capsys, tmp_path):
    import json

    path = tmp_path / "bench" / "train.json"
    assert main(["bench-train", "--preset", "cpu-tiny", "--steps", "1", "--warmup", "0", "--repeats", "1",
                 "--device", "cpu", "--batch-size", "2", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "plain loop" in out and "Trainer" in out and "tokens/s" in out and "Trainer / plain loop" in out
    record = json.loads(path.read_text())
    assert record["device_type"] == "cpu" and set(record["loops"]) == {"plain loop", "Trainer"}
    assert record["trainer_over_plain"] == pytest.approx(
        record["loops"]["Trainer"]["ms_per_step"] / record["loops"]["plain loop"]["ms_per_step"])


def _usage_error(argv, capsys, option: str, code: int = 2) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == code, (argv, err)
    assert option in err and "Traceback" not in err, (argv, err)
    return err


def test_bad_arguments_are_usage_errors_naming_the_option(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (["bench-train", "--preset", "cpu-tiny", "--steps", "0"], "--steps"),
        (["bench-train", "--preset", "cpu-tiny", "--threads", str(10**9)], "--threads"),
        (["train", "--preset", "nope", "--out", "x"], "--preset"),
        (["train", "--preset", "cpu-tiny", "--out", str(a_file)], "--out"),
        (["train", "--preset", "cpu-tiny", "--out", str(tmp_path), "--device", "tpu"], "--device"),
        (["train", "--preset", "cpu-tiny", "--out", str(tmp_path), "--seed", str(2**64)], "--seed"),
        (["train", "--preset", "cpu-tiny", "--out", str(tmp_path), "--lr", "nan"], "--lr"),
        (["train", "--preset", "cpu-tiny", "--out", str(tmp_path), "--n-embd", "30", "--n-head", "4"], "--n-embd"),
        (["train", "--preset", "cpu-tiny", "--out", str(tmp_path), "--export-pretrained", "../x"],
         "--export-pretrained"),
        (["sample", "--pretrained", "shakespeare-char", "--seed", "-1"], "--seed"),
        (["sample", "--pretrained", "shakespeare-char", "--max-new-tokens", "0"], "--max-new-tokens"),
        (["sample", "--pretrained", "shakespeare-char", "--top-p", "1.5"], "--top-p"),
        (["sample", "--pretrained", "shakespeare-char", "--device", "cuda:x"], "--device"),
        (["sample", "--pretrained", "../etc/passwd"], "unknown pretrained"),
        (["sample", "--ckpt", str(tmp_path / "missing.pt")], "no checkpoint file"),
        (["sample", "--ckpt", str(tmp_path)], "no checkpoint"),
    ]
    if not torch.cuda.is_available():
        cases.append((["sample", "--pretrained", "shakespeare-char", "--device", "cuda"], "CUDA is not available"))
    for argv, option in cases:
        _usage_error(argv, capsys, option)


def test_sample_pretrained(capsys):
    args = ["sample", "--pretrained", "shakespeare-char", "--prompt", "ROMEO:", "--max-new-tokens", "5"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("ROMEO:") and len(out.rstrip("\n")) >= 6


def test_train_resume_and_sample_from_the_folder(tmp_path, capsys):
    out = str(tmp_path / "run")
    common = ["train", "--preset", "cpu-tiny", "--out", out, "--device", "cpu", "--no-progress", *TINY]
    assert main(common + ["--max-iters", "2", "--resume"]) == 0  # nothing to resume yet: fresh start
    assert "starting at step 0" in capsys.readouterr().out
    assert main(common + ["--max-iters", "3", "--resume"]) == 0
    assert "resumed from step 2" in capsys.readouterr().out
    assert sorted(f for f in os.listdir(out) if f.endswith(".pt")) == ["best.pt", "ckpt_0000002.pt", "ckpt_0000003.pt"]
    # the README's `sample --ckpt runs/DIR`: the folder's best model and its tokenizer
    assert main(["sample", "--ckpt", out, "--prompt", "ROMEO:", "--max-new-tokens", "3"]) == 0
    assert capsys.readouterr().out.startswith("ROMEO:")
    # a checkpoint without a tokenizer falls back to tokenizer.json, which must be valid
    from lmcourse import checkpoint

    model, _ = checkpoint.load_model(out)
    bare = os.path.join(out, "bare.pt")
    checkpoint.save(bare, model)
    assert main(["sample", "--ckpt", bare, "--max-new-tokens", "2"]) == 0
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        f.write("{not json")
    _usage_error(["sample", "--ckpt", bare], capsys, "tokenizer")


def test_failures_while_running_are_one_line_errors(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "run")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    err = _usage_error(["train", "--preset", "cpu-tiny", "--out", out, "--device", "cpu", "--no-progress",
                        "--max-iters", "1", *TINY], capsys, "No space left on device", code=1)
    assert "could not write checkpoint" in err and "run" in err


def test_export_pretrained_writes_a_loadable_recorded_checkpoint(tmp_path, capsys, monkeypatch):
    """`train --export-pretrained` (what made the shipped models) records a reproducible val loss."""
    import lmcourse.pretrained as pretrained
    from lmcourse import checkpoint
    from lmcourse.data import shakespeare_text, split
    from lmcourse.train import estimate_loss

    monkeypatch.setattr(pretrained, "CHECKPOINT_DIR", tmp_path)
    argv = ["train", "--preset", "cpu-tiny", "--out", str(tmp_path / "run"), "--device", "cpu", "--no-progress",
            "--max-iters", "2", *TINY, "--export-pretrained", "shakespeare-char-draft"]
    assert main(argv) == 0
    assert "exported shakespeare-char-draft" in capsys.readouterr().out
    ckpt = checkpoint.load(tmp_path / "shakespeare-char-draft.pt")
    meta = ckpt["meta"]
    assert meta["command"] == "python -m lmcourse " + " ".join(argv) and meta["iters"] == ckpt["step"] == 2
    model, tok = checkpoint.load_model(tmp_path / "shakespeare-char-draft.pt")
    val_ids = torch.tensor(tok.encode(split(shakespeare_text())[1], allow_special=False))
    ev = meta["eval"]
    loss = estimate_loss(model, val_ids, ev["eval_iters"], ev["batch_size"], ev["block_size"], ev["seed"])
    assert loss == pytest.approx(meta["val_loss"], abs=1e-5)


def test_bench_bpe_prints_both_trainers_with_the_same_merges(capsys):
    assert main(["bench-bpe", "--chars", "3000", "--merges", "30", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "plain loop (fast=False)" in out and "incremental (fast=True)" in out
    assert "same merges: yes" in out
