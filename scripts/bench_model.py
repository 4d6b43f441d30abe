"""Benchmark of lmcourse.model on this machine (prints numbers; not a test).

1. forward+backward time of a 6-layer / 6-head / 384-dim / 256-context GPT against
   transformers' GPT2LMHeadModel with the same config and thread count;
2. decode tokens/s at 512 new tokens with and without the KV cache (greedy).

Usage: python scripts/bench_model.py [--threads N] [--repeats R]
"""

from __future__ import annotations

import argparse
import time

import torch

from lmcourse.model import GPT, GPTConfig


def timed(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def bench_train_step(repeats: int, batch: int) -> None:
    import transformers

    cfg = dict(vocab_size=65, n_positions=256, n_embd=384, n_layer=6, n_head=6)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(**cfg, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    )
    ours = GPT.from_hf_gpt2(hf)
    hf.train()
    ours.train()
    x = torch.randint(0, 65, (batch, 256))

    def step_ours():
        ours.zero_grad(set_to_none=True)
        _, loss = ours(x, x)
        loss.backward()

    def step_hf():
        hf.zero_grad(set_to_none=True)
        hf(x, labels=x).loss.backward()

    t_ours, t_hf = timed(step_ours, repeats), timed(step_hf, repeats)
    print(f"forward+backward, batch {batch} x 256 tokens, 6L/6H/384d:")
    print(f"  lmcourse     {t_ours * 1e3:8.1f} ms/step")
    print(f"  transformers {t_hf * 1e3:8.1f} ms/step   (lmcourse / transformers = {t_ours / t_hf:.2f})")


@torch.no_grad()
def bench_decode(new_tokens: int) -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, block_size=1024, n_layer=6, n_head=6, n_embd=384)).eval()
    prompt = torch.randint(0, 65, (1, 16))

    def with_cache():
        cache = model.new_kv_cache(1, max_len=16 + new_tokens)
        logits, _ = model(prompt, kv_cache=cache)
        for _ in range(new_tokens):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            logits, _ = model(nxt, kv_cache=cache)

    def without_cache():
        idx = prompt
        for _ in range(new_tokens):
            logits, _ = model(idx)
            idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], 1)

    t_c, t_n = timed(with_cache, 1), timed(without_cache, 1)
    print(f"greedy decode of {new_tokens} new tokens, batch 1, 6L/6H/384d:")
    print(f"  with KV cache    {new_tokens / t_c:8.1f} tokens/s")
    print(f"  without cache    {new_tokens / t_n:8.1f} tokens/s   (speed-up {t_n / t_c:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    bench_train_step(args.repeats, args.batch)
    bench_decode(args.new_tokens)


if __name__ == "__main__":
    main()
