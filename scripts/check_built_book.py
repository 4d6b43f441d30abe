"""Checks on the built HTML book (_build/html), to run after `make book`.

Usage: python scripts/check_built_book.py [path/to/_build/html]

Exits non-zero, listing every problem, when:
- a page of _toc.yml has no HTML file;
- a notebook page has no "Open in Colab" launch link;
- a chapter that should show a figure has no image;
- a page shows an error output or a Python traceback;
- a page shows an unresolved ``{eval}`` (or old ``{glue}``) role as text.
tests/test_book.py runs the same checks when a built tree exists.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"

# Chapters whose syllabus row asks for a figure or an explorer (drawn statically).
FIGURE_CHAPTERS = [
    "book/01_chain_rule",
    "book/02_tokenisation",
    "book/03_logits_softmax",
    "book/04_training",
    "book/05_causal_masking",
    "book/06_generation_loop",
    "book/07_kv_cache",
    "book/08_decoding",
    "book/09_exposure_bias",
    "book/10_context_length",
    "book/11_fast_inference",
    "book/12_scaling",
    "book/13_beyond_text",
    "book/14_api_to_tokens",
]

ERROR_MARKERS = [
    "Traceback (most recent call last)",
    'class="output traceback',
    "cell_output traceback",
    "ipythontb",
]
# A role that reached the HTML as text instead of its value (outside code blocks).
UNRESOLVED_ROLE = re.compile(r"\{(eval|glue)(:\w+)?\}`")
CODE = re.compile(r"<(pre|code)\b.*?</\1>", re.S)
IMG = re.compile(r"<img[^>]+src=\"[^\"]*_images/[^\"]+\"")


def toc_files(root: pathlib.Path = ROOT) -> list[str]:
    """Every file named in _toc.yml (root first), without extension."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("chapters"))
            walk(e.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [f.removesuffix(".md").removesuffix(".ipynb") for f in files]


def is_notebook(page: str, root: pathlib.Path = ROOT) -> bool:
    return (root / f"{page}.ipynb").exists()


def is_placeholder(page: str, root: pathlib.Path = ROOT) -> bool:
    """A chapter notebook not written yet: nothing but its title and the setup cell."""
    path = root / f"{page}.ipynb"
    if not path.exists():
        return False
    cells = json.loads(path.read_text())["cells"]
    return sum(c["cell_type"] == "code" for c in cells) <= 1


def is_stale(page: str, html: pathlib.Path = HTML, root: pathlib.Path = ROOT) -> bool:
    """The page's source changed after its HTML was built."""
    src = [p for p in (root / f"{page}.ipynb", root / f"{page}.md") if p.exists()]
    out = html / f"{page}.html"
    return bool(src) and out.exists() and src[0].stat().st_mtime > out.stat().st_mtime


def check(html: pathlib.Path = HTML, root: pathlib.Path = ROOT) -> list[str]:
    """Return a list of problems (empty when the built book is fine)."""
    problems: list[str] = []
    for page in toc_files(root):
        path = html / f"{page}.html"
        if not path.exists():
            problems.append(f"{page}: no HTML file {path.relative_to(html)}")
            continue
        text = path.read_text(errors="replace")
        if is_notebook(page, root) and "colab.research.google.com" not in text:
            problems.append(f"{page}: no Open-in-Colab launch link")
        if page in FIGURE_CHAPTERS and not is_placeholder(page, root) and not IMG.search(text):
            problems.append(f"{page}: no figure (img) in the page")
        role = UNRESOLVED_ROLE.search(CODE.sub("", text))
        if role:
            problems.append(f"{page}: unresolved role in the page ({role.group(0)!r})")
        for marker in ERROR_MARKERS:
            if marker in text:
                problems.append(f"{page}: error output in the page ({marker!r})")
                break
    return problems


def main(argv: list[str]) -> int:
    html = pathlib.Path(argv[1]) if len(argv) > 1 else HTML
    if not html.is_dir():
        print(f"check_built_book: {html} does not exist; run `make book` first", file=sys.stderr)
        return 2
    problems = check(html)
    for p in problems:
        print(f"check_built_book: {p}", file=sys.stderr)
    print(f"check_built_book: {len(toc_files())} pages checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
