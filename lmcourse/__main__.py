"""Command line: ``python -m lmcourse {train,sample,bench-train,bench-generate} ...``.

Each sub-command lives in ``lmcourse/cli/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``. Bad arguments give a usage error (exit 2), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

COMMANDS = {
    "train": ("lmcourse.cli.train", "train a model from a preset (torchrun for several GPUs)"),
    "sample": ("lmcourse.cli.sample", "generate text from a checkpoint"),
    "bench-train": ("lmcourse.cli.bench_train", "benchmark training speed of a preset"),
    "bench-generate": ("lmcourse.cli.bench_generate", "benchmark generation speed (KV cache, HF, speculative)"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per available command."""
    parser = argparse.ArgumentParser(prog="python -m lmcourse", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m lmcourse`` and of the ``lmcourse`` script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        parser.exit(2, f"{parser.prog} {args.command}: error: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
