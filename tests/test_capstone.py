"""The capstone (hw7_capstone) is graded by integration: it passes with the solutions and
loses points when any one piece is a stub or wrong.

Each case is a submission: the official answers, with one answer cell replaced by its
release stub (``raise NotImplementedError``) or by a wrong variant of one piece. It is
graded for real (scripts/grade.py, in the bubblewrap sandbox), and the score must drop,
both in that piece's own test cell and, for the pieces the run uses, in ``test_run``.
About 10 to 40 s per case on 2 CPUs; the solution's full marks are checked by
tests/test_grading.py (test_solution_full_marks_release_zero). The pieces a student pastes
from HW3b and HW4 are those homework's own answer cells, injected unchanged
(``### SOLUTION FROM``), and the locked cells they need are those homework's too.
"""

from __future__ import annotations

import ast
import os
import sys

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import build_homework  # noqa: E402

from grader.notebook import strip_solution_markers  # noqa: E402
from grader.sandbox import bwrap_available  # noqa: E402
from grader.submission import grade_notebook  # noqa: E402

HW = "hw7_capstone"
SOURCE = os.path.join(ROOT, "solutions", HW, f"{HW}.ipynb")
RELEASE = os.path.join(ROOT, "assignments", HW, f"{HW}.ipynb")
needs_bwrap = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap missing: run scripts/install_bubblewrap.sh")

# answer cell -> the test cells that must lose points when it is a stub
STUBS = {
    "tokenizer": ("test_tokenizer", "test_run"),
    "gpt": ("test_model", "test_training", "test_run"),
    "training": ("test_training", "test_run"),
    "train": ("test_training", "test_run"),
    "sampler": ("test_sampler_and_cache", "test_run"),
    "cache": ("test_sampler_and_cache", "test_run"),
    "run": ("test_run",),
}

# one wrong piece in an otherwise correct answer cell: (cell, old text, new text, tests that lose points)
WRONG = {
    "adamw-without-bias-correction": (
        "training", "denom = (v / (1 - beta2**t)).sqrt_().add_(eps)  # sqrt(v_hat) + eps\n"
        "                p.addcdiv_(m, denom, value=-lr / (1 - beta1**t))",
        "p.addcdiv_(m, v.sqrt().add_(eps), value=-lr)", ("test_training",)),
    "no-warm-up": ("training", "    if step < warmup:\n        return lr * (step + 1) / warmup\n", "", ("test_training",)),
    "clipping-never-clips": ("training", "    if scale < 1:\n", "    if scale < 0:\n", ("test_training",)),
    "loop-ignores-the-schedule": ("training", "                group[\"lr\"] = lr_schedule(step)\n",
                                  "                pass\n", ("test_training",)),
    "glue-decays-the-embeddings": ("train", "id(p) not in embeddings]\n    no_decay", "True]\n    no_decay",
                                   ("test_training",)),
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
    return {r.grade_id: (r.score, r.points) for r in grade_notebook(SOURCE, path, timeout=60)}


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
    source = strip_solution_markers(_answers(nbformat.read(SOURCE, as_version=4))[cell].source)
    scores = _scores(_submission(tmp_path, {cell: source.replace(old, new)}))
    for gid in losing:
        got, full = scores[gid]
        assert got < full, f"{case}: {gid} still gets {got:g}/{full:g}"


# answer cells of the capstone made only of other homework's answer cells, and the locked
# cells they depend on: (capstone cell, homework, that homework's cells)
PASTED = {
    "gpt": ("hw3b_transformer", ("layernorm", "mlp", "attention", "block", "gpt")),
    "training": ("hw4_training", ("batch_at", "masked_cross_entropy", "adamw", "lr_at", "clip_grad_norm",
                                  "train_step", "train_loop")),
}


def _cells_by_id(nb):
    return {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}


def _definitions(source):
    """name -> the source of each top-level function and class of ``source``."""
    tree = ast.parse(source)
    return {n.name: ast.get_source_segment(source, n) for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


@pytest.mark.parametrize("cell", sorted(PASTED))
def test_pasted_pieces_are_the_other_homework_answers(cell):
    """A student who pastes their HW3b GPT and their HW4 pieces pastes exactly these cells:
    the capstone's solution is the other homework's solution cells, unchanged."""
    hw, ids = PASTED[cell]
    ours = _cells_by_id(build_homework.notebook(HW))[cell].source
    theirs = _cells_by_id(build_homework.notebook(hw))
    mine = _definitions(ours)
    for gid in ids:
        for name, src in _definitions(theirs[gid].source).items():
            assert mine.get(name) == src, f"{cell}: {name} differs from {hw}'s answer cell {gid}"


def test_locked_dependencies_are_the_other_homework_cells():
    """RefModule and load_by_name are HW3b's (its first cell), logits_of is HW4's."""
    ours = {}
    for cell in build_homework.notebook(HW).cells:
        if cell.cell_type == "code" and not cell.metadata.get("nbgrader", {}).get("solution"):
            try:
                ours.update(_definitions(cell.source))
            except SyntaxError:  # the setup cell's %pip line
                continue
    hw3b = _definitions(_cells_by_id(build_homework.notebook("hw3b_transformer"))["imports"].source)
    hw4 = _definitions(_cells_by_id(build_homework.notebook("hw4_training"))["imports"].source)
    for name, src in (("RefModule", hw3b["RefModule"]), ("load_by_name", hw3b["load_by_name"]),
                      ("logits_of", hw4["logits_of"])):
        assert ours.get(name) == src, f"the capstone's locked {name} differs from its homework's"
