"""A small scaling experiment (chapter 12): ``python scripts/scaling_experiment.py``.

Trains several GPT sizes on the shipped char-level Shakespeare corpus with
:class:`lmcourse.train.Trainer`, every size on the SAME number of training tokens (same
seed, same batches, same learning-rate schedule), and writes one JSON file,
``lmcourse/assets/scaling_runs.json``, with, per run: the model and training config, the
parameter counts (total and non-embedding), tokens seen, training FLOPs
(``GPT.flops_per_token() * tokens``), the validation-loss curve and the final validation
loss, and the wall time. Chapter 12 loads that file (a live run is too slow for the book
build) and fits power laws to it.

Presets:
    ``cpu`` (default): 7 sizes from about 13k to 1.2M non-embedding parameters, context 64,
        1500 steps of 16 sequences (about 1.5M tokens each); ~10-30 minutes on 2 CPU cores.
    ``gpu``: 7 sizes from about 0.1M to 19M non-embedding parameters, context 256,
        5000 steps of 64 sequences (about 82M tokens each); about an hour on one Colab GPU.

The file is rewritten after every run, so an interrupted experiment keeps what it finished.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from lmcourse.data import shakespeare_text, split
from lmcourse.model import GPT, GPTConfig
from lmcourse.tokenization import CharTokenizer
from lmcourse.train import TrainConfig, Trainer, estimate_loss

OUT = Path(__file__).resolve().parent.parent / "lmcourse" / "assets" / "scaling_runs.json"

# (n_layer, n_head, n_embd) per size, smallest first
PRESETS = {
    "cpu": {
        "sizes": [(1, 2, 32), (2, 2, 32), (2, 2, 48), (3, 4, 64), (4, 4, 96), (4, 4, 128), (6, 4, 128)],
        "train": dict(lr=2e-3, min_lr=2e-4, warmup_iters=100, max_iters=1500, batch_size=16,
                      block_size=64, eval_interval=150, eval_iters=10),
        "final_eval": dict(eval_iters=50, batch_size=32, seed=1234),
    },
    "gpu": {
        "sizes": [(2, 4, 64), (3, 4, 128), (4, 4, 192), (4, 4, 256), (6, 6, 384), (8, 8, 512), (8, 8, 768)],
        "train": dict(lr=1e-3, min_lr=1e-4, warmup_iters=200, max_iters=5000, batch_size=64,
                      block_size=256, eval_interval=250, eval_iters=20),
        "final_eval": dict(eval_iters=100, batch_size=64, seed=1234),
    },
}


def run_one(n_layer: int, n_head: int, n_embd: int, train_kwargs: dict, final_eval: dict,
            train_ids: torch.Tensor, val_ids: torch.Tensor, vocab_size: int, seed: int,
            device: str, progress: bool) -> dict:
    """Train one size and return its record (see the module docstring)."""
    torch.manual_seed(seed)
    cfg_model = GPTConfig(vocab_size=vocab_size, block_size=train_kwargs["block_size"],
                          n_layer=n_layer, n_head=n_head, n_embd=n_embd, dropout=0.0)
    model = GPT(cfg_model)
    cfg = TrainConfig(**train_kwargs, seed=seed, device=device, progress=progress)
    tokens_per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum
    flops_per_token = model.flops_per_token(cfg.block_size)
    t0 = time.time()
    trainer = Trainer(model, cfg, train_ids, val_ids)
    trainer.train()
    seconds = time.time() - t0
    curve = [
        {"step": r["step"], "tokens": r["step"] * tokens_per_step,
         "flops": r["step"] * tokens_per_step * flops_per_token, "val_loss": r["val_loss"]}
        for r in trainer.history if r["kind"] == "eval"
    ]
    val_loss = estimate_loss(model, val_ids, block_size=cfg.block_size, **final_eval)
    tokens = cfg.max_iters * tokens_per_step
    return {
        "model": cfg_model.to_dict(),
        "params": model.num_params(),
        "non_embedding_params": model.num_params(exclude_embeddings=True),
        "flops_per_token": flops_per_token,
        "tokens": tokens,
        "flops": tokens * flops_per_token,
        "val_loss": val_loss,
        "curve": curve,
        "train_seconds": round(seconds, 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--max-iters", type=int, default=None, help="override the preset's steps")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--progress", action="store_true", help="show tqdm bars")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    spec = PRESETS[args.preset]
    train_kwargs = dict(spec["train"])
    if args.max_iters is not None:
        train_kwargs["max_iters"] = args.max_iters
    text = shakespeare_text()
    train_text, val_text = split(text)
    tokenizer = CharTokenizer.from_text(text)
    train_ids = torch.tensor(tokenizer.encode(train_text, allow_special=False))
    val_ids = torch.tensor(tokenizer.encode(val_text, allow_special=False))

    result = {
        "description": "Char-level Shakespeare scaling experiment (lmcourse chapter 12): every "
                       "size trained on the same tokens with the same seed and schedule.",
        "command": "python " + shlex.join(["scripts/scaling_experiment.py", *sys.argv[1:]]),
        "preset": args.preset,
        "train_config": train_kwargs,
        "final_eval": dict(spec["final_eval"], data="lmcourse.data.split(shakespeare_text())[1]"),
        "seed": args.seed,
        "vocab_size": tokenizer.vocab_size,
        "train_tokens_available": int(train_ids.numel()),
        "torch": torch.__version__,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "runs": [],
    }
    t_all = time.time()
    for n_layer, n_head, n_embd in spec["sizes"]:
        rec = run_one(n_layer, n_head, n_embd, train_kwargs, spec["final_eval"], train_ids, val_ids,
                      tokenizer.vocab_size, args.seed, args.device, args.progress)
        result["runs"].append(rec)
        result["total_seconds"] = round(time.time() - t_all, 1)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"L={n_layer} H={n_head} C={n_embd}: N={rec['non_embedding_params']:,} "
              f"val_loss={rec['val_loss']:.4f} ({rec['train_seconds']:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
