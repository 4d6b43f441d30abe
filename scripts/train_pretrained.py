"""Train a shipped checkpoint (chapter 4): ``python scripts/train_pretrained.py --name shakespeare-char``.

Char-level Shakespeare with :class:`lmcourse.train.Trainer`. The number of steps is fixed
on the command line so that the run is reproducible; the command, seed, final validation
loss and wall time are stored in the checkpoint's metadata.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import torch

from lmcourse.model import GPT, GPTConfig
from lmcourse.pretrained import CHECKPOINT_DIR, save_pretrained
from lmcourse.tokenization import CharTokenizer
from lmcourse.train import TrainConfig, Trainer, estimate_loss

# The evaluation the metadata's val_loss (and tests/test_pretrained.py) use.
EVAL = dict(eval_iters=20, batch_size=32, seed=1234)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", default="shakespeare-char")
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--max-iters", type=int, default=3000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-iters", type=int, default=100)
    p.add_argument("--corpus", default=None, help="text file instead of lmcourse.data.shakespeare_text()")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.corpus:  # before lmcourse.data existed: the same tinyshakespeare file, first 90% train
        text = open(args.corpus, encoding="utf-8").read()
        n = int(0.9 * len(text))
        train_text, val_text = text[:n], text[n:]
    else:
        from lmcourse.data import shakespeare_text, split

        text = shakespeare_text()
        train_text, val_text = split(text)
    tokenizer = CharTokenizer.from_text(text)
    train_ids = torch.tensor(tokenizer.encode(train_text, allow_special=False))
    val_ids = torch.tensor(tokenizer.encode(val_text, allow_special=False))

    torch.manual_seed(args.seed)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=args.block_size,
                          n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, dropout=0.0))
    cfg = TrainConfig(lr=args.lr, min_lr=args.lr / 10, warmup_iters=args.warmup_iters, max_iters=args.max_iters,
                      batch_size=args.batch_size, block_size=args.block_size, eval_interval=500,
                      eval_iters=10, seed=args.seed, device="cpu")
    t0 = time.time()
    trainer = Trainer(model, cfg, train_ids, val_ids)
    trainer.train()
    seconds = time.time() - t0
    val_loss = estimate_loss(model, val_ids, block_size=args.block_size, **EVAL)
    meta = {
        "command": "python " + shlex.join(sys.argv),
        "seed": args.seed, "iters": args.max_iters, "val_loss": val_loss,
        "eval": dict(EVAL, block_size=args.block_size, data="lmcourse.data.split(shakespeare_text())[1]"),
        "train_seconds": round(seconds, 1), "params": model.num_params(),
        "train_config": cfg.to_dict(), "torch": torch.__version__,
    }
    save_pretrained(CHECKPOINT_DIR / f"{args.name}.pt", model, tokenizer, meta)
    print(f"{args.name}: val_loss {val_loss:.4f} after {args.max_iters} iters in {seconds:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
