"""Fine-tune the shipped char model on a few ChatML conversations (chapter 14's demo).

Usage: python scripts/finetune_chat_demo.py [--steps 150] [--base shakespeare-char] [--out lmcourse/assets/chat_herald.pt]

``--base shakespeare-bpe --out lmcourse/assets/chat_herald_bpe.pt`` fine-tunes the subword
model instead (its BPE tokenizer has the same ChatML specials).

The shipped ``shakespeare-char`` model has never seen a chat template: its tokenizer has the
ChatML specials ``<|im_start|>`` / ``<|im_end|>`` but their embeddings were never trained.
This script runs (with :mod:`lmcourse.sft`) supervised fine-tuning (SFT) on tiny "herald" conversations (greet, bid
farewell, thank a named person), with the loss on assistant tokens only (the mask of
``lmcourse.chat.encode_chat``), and writes the fine-tuned weights in fp16 (about 1.7 MB)
with the data and settings used. Chapter 14 loads them, because on the shared 2-core build
machine even 150 small steps take minutes; on a GPU it takes seconds (the chapter can
rerun it live).
"""

from __future__ import annotations

import argparse
import time

import lmcourse
from lmcourse import checkpoint
from lmcourse.sft import INTENTS, NAMES, finetune


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--base", default="shakespeare-char", choices=["shakespeare-char", "shakespeare-bpe"])
    ap.add_argument("--out", default="lmcourse/assets/chat_herald.pt")
    args = ap.parse_args()
    model, tok = lmcourse.load_pretrained(args.base)
    t0 = time.time()
    losses = finetune(model, tok, steps=args.steps)
    seconds = time.time() - t0
    meta = {"base": args.base, "steps": args.steps, "batch_size": 16, "lr": 1e-3,
            "seed": 0, "train_seconds": round(seconds, 1), "n_conversations": len(NAMES) * len(INTENTS),
            "losses": [round(v, 4) for v in losses],
            "command": f"python scripts/finetune_chat_demo.py --steps {args.steps} --base {args.base} --out {args.out}"}
    # an lmcourse.checkpoint file (loads with weights_only=True), fp16 weights to keep it small
    checkpoint.save(args.out, model.half(), tok, step=args.steps, meta=meta,
                    metrics={"final_loss": meta["losses"][-1]})
    print(f"{args.steps} steps in {seconds:.0f} s, final loss {losses[-1]:.4f}; wrote {args.out}")


if __name__ == "__main__":
    main()
