"""``python -m lmcourse train --preset cpu-tiny --out DIR [--resume] [--max-iters N]``.

Chapter 4 (training): trains a preset of :data:`lmcourse.train.PRESETS` on char-level
Shakespeare, writing checkpoints (``ckpt_*.pt``), the tokenizer and ``history.json`` to
``--out``. ``--resume`` continues from the newest checkpoint in ``--out``.

Several GPUs (or CPU processes): ``torchrun --nproc_per_node=N -m lmcourse train ...``
runs one process per GPU with DistributedDataParallel; ``batch_size`` is per process, and
only rank 0 prints and writes files.
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from ..train import PRESETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``train`` sub-command."""
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS), help="model + training preset")
    parser.add_argument("--out", required=True, help="folder for checkpoints, tokenizer and history")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    parser.add_argument("--max-iters", type=int, default=None, help="override the preset's number of steps")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--seed", type=int, default=None, help="override the preset's seed")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Train; ValueError / FileNotFoundError become usage errors in ``lmcourse.__main__``."""
    from ..data import shakespeare_text, split
    from ..model import GPT, GPTConfig
    from ..tokenization import CharTokenizer
    from ..train import Trainer, init_distributed, preset

    if args.max_iters is not None and args.max_iters < 1:
        raise ValueError(f"--max-iters must be >= 1, got {args.max_iters}")
    overrides = dict(ckpt_dir=args.out, device=args.device, compile=args.compile,
                     progress=not args.no_progress)
    if args.max_iters is not None:
        overrides["max_iters"] = args.max_iters
        overrides["warmup_iters"] = min(PRESETS[args.preset]["train"]["warmup_iters"], args.max_iters)
    if args.seed is not None:
        overrides["seed"] = args.seed
    model_kw, cfg = preset(args.preset, **overrides)

    text = shakespeare_text()
    tokenizer = CharTokenizer.from_text(text)
    train_text, val_text = split(text)
    train_ids = torch.tensor(tokenizer.encode(train_text, allow_special=False))
    val_ids = torch.tensor(tokenizer.encode(val_text, allow_special=False))

    rank, world, _ = init_distributed()  # (0, 1, 0) unless launched by torchrun
    try:
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, **model_kw))
        trainer = Trainer(model, cfg, train_ids, val_ids)
        say = print if rank == 0 else (lambda *a, **k: None)
        if args.resume:
            step = trainer.resume(args.out)
            say(f"resumed from step {step} ({trainer.last_checkpoint})")
        if rank == 0:
            os.makedirs(args.out, exist_ok=True)
            tokenizer.save(os.path.join(args.out, "tokenizer.json"))
        where = f"{world} processes ({trainer.device.type})" if world > 1 else str(trainer.device)
        say(f"training {args.preset}: {model.num_params():,} parameters, {cfg.max_iters} iters on {where}")
        trainer.train()
        if rank == 0:
            with open(os.path.join(args.out, "history.json"), "w") as f:
                json.dump(trainer.history, f, indent=1)
        evals = [h for h in trainer.history if h["kind"] == "eval"]
        if evals:
            say(f"step {evals[-1]['step']}: val loss {evals[-1]['val_loss']:.4f} (ppl {evals[-1]['val_ppl']:.2f})")
        say(f"checkpoint: {trainer.last_checkpoint}")
    finally:
        if world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
    return 0
