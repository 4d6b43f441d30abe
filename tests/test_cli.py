"""The train / sample / bench-train sub-commands (chapter 4), kept tiny."""

from __future__ import annotations

import pytest

from lmcourse.__main__ import main


def test_bench_train_prints_speed(capsys):
    assert main(["bench-train", "--preset", "cpu-tiny", "--steps", "1", "--device", "cpu"]) == 0
    assert "tokens/s" in capsys.readouterr().out


def test_bad_arguments_are_usage_errors():
    with pytest.raises(SystemExit) as e:
        main(["bench-train", "--preset", "cpu-tiny", "--steps", "0"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["train", "--preset", "nope", "--out", "x"])
    assert e.value.code == 2


def test_sample_pretrained(capsys):
    pytest.importorskip("lmcourse.generate")
    args = ["sample", "--pretrained", "shakespeare-char", "--prompt", "ROMEO:", "--max-new-tokens", "5"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("ROMEO:") and len(out.rstrip("\n")) >= 6


def test_train_and_resume(tmp_path, capsys):
    pytest.importorskip("lmcourse.data")
    out = str(tmp_path / "run")
    common = ["train", "--preset", "cpu-tiny", "--out", out, "--device", "cpu", "--no-progress"]
    assert main(common + ["--max-iters", "2"]) == 0
    assert main(common + ["--max-iters", "3", "--resume"]) == 0
    assert "resumed from step 2" in capsys.readouterr().out
