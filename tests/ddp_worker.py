"""Worker for tests/test_train_ddp.py, launched by ``torchrun`` (not collected by pytest).

Usage: torchrun --standalone --nproc_per_node=2 tests/ddp_worker.py OUT_DIR

Trains the same tiny GPT as :func:`run_single` on every rank with the gloo backend and
writes rank 0's final weights and history to OUT_DIR/ddp_accum<k>.pt, for k = 1 and 2
gradient-accumulation steps. Checkpoints go to OUT_DIR/ckpt_rank<r>_accum<k>/ so the test
can check that only rank 0 wrote any.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

from lmcourse.model import GPT, GPTConfig
from lmcourse.train import TrainConfig, Trainer, init_distributed

PER_RANK_BATCH = 3


def data() -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed token stream (train, val)."""
    g = torch.Generator().manual_seed(0)
    return torch.randint(13, (3000,), generator=g), torch.randint(13, (600,), generator=g)


def model() -> GPT:
    """The same seeded tiny GPT in every process."""
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0))


def config(batch_size: int, grad_accum: int, ckpt_dir=None) -> TrainConfig:
    """Six steps with evaluation at step 3 and 6."""
    return TrainConfig(max_iters=6, warmup_iters=2, batch_size=batch_size, block_size=16,
                       grad_accum=grad_accum, eval_interval=3, eval_iters=2, log_interval=1,
                       device="cpu", dtype="float32", progress=False, seed=5, lr=3e-3,
                       ckpt_dir=ckpt_dir)


def run_single(batch_size: int, grad_accum: int) -> tuple[dict, list]:
    """One process (no process group): final state_dict and history."""
    train, val = data()
    trainer = Trainer(model(), config(batch_size, grad_accum), train, val)
    trainer.train()
    return trainer.model.state_dict(), trainer.history


def main(out: str) -> None:
    rank, world, _ = init_distributed()
    assert world == 2 and dist.get_backend() == "gloo", (world, dist.get_backend())
    torch.set_num_threads(1)
    train, val = data()
    for accum in (1, 2):
        ckpt = os.path.join(out, f"ckpt_rank{rank}_accum{accum}")
        trainer = Trainer(model(), config(PER_RANK_BATCH, accum, ckpt), train, val)
        trainer.train()
        if rank == 0:
            torch.save({"state_dict": trainer.model.state_dict(), "history": trainer.history,
                        "world": world}, os.path.join(out, f"ddp_accum{accum}.pt"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
