"""The homework and its grading: helpers, sources, release, the sandbox, the demo class.

The slow tests grade made-up students for real (grader/demo.py): every attack class and
honest case on HW6, the solution and the stubs of every other homework, the students of
grader/students/, and the instructor workflow (feedback, export) on HW5. They need
bubblewrap (scripts/install_bubblewrap.sh) and take a few minutes on 2 CPUs.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import subprocess
import sys
import warnings
import zipfile

import nbformat
import pytest
import torch

from lmcourse.grading import call_many, check_float, check_tensor, value_and_grad

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import build_homework  # noqa: E402
import release_assignments  # noqa: E402

from grader import demo as grade_demo  # noqa: E402
from grader import submission as grade  # noqa: E402
from grader.notebook import strip_solution_markers  # noqa: E402
from grader.sandbox import MEMORY_BYTES, SandboxTimeout, bwrap_available  # noqa: E402

HOMEWORK = release_assignments.homeworks(ROOT)
BWRAP = bwrap_available()
if not BWRAP and os.environ.get("LMCOURSE_REQUIRE_BWRAP") == "1":  # CI: grading must be tested
    raise RuntimeError("LMCOURSE_REQUIRE_BWRAP=1 but bubblewrap cannot run: scripts/install_bubblewrap.sh")
needs_bwrap = pytest.mark.skipif(not BWRAP, reason="bubblewrap missing: run scripts/install_bubblewrap.sh")


# ---- helpers used by the test cells ------------------------------------------------------


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


def test_call_many_and_value_and_grad_locally():
    assert call_many(pow, [((2, 3), {}), ((3,), {"exp": 2})]) == [8, 9]
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y, (gx,) = value_and_grad(lambda a, k: (a * a).sum() * k, x, 3.0)
    assert float(y) == 15.0 and gx.tolist() == [6.0, 12.0]


def test_helpers_are_quiet():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("error")
        check_tensor("x", torch.ones(2), torch.ones(2))
        with pytest.raises(AssertionError):
            check_tensor("x", torch.ones(2), torch.zeros(2))
    assert err.getvalue() == ""


# ---- sources and the committed release ---------------------------------------------------


def _cells(nb):
    return [(c.cell_type, c.source, c.metadata) for c in nb.cells]


@pytest.mark.parametrize("name", HOMEWORK)
def test_solutions_match_sources(name):
    committed = nbformat.read(os.path.join(ROOT, "solutions", name, f"{name}.ipynb"), as_version=4)
    assert _cells(build_homework.notebook(name)) == _cells(committed), (
        "solutions/ is stale: run make assignments")


@pytest.mark.parametrize("name", HOMEWORK)
def test_source_notebook_structure(name):
    nb = nbformat.read(os.path.join(ROOT, "solutions", name, f"{name}.ipynb"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    from new_chapter import SETUP_CELL

    assert code[0].source == SETUP_CELL, "the first code cell must be the locked setup cell"
    assert all(not c.outputs for c in code), "commit notebooks without outputs"
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    assert len(ids) == len(set(ids)), "grade ids must be unique"
    tests = [c for c in code if c.metadata.get("nbgrader", {}).get("grade")
             and not c.metadata["nbgrader"].get("solution")]  # (solution + grade = graded by hand)
    assert tests
    for c in tests:
        meta = c.metadata["nbgrader"]
        assert meta["locked"] and meta["points"] > 0 and meta["schema_version"] == 3
        assert "### BEGIN HIDDEN TESTS" in c.source
        assert c.source.rstrip().splitlines()[-1].startswith("assert ")
        allowed = c.metadata.get("lmcourse", {}).get("allow", [])
        assert all(m.startswith("lmcourse.") for m in allowed)
    assert "VISIBLE_TESTS" in code[-1].source


@pytest.mark.parametrize("name", HOMEWORK)
def test_release_up_to_date_and_clean(name, tmp_path):
    release_assignments.generate([name], str(tmp_path))
    fname = f"{name}.ipynb"
    committed = nbformat.read(os.path.join(ROOT, "assignments", name, fname), as_version=4)
    assert _cells(nbformat.read(str(tmp_path / name / fname), as_version=4)) == _cells(committed), (
        "assignments/ is stale: run make assignments")
    source = nbformat.read(os.path.join(ROOT, "solutions", name, fname), as_version=4)
    text = "\n".join(c.source for c in committed.cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            inside = cell.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
            for line in inside.splitlines():
                if line.strip():
                    assert line not in text, f"solution line leaked into the release: {line!r}"


def test_hidden_top_p_tie_at_the_cut():
    """The `<` instead of `<=` top-p passes the visible checks but not the hidden ones."""
    nb = build_homework.notebook("hw6_decoding")
    right = wrong = None
    for passes in (True, False):
        ns: dict = {}
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type != "code" or "setup" in cell.metadata.get("tags", []):
                continue
            code = strip_solution_markers(cell.source) if meta.get("solution") else cell.source
            if meta.get("grade_id") == "top_p":
                right = code
                wrong = code.replace("<= 1 - p", "< 1 - p")
                assert wrong != right
                code = right if passes else wrong
            if meta.get("grade_id") == "test_top_p":
                visible = code.split("### BEGIN HIDDEN TESTS")[0]
                exec(visible, ns)
                assert ns["test_top_p_visible"]()  # the visible checks cannot tell
                if passes:
                    exec(code, ns)
                else:
                    with pytest.raises(AssertionError, match="top_p_filter"):
                        exec(code, ns)
                break
            exec(code, ns)


# ---- the sandbox -------------------------------------------------------------------------


def _part(tmp, cells, allow=(), block_ops=(), timeout=20, isolate=True):
    os.chmod(tmp, 0o755)
    g = grade.SubmissionGrader(nbformat.v4.new_notebook(), nbformat.v4.new_notebook(), tmp=tmp, timeout=timeout,
                               isolate=isolate, memory_bytes=MEMORY_BYTES)
    g.cells = cells
    return g.part({"allow": list(allow), "block_ops": list(block_ops)})


@needs_bwrap
def test_sandbox_sees_no_course_and_no_reference(tmp_path):
    secret = os.path.join(ROOT, "solutions", "hw6_decoding", "hw6_decoding.ipynb")
    home_file = os.path.join(os.path.expanduser("~"), f".lmcourse-grading-probe-{os.getpid()}")
    open(home_file, "w").close()
    code = f'''
import os, socket
def probe():
    out = {{}}
    for what, path in (("solutions", {secret!r}), ("home", {home_file!r})):
        out[what] = os.path.exists(path)
    # the repository's files: none (a venv inside the checkout is bound at its own path,
    # so the checkout's folder may exist, holding that venv and nothing else)
    out["repo"] = sorted(os.listdir({ROOT!r})) if os.path.isdir({ROOT!r}) else []
    try:
        open({os.path.join(str(tmp_path), "x")!r}, "w").write("x")
        out["write"] = True
    except OSError:
        out["write"] = False
    for mod in ("lmcourse.sampling", "lmcourse.model", "transformers", "tokenizers", "lmcourse.grading"):
        try:
            __import__(mod)
            out[mod] = True
        except ImportError:
            out[mod] = False
    try:
        socket.create_connection(("127.0.0.1", 22), timeout=1)
        out["net"] = True
    except OSError:
        out["net"] = False
    import torch
    try:
        torch.ops.aten._log_softmax(torch.zeros(2), 0, False)
        out["aten"] = True
    except RuntimeError:
        out["aten"] = False
    return out
'''
    part = _part(str(tmp_path), [("<answer>", code)], allow=("lmcourse.model",), block_ops=("_log_softmax",))
    try:
        seen = grade.Remote(part, {"name": "probe"})()
    finally:
        os.remove(home_file)
    venv = os.path.relpath(sys.prefix, ROOT).split(os.sep)[0]
    allowed = [] if venv.startswith("..") else [venv]  # a venv inside the checkout is visible
    assert set(seen.pop("repo")) <= set(allowed), "the sandbox sees the repository's files"
    assert seen == {"solutions": False, "home": False, "write": False, "lmcourse.sampling": False,
                    "lmcourse.model": True, "transformers": False, "tokenizers": False, "lmcourse.grading": False,
                    "net": False, "aten": False}
    assert not os.path.exists(tmp_path / "x")
    part.sb.kill()


@needs_bwrap
def test_sandbox_timeout_crash_and_plain_data(tmp_path):
    code = '''
import os, torch
def hang():
    while True:
        pass
def crash():
    os._exit(3)
def rigged():
    class Yes(torch.Tensor):
        def __eq__(self, other):
            return True
    return torch.zeros(2).as_subclass(Yes)
def double(x, g=None):
    return 2 * x + (torch.rand(1, generator=g) if g is not None else 0)
'''
    part = _part(str(tmp_path), [("<answer>", code)], timeout=3)
    remote = lambda name: grade.Remote(part, {"name": name})  # noqa: E731
    with pytest.raises(SandboxTimeout):
        remote("hang")()
    with pytest.raises(grade.StudentError, match="died"):
        remote("crash")()
    got = remote("rigged")()
    assert isinstance(got, grade.Remote)  # not a tensor: check_tensor rejects it
    with pytest.raises(AssertionError, match="expected a torch.Tensor"):
        check_tensor("x", got, torch.zeros(2))
    g = torch.Generator().manual_seed(0)
    y = remote("double")(torch.ones(2), g)
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(y, 2 * torch.ones(2) + torch.rand(1, generator=g2)) and torch.equal(g.get_state(), g2.get_state())
    part.sb.kill()


# ---- the demo class, graded for real -------------------------------------------------------


@needs_bwrap
@pytest.mark.timeout(1500)
def test_demo_class_every_attack_scores_zero_every_honest_case_keeps_its_points():
    names = ["hw6_decoding"]
    scores, seconds, canaries = grade_demo.grade(names, timeout=10, log=lambda *a: None)
    assert canaries == []
    for student in grade_demo.STUDENTS:
        cells = scores["hw6_decoding", student]
        assert grade_demo.expected_ok("hw6_decoding", student, cells), (student, cells)
    loop, crash = scores["hw6_decoding", "loop"], scores["hw6_decoding", "crash"]
    assert loop["test_top_k"][0] == 0 and loop["test_top_p"][0] == 3  # the looped answer only
    assert crash["test_accept_or_resample"][0] == 0 and crash["test_beam_search"][0] == 4
    for (name, student), s in sorted(seconds.items()):
        print(f"{name} {student}: {s:.1f} s")


@needs_bwrap
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("name", [h for h in HOMEWORK if h != "hw6_decoding"])
def test_solution_full_marks_release_zero(name):
    scores, _, _ = grade_demo.grade([name], timeout=30, students=("solution", "release"), log=lambda *a: None)
    manual = grade_demo.manual_grade_ids(name)
    sol = {g: v for g, v in scores[name, "solution"].items() if g not in manual}
    assert sol and all(s == m for s, m in sol.values()), sol
    assert all(s == 0 for s, _ in scores[name, "release"].values())


@needs_bwrap
@pytest.mark.timeout(1500)
def test_instructor_workflow_feedback_and_export(tmp_path):
    """Collect (zip_collect), grade HW5 (its written answer left for hand grading), feedback,
    export, in a clean course."""
    name = "hw5_generation_kv_cache"
    course = str(tmp_path / "course")
    grade_demo.setup_course(course, [name], students=("solution", "release"))
    # collect: the LMS's zip of <student>_<hw>.ipynb files, through nbgrader zip_collect
    archive = os.path.join(course, "downloaded", name, "archive")
    os.makedirs(archive)
    with zipfile.ZipFile(os.path.join(archive, "submissions.zip"), "w") as z:
        for student, lms_name in (("solution", f"solution_{name}.ipynb"), ("release", f"release_1234_{name}.ipynb")):
            z.write(os.path.join(course, "submitted", student, name, f"{name}.ipynb"), lms_name)
    shutil.rmtree(os.path.join(course, "submitted"))
    release_assignments.nbgrader(course, "zip_collect", name, "--force")
    for student in ("solution", "release"):
        assert os.path.isfile(os.path.join(course, "submitted", student, name, f"{name}.ipynb"))
    proc = subprocess.run([sys.executable, "-m", "grader.grade", name, "--course", course,
                           "--timeout", "30"], capture_output=True, text=True, env=release_assignments.env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    release_assignments.nbgrader(course, "generate_feedback", name)
    release_assignments.nbgrader(course, "export", "--to", str(tmp_path / "grades.csv"))
    source = nbformat.read(os.path.join(ROOT, "solutions", name, f"{name}.ipynb"), as_version=4)
    hidden = [line.strip() for c in source.cells if "### BEGIN HIDDEN TESTS" in c.source
              for line in c.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0].splitlines()
              if len(line.strip()) > 25]
    for student in ("solution", "release"):
        html = open(os.path.join(course, "feedback", student, name, f"{name}.html")).read()
        assert "test_generate_loop" in html and "points" in html
        assert "HIDDEN TESTS" not in html
        leaked = [h for h in hidden if h in html]
        assert not leaked, leaked[:3]
    rows = {r["student_id"]: r for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert rows["solution"]["status"] == "pending hand grading" and rows["solution"]["score"] == ""
    assert float(rows["solution"]["raw_score"]) == 9.0


def test_without_bubblewrap_the_code_still_runs_in_another_process(tmp_path):
    """--no-sandbox: no isolation of files, but the same proxies and plain data."""
    part = _part(str(tmp_path), [("<answer>", "import os\ndef pid():\n    return os.getpid()\n")], isolate=False)
    assert grade.Remote(part, {"name": "pid"})() != os.getpid()
    part.sb.kill()
