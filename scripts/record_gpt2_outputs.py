"""Record what a real GPT-2 writes with each decoding method, for chapter 5c's offline build.

Chapter 5c runs :func:`lmcourse.experiments.decoding_showcase` on GPT-2 small live where the
Hugging Face hub can be reached (Colab); the offline build shows the texts this script
stored instead, with the settings and versions that made them. Run it once wherever the
hub is reachable, then commit the file:

    python scripts/record_gpt2_outputs.py                       # GPT-2 small from the hub
    python scripts/record_gpt2_outputs.py --model ./my-gpt2-dir  # a save_pretrained folder
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

import torch

import lmcourse
from lmcourse.checkpoint import atomic_write
from lmcourse.experiments import decoding_showcase
from lmcourse.hf import from_pretrained_hf

OUT = Path(lmcourse.__file__).resolve().parent / "assets" / "gpt2_outputs.json"
PROMPT = "The meaning of life is"


def record(model_name: str, prompt: str = PROMPT, max_new_tokens: int = 40, seed: int = 0,
           device: str = "cpu") -> dict:
    """Load ``model_name`` into an lmcourse GPT and run the showcase; the JSON-ready record."""
    import transformers

    model, tokenizer = from_pretrained_hf(model_name)
    if tokenizer is None:
        raise ValueError(f"{model_name!r} has no tokenizer files; the showcase needs one")
    model = model.to(device)
    outputs = decoding_showcase(model, tokenizer, prompt, max_new_tokens=max_new_tokens, seed=seed)
    return {
        "model": model_name,
        "n_params": model.num_params(),
        "prompt": prompt,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
        "outputs": outputs,
        "device": device,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "lmcourse": lmcourse.__version__, "python": platform.python_version()},
        "date": datetime.date.today().isoformat(),
        "command": "python scripts/record_gpt2_outputs.py --model " + model_name,
    }


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gpt2", help="hub name or save_pretrained folder (default: gpt2)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    rec = record(args.model, device=args.device)
    text = json.dumps(rec, indent=2, ensure_ascii=False) + "\n"
    atomic_write(args.out, lambda f: f.write(text.encode("utf-8")), what="GPT-2 outputs")
    for name, continuation in rec["outputs"].items():
        print(f"--- {name}\n{rec['prompt']}{continuation}")
    print(f"wrote {args.out}")
    return args.out


if __name__ == "__main__":
    main()
