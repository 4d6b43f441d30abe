"""Command line: ``python -m lmcourse {train,sample,bench-train,bench-generate,bench-bpe} ...``.

Each sub-command lives in ``lmcourse/cli/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``. Bad arguments give a usage error naming the option (exit 2) and
failures while running (a full disk, a corrupt checkpoint, too little memory) a one-line
error (exit 1); never a traceback (set ``LMCOURSE_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

COMMANDS = {
    "train": ("lmcourse.cli.train", "train a model from a preset (torchrun for several GPUs)"),
    "sample": ("lmcourse.cli.sample", "generate text from a checkpoint"),
    "bench-train": ("lmcourse.cli.bench_train", "benchmark training speed: the Trainer vs a plain loop"),
    "bench-generate": ("lmcourse.cli.bench_generate", "benchmark generation speed (KV cache, HF, speculative)"),
    "bench-bpe": ("lmcourse.cli.bench_bpe", "benchmark BPE training: the plain loop vs the incremental trainer"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per available command."""
    parser = argparse.ArgumentParser(prog="python -m lmcourse", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:  # a dependency missing or broken: say so when it is asked for
            sub.add_parser(name, help=f"{help_text} (unavailable: {e})")
            parser.set_defaults(**{f"_missing_{name}": e})
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _parser=p)
    return parser


# How to install what a command may miss (the import name -> the pip package)
_INSTALL = {"torch": "pip install torch (or see https://pytorch.org/get-started/locally/)",
            "tokenizers": "pip install tokenizers", "regex": "pip install regex",
            "tqdm": "pip install tqdm", "numpy": "pip install numpy"}


def _missing_dependency(command: str, error: ImportError) -> str:
    """One line saying which dependency ``command`` misses and how to install it."""
    missing = (error.name or "").split(".")[0]
    how = _INSTALL.get(missing, f"pip install {missing}" if missing else "reinstall lmcourse")
    if isinstance(error, ModuleNotFoundError) and missing:
        return f"python -m lmcourse {command}: {missing!r} is not installed; install it with: {how}"
    return f"python -m lmcourse {command}: a dependency cannot be imported ({error}); try: {how}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m lmcourse`` and of the ``lmcourse`` script."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    error = parser.get_default(f"_missing_{argv[0]}") if argv else None
    if error is not None:  # the command exists but a dependency of it does not import
        parser.exit(1, _missing_dependency(argv[0], error) + "\n")
    try:
        args = parser.parse_args(argv)
    except ImportError as e:  # an argument type that needs a dependency (--device needs torch)
        parser.exit(1, _missing_dependency(argv[0] if argv else "", e) + "\n")
    args._argv = argv  # recorded in the metadata of what train exports
    sub = args._parser
    if os.environ.get("LMCOURSE_DEBUG"):
        return int(args._run(args) or 0)
    try:
        return int(args._run(args) or 0)
    except ImportError as e:  # a dependency imported only when the command runs
        sub.exit(1, _missing_dependency(args.command, e) + "\n")
    except (ValueError, TypeError, FileNotFoundError) as e:  # what the user asked for is wrong
        sub.exit(2, f"{sub.prog}: error: {e}\n")
    except (OSError, MemoryError, RuntimeError) as e:  # full disk, out of memory, ...
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        sub.exit(1, f"{sub.prog}: failed: {type(e).__name__}: {message[:500]}\n")
    except KeyboardInterrupt:
        sub.exit(130, f"{sub.prog}: interrupted\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
