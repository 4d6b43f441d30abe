"""Build the whole book but execute only some chapters: a quick check while writing one.

Usage: python scripts/build_pages.py [--no-execute] book/06_generation_loop [book/07_kv_cache ...]

Every toc page is built (so cross-references, citations and the glossary resolve), but
only the named notebooks are executed; the others are rendered from their committed,
output-free source. Output goes to /tmp/lmcourse_pages/<checkout>-<first page>/_build/html. Prints the
execution time of each named page and every Sphinx warning about the named pages, and
exits 1 when there is one (the same rules as `make book`: -W -n). With ``--no-execute``
nothing runs: a check of the pages' markup only (glossary terms, links, citations), where
the {eval} roles cannot be evaluated (no kernel) and their warnings are not reported.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The warning of an {eval} role on a page that is not executed.
NO_KERNEL = re.compile(r"does not have a running kernel|\[mystnb\.eval\]")


def main(pages: list[str], execute: bool = True) -> int:
    """Build with only ``pages`` executed; return 0 when none of them has a warning."""
    pages = [p.removesuffix(".ipynb").removesuffix(".md") for p in pages]
    with open(os.path.join(ROOT, "_config.yml")) as f:
        cfg = yaml.safe_load(f)
    book = os.path.join(ROOT, "book")
    others = [
        f"book/{n}" for n in sorted(os.listdir(book))
        if n.endswith(".ipynb") and (f"book/{n[:-6]}" not in pages or not execute)
    ]
    cfg["execute"]["exclude_patterns"] = others
    # one folder per checkout and first page, so that two worktrees never share a build
    out = os.path.join(tempfile.gettempdir(), "lmcourse_pages", f"{os.path.basename(ROOT)}-{os.path.basename(pages[0])}")
    os.makedirs(out, exist_ok=True)
    cfg_path = os.path.join(out, "_config.yml")
    with open(cfg_path, "w") as f:
        yaml.safe_dump(cfg, f)
    jb = os.path.join(os.path.dirname(sys.executable), "jupyter-book")
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # Agg here would hide inline figures
    t0 = time.time()
    proc = subprocess.run(
        [jb, "build", ROOT, "--config", cfg_path, "--path-output", out, "-W", "-n", "--keep-going", "--all"],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )
    log = proc.stdout + proc.stderr
    with open(os.path.join(out, "build.log"), "w") as f:
        f.write(log)
    print(f"build: {time.time() - t0:.0f} s (exit {proc.returncode}); html in {out}/_build/html, log in {out}/build.log")
    for line in log.splitlines():
        if "Executed notebook" in line or ("Execution Failed" in line):
            print(line.strip())
    # autodoc warnings name the module's file ("lmcourse/x.py:docstring of ..."), not the page
    names = [*pages, *(["lmcourse/"] if "book/api" in pages else [])]
    bad = [
        line for line in log.splitlines()
        if ("WARNING" in line or "ERROR" in line or "Error" in line) and any(p in line for p in names)
        and (execute or not NO_KERNEL.search(line))
    ]
    for line in bad:
        print(line)
    if not bad:
        # Unexecuted pages warn that their {eval} roles have no kernel; expected here.
        print(f"no warnings about {', '.join(pages)}")
    return 1 if bad else 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--no-execute"]
    if not args:
        sys.exit(__doc__)
    sys.exit(main(args, execute="--no-execute" not in sys.argv))
