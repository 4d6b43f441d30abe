"""``python -m lmcourse bench-generate``: how fast is generation, with and without a KV cache?

Chapter 7 (KV cache) and chapter 6 (the generation loop) use these numbers:

* decode tokens/s with the KV cache and without it (the whole context recomputed every
  step), at each ``--new-tokens`` length: without a cache a step costs O(context), so the
  speed-up grows with the length;
* prefill ms/token (the prompt in one parallel forward) against decode ms/token (one
  token per forward, memory- and overhead-bound);
* lmcourse :func:`~lmcourse.generate.generate` against ``transformers`` ``generate`` on
  identical weights (greedy, cache on), checking that they give the same tokens.

Random weights are enough to measure speed. Timings on a shared machine vary: pin the
number of threads (``--threads``) and compare numbers from the same run.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``bench-generate`` sub-command."""
    parser.add_argument("--n-layer", type=int, default=6)
    parser.add_argument("--n-head", type=int, default=6)
    parser.add_argument("--n-embd", type=int, default=384)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--block-size", type=int, default=640, help="must hold prompt + new tokens")
    parser.add_argument("--prompt-len", type=int, default=16, help="prompt tokens for the decode runs")
    parser.add_argument("--prefill-len", type=int, default=512, help="prompt tokens for the prefill timing")
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads, fixed for comparable numbers (1: best on a shared machine)")
    parser.add_argument("--no-hf", action="store_true", help="skip the transformers comparison")
    parser.add_argument(
        "--no-speculative", action="store_true",
        help="skip speculative decoding with the shipped shakespeare-char target / draft pair",
    )
    parser.add_argument("--spec-tokens", type=int, default=200, help="new tokens for the speculative runs")


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Seconds taken by ``fn(*args, **kwargs)`` and its result."""
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


def run(args: argparse.Namespace) -> int:
    """Build a random model, time the generation variants, print a small report."""
    for name in ("n_layer", "n_head", "n_embd", "vocab_size", "block_size", "prompt_len", "prefill_len", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    longest = args.prompt_len + max(args.new_tokens)
    if min(args.new_tokens) < 1 or longest > args.block_size:
        raise ValueError(
            f"--new-tokens must be in [1, block_size - prompt_len = {args.block_size - args.prompt_len}], "
            f"got {args.new_tokens}"
        )
    if args.prefill_len > args.block_size:
        raise ValueError(f"--prefill-len must be in [1, {args.block_size}], got {args.prefill_len}")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        _bench(args)
        if not args.no_speculative:
            _bench_speculative(args.spec_tokens)
    finally:
        torch.set_num_threads(threads_before)
    return 0


def _bench(args: argparse.Namespace) -> None:
    """The measurements of :func:`run` (arguments already checked, threads set)."""
    from ..generate import generate
    from ..model import GPT, GPTConfig
    from ..sampling import SamplingConfig

    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=args.vocab_size,
        block_size=args.block_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
    )
    model = GPT(config).eval()
    hf = None
    if not args.no_hf:  # the same random weights in both libraries
        from transformers import GPT2Config, GPT2LMHeadModel

        hf_config = GPT2Config(
            vocab_size=args.vocab_size,
            n_positions=args.block_size,
            n_embd=args.n_embd,
            n_layer=args.n_layer,
            n_head=args.n_head,
            bos_token_id=None,
            eos_token_id=None,
        )
        hf = GPT2LMHeadModel(hf_config).eval()
        model = GPT.from_hf_gpt2(hf).eval()
    greedy = SamplingConfig(temperature=0)
    prompt = torch.randint(args.vocab_size, (args.prompt_len,)).tolist()
    print(
        f"model: {config.n_layer} layers, {config.n_head} heads, {config.n_embd} dim, "
        f"vocab {config.vocab_size}, block {config.block_size}: {model.num_params():,} params; "
        f"{torch.get_num_threads()} threads, prompt {args.prompt_len} tokens"
    )
    generate(model, prompt, 8, greedy)  # warm-up
    generate(model, prompt, 8, greedy, use_cache=False)

    # ---- KV cache vs recomputation ---------------------------------------------------
    print(f"\n{'new tokens':>10} {'cache tok/s':>12} {'no-cache tok/s':>15} {'speed-up':>9}")
    decode_ms = None
    for n in args.new_tokens:
        t_cache, out_cache = _timed(generate, model, prompt, n, greedy, use_cache=True)
        t_full, out_full = _timed(generate, model, prompt, n, greedy, use_cache=False)
        same = "" if out_cache.sequences == out_full.sequences else "  (tokens differ!)"
        print(f"{n:>10} {n / t_cache:>12.1f} {n / t_full:>15.1f} {t_full / t_cache:>8.1f}x{same}")
        decode_ms = 1e3 * t_cache / n

    # ---- prefill vs decode -----------------------------------------------------------
    long_prompt = torch.randint(args.vocab_size, (1, args.prefill_len))
    with torch.no_grad():
        model(long_prompt, kv_cache=model.new_kv_cache(1, args.prefill_len))  # warm-up
        t_prefill, _ = _timed(model, long_prompt, kv_cache=model.new_kv_cache(1, args.prefill_len))
    prefill_ms = 1e3 * t_prefill / args.prefill_len
    print(
        f"\nprefill: {prefill_ms:.3f} ms/token ({args.prefill_len} tokens in one forward); "
        f"decode: {decode_ms:.3f} ms/token (cache, {args.new_tokens[-1]} new tokens): "
        f"{decode_ms / prefill_ms:.0f}x more per token"
    )

    # ---- lmcourse vs transformers ----------------------------------------------------
    if hf is not None:
        print(f"\n{'new tokens':>10} {'lmcourse tok/s':>15} {'transformers tok/s':>19} {'ratio':>6}")
        ids = torch.tensor([prompt])

        def hf_generate(n: int) -> torch.Tensor:
            with torch.no_grad():
                return hf.generate(
                    ids, do_sample=False, max_new_tokens=n, min_new_tokens=n, pad_token_id=0, use_cache=True
                )

        hf_generate(8)  # warm-up
        for n in args.new_tokens:
            t_ours, ours = _timed(generate, model, prompt, n, greedy)
            t_hf, theirs = _timed(hf_generate, n)
            same = "" if ours.sequences[0] == theirs[0].tolist() else "  (tokens differ!)"
            print(f"{n:>10} {n / t_ours:>15.1f} {n / t_hf:>19.1f} {t_hf / t_ours:>5.2f}x{same}")


def _bench_speculative(new_tokens: int, ks: tuple[int, ...] = (1, 2, 4, 6)) -> None:
    """Greedy speculative decoding with the shipped target/draft pair vs the target alone."""
    from ..generate import generate
    from ..pretrained import load_pretrained
    from ..sampling import SamplingConfig
    from ..speculative import speculative_generate

    target, tok = load_pretrained("shakespeare-char")
    draft, _ = load_pretrained("shakespeare-char-draft")
    prompt = tok.encode("ROMEO:\nWhat light through yonder window")
    greedy = SamplingConfig(temperature=0.0)
    n = min(new_tokens, target.config.block_size - len(prompt))
    t_base, base = _timed(generate, target, prompt, n, greedy)
    print(f"\nspeculative decoding, shipped shakespeare-char (target) + draft, greedy, {n} new tokens")
    print(f"  target alone: {n / t_base:.1f} tok/s")
    print(f"{'k':>4} {'acceptance':>11} {'target passes':>14} {'tok/s':>8} {'speed-up':>9}")
    for k in ks:
        t_spec, out = _timed(speculative_generate, target, draft, prompt, n, num_draft_tokens=k, sampling=greedy)
        same = "" if out.tokens == base.new_tokens[0] else "  (differs from target greedy!)"
        print(
            f"{k:>4} {out.acceptance_rate:>11.2f} {out.target_forward_passes:>14} "
            f"{n / t_spec:>8.1f} {t_base / t_spec:>8.2f}x{same}"
        )
