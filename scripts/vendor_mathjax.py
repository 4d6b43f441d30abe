"""Copy MathJax 3 from its npm package into ``third_party/mathjax`` so the book renders formulas offline.

Usage: python scripts/vendor_mathjax.py [--version 3.2.2]

``_config.yml`` copies ``third_party/`` to the root of the built book (``html_extra_path``)
and points Sphinx's ``mathjax_path`` at ``mathjax/tex-mml-chtml.js`` there, so a downloaded
copy of the book (opened from ``file://``, no network) still typesets its formulas. The
files are committed; run this script only to change the MathJax version. It needs ``npm``
(``npm pack`` downloads the package tarball from the npm registry) and copies only what the
book needs: the combined TeX/MathML-to-CHTML component, its web fonts, the TeX extensions
that it may autoload, the assistive-MathML extension and MathJax's licence.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "third_party" / "mathjax"
KEEP = ("tex-mml-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions", "a11y/assistive-mml.js")


def vendor(version: str, dest: Path = DEST) -> list[Path]:
    """Download ``mathjax@version`` with ``npm pack`` and copy the files in ``KEEP`` to ``dest``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(["npm", "pack", f"mathjax@{version}", "--silent"], cwd=tmp, check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        with tarfile.open(Path(tmp) / out) as tar:
            tar.extractall(tmp, filter="data")
        es5 = Path(tmp) / "package" / "es5"
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        shutil.copy(Path(tmp) / "package" / "LICENSE", dest / "LICENSE")
        for rel in KEEP:
            src, target = es5 / rel, dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if src.is_dir() else shutil.copy)(src, target)
        (dest / "VERSION").write_text(version + "\n")
    return sorted(p for p in dest.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="3.2.2", help="the mathjax npm version (default 3.2.2)")
    args = parser.parse_args()
    files = vendor(args.version)
    size = sum(p.stat().st_size for p in files)
    print(f"{len(files)} files, {size / 1e6:.1f} MB in {DEST.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
