"""``python -m lmcourse train --preset cpu-tiny --out DIR [--resume] [--max-iters N] ...``.

Chapter 4 (training): trains a preset of :data:`lmcourse.train.PRESETS` on char-level
Shakespeare, writing to ``--out`` the checkpoints (``ckpt_<step>.pt``, the latest ones, to
resume; ``best.pt``, the best validation model, to sample from), the tokenizer and
``history.json``. ``--resume`` continues from the latest checkpoint in ``--out``, or
starts fresh when there is none yet, so one command serves the first start and every
restart after a disconnect.

The run folder is written only through regular files that the command creates in it
(temporary file, then rename): a folder holding a symbolic link or a non-file under one of
those names is refused before anything is written, and a second ``train`` on the same
``--out`` while one runs is refused, naming the lock ``--out/.lmcourse-train.lock`` it
found. A lock left by a run that was killed is not stale: the operating system released
it when the process ended, so the next run simply takes it.

``--export-pretrained NAME`` makes a shipped checkpoint of ``lmcourse.pretrained`` (how
``shakespeare-char`` and its draft model were made): after training, the best model is
evaluated on fixed validation batches and written to
``lmcourse/assets/checkpoints/NAME.pt`` with the command, seed, steps, loss and time.

Several GPUs (or CPU processes): ``torchrun --nproc_per_node=N -m lmcourse train ...``
runs one process per GPU with DistributedDataParallel; ``batch_size`` is per process, and
only rank 0 prints and writes files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import time

from ..train import PRESETS
from . import SEED_MAX, device_arg, float_in, int_in, out_dir_arg

# The evaluation recorded in a shipped checkpoint's metadata (tests/test_pretrained.py)
EXPORT_EVAL = dict(eval_iters=20, batch_size=32, seed=1234)
_MODEL_OPTIONS = ("n_layer", "n_head", "n_embd")
_TRAIN_OPTIONS = ("max_iters", "batch_size", "lr", "warmup_iters", "seed", "patience")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``train`` sub-command."""
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS), help="model + training preset")
    parser.add_argument("--out", required=True, type=out_dir_arg,
                        help="folder for checkpoints, tokenizer and history")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest checkpoint in --out (start fresh if none)")
    parser.add_argument("--device", type=device_arg, default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=int_in(1, max(1, os.cpu_count() or 1)), default=None,
                        help="torch CPU threads (at most this machine's cores)")
    over = parser.add_argument_group("overrides of the preset")
    over.add_argument("--max-iters", type=int_in(1, 10**9), default=None)
    over.add_argument("--batch-size", type=int_in(1, 1 << 16), default=None)
    over.add_argument("--block-size", type=int_in(1, 1 << 16), default=None, help="context (model and batches)")
    over.add_argument("--lr", type=float_in(0.0, 10.0, low_open=True), default=None, help="peak lr (min_lr = lr / 10)")
    over.add_argument("--warmup-iters", type=int_in(0, 10**9), default=None)
    over.add_argument("--seed", type=int_in(0, SEED_MAX), default=None)
    over.add_argument("--patience", type=int_in(0, 10**6), default=None, help="early stopping (evaluations)")
    over.add_argument("--n-layer", type=int_in(1, 1024), default=None)
    over.add_argument("--n-head", type=int_in(1, 1024), default=None)
    over.add_argument("--n-embd", type=int_in(1, 1 << 16), default=None)
    parser.add_argument("--export-pretrained", metavar="NAME", default=None,
                        help="also write the best model to lmcourse/assets/checkpoints/NAME.pt")


def _configs(args: argparse.Namespace):
    """``(model kwargs, TrainConfig)``: the preset with the command line's overrides."""
    from ..train import preset

    model_kw, _ = preset(args.preset)
    train_over: dict = dict(ckpt_dir=args.out, device=args.device, compile=args.compile,
                            progress=not args.no_progress)
    for name in _TRAIN_OPTIONS:
        if getattr(args, name) is not None:
            train_over[name] = getattr(args, name)
    if args.lr is not None:
        train_over["min_lr"] = args.lr / 10
    if args.max_iters is not None and args.warmup_iters is None:
        train_over["warmup_iters"] = min(PRESETS[args.preset]["train"]["warmup_iters"], args.max_iters)
    if args.block_size is not None:
        model_kw["block_size"] = train_over["block_size"] = args.block_size
    for name in _MODEL_OPTIONS:
        if getattr(args, name) is not None:
            model_kw[name] = getattr(args, name)
    if args.n_embd is not None or args.n_head is not None:
        if model_kw["n_embd"] % model_kw["n_head"]:
            raise ValueError(f"--n-embd ({model_kw['n_embd']}) must be divisible by --n-head ({model_kw['n_head']})")
    _, cfg = preset(args.preset, **train_over)
    return model_kw, cfg


def run(args: argparse.Namespace) -> int:
    """Train; ValueError / FileNotFoundError become usage errors in ``lmcourse.__main__``."""
    import torch

    from ..checkpoint import check_run_folder, run_lock

    if args.export_pretrained is not None:
        from ..pretrained import PRETRAINED

        if args.export_pretrained not in PRETRAINED:
            raise ValueError(f"--export-pretrained must be one of {sorted(PRETRAINED)} (add a new name "
                             "to lmcourse.pretrained.PRETRAINED first)")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {args.out!r}: cannot create the folder ({e.strerror or e})") from None
    check_run_folder(args.out)
    model_kw, cfg = _configs(args)
    # one writer per folder: rank 0 (the only rank that writes) holds the folder's lock
    main_rank = int(os.environ.get("RANK", "0")) == 0
    with run_lock(args.out) if main_rank else contextlib.nullcontext():
        return _train(args, model_kw, cfg)


def _train(args: argparse.Namespace, model_kw: dict, cfg) -> int:
    """The run itself, in a checked and locked run folder."""
    import torch

    from ..checkpoint import atomic_write, save
    from ..data import shakespeare_text, split
    from ..model import GPT, GPTConfig
    from ..tokenization import CharTokenizer
    from ..train import Trainer, estimate_loss, init_distributed

    text = shakespeare_text()
    tokenizer = CharTokenizer.from_text(text)
    train_text, val_text = split(text)
    train_ids = torch.tensor(tokenizer.encode(train_text, allow_special=False))
    val_ids = torch.tensor(tokenizer.encode(val_text, allow_special=False))

    _check_fits(GPTConfig(vocab_size=tokenizer.vocab_size, **model_kw), cfg.device)
    rank, world, _ = init_distributed()  # (0, 1, 0) unless launched by torchrun
    try:
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, **model_kw))
        trainer = Trainer(model, cfg, train_ids, val_ids, tokenizer=tokenizer)
        say = print if rank == 0 else (lambda *a, **k: None)
        if args.resume:
            step = trainer.resume(args.out)
            say(f"resumed from step {step} ({trainer.last_checkpoint})" if trainer.last_checkpoint
                else f"no checkpoint in {args.out} yet: starting at step 0")
        if rank == 0:
            atomic_write(os.path.join(args.out, "tokenizer.json"), tokenizer.save, what="tokenizer")
        where = f"{world} processes ({trainer.device.type})" if world > 1 else str(trainer.device)
        say(f"training {args.preset}: {model.num_params():,} parameters, {cfg.max_iters} iters on {where}")
        t0 = time.time()
        trainer.train()
        seconds = time.time() - t0
        if rank == 0:
            history = json.dumps(trainer.history, indent=1).encode()
            atomic_write(os.path.join(args.out, "history.json"), lambda f: f.write(history), what="history")
        evals = [h for h in trainer.history if h["kind"] == "eval"]
        if evals:
            say(f"step {evals[-1]['step']}: val loss {evals[-1]['val_loss']:.4f} (ppl {evals[-1]['val_ppl']:.2f})")
        if trainer.stopped_early:
            say(f"stopped early at step {trainer.step}: no better val loss for {cfg.patience} evaluations")
        if trainer.best_step is not None:
            say(f"best: val loss {trainer.best_val_loss:.4f} at step {trainer.best_step} "
                f"({os.path.join(args.out, 'best.pt')})")
        say(f"latest checkpoint: {trainer.last_checkpoint}")
        if args.export_pretrained is not None and rank == 0:
            from ..pretrained import CHECKPOINT_DIR, PRETRAINED

            best = trainer.load_best()
            model = trainer.model.float().cpu().eval()
            val_loss = estimate_loss(model, val_ids, block_size=cfg.block_size, **EXPORT_EVAL)
            meta = {
                "command": "python -m lmcourse " + shlex.join(args._argv),
                "seed": cfg.seed, "iters": best, "val_loss": val_loss,
                "eval": dict(EXPORT_EVAL, block_size=cfg.block_size,
                             data="lmcourse.data.split(shakespeare_text())[1]"),
                "train_seconds": round(seconds, 1), "params": model.num_params(),
                "train_config": cfg.to_dict(), "torch": str(torch.__version__),
                "threads": torch.get_num_threads(),
            }
            path = CHECKPOINT_DIR / PRETRAINED[args.export_pretrained]
            save(path, model, tokenizer, step=best, train_config=cfg.to_dict(),
                 metrics={"val_loss": val_loss}, meta=meta)
            say(f"exported {args.export_pretrained}: val loss {val_loss:.4f} (step {best}) -> {path}")
    finally:
        if world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
    return 0


def _check_fits(config, device: str) -> None:
    """Refuse a model whose training state (weights, gradients, AdamW moments) exceeds memory."""
    import torch

    from ..checkpoint import count_parameters

    n_params = count_parameters(config)  # arithmetic: nothing is built
    need = 16 * n_params  # fp32 weights + gradients + two AdamW moments
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        index = int(device[5:]) if device.startswith("cuda:") else 0
        have = torch.cuda.get_device_properties(index).total_memory
    else:
        try:
            have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return  # cannot tell on this system
    if need > have:
        raise ValueError(
            f"the model (--n-layer {config.n_layer}, --n-embd {config.n_embd}, --block-size "
            f"{config.block_size}) has {n_params:,} parameters and needs about {need / 1e9:.1f} GB to "
            f"train; this device has {have / 1e9:.1f} GB"
        )

