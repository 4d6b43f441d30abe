"""The GPU path: every chapter and assignment on a CUDA device, then the benchmarks.

Usage: python scripts/gpu_check.py [--device cuda] [--workers 4] [--only NAME ...]
                                   [--no-bench] [--json gpu_check.json]

Run it on a CUDA machine (never in CI): it executes every chapter and every released
assignment (solution cells filled in from solutions/, as scripts/colab_check.py does) with
``LMCOURSE_DEVICE`` set, ``--workers`` notebooks at a time in this Python environment and
this checkout; then the device-contract tests (``tests/test_devices.py``, whose CUDA test
runs only here) and ``python -m lmcourse bench-train`` / ``bench-generate`` (with the
options their ``--help`` offers: a GPU preset when one exists). It prints one table
(notebook or benchmark, seconds, ok/failed with the first error), writes it as JSON, and
exits 1 when anything failed.

``--device cpu --only 00_introduction`` tries the script itself on a laptop.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from typing import Optional

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from colab_check import ROOT, Result, notebook_jobs, run_notebooks, table  # noqa: E402

KERNEL = "lmcourse-gpu-check"


def kernel_env(device: str, where: pathlib.Path) -> dict:
    """A kernelspec for this interpreter (importing this checkout); returns the env to use."""
    spec = where / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "lmcourse (gpu check)",
        "language": "python",
    }))
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env.update(JUPYTER_PATH=str(where), LMCOURSE_DEVICE=device,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return env


def _help(command: str, env: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", "lmcourse", command, "--help"], capture_output=True,
                          text=True, env=env, cwd=ROOT)
    return proc.stdout + proc.stderr


def bench_commands(device: str, env: dict) -> list[tuple[str, list[str]]]:
    """The benchmark command lines, built from what each sub-command's --help offers."""
    commands = []
    train_help = _help("bench-train", env)
    if "usage" in train_help:
        presets = re.findall(r"[\w.-]+", (re.search(r"--preset \{([^}]*)\}", train_help) or [None, ""])[1])
        kind = "gpu" if device.startswith("cuda") else "cpu"
        for name in [p for p in presets if p.startswith(kind)][:2] or presets[:1]:
            args = ["bench-train", "--preset", name]
            if "--device" in train_help:
                args += ["--device", device]
            if "--steps" in train_help and kind == "cpu":
                args += ["--steps", "5"]
            commands.append((f"bench-train {name}", args))
    gen_help = _help("bench-generate", env)
    if "usage" in gen_help:
        args = ["bench-generate"]
        if "--device" in gen_help:
            args += ["--device", device]
        if not device.startswith("cuda"):  # the quick version, to check the script on a CPU
            if "--new-tokens" in gen_help:
                args += ["--new-tokens", "32"]
            if "--no-hf" in gen_help:
                args += ["--no-hf"]
            if "--spec-tokens" in gen_help:
                args += ["--spec-tokens", "16"]
        commands.append(("bench-generate", args))
    return commands


def run_command(name: str, argv: list[str], env: dict, timeout: int) -> tuple[Result, str]:
    """Run one command; a non-zero exit or a timeout is a failure with the last error line."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Result(name, time.perf_counter() - t0, False, f"timed out after {timeout} s"), ""
    seconds = time.perf_counter() - t0
    output = proc.stdout + proc.stderr
    print(f"--- {name} ({seconds:.0f} s)\n{proc.stdout.strip()}", flush=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()] or [f"exit {proc.returncode}"]
        return Result(name, seconds, False, lines[-1][:300]), output
    return Result(name, seconds, True), output


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="LMCOURSE_DEVICE for the notebooks (default cuda)")
    ap.add_argument("--workers", type=int, default=4, help="notebooks executed at the same time (default 4)")
    ap.add_argument("--only", nargs="*", help="run only notebooks whose path contains one of these")
    ap.add_argument("--no-bench", action="store_true", help="skip the tests and benchmarks")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell and per benchmark (default 600)")
    ap.add_argument("--json", type=pathlib.Path, default=pathlib.Path("gpu_check.json"))
    args = ap.parse_args(argv)
    if args.workers < 1:
        ap.error(f"--workers must be >= 1, got {args.workers}")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("gpu_check: CUDA is not available here (use --device cpu to try the script)", file=sys.stderr)
            return 2
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lmcourse-gpu-") as tmp:
        env = kernel_env(args.device, pathlib.Path(tmp))
        jobs, broken = notebook_jobs(args.only)
        jobs.sort(key=lambda j: -len(json.dumps(j[1])))
        print(f"gpu_check: {len(jobs)} notebooks on {args.device}, {args.workers} at a time", flush=True)
        results = run_notebooks(jobs, KERNEL, args.workers, args.timeout, env) + broken
        results.sort(key=lambda r: r.name)
        outputs = {}
        if not args.no_bench:
            checks = [("pytest tests/test_devices.py", [sys.executable, "-m", "pytest", "-q", "tests/test_devices.py"])]
            checks += [(name, [sys.executable, "-m", "lmcourse", *cmd]) for name, cmd in bench_commands(args.device, env)]
            for name, command in checks:
                res, outputs[name] = run_command(name, command, env, args.timeout)
                results.append(res)
    print(table(results, title="notebook / benchmark"))
    print(f"gpu_check: {time.perf_counter() - t0:.0f} s in all")
    args.json.write_text(json.dumps({
        "device": args.device,
        "results": [asdict(r) for r in results],
        "benchmark_output": outputs,
    }, indent=1))
    print(f"gpu_check: table written to {args.json}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
