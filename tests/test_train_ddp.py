"""DistributedDataParallel through torchrun: 2 gloo ranks on the loopback interface.

Two ranks with per-rank batch B must take the same optimisation steps as one process
with batch 2B on the same data (weights equal to atol 1e-5), average their evaluation
losses, and leave checkpoints written by rank 0 only.
"""

from __future__ import annotations

import os
import subprocess
import sys

import ddp_worker
import pytest
import torch

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available",
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _torchrun(*args: str, cwd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, MASTER_ADDR="127.0.0.1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    _torchrun(os.path.join(ROOT, "tests", "ddp_worker.py"), str(out), cwd=str(out))
    return out


@pytest.mark.parametrize("accum", [1, 2])
def test_two_ranks_equal_one_process_with_double_batch(ddp_run, accum):
    got = torch.load(ddp_run / f"ddp_accum{accum}.pt")
    assert got["world"] == 2
    single_state, single_hist = ddp_worker.run_single(2 * ddp_worker.PER_RANK_BATCH, accum)
    assert got["state_dict"].keys() == single_state.keys()  # no "module." prefix
    for name, w in single_state.items():
        torch.testing.assert_close(got["state_dict"][name], w, atol=1e-5, rtol=0, msg=name)
    # the same run with batch B in one process is a different run: the check can fail
    small_state, _ = ddp_worker.run_single(ddp_worker.PER_RANK_BATCH, accum)
    assert any((small_state[k] - w).abs().max() > 1e-4 for k, w in single_state.items())
    # evaluation: each rank scores half of every global batch, the mean is all-reduced
    ddp_eval = [h["val_loss"] for h in got["history"] if h["kind"] == "eval"]
    one_eval = [h["val_loss"] for h in single_hist if h["kind"] == "eval"]
    assert len(ddp_eval) == len(one_eval) == 2
    assert ddp_eval == pytest.approx(one_eval, abs=1e-5)


def test_only_rank_zero_writes_checkpoints(ddp_run):
    for accum in (1, 2):
        assert sorted(os.listdir(ddp_run / f"ckpt_rank0_accum{accum}")) == ["best.pt", "ckpt_0000003.pt", "ckpt_0000006.pt"]
        assert not (ddp_run / f"ckpt_rank1_accum{accum}").exists()


def test_cli_under_torchrun(tmp_path):
    out = tmp_path / "run"
    proc = _torchrun("-m", "lmcourse", "train", "--preset", "cpu-tiny", "--out", str(out),
                     "--max-iters", "2", "--device", "cpu", "--no-progress", cwd=str(tmp_path))
    assert proc.stdout.count("step 2: val loss") == 1, proc.stdout  # only rank 0 reports
    assert "2 processes" in proc.stdout
    assert [f for f in os.listdir(out) if f.startswith("ckpt_")] == ["ckpt_0000002.pt"]
    assert "best.pt" in os.listdir(out)
