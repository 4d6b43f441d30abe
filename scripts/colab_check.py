"""The students' path in CI: every chapter and assignment in a fresh, Colab-like environment.

Usage: python scripts/colab_check.py [--jobs 2] [--only NAME ...] [--venv DIR] [--reuse]

1. Builds the lmcourse wheel from this checkout (``pip wheel --no-deps``).
2. Creates a fresh virtual environment holding only what a Colab runtime preinstalls
   (``COLAB_PACKAGES``: torch, numpy, matplotlib, ipywidgets, ipykernel, tqdm, tokenizers,
   pandas, transformers; torch pinned to the version of the running interpreter's torch) and registers
   it as a Jupyter kernel.
3. Installs the wheel the way a student's notebook does: it runs the notebooks' setup
   cell (``scripts/new_chapter.py``'s ``SETUP_CELL``) in that kernel with
   ``LMCOURSE_INSTALL`` set to the wheel, so pip installs lmcourse and the dependencies
   that ``pyproject.toml`` declares, and nothing else. An import that pyproject forgot
   fails below.
4. Executes, with nbclient, ``--jobs`` at a time, every chapter (``book/NN_*.ipynb``, ``book/NNb_*.ipynb``) and
   every released assignment (``assignments/<hw>/<hw>.ipynb``) with its solution cells
   filled in from ``solutions/<hw>/<hw>.ipynb`` (matched by nbgrader ``grade_id``). The
   kernel does not see this checkout: no PYTHONPATH, and the working directory is the
   notebook's folder, where ``lmcourse/`` is not importable.
5. Prints a table (notebook, seconds, ok/failed, first error) and exits 1 when any cell of
   any notebook failed.

``scripts/gpu_check.py`` reuses ``run_notebooks`` to run the same notebooks on a GPU.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Optional

ROOT = pathlib.Path(__file__).resolve().parents[1]
# What a fresh Colab runtime has preinstalled, among the packages lmcourse could need.
# transformers is preinstalled on Colab too; only chapter 5c's Llama parity check uses it.
COLAB_PACKAGES = [
    "numpy", "matplotlib", "ipywidgets", "ipykernel", "tqdm", "tokenizers", "pandas", "transformers",
]
KERNEL = "lmcourse-colab"


@dataclass
class Result:
    """One executed notebook (or benchmark): how long it took and the first error, if any."""

    name: str
    seconds: float
    ok: bool
    error: str = ""


def setup_cell() -> str:
    """The notebooks' locked setup cell (the one scripts/new_chapter.py writes)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import new_chapter
    finally:
        sys.path.pop(0)
    return new_chapter.SETUP_CELL


def chapters(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    """Every chapter notebook: book/NN_*.ipynb and the in-between chapters book/NNx_*.ipynb."""
    return sorted(p for p in (root / "book").glob("[0-9][0-9]*_*.ipynb"))


def assignments(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    """Every released assignment notebook, assignments/<hw>/<hw>.ipynb."""
    return sorted(p for p in (root / "assignments").glob("*/*.ipynb") if p.stem == p.parent.name)


def _grade_id(cell) -> Optional[str]:
    return (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id")


def with_solutions(release: pathlib.Path, root: pathlib.Path = ROOT):
    """The released assignment notebook with every solution cell replaced by the instructor's.

    Solution cells are matched by nbgrader ``grade_id`` between
    ``assignments/<hw>/<hw>.ipynb`` and ``solutions/<hw>/<hw>.ipynb``; a released solution
    cell without a counterpart raises ``ValueError`` naming it.
    """
    import nbformat

    source_path = root / "solutions" / release.parent.name / release.name
    if not source_path.exists():
        raise ValueError(f"{release.relative_to(root)}: no solution notebook {source_path.relative_to(root)}")
    nb = nbformat.read(release, as_version=4)
    source = nbformat.read(source_path, as_version=4)
    solved = {
        _grade_id(c): c.source for c in source.cells
        if c.cell_type == "code" and (c.metadata.get("nbgrader") or {}).get("solution")
    }
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader") or {}
        if cell.cell_type != "code" or not meta.get("solution"):
            continue
        gid = _grade_id(cell)
        if gid not in solved:
            raise ValueError(f"{release.relative_to(root)}: solution cell {gid!r} not found in {source_path.relative_to(root)}")
        cell.source = solved[gid]
    return nb


def _first_error(nb) -> str:
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"cell {index}: {out.get('ename')}: {out.get('evalue')}"[:300]
    return ""


def _worker_init() -> None:
    """In each worker: exit (cleaning up its kernel) on SIGTERM, and die with the parent.

    A kernel watches its parent process (ipykernel's parent poller) and exits when that
    worker is gone, so no process outlives an interrupted check.
    """
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _stop_workers(pool: cf.ProcessPoolExecutor, grace: float = 10.0) -> None:
    """Cancel what has not started, SIGTERM every worker, and SIGKILL any still alive after ``grace``."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join(1.0)


def _execute(name: str, nb_json: str, cwd: str, kernel: str, timeout: int, env: dict) -> Result:
    """Run one notebook (given as JSON) in a fresh kernel; runs in a worker process."""
    import nbclient
    import nbformat

    os.environ.clear()
    os.environ.update(env)
    nb = nbformat.reads(nb_json, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name=kernel, resources={"metadata": {"path": cwd}})
    t0 = time.perf_counter()
    try:
        client.execute()
        return Result(name, time.perf_counter() - t0, True)
    except Exception as err:  # CellExecutionError, timeout, dead kernel: all are failures
        seconds = time.perf_counter() - t0
        first = _first_error(nb) or f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
        return Result(name, seconds, False, first)


def run_notebooks(jobs: list[tuple[str, object, pathlib.Path]], kernel: str, workers: int, timeout: int,
                  env: Optional[dict] = None) -> list[Result]:
    """Execute ``(name, notebook, working directory)`` jobs, ``workers`` at a time."""
    import nbformat

    env = dict(os.environ if env is None else env)
    results: dict[str, Result] = {}
    pool = cf.ProcessPoolExecutor(max_workers=workers, initializer=_worker_init)
    try:
        futures = {
            pool.submit(_execute, name, nbformat.writes(nb), str(cwd), kernel, timeout, env): name
            for name, nb, cwd in jobs
        }
        for fut in cf.as_completed(futures):
            name = futures[fut]
            try:
                res = fut.result()
            except Exception as err:
                res = Result(name, 0.0, False, f"{type(err).__name__}: {err}")
            results[name] = res
            print(f"  {'ok    ' if res.ok else 'FAILED'} {res.seconds:6.0f} s  {name}  {res.error}", flush=True)
    except BaseException:  # Ctrl-C, SIGTERM (see main), or an error here: no orphaned workers
        _stop_workers(pool)
        raise
    pool.shutdown(wait=True)
    return [results[name] for name, _, _ in jobs]


def notebook_jobs(only: Optional[list[str]] = None, root: pathlib.Path = ROOT):
    """``(jobs, broken)``: (name, notebook, cwd) for every chapter and assignment (solutions
    filled in), and a failed ``Result`` for each assignment whose solutions cannot be found."""
    import nbformat

    jobs, broken = [], []
    for path in chapters(root):
        jobs.append((f"book/{path.name}", nbformat.read(path, as_version=4), path.parent))
    for path in assignments(root):
        name = f"assignments/{path.parent.name}/{path.name}"
        try:
            jobs.append((name, with_solutions(path, root), path.parent))
        except ValueError as err:
            broken.append(Result(name, 0.0, False, str(err)))
    if only:
        jobs = [j for j in jobs if any(o in j[0] for o in only)]
        broken = [r for r in broken if any(o in r.name for o in only)]
    return jobs, broken


def table(results: list[Result], title: str = "notebook") -> str:
    """A plain-text table: name, seconds, ok/failed, first error."""
    width = max([len(title), *(len(r.name) for r in results)])
    lines = [f"{title:<{width}}  seconds  result  first error", "-" * (width + 40)]
    for r in results:
        lines.append(f"{r.name:<{width}}  {r.seconds:7.0f}  {'ok' if r.ok else 'FAILED':<6}  {r.error}")
    n_ok = sum(r.ok for r in results)
    lines.append(f"{n_ok}/{len(results)} ok, {sum(r.seconds for r in results):.0f} s summed over the rows")
    return "\n".join(lines)


def _run(cmd: list[str], **kw) -> None:
    """Run ``cmd``; its output is shown only when it fails."""
    print("+", " ".join(str(c) for c in cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        print(proc.stdout + proc.stderr, file=sys.stderr)
        raise SystemExit(f"colab_check: command failed with exit {proc.returncode}")


def build_wheel(out: pathlib.Path) -> pathlib.Path:
    """Build the lmcourse wheel from this checkout into ``out``.

    The files git tracks or would track (so uncommitted edits count, ignored files do not)
    are copied to a scratch folder first, so the build leaves no ``build/`` or
    ``*.egg-info`` in the checkout.
    """
    src = out.parent / "src"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        path = ROOT / rel
        if path.is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / rel)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)],
         cwd=src)
    wheels = sorted(out.glob("lmcourse-*.whl"))
    if not wheels:
        raise SystemExit(f"colab_check: no wheel was built in {out}")
    return wheels[-1]


def make_venv(venv: pathlib.Path, reuse: bool) -> pathlib.Path:
    """A venv with Colab's preinstalled packages only; returns its python."""
    python = venv / "bin" / "python"
    stamp = venv / "colab-packages.txt"
    torch_version = metadata.version("torch")
    wanted = "\n".join([f"torch=={torch_version}", *COLAB_PACKAGES])
    if reuse and python.exists() and stamp.exists() and stamp.read_text() == wanted:
        subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", "lmcourse"], check=False)
        return python
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(python), "-m", "pip", "install", "-q", "--no-compile", *wanted.split("\n")])
    stamp.write_text(wanted)
    return python


def register_kernel(python: pathlib.Path, where: pathlib.Path) -> dict:
    """Write a kernelspec for ``python`` under ``where``; returns the env that finds it."""
    spec = where / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "lmcourse (Colab-like)",
        "language": "python",
    }))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MPLBACKEND")}
    env["JUPYTER_PATH"] = str(where)
    return env


def install_with_setup_cell(wheel: pathlib.Path, env: dict, workdir: pathlib.Path) -> Result:
    """Run the notebooks' setup cell once with LMCOURSE_INSTALL=wheel (installs lmcourse)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    check = ("import importlib.metadata, lmcourse, pathlib\n"
             "assert 'site-packages' in lmcourse.__file__, lmcourse.__file__\n"
             "print('lmcourse', importlib.metadata.version('lmcourse'), 'from', pathlib.Path(lmcourse.__file__).parent)")
    nb.cells = [nbformat.v4.new_code_cell(setup_cell()), nbformat.v4.new_code_cell(check)]
    return run_notebooks([("setup cell (pip install the wheel)", nb, workdir)], KERNEL, 1, 900,
                         {**env, "LMCOURSE_INSTALL": str(wheel)})[0]


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="notebooks executed at the same time (default 2)")
    ap.add_argument("--only", nargs="*", help="run only notebooks whose path contains one of these")
    default_venv = pathlib.Path(tempfile.gettempdir()) / f"lmcourse-colab-venv-{hashlib.sha1(str(ROOT).encode()).hexdigest()[:8]}"
    ap.add_argument("--venv", type=pathlib.Path, default=default_venv,
                    help="where to create the Colab-like venv (default: one per checkout, in the temp folder)")
    ap.add_argument("--reuse", action="store_true", help="keep the venv of an earlier run if its packages match")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    ap.add_argument("--json", type=pathlib.Path, help="also write the table as JSON to this file")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM cleans up like Ctrl-C
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")
    t0 = time.perf_counter()
    work = pathlib.Path(tempfile.mkdtemp(prefix="lmcourse-colab-"))
    try:
        wheel = build_wheel(work / "dist")
        python = make_venv(args.venv, args.reuse)
        env = register_kernel(python, work / "jupyter")
        print(f"colab_check: wheel {wheel.name}, venv {args.venv} ready after {time.perf_counter() - t0:.0f} s", flush=True)
        install = install_with_setup_cell(wheel, env, work)
        if not install.ok:
            print(table([install]))
            return 1
        env["LMCOURSE_INSTALL"] = str(wheel)  # the notebooks' setup cells install it again (a no-op)
        jobs, broken = notebook_jobs(args.only)
        # longest first, so that the two workers finish together
        jobs.sort(key=lambda j: -len(json.dumps(j[1])))
        print(f"colab_check: executing {len(jobs)} notebooks, {args.jobs} at a time", flush=True)
        results = run_notebooks(jobs, KERNEL, args.jobs, args.timeout, env) + broken
        results.sort(key=lambda r: r.name)
        print(table([install, *results]))
        print(f"colab_check: {time.perf_counter() - t0:.0f} s in all")
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in [install, *results]], indent=1))
        return 0 if all(r.ok for r in results) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("colab_check: interrupted; workers stopped", file=sys.stderr)
        sys.exit(130)
