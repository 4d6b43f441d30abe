"""Train the shipped subword model: ``python scripts/train_subword_model.py``.

A byte-level BPE tokenizer (:class:`lmcourse.tokenization.BPETokenizer`, 2,048 ids) is
trained on the training split of the shipped Shakespeare corpus, then a small GPT is
trained on its tokens with :class:`lmcourse.train.Trainer` on the CPU. The result goes to
``lmcourse/assets/checkpoints/shakespeare-bpe.pt`` in the course's checkpoint format (a
plain dict that ``torch.load(path, weights_only=True)`` reads).

Both the new model and the shipped character model (``shakespeare-char``) are evaluated on
the whole validation split, ``lmcourse.data.split(shakespeare_text())[1]``, in
non-overlapping windows of their block size. Loss per token depends on the tokenizer;
bits per byte (total loss in bits / UTF-8 bytes predicted) does not, so it compares them.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

from lmcourse.data import shakespeare_text, split
from lmcourse.model import GPT, GPTConfig
from lmcourse.tokenization import BPETokenizer, tokenizer_to_dict
from lmcourse.train import TrainConfig, Trainer

OUT = Path(__file__).resolve().parents[1] / "lmcourse" / "assets" / "checkpoints" / "shakespeare-bpe.pt"


@torch.no_grad()
def evaluate_whole(model: GPT, ids: torch.Tensor, token_bytes: list[int]) -> dict[str, float]:
    """Loss over all of ``ids`` (N,) in non-overlapping windows of the model's block size.

    Every token but the first is predicted once. Returns the mean loss in nats per token
    and bits per UTF-8 byte of the predicted tokens (``token_bytes[i]``: bytes of id ``i``).
    """
    model.eval()
    T = model.config.block_size
    total_nats, n_tokens, n_bytes = 0.0, 0, 0
    for start in range(0, ids.numel() - 1, T):
        x = ids[start : start + T]  # (t,)
        y = ids[start + 1 : start + T + 1]  # (t,)
        x = x[: y.numel()]
        logits, _ = model(x[None])  # (1, t, V)
        nll = torch.nn.functional.cross_entropy(logits[0].float(), y, reduction="sum")
        total_nats += float(nll)
        n_tokens += y.numel()
        n_bytes += sum(token_bytes[i] for i in y.tolist())
    return {
        "loss_nats_per_token": total_nats / n_tokens,
        "bits_per_byte": total_nats / math.log(2) / n_bytes,
        "tokens": n_tokens,
        "bytes": n_bytes,
    }


def char_model_bits_per_byte(val_text: str) -> dict[str, float]:
    """The shipped character model on the same validation text."""
    from lmcourse.pretrained import load_pretrained

    model, tok = load_pretrained("shakespeare-char")
    ids = torch.tensor(tok.encode(val_text), dtype=torch.long)
    token_bytes = [len(s.encode("utf-8")) for s in tok.itos]
    return evaluate_whole(model, ids, token_bytes)


def save_atomic(payload: dict, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab-size", type=int, default=2048)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-iters", type=int, default=1200)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup-iters", type=int, default=100)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.time()

    text = shakespeare_text()
    train_text, val_text = split(text)
    # The tokenizer sees only the training split, like the model.
    tokenizer = BPETokenizer.train(train_text, args.vocab_size, fast=True)  # same merges as fast=False
    train_ids = torch.tensor(tokenizer.encode(train_text), dtype=torch.long)
    val_ids = torch.tensor(tokenizer.encode(val_text), dtype=torch.long)
    t_tok = time.time() - t_start
    print(f"tokenizer: {tokenizer.vocab_size} ids, {len(train_text.encode()) / train_ids.numel():.2f} "
          f"bytes/token on train, {train_ids.numel()} train / {val_ids.numel()} val tokens ({t_tok:.0f}s)",
          flush=True)

    torch.manual_seed(args.seed)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=args.block_size, n_layer=args.n_layer,
                       n_head=args.n_head, n_embd=args.n_embd, dropout=0.0)
    model = GPT(config)
    cfg = TrainConfig(lr=args.lr, min_lr=args.lr / 10, warmup_iters=args.warmup_iters,
                      max_iters=args.max_iters, batch_size=args.batch_size, block_size=args.block_size,
                      eval_interval=250, eval_iters=10, seed=args.seed, device="cpu", dtype="float32",
                      progress=False)

    def report(trainer: Trainer, record: dict) -> None:
        if record.get("kind") == "train" and record["step"] % 100 == 0:
            print(f"step {record['step']}: train {record['loss']:.4f} ({time.time() - t_start:.0f}s)", flush=True)
        if record.get("kind") == "eval":
            print(f"step {record['step']}: val {record.get('val_loss', float('nan')):.4f} "
                  f"({time.time() - t_start:.0f}s)", flush=True)

    t0 = time.time()
    trainer = Trainer(model, cfg, train_ids, val_ids, callbacks=[report])
    trainer.train()
    train_seconds = time.time() - t0

    token_bytes = [len(tokenizer.vocab.get(i, b"")) for i in range(tokenizer.vocab_size)]
    bpe_eval = evaluate_whole(model, val_ids, token_bytes)
    char_eval = char_model_bits_per_byte(val_text)
    print(f"bpe : {bpe_eval}\nchar: {char_eval}", flush=True)

    meta = {
        "command": "python " + shlex.join(["scripts/train_subword_model.py", *sys.argv[1:]]),
        "seed": args.seed,
        "steps": args.max_iters,
        "train_seconds": round(train_seconds, 1),
        "tokenizer_seconds": round(t_tok, 1),
        "params": model.num_params(),
        "eval": "whole lmcourse.data.split(shakespeare_text())[1], non-overlapping windows of block_size",
        "val_loss_nats_per_token": bpe_eval["loss_nats_per_token"],
        "val_bits_per_byte": bpe_eval["bits_per_byte"],
        "val_tokens": bpe_eval["tokens"],
        "val_bytes": bpe_eval["bytes"],
        "char_model": "shakespeare-char",
        "char_model_val_loss_nats_per_char": char_eval["loss_nats_per_token"],
        "char_model_val_bits_per_byte": char_eval["bits_per_byte"],
        "torch": str(torch.__version__),
        "threads": args.threads,
        "machine": "2-core CPU shared with 7 other jobs (load average about 10)",
    }
    payload = {
        "format": "lmcourse-checkpoint",
        "version": 1,
        "model_config": config.to_dict(),
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "tokenizer": tokenizer_to_dict(tokenizer),
        "train_config": cfg.to_dict(),
        "step": args.max_iters,
        "optimizer": None,
        "rng": None,
        "metrics": {
            "val_loss": bpe_eval["loss_nats_per_token"],
            "val_bits_per_byte": bpe_eval["bits_per_byte"],
            "char_model_val_bits_per_byte": char_eval["bits_per_byte"],
        },
        "meta": meta,
    }
    save_atomic(payload, args.out)
    torch.load(args.out, weights_only=True)  # the shipped file must load safely
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) in {time.time() - t_start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
