"""``python -m lmcourse sample (--ckpt PATH | --pretrained NAME) --prompt TEXT ...``.

Chapter 4 (training) ends by sampling from what was trained; chapter 6 explains the
sampling options (temperature, top-k, top-p). ``--ckpt`` takes a trainer checkpoint or a
``GPT.save`` file; its tokenizer is the ``tokenizer.json`` next to it.
"""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``sample`` sub-command."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", help="checkpoint file (tokenizer.json must sit next to it)")
    src.add_argument("--pretrained", help="name of a shipped checkpoint, e.g. shakespeare-char")
    parser.add_argument("--prompt", default="\n", help="text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: cpu)")


def run(args: argparse.Namespace) -> int:
    """Print the prompt followed by its sampled continuation."""
    import torch

    from ..generate import generate
    from ..model import GPT
    from ..sampling import SamplingConfig

    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if args.pretrained is not None:
        from ..pretrained import load_pretrained

        model, tokenizer = load_pretrained(args.pretrained, device=args.device)
    else:
        from ..tokenization import load_tokenizer

        tok_path = os.path.join(os.path.dirname(os.path.abspath(args.ckpt)), "tokenizer.json")
        if not os.path.isfile(tok_path):
            raise FileNotFoundError(f"no tokenizer.json next to {args.ckpt!r}")
        tokenizer = load_tokenizer(tok_path)
        model = GPT.load(args.ckpt).to(args.device or "cpu").eval()
    sampling = SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    prompt_ids = tokenizer.encode(args.prompt, allow_special=False)
    if not prompt_ids:
        raise ValueError("--prompt must not be empty")
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(args.seed)
    out = generate(model, prompt_ids, args.max_new_tokens, sampling=sampling, generator=generator)
    print(tokenizer.decode(out.sequences[0]))
    return 0
