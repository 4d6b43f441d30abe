"""``python -m lmcourse bench-train --preset cpu-tiny --steps 20``: training speed, side by side.

Chapter 4 (training) measures throughput. In one run, on the same model and data shape,
this times the course's :class:`~lmcourse.train.Trainer` (its ``train`` loop, logging
included) against a plain, minimal training loop (random windows drawn on the device,
fused AdamW, autocast, clipping; nothing else), and prints for each the ms per optimizer
step, tokens/s and, on CUDA, the model FLOPs utilisation (MFU): ``flops_per_token *
tokens/s`` over the GPU's peak dense bf16/fp16 FLOP/s (the PaLM / nanoGPT estimate).
The ratio Trainer / plain should be about 1.00: the Trainer adds no waiting. ``--hf`` adds
the forward + backward of the model against transformers' GPT-2 of the same shape.

Random token ids are enough to measure speed. The ``gpt2-small`` preset is GPT-2 small's
shape (124M parameters, T = 1024, batch 16, vocab 50304), the configuration of nanoGPT's
MFU figures; on a GPU use ``--compile`` as nanoGPT does.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from typing import Callable

import torch

from ..train import PRESETS, draw_windows
from . import device_arg, int_in

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
    parser.add_argument("--steps", type=int_in(1, 100_000), default=20, help="timed optimizer steps per loop")
    parser.add_argument("--warmup", type=int_in(0, 1000), default=3, help="untimed steps first (compilation)")
    parser.add_argument("--batch-size", type=int_in(1, 1 << 16), default=None, help="override the preset's")
    parser.add_argument("--repeats", type=int_in(1, 100), default=2,
                        help="alternate the two loops this many times; the fastest of each counts")
    parser.add_argument("--device", type=device_arg, default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (both loops)")
    parser.add_argument("--threads", type=int_in(1, 4096), default=None, help="torch CPU threads")
    parser.add_argument("--hf", action="store_true", help="also time forward+backward against transformers' GPT-2")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="also write the numbers, labelled with the device, to this JSON file")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _plain_loop(model: torch.nn.Module, cfg, device: torch.device, dtype: torch.dtype,
                vocab: int) -> Callable[[int], None]:
    """A minimal loop on ``model``: returns ``run(n_steps)``."""
    data = torch.randint(vocab, (max(100_000, 4 * cfg.block_size),), device=device)
    gen = torch.Generator(device=device if device.type == "cuda" else "cpu").manual_seed(0)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=cfg.betas, fused=device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    forward = torch.compile(model) if cfg.compile else model
    model.train()

    def run(n_steps: int) -> None:
        for _ in range(n_steps):
            for _ in range(cfg.grad_accum):
                x, y = draw_windows(data, cfg.batch_size, cfg.block_size, gen)  # the Trainer's draw
                with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                    _, loss = forward(x, y)
                scaler.scale(loss / cfg.grad_accum).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)

    return run


def _seconds_per_step(run: Callable[[int], None], steps: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    run(steps)
    _sync(device)
    return (time.perf_counter() - t0) / steps


def run(args: argparse.Namespace) -> int:
    """Time the Trainer and the plain loop on the preset's model; print both and the ratio."""
    from ..model import GPT, GPTConfig
    from ..train import PRESET_VOCAB, Trainer, preset

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    total = args.warmup + args.repeats * args.steps
    over = dict(device=args.device, compile=args.compile, progress=False, max_iters=total + 1,
                warmup_iters=min(PRESETS[args.preset]["train"]["warmup_iters"], total), eval_interval=0)
    if args.batch_size is not None:
        over["batch_size"] = args.batch_size
    model_kw, cfg = preset(args.preset, **over)
    vocab = PRESET_VOCAB[args.preset]
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab, **model_kw))
    plain_model = copy.deepcopy(model)
    trainer = Trainer(model, cfg, torch.randint(vocab, (max(100_000, 4 * cfg.block_size),)))
    device, dtype = trainer.device, trainer.dtype
    plain = _plain_loop(plain_model.to(device), cfg, device, dtype, vocab)

    def run_trainer(n: int) -> None:
        trainer.train(until=trainer.step + n)

    run_trainer(args.warmup)
    plain(args.warmup)
    times = {"plain loop": [], "Trainer": []}
    for _ in range(args.repeats):  # alternate, so that both see the same machine load
        times["plain loop"].append(_seconds_per_step(plain, args.steps, device))
        times["Trainer"].append(_seconds_per_step(run_trainer, args.steps, device))

    tokens = cfg.batch_size * cfg.block_size * cfg.grad_accum
    peak = peak_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    flops_per_token = model.flops_per_token(cfg.block_size)
    print(f"{args.preset} on {device} ({str(dtype).removeprefix('torch.')}"
          f"{', compiled' if args.compile else ''}, {torch.get_num_threads()} threads): "
          f"{model.num_params():,} params, {tokens:,} tokens/step, best of {args.repeats} x {args.steps} steps")
    print(f"{'':12} {'ms/step':>10} {'tokens/s':>12} {'MFU':>8}")
    best, rows = {}, {}
    for name, ts in times.items():
        best[name] = min(ts)
        tok_s = tokens / best[name]
        mfu = 100 * flops_per_token * tok_s / peak if peak else None
        rows[name] = {"ms_per_step": 1e3 * best[name], "tokens_per_s": tok_s, "mfu_percent": mfu}
        print(f"{name:12} {best[name] * 1e3:>10.1f} {tok_s:>12,.0f} {f'{mfu:.1f}%' if mfu else 'n/a':>8}")
    ratio = best["Trainer"] / best["plain loop"]
    print(f"Trainer / plain loop: {ratio:.2f}x the time per step")
    if args.json is not None:
        _write_json(args, device, dtype, rows, ratio, model.num_params(), tokens)
    if device.type == "cuda" and peak is None:
        print(f"MFU: unknown peak FLOP/s for {torch.cuda.get_device_name(device)!r}")
    if args.hf:
        _bench_hf(model_kw, vocab, cfg.batch_size, device, dtype)
    return 0


def _bench_hf(model_kw: dict, vocab: int, batch: int, device: torch.device, dtype: torch.dtype) -> None:
    """Forward + backward of our GPT and transformers' GPT-2, same shape and weights."""
    from torch.utils.benchmark import Timer
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    from ..hf import from_hf_gpt2

    hf_logging.set_verbosity_error()  # no notes about its config defaults in the report
    T = model_kw["block_size"]
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=T, n_embd=model_kw["n_embd"],
                                    n_layer=model_kw["n_layer"], n_head=model_kw["n_head"],
                                    resid_pdrop=0, embd_pdrop=0, attn_pdrop=0, bos_token_id=None,
                                    eos_token_id=None)).to(device).train()
    ours = from_hf_gpt2(hf).to(device).train()
    x = torch.randint(vocab, (batch, T), device=device)

    def step_ours() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            _, loss = ours(x, x)
        loss.backward()

    def step_hf() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = hf(x, labels=x).loss
        loss.backward()

    t_ours = Timer("f()", globals={"f": step_ours}).blocked_autorange(min_run_time=1.0).median
    t_hf = Timer("f()", globals={"f": step_hf}).blocked_autorange(min_run_time=1.0).median
    print(f"\nforward+backward, batch {batch} x {T}: lmcourse {t_ours * 1e3:.1f} ms, transformers "
          f"{t_hf * 1e3:.1f} ms (lmcourse / transformers = {t_ours / t_hf:.2f})")


def _write_json(args: argparse.Namespace, device: torch.device, dtype: torch.dtype, rows: dict,
                ratio: float, params: int, tokens: int) -> None:
    """The numbers of one run, labelled with the device, for the book to quote."""
    import json
    import platform

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    record = {"command": "python -m lmcourse " + " ".join(getattr(args, "_argv", [])), "device": name,
              "device_type": device.type, "threads": torch.get_num_threads(),
              "dtype": str(dtype).removeprefix("torch."), "compile": args.compile,
              "torch": str(torch.__version__), "preset": args.preset, "params": params,
              "tokens_per_step": tokens, "loops": rows, "trainer_over_plain": ratio}
    folder = os.path.dirname(os.path.abspath(args.json))
    os.makedirs(folder, exist_ok=True)
    tmp = args.json + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, args.json)
    print(f"wrote {args.json}")

