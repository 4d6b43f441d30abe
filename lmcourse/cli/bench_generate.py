"""``python -m lmcourse bench-generate``: how fast is generation, and what makes it fast?

Chapter 7 (KV cache), chapter 6 (the generation loop) and chapter 11 (fast inference) use
these numbers. In one run, on one device (``--device``, default: the best available):

* **decode paths**, greedy, at each ``--new-tokens`` length: no cache (the whole context
  recomputed every step: O(context) per step), the KV cache of
  :func:`lmcourse.generate.generate`, the static-cache fast path
  (:func:`lmcourse.fastgen.fast_generate`, eager, and compiled with ``--compile``; skipped
  with a note when the module is missing), and ``transformers``' ``generate`` on identical
  weights; tokens/s, the ratio to the KV-cache loop, and whether the tokens agree;
* **prefill vs decode**: ms/token of the prompt in one parallel forward against one token
  per forward;
* **stop strings** (``--stop-bench``): decode ms/step at 128/512/2,048 new tokens for a
  batch of rows, with and without stop strings that never match (so both runs generate
  every token); the incremental check keeps the cost per step flat;
* **speculative decoding** with the shipped shakespeare-char target/draft pair.

Random weights are enough to measure speed. ``--preset gpt2-small`` uses GPT-2 small's
shape (12 layers, 12 heads, 768 wide, vocab 50,257, block 1,024); explicit shape flags
override the preset. Timings on a shared machine vary: on CPU pin the number of threads
(``--threads``) and compare numbers from the same run. GPU timings synchronise the device.
"""

from __future__ import annotations

import argparse
import importlib
import string
import time
from typing import Any, Callable, Optional

import torch

PRESETS = {
    "small": dict(n_layer=6, n_head=6, n_embd=384, vocab_size=4096, block_size=640),
    "gpt2-small": dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, block_size=1024),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``bench-generate`` sub-command."""
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small", help="model shape (default: small)")
    for name in ("n-layer", "n-head", "n-embd", "vocab-size", "block-size"):
        parser.add_argument(f"--{name}", type=int, default=None, help="overrides the preset")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--prompt-len", type=int, default=16, help="prompt tokens for the decode runs")
    parser.add_argument("--prefill-len", type=int, default=512, help="prompt tokens for the prefill timing")
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[128, 512])
    parser.add_argument(
        "--threads", type=int, default=1,
        help="CPU only: torch.set_num_threads, fixed for comparable numbers (1: best on a shared machine)",
    )
    parser.add_argument("--no-hf", action="store_true", help="skip the transformers comparison")
    parser.add_argument("--no-cache-run", action="store_true", help="skip the (slow) no-cache decode")
    parser.add_argument("--compile", action="store_true", help="also time fast_generate(compile=True)")
    parser.add_argument(
        "--no-speculative", action="store_true",
        help="skip speculative decoding with the shipped shakespeare-char target / draft pair",
    )
    parser.add_argument("--spec-tokens", type=int, default=200, help="new tokens for the speculative runs")
    parser.add_argument("--stop-bench", action="store_true", help="time decoding with and without stop strings")
    parser.add_argument("--stop-rows", type=int, default=64, help="batch rows of the stop-string benchmark")
    parser.add_argument("--stop-tokens", type=int, nargs="+", default=[128, 512, 2048])


def _check(args: argparse.Namespace) -> None:
    """Every argument error before any work (a usage error, never after a long run)."""
    for name, value in PRESETS[args.preset].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("n_layer", "n_head", "n_embd", "vocab_size", "block_size", "prompt_len", "prefill_len",
                 "threads", "spec_tokens", "stop_rows"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.threads > 1024:
        raise ValueError(f"--threads must be in [1, 1024], got {args.threads}")
    if args.n_embd % args.n_head:
        raise ValueError(f"--n-embd ({args.n_embd}) must be divisible by --n-head ({args.n_head})")
    longest = args.prompt_len + max(args.new_tokens)
    if min(args.new_tokens) < 1 or longest > args.block_size:
        raise ValueError(
            f"--new-tokens must be in [1, block_size - prompt_len = {args.block_size - args.prompt_len}], "
            f"got {args.new_tokens}"
        )
    if args.prefill_len > args.block_size:
        raise ValueError(f"--prefill-len must be in [1, {args.block_size}], got {args.prefill_len}")
    if min(args.stop_tokens) < 1:
        raise ValueError(f"--stop-tokens must be >= 1, got {args.stop_tokens}")
    from ..devices import device

    try:
        args.device = device(args.device)
    except RuntimeError as e:  # unknown or unavailable device: a usage error
        raise ValueError(f"--device: {e}") from None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _timed(device: torch.device, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Seconds taken by ``fn(*args, **kwargs)`` (device synchronised before and after) and its result."""
    _sync(device)
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    _sync(device)
    return time.perf_counter() - t0, result


def run(args: argparse.Namespace) -> int:
    """Build a random model, time the generation variants, print a small report."""
    _check(args)
    threads_before = torch.get_num_threads()
    if args.device.type == "cpu":
        torch.set_num_threads(args.threads)
    try:
        _bench(args)
        if args.stop_bench:
            _bench_stop_strings(args)
        if not args.no_speculative:
            _bench_speculative(args.spec_tokens, args.device)
    finally:
        torch.set_num_threads(threads_before)
    return 0


def _fastgen() -> Optional[Any]:
    """``lmcourse.fastgen`` if this checkout has it, else None."""
    try:
        return importlib.import_module("lmcourse.fastgen")
    except ImportError:
        return None


def _bench(args: argparse.Namespace) -> None:
    """Decode paths side by side, then prefill vs decode (arguments checked, threads set)."""
    from ..generate import generate
    from ..model import GPT, GPTConfig
    from ..sampling import SamplingConfig

    dev = args.device
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=args.vocab_size, block_size=args.block_size, n_layer=args.n_layer,
        n_head=args.n_head, n_embd=args.n_embd,
    )
    hf = None
    if not args.no_hf:  # the same random weights in both libraries
        from transformers import GPT2Config, GPT2LMHeadModel

        from ..hf import from_hf_gpt2

        hf_config = GPT2Config(
            vocab_size=args.vocab_size, n_positions=args.block_size, n_embd=args.n_embd,
            n_layer=args.n_layer, n_head=args.n_head, bos_token_id=None, eos_token_id=None,
        )
        hf = GPT2LMHeadModel(hf_config).eval()
        model = from_hf_gpt2(hf).to(dev).eval()
        hf = hf.to(dev)
    else:
        model = GPT(config).to(dev).eval()
    greedy = SamplingConfig(temperature=0)
    prompt = torch.randint(args.vocab_size, (args.prompt_len,)).tolist()
    threads = f"{torch.get_num_threads()} threads" if dev.type == "cpu" else str(dev)
    print(
        f"model ({args.preset} shape): {config.n_layer} layers, {config.n_head} heads, {config.n_embd} dim, "
        f"vocab {config.vocab_size}, block {config.block_size}: {model.num_params():,} params; "
        f"{dev.type}, {threads}, prompt {args.prompt_len} tokens, greedy"
    )

    # ---- the decode paths ----------------------------------------------------------------
    ids = torch.tensor([prompt], device=dev)
    paths: dict[str, Callable[[int], list[int]]] = {
        "KV cache": lambda n: generate(model, prompt, n, greedy).sequences[0],
    }
    if not args.no_cache_run:
        paths["no cache"] = lambda n: generate(model, prompt, n, greedy, use_cache=False).sequences[0]
    fastgen = _fastgen()
    if fastgen is None:
        print("(lmcourse.fastgen is not in this checkout: the static-cache fast path is skipped)")
    else:
        paths["fast (eager)"] = lambda n: fastgen.fast_generate(model, ids, n, temperature=0.0)[0].tolist()
        if args.compile:
            paths["fast (compiled)"] = lambda n: fastgen.fast_generate(
                model, ids, n, temperature=0.0, compile=True
            )[0].tolist()
    if hf is not None:

        def hf_generate(n: int) -> list[int]:
            with torch.no_grad():
                out = hf.generate(ids, do_sample=False, max_new_tokens=n, min_new_tokens=n, pad_token_id=0,
                                  use_cache=True, attention_mask=torch.ones_like(ids))
            return out[0].tolist()

        paths["transformers"] = hf_generate
    for name, fn in list(paths.items()):  # warm-up (and compilation)
        try:
            fn(8)
        except Exception as e:  # an optional path that cannot run here: say so, keep the others
            if not name.startswith("fast"):
                raise
            print(f"(the {name} path failed and is skipped: {type(e).__name__}: {e})")
            del paths[name]
    print(f"\n{'new tokens':>10} " + " ".join(f"{name + ' tok/s':>22}" for name in paths))
    decode_ms = None
    for n in args.new_tokens:
        seconds, tokens = {}, {}
        for name, fn in paths.items():
            seconds[name], tokens[name] = _timed(dev, fn, n)
        base = seconds["KV cache"]
        cells = []
        for name in paths:
            same = "" if tokens[name] == tokens["KV cache"] else " (differs!)"
            cells.append(f"{n / seconds[name]:>9.1f} ({base / seconds[name]:>4.2f}x){same}")
        print(f"{n:>10} " + " ".join(f"{c:>22}" for c in cells))
        decode_ms = 1e3 * base / n
    print("(x: speed relative to the KV-cache loop of lmcourse.generate; > 1 is faster)")

    # ---- prefill vs decode -----------------------------------------------------------
    long_prompt = torch.randint(args.vocab_size, (1, args.prefill_len), device=dev)
    with torch.no_grad():
        model(long_prompt, kv_cache=model.new_kv_cache(1, args.prefill_len))  # warm-up
        t_prefill, _ = _timed(dev, model, long_prompt, kv_cache=model.new_kv_cache(1, args.prefill_len))
    prefill_ms = 1e3 * t_prefill / args.prefill_len
    print(
        f"\nprefill: {prefill_ms:.3f} ms/token ({args.prefill_len} tokens in one forward); "
        f"decode: {decode_ms:.3f} ms/token (cache, {args.new_tokens[-1]} new tokens): "
        f"{decode_ms / prefill_ms:.0f}x more per token"
    )


def _bench_stop_strings(args: argparse.Namespace) -> None:
    """Decode ms/step with and without stop strings, for a batch of rows."""
    from ..generate import generate
    from ..model import GPT, GPTConfig
    from ..sampling import SamplingConfig
    from ..tokenization import CharTokenizer

    dev = args.device
    tok = CharTokenizer(list(string.ascii_letters + string.digits + " .,;:!?\n"), special_tokens=())
    longest = max(args.stop_tokens)
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=tok.vocab_size, block_size=longest + 8, n_layer=1, n_head=2, n_embd=32)
    model = GPT(config).to(dev).eval()
    prompts = [[i % tok.vocab_size] for i in range(args.stop_rows)]
    stops = ["never@", "#nope", "\x00"]  # characters outside the vocabulary: never match
    cfg = SamplingConfig()
    print(
        f"\nstop strings: {args.stop_rows} rows, 1-layer model, {tok.vocab_size}-char tokenizer, "
        f"{len(stops)} stop strings that never match"
    )
    print(f"{'new tokens':>10} {'ms/step plain':>14} {'ms/step stops':>14} {'overhead':>9}")
    generate(model, prompts, 4, cfg, stop_strings=stops, tokenizer=tok)  # warm-up
    for n in args.stop_tokens:
        t_plain, _ = _timed(dev, generate, model, prompts, n, cfg, generator=torch.Generator().manual_seed(0))
        t_stop, out = _timed(
            dev, generate, model, prompts, n, cfg, stop_strings=stops, tokenizer=tok,
            generator=torch.Generator().manual_seed(0),
        )
        assert all(len(t) == n for t in out.new_tokens)
        print(f"{n:>10} {1e3 * t_plain / n:>14.2f} {1e3 * t_stop / n:>14.2f} {t_stop / t_plain:>8.2f}x")


def _bench_speculative(new_tokens: int, dev: torch.device, ks: tuple[int, ...] = (1, 2, 4, 6)) -> None:
    """Greedy speculative decoding with the shipped target/draft pair vs the target alone."""
    from ..generate import generate
    from ..pretrained import load_pretrained
    from ..sampling import SamplingConfig
    from ..speculative import speculative_generate

    target, tok = load_pretrained("shakespeare-char")
    draft, _ = load_pretrained("shakespeare-char-draft")
    target, draft = target.to(dev), draft.to(dev)
    prompt = tok.encode("ROMEO:\nWhat light through yonder window")
    greedy = SamplingConfig(temperature=0.0)
    n = min(new_tokens, target.config.block_size - len(prompt))
    t_base, base = _timed(dev, generate, target, prompt, n, greedy)
    print(f"\nspeculative decoding, shipped shakespeare-char (target) + draft, greedy, {n} new tokens")
    print(f"  target alone: {n / t_base:.1f} tok/s")
    print(f"{'k':>4} {'acceptance':>11} {'target passes':>14} {'tok/s':>8} {'speed-up':>9}")
    for k in ks:
        t_spec, out = _timed(dev, speculative_generate, target, draft, prompt, n, num_draft_tokens=k, sampling=greedy)
        same = "" if out.tokens == base.new_tokens[0] else "  (differs from target greedy!)"
        print(
            f"{k:>4} {out.acceptance_rate:>11.2f} {out.target_forward_passes:>14} "
            f"{n / t_spec:>8.1f} {t_base / t_spec:>8.2f}x{same}"
        )
