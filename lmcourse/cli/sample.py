"""``python -m lmcourse sample (--ckpt PATH | --pretrained NAME) --prompt TEXT ...``.

Chapter 4 (training) ends by sampling from what was trained; chapter 6 explains the
sampling options (temperature, top-k, top-p). ``--ckpt`` takes a checkpoint file or the
folder ``train --out`` wrote (its best model, ``best.pt``, else its latest checkpoint).
The tokenizer is the one stored in the checkpoint, else the ``tokenizer.json`` next to it.
Checkpoints are read with ``weights_only=True``: a file from someone else cannot run code.
"""

from __future__ import annotations

import argparse
import os

from . import SEED_MAX, device_arg, float_in, int_in


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``sample`` sub-command."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", help="checkpoint file, or a run folder written by train --out")
    src.add_argument("--pretrained", help="name of a shipped checkpoint, e.g. shakespeare-char")
    parser.add_argument("--prompt", default="\n", help="text to continue")
    parser.add_argument("--max-new-tokens", type=int_in(1, 1_000_000), default=200)
    parser.add_argument("--temperature", type=float_in(0.0), default=1.0, help="0: greedy")
    parser.add_argument("--top-k", type=int_in(1), default=None)
    parser.add_argument("--top-p", type=float_in(0.0, 1.0, low_open=True), default=None)
    parser.add_argument("--seed", type=int_in(0, SEED_MAX), default=0)
    parser.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")


def _load(args: argparse.Namespace):
    """``(model, tokenizer)`` from ``--pretrained`` or ``--ckpt``."""
    device = None if args.device == "auto" else args.device
    if args.pretrained is not None:
        from ..pretrained import load_pretrained

        return load_pretrained(args.pretrained, device=device)
    from ..checkpoint import load_model

    model, tokenizer = load_model(args.ckpt, device=device)
    if tokenizer is None:  # a checkpoint without one: the tokenizer.json train writes
        from ..tokenization import load_tokenizer

        folder = args.ckpt if os.path.isdir(args.ckpt) else os.path.dirname(os.path.abspath(args.ckpt))
        tok_path = os.path.join(folder, "tokenizer.json")
        if os.path.islink(tok_path):
            raise ValueError(f"{tok_path!r} is a symbolic link; a run folder's tokenizer.json must be "
                             "a regular file in it")
        if not os.path.isfile(tok_path):
            raise FileNotFoundError(f"the checkpoint {args.ckpt!r} holds no tokenizer and there is "
                                    f"no tokenizer.json next to it")
        try:
            tokenizer = load_tokenizer(tok_path)
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{tok_path!r} is not a valid tokenizer file: {e}") from None
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} ids but the model {model.config.vocab_size}")
    return model, tokenizer


def run(args: argparse.Namespace) -> int:
    """Print the prompt followed by its sampled continuation."""
    import torch

    from ..generate import generate
    from ..sampling import SamplingConfig

    model, tokenizer = _load(args)
    sampling = SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    prompt_ids = tokenizer.encode(args.prompt, allow_special=False)
    if not prompt_ids:
        raise ValueError("--prompt must not be empty")
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(args.seed)
    out = generate(model, prompt_ids, args.max_new_tokens, sampling=sampling, generator=generator)
    print(tokenizer.decode(out.sequences[0]))
    return 0
