"""lmcourse.grading helpers, the committed release, and the real nbgrader grading pipeline.

The pipeline test (test_nbgrader_pipeline) runs nbgrader for real: a few minutes on 2 CPUs.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings

import nbformat
import pytest
import torch

import lmcourse.model as ref
from lmcourse.grading import (
    ReferenceUsedError,
    assert_no_reference_import,
    check_float,
    check_tensor,
    forbid,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import build_homework  # noqa: E402
import grade_demo  # noqa: E402
import release_assignments  # noqa: E402

HOMEWORK = release_assignments.homeworks(ROOT)


# ---- helpers ---------------------------------------------------------------------------


def test_forbid_blocks_and_restores():
    original = ref.causal_mask
    ns = {"causal_mask": ref.causal_mask}
    with forbid("lmcourse.model.causal_mask", "torch.nn.functional.scaled_dot_product_attention", namespace=ns):
        with pytest.raises(ReferenceUsedError):
            ref.causal_mask(3)
        with pytest.raises(ReferenceUsedError):
            ns["causal_mask"](3)
        with pytest.raises(ReferenceUsedError):
            torch.nn.functional.scaled_dot_product_attention(torch.ones(1, 1, 2), torch.ones(1, 1, 2), torch.ones(1, 1, 2))
    assert ref.causal_mask is original and ns["causal_mask"] is original
    assert torch.nn.functional.scaled_dot_product_attention is not None
    torch.nn.functional.scaled_dot_product_attention(torch.ones(1, 1, 2), torch.ones(1, 1, 2), torch.ones(1, 1, 2))


def test_forbid_method_of_class():
    attn = ref.CausalSelfAttention(ref.GPTConfig(n_embd=8, n_head=2))
    x = torch.randn(1, 3, 8)
    with forbid("lmcourse.model.CausalSelfAttention.forward"):
        with pytest.raises(ReferenceUsedError):
            attn(x)
    assert attn(x).shape == (1, 3, 8)


def test_forbid_restores_after_exception():
    with pytest.raises(ValueError), forbid("lmcourse.model.causal_mask"):
        raise ValueError
    assert ref.causal_mask(2).shape == (2, 2)


class Rigged(torch.Tensor):
    def __eq__(self, other):  # noqa: D105
        return True


def test_check_tensor():
    e = torch.tensor([1.0, 2.0, float("-inf")])
    check_tensor("x", e.clone() + 1e-7, e)
    with pytest.raises(AssertionError, match="expected a torch.Tensor"):
        check_tensor("x", [1.0, 2.0], e)
    with pytest.raises(AssertionError, match="expected a torch.Tensor"):
        check_tensor("x", e.clone().as_subclass(Rigged), e)
    with pytest.raises(AssertionError, match="shape"):
        check_tensor("x", torch.zeros(2), e)
    with pytest.raises(AssertionError, match="dtype"):
        check_tensor("x", e.double(), e)
    with pytest.raises(AssertionError, match=r"T=3.*index \(1,\).*expected 2.0, got 2.5"):
        check_tensor("x", torch.tensor([1.0, 2.5, float("-inf")]), e, on="T=3")
    with pytest.raises(AssertionError, match="differ"):
        check_tensor("m", torch.tensor([True, False]), torch.tensor([True, True]))
    with pytest.raises(AssertionError, match="differ"):
        check_tensor("nan", torch.tensor([float("nan")]), torch.tensor([1.0]))


def test_check_float():
    check_float("ppl", 2.0000001, 2.0)
    check_float("ppl", torch.tensor(2.0), 2.0)
    with pytest.raises(AssertionError, match="expected 2.0, got 3.0"):
        check_float("ppl", 3.0, 2.0)
    with pytest.raises(AssertionError, match="float"):
        check_float("ppl", "2.0", 2.0)
    with pytest.raises(AssertionError, match="float"):
        check_float("ppl", True, 1.0)


def _uses_import(T):
    import lmcourse.model

    return lmcourse.model.causal_mask(T)


def _uses_from(T):
    from lmcourse.model import causal_mask

    return causal_mask(T)


def _uses_attr(T):
    return ref.causal_mask(T) if False else torch.ones(T)


def _clean(T):
    return torch.tril(torch.ones(T, T, dtype=torch.bool))


class _Subclass(ref.CausalSelfAttention):
    pass


def test_assert_no_reference_import():
    assert_no_reference_import(_clean, ["lmcourse"])
    assert_no_reference_import(_uses_attr, ["lmcourse"])  # `ref` alias: forbid() catches it
    for f in (_uses_import, _uses_from):
        with pytest.raises(AssertionError, match="must not use lmcourse"):
            assert_no_reference_import(f, ["lmcourse.model"])
    with pytest.raises(AssertionError, match="must not subclass"):
        assert_no_reference_import(_Subclass, ["lmcourse"])


def test_helpers_are_quiet():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("error")
        with forbid("lmcourse.model.causal_mask"):
            pass
        check_tensor("x", torch.ones(2), torch.ones(2))
        with pytest.raises(AssertionError):
            check_tensor("x", torch.ones(2), torch.zeros(2))
    assert err.getvalue() == ""


# ---- sources and the committed release -------------------------------------------------


def _cells(path):
    nb = nbformat.read(path, as_version=4)
    return [(c.cell_type, c.source) for c in nb.cells]


@pytest.mark.parametrize("name", HOMEWORK)
def test_solutions_match_build_script(name):
    with tempfile.TemporaryDirectory() as tmp:
        path = build_homework.build(name, build_homework.HOMEWORK[name], root=tmp)
        assert _cells(path) == _cells(os.path.join(ROOT, "solutions", name, f"{name}.ipynb")), (
            "solutions/ is stale: run python scripts/build_homework.py"
        )


@pytest.mark.parametrize("name", HOMEWORK)
def test_source_notebook_structure(name):
    nb = nbformat.read(os.path.join(ROOT, "solutions", name, f"{name}.ipynb"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    from new_chapter import SETUP_CELL

    assert code[0].source == SETUP_CELL, "the first code cell must be the locked setup cell"
    assert all(not c.outputs for c in code), "commit notebooks without outputs"
    tests = [c for c in code if c.metadata.get("nbgrader", {}).get("grade")
             and not c.metadata["nbgrader"].get("solution")]  # (solution + grade = graded by hand)
    assert tests
    for c in tests:
        meta = c.metadata["nbgrader"]
        assert meta["locked"] and meta["points"] > 0 and meta["schema_version"] == 3
        assert "### BEGIN HIDDEN TESTS" in c.source and "forbid(" in c.source
        assert c.source.rstrip().splitlines()[-1].startswith("assert ")
    assert "VISIBLE_TESTS" in code[-1].source


@pytest.mark.parametrize("name", HOMEWORK)
def test_release_up_to_date_and_clean(name, tmp_path):
    release_assignments.generate([name], str(tmp_path))
    fname = f"{name}.ipynb"
    committed = os.path.join(ROOT, "assignments", name, fname)
    assert _cells(str(tmp_path / name / fname)) == _cells(committed), (
        "assignments/ is stale: run make assignments"
    )
    source = nbformat.read(os.path.join(ROOT, "solutions", name, fname), as_version=4)
    released = nbformat.read(committed, as_version=4)
    text = "\n".join(c.source for c in released.cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "forbid("):
        assert marker not in text
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            inside = cell.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
            for line in inside.splitlines():
                if line.strip():
                    assert line not in text, f"solution line leaked into the release: {line!r}"


# ---- the grading pipeline, for real (slow: a few minutes) -------------------------------


@pytest.mark.timeout(1800)
def test_nbgrader_pipeline():
    """generate_assignment + autograde of 5 made-up students per homework, scores from the gradebook."""
    scores, seconds = grade_demo.grade(HOMEWORK, timeout=10)
    for name in HOMEWORK:
        manual = grade_demo.manual_grade_ids(name)  # written answers: graded by a person
        full = {gid: v for gid, v in scores[name, "solution"].items() if gid not in manual}
        assert full and all(s == m for s, m in full.values()), full
        for student in ("release", "cheat", "edited"):
            assert all(s == 0 for s, _ in scores[name, student].values()), (student, scores[name, student])
        looped = list(build_homework.LOOPS.get(name, {}))
        assert looped, "each homework demonstrates the cell timeout"
        loop = scores[name, "loop"]
        for gid in looped:  # the test cell of a never-ending answer is cut: 0 points
            assert loop[f"test_{gid}"][0] == 0, loop
        # ... and grading went on: later cells that do not use it still score
        assert any(s == m for s, m in loop.values()), loop
        for student in grade_demo.STUDENTS:
            print(f"{name} {student}: {seconds[name, student]:.1f} s to autograde")
