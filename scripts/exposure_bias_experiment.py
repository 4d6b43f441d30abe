"""Chapter 9's exposure-bias experiment at full size: writes lmcourse/assets/exposure_bias.json.

Two identical small GPTs are trained on the same MarkovSource, one with plain teacher
forcing and one with scheduled sampling (lmcourse.train.TrainConfig.scheduled_sampling);
lmcourse.plots.exposure.exposure_curves then measures both, position by position, on
their own samples. The chapter runs the same recipe live with fewer steps.

    python scripts/exposure_bias_experiment.py            # CPU: a few minutes
    python scripts/exposure_bias_experiment.py --iters 300 --out /tmp/x.json   # quick
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lmcourse.data import MarkovSource
from lmcourse.experiments import exposure_curves
from lmcourse.model import GPT, GPTConfig
from lmcourse.train import TrainConfig, Trainer

OUT = Path(__file__).resolve().parents[1] / "lmcourse" / "assets" / "exposure_bias.json"

SOURCE = dict(vocab_size=8, order=2, seed=0, concentration=0.3)
MODEL = dict(block_size=32, n_layer=2, n_head=2, n_embd=32, dropout=0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--ss", type=float, default=0.5, help="final scheduled-sampling probability")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    source = MarkovSource(**SOURCE)
    g = torch.Generator().manual_seed(0)
    train, val = source.sample(200_000, g), source.sample(20_000, g)
    result = {"source": SOURCE, "model": MODEL, "iters": args.iters, "samples": args.samples,
              "entropy_rate": source.entropy_rate(), "runs": {}}
    for name, ss in (("teacher forcing", 0.0), (f"scheduled sampling {args.ss}", args.ss)):
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=source.vocab_size, **MODEL))
        cfg = TrainConfig(max_iters=args.iters, batch_size=32, block_size=MODEL["block_size"],
                          lr=3e-3, min_lr=3e-4, warmup_iters=50, eval_interval=0, eval_iters=20,
                          device="cpu", dtype="float32", progress=False, scheduled_sampling=ss)
        t0 = time.perf_counter()
        trainer = Trainer(model, cfg, train, val)
        trainer.train()
        seconds = time.perf_counter() - t0
        curves = exposure_curves(model, source, n_samples=args.samples, seed=1)
        run = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in curves.items()}
        run.update(scheduled_sampling=ss, val_loss=trainer.history[-1]["val_loss"], train_seconds=seconds)
        result["runs"][name] = run
        print(f"{name}: val loss {run['val_loss']:.4f} (entropy rate {source.entropy_rate():.4f}) "
              f"in {seconds:.0f} s")
    args.out.write_text(json.dumps(result, indent=1))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
