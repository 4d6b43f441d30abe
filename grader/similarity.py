"""The similarity report: answers close to lmcourse's own code or to another student's.

``lmcourse`` is installed on every student's machine, so its source is one
``inspect.getsource`` away; no sandbox can stop a pasted copy. This report flags such
answers for the instructor to review. It never changes a score.

An answer is compared as a stream of normalised tokens (Python's ``tokenize``): names,
strings and numbers become placeholders; comments, docstrings, blank lines and
indentation are dropped. So renaming variables, reformatting or rewording comments does
not hide a copy, while a solution written independently, even of the same algorithm,
rarely shares long runs of tokens. Two measures over the sets of :data:`SHINGLE`-token
runs (shingles):

- against lmcourse: for each function or class the student defines, the share of its
  shingles found in one function or class of the lmcourse package (containment);
- between students: for each answer cell, the Jaccard index of two students' shingles.

Only definitions of at least :data:`MIN_TOKENS` tokens are compared (short answers such
as ``return logits / T`` look alike for everyone).
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import io
import keyword
import os
import tokenize
from typing import Iterable, Optional

SHINGLE = 6
MIN_TOKENS = 40
REFERENCE_THRESHOLD = 0.8  # containment in one lmcourse definition
PEER_THRESHOLD = 0.85      # Jaccard between two students' answer cells

_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENCODING, tokenize.ENDMARKER}


@dataclasses.dataclass
class Flag:
    student: str
    cell: str
    definition: str
    like: str          # "lmcourse.<module>.<name>" or "student <id>"
    similarity: float


def normalised_tokens(source: str) -> list[str]:
    """The token stream of ``source`` with names, literals, comments and layout stripped."""
    out: list[str] = []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(_without_docstrings(source)).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return out
    for tok in tokens:
        if tok.type in _SKIP:
            continue
        if tok.type == tokenize.NAME:
            out.append(tok.string if keyword.iskeyword(tok.string) else "N")
        elif tok.type == tokenize.STRING:
            out.append("S")
        elif tok.type == tokenize.NUMBER:
            out.append("0")
        elif tok.type == tokenize.OP:
            out.append(tok.string)
        else:
            out.append(tok.type == tokenize.ERRORTOKEN and "?" or tok.string)
    return out


def _without_docstrings(source: str) -> str:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    lines = source.splitlines(keepends=True)
    drop: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) \
                    and isinstance(first.value.value, str):
                drop.update(range(first.lineno - 1, first.end_lineno))
    return "".join("\n" if i in drop else line for i, line in enumerate(lines))


def shingles(tokens: list[str], k: int = SHINGLE) -> set[tuple]:
    """The set of runs of ``k`` consecutive tokens."""
    return {tuple(tokens[i:i + k]) for i in range(max(0, len(tokens) - k + 1))}


def definitions(source: str) -> list[tuple[str, str]]:
    """``(name, source)`` of each top-level function and class (methods included in theirs)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            seg = ast.get_source_segment(source, node)
            if seg:
                out.append((node.name, seg))
    return out


class ReferenceIndex:
    """The shingles of every function and class (and method) of the lmcourse package."""

    def __init__(self, root: Optional[str] = None):
        if root is None:
            import lmcourse

            root = os.path.dirname(lmcourse.__file__)
        self.sets: list[tuple[str, set]] = []
        self.index: dict[tuple, list[int]] = {}
        for dirpath, _, files in os.walk(root):
            for f in sorted(files):
                if not f.endswith(".py"):
                    continue
                path = os.path.join(dirpath, f)
                mod = "lmcourse." + os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                with open(path, encoding="utf-8") as fh:
                    src = fh.read()
                for name, seg in self._all_definitions(src):
                    toks = normalised_tokens(seg)
                    if len(toks) >= MIN_TOKENS // 2:
                        self._add(f"{mod}.{name}", shingles(toks))

    @staticmethod
    def _all_definitions(src: str) -> Iterable[tuple[str, str]]:
        try:
            tree = ast.parse(src)
        except SyntaxError:
            return
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                seg = ast.get_source_segment(src, node)
                if seg:
                    yield node.name, seg

    def _add(self, name: str, sh: set) -> None:
        i = len(self.sets)
        self.sets.append((name, sh))
        for s in sh:
            self.index.setdefault(s, []).append(i)

    def closest(self, sh: set) -> tuple[str, float]:
        """The lmcourse definition holding the largest share of ``sh``, and that share."""
        if not sh:
            return "", 0.0
        counts: dict[int, int] = {}
        for s in sh:
            for i in self.index.get(s, ()):
                counts[i] = counts.get(i, 0) + 1
        if not counts:
            return "", 0.0
        i, n = max(counts.items(), key=lambda kv: kv[1])
        return self.sets[i][0], n / len(sh)


def report(answers: dict[str, dict[str, str]], reference: Optional[ReferenceIndex] = None,
           ignore: Optional[dict[str, str]] = None) -> list[Flag]:
    """Flags for ``answers`` (``{student: {answer grade_id: source}}``).

    ``ignore``: ``{grade_id: source}`` of code every student starts from (the release's
    stubs); an answer equal to it is never compared.
    """
    reference = reference or ReferenceIndex()
    ignore = ignore or {}
    flags: list[Flag] = []
    cells: dict[str, dict[str, set]] = {}
    for student, cellmap in sorted(answers.items()):
        for gid, src in sorted(cellmap.items()):
            if src.strip() == ignore.get(gid, "").strip():
                continue
            for name, seg in definitions(src):
                toks = normalised_tokens(seg)
                if len(toks) < MIN_TOKENS:
                    continue
                like, share = reference.closest(shingles(toks))
                if share >= REFERENCE_THRESHOLD:
                    flags.append(Flag(student, gid, name, like, round(share, 3)))
            toks = normalised_tokens(src)
            if len(toks) >= MIN_TOKENS:
                cells.setdefault(gid, {})[student] = shingles(toks)
    for gid, by_student in sorted(cells.items()):
        names = sorted(by_student)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                sa, sb = by_student[a], by_student[b]
                j = len(sa & sb) / len(sa | sb)
                if j >= PEER_THRESHOLD:
                    flags.append(Flag(a, gid, "(whole cell)", f"student {b}", round(j, 3)))
    return flags


def class_report(course: str, hw: str, students: list[str]) -> list[Flag]:
    """The report for the graded submissions of ``hw`` in the course folder."""
    import nbformat

    from grader.notebook import answer_sources, read_submission

    sub_root = os.path.join(course, "submitted")
    answers = {}
    for s in students:
        try:
            answers[s] = answer_sources(read_submission(os.path.join(sub_root, s, hw, f"{hw}.ipynb"), sub_root))
        except Exception:  # noqa: BLE001 - refused or unreadable: nothing to compare
            continue
    release = nbformat.read(os.path.join(course, "assignments", hw, f"{hw}.ipynb"), as_version=4)
    return report(answers, ignore=answer_sources(release))


def write_csv(flags: list[Flag], path: str) -> None:
    """One row per flag: student, cell, definition, like, similarity."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "cell", "definition", "like", "similarity"])
        for fl in flags:
            w.writerow([fl.student, fl.cell, fl.definition, fl.like, f"{fl.similarity:.3f}"])
