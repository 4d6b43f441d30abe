"""The capstone (hw7_capstone) is graded by integration: it passes with the solutions and
loses points when any one piece is a stub or wrong.

Each case is a submission: the official answers, with one answer cell replaced by its
release stub (``raise NotImplementedError``) or by a wrong variant of one piece. It is
graded for real (scripts/grade.py, in the bubblewrap sandbox), and the score must drop,
both in that piece's own test cell and, for the pieces the run uses, in ``test_run``.
About 10 to 40 s per case on 2 CPUs; the solution's full marks are checked by
tests/test_grading.py (test_solution_full_marks_release_zero).
"""

from __future__ import annotations

import os
import sys

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import grade  # noqa: E402

HW = "hw7_capstone"
SOURCE = os.path.join(ROOT, "solutions", HW, f"{HW}.ipynb")
RELEASE = os.path.join(ROOT, "assignments", HW, f"{HW}.ipynb")
needs_bwrap = pytest.mark.skipif(not grade.bwrap_available(), reason="bubblewrap missing: run scripts/install_bubblewrap.sh")

# answer cell -> the test cells that must lose points when it is a stub
STUBS = {
    "tokenizer": ("test_tokenizer", "test_run"),
    "gpt": ("test_model", "test_training", "test_run"),
    "training": ("test_training", "test_run"),
    "sampler": ("test_sampler_and_cache", "test_run"),
    "cache": ("test_sampler_and_cache", "test_run"),
    "run": ("test_run",),
}

# one wrong piece in an otherwise correct answer cell: (cell, old text, new text, tests that lose points)
WRONG = {
    "adamw-without-bias-correction": (
        "training", "denom = (v / (1 - b2 ** t)).sqrt().add_(eps)\n                p.addcdiv_(m, denom, value=-lr / (1 - b1 ** t))",
        "p.addcdiv_(m, v.sqrt().add_(eps), value=-lr)", ("test_training",)),
    "no-warm-up": ("training", "    if step < warmup:\n        return lr * (step + 1) / warmup\n", "", ("test_training",)),
    "top-k-keeps-one-more": ("sampler", "kth = logits.sort(dim=-1, descending=True).values[..., k - 1 : k]",
                             "kth = logits.sort(dim=-1, descending=True).values[..., k : k + 1]",
                             ("test_sampler_and_cache",)),  # the run's 24 draws may never reach the 21st token
    "cache-forgets-the-past": ("cache", "            k = torch.cat([cache[\"k\"][i], k], dim=2)  # (1, Hk, L + T, D)\n"
                               "            v = torch.cat([cache[\"v\"][i], v], dim=2)\n",
                               "            pass\n", ("test_sampler_and_cache", "test_run")),
}


def _answers(nb):
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}


def _submission(tmp_path, replace: dict) -> str:
    """The solution with some answer cells' sources replaced; returns the notebook's path."""
    nb = nbformat.read(SOURCE, as_version=4)
    for gid, source in replace.items():
        _answers(nb)[gid].source = source
    path = str(tmp_path / f"{HW}.ipynb")
    nbformat.write(nb, path)
    return path


def _scores(path) -> dict:
    return {r.grade_id: (r.score, r.points) for r in grade.grade_notebook(SOURCE, path, timeout=60)}


def test_every_piece_has_a_stub_case():
    answers = set(_answers(nbformat.read(RELEASE, as_version=4)))
    assert answers == set(STUBS), "every answer cell of the capstone needs a stub case"
    solution = _answers(nbformat.read(SOURCE, as_version=4))
    for cell, old, _, _ in WRONG.values():
        assert old in solution[cell].source, f"the wrong variant's text is no longer in the {cell} cell"


@needs_bwrap
@pytest.mark.timeout(600)
@pytest.mark.parametrize("piece", sorted(STUBS))
def test_a_stubbed_piece_loses_points(piece, tmp_path):
    stub = _answers(nbformat.read(RELEASE, as_version=4))[piece].source
    scores = _scores(_submission(tmp_path, {piece: stub}))
    for gid in STUBS[piece]:
        got, full = scores[gid]
        assert got < full, f"with {piece} a stub, {gid} still gets {got:g}/{full:g}"
    assert sum(s for s, _ in scores.values()) < sum(p for _, p in scores.values())


@needs_bwrap
@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", sorted(WRONG))
def test_a_wrong_piece_loses_points(case, tmp_path):
    cell, old, new, losing = WRONG[case]
    source = grade.strip_solution_markers(_answers(nbformat.read(SOURCE, as_version=4))[cell].source)
    scores = _scores(_submission(tmp_path, {cell: source.replace(old, new)}))
    for gid in losing:
        got, full = scores[gid]
        assert got < full, f"{case}: {gid} still gets {got:g}/{full:g}"
