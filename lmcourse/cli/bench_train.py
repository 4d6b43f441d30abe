"""``python -m lmcourse bench-train --preset cpu-tiny --steps 20``: training speed.

Chapter 4 (training) measures throughput: tokens/s, ms per optimizer step and, on CUDA,
the model FLOPs utilisation (MFU): ``model.flops_per_token() * tokens/s`` divided by the
GPU's peak dense bf16/fp16 FLOP/s. Random token ids are enough to measure speed.
"""

from __future__ import annotations

import argparse
import time

import torch

from ..train import PRESETS

# Peak dense tensor-core FLOP/s (bf16, or fp16 where there is no bf16), from vendor sheets.
PEAK_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,  # SXM; the PCIe card is 756e12
    "A100": 312e12,
    "A10G": 125e12,
    "L4": 121e12,
    "RTX 4090": 165e12,
    "RTX 3090": 71e12,
    "V100": 125e12,
    "T4": 65e12,
}


def peak_flops(name: str) -> float | None:
    """Peak FLOP/s of a GPU from its CUDA name, or None when unknown."""
    for key, flops in PEAK_FLOPS.items():
        if key.lower() in name.lower():
            return flops
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``bench-train`` sub-command."""
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS))
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps (after 3 warm-up)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Time ``--steps`` training steps of the preset on random data and print the speed."""
    from ..model import GPT, GPTConfig
    from ..train import Trainer, preset

    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    warmup = 3
    model_kw, cfg = preset(args.preset, device=args.device, compile=args.compile, progress=False,
                           max_iters=args.steps + warmup)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, **model_kw))
    data = torch.randint(65, (max(100_000, 4 * cfg.block_size),))
    trainer = Trainer(model, cfg, data)
    for _ in range(warmup):
        trainer.train_step()
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step()
    sync()
    seconds = (time.perf_counter() - t0) / args.steps
    tokens = cfg.batch_size * cfg.block_size * cfg.grad_accum
    tok_s = tokens / seconds
    print(f"{args.preset} on {trainer.device} ({str(trainer.dtype).removeprefix('torch.')}): "
          f"{model.num_params():,} params, {tokens} tokens/step")
    print(f"{seconds * 1e3:.1f} ms/step, {tok_s:,.0f} tokens/s")
    if trainer.device.type == "cuda":
        name = torch.cuda.get_device_name(trainer.device)
        peak = peak_flops(name)
        achieved = model.flops_per_token(cfg.block_size) * tok_s
        if peak is None:
            print(f"MFU: unknown peak FLOP/s for {name!r}; achieved {achieved / 1e12:.1f} TFLOP/s")
        else:
            print(f"MFU: {100 * achieved / peak:.1f}% ({achieved / 1e12:.1f} of {peak / 1e12:.0f} TFLOP/s, {name})")
    return 0
