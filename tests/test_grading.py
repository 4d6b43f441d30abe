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
import re
import shutil
import subprocess
import sys
import warnings
import zipfile

import nbformat
import pytest
import torch

from lmcourse.grading import (
    all_visible,
    begin_cell,
    call_many,
    cell_results,
    check_float,
    check_tensor,
    run_visible,
    value_and_grad,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import build_homework  # noqa: E402
import release_assignments  # noqa: E402

from grader import demo as grade_demo  # noqa: E402
from grader import submission as grade  # noqa: E402
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


def test_run_visible_and_all_visible():
    """Each visible function is its own check; all_visible runs them all, raising on a failure."""
    def bad():
        raise AssertionError("wrong")

    visible = {"first": (0.5, lambda: True), "second": (0.25, bad), "third": (0.25, lambda: True)}
    begin_cell()
    run_visible(visible)
    assert [(r["name"], r["points"], r["passed"], r["message"]) for r in cell_results()] == [
        ("first", 0.5, True, ""), ("second", 0.25, False, "wrong"), ("third", 0.25, True, "")]
    summary = {}
    begin_cell()
    run_visible({"fourth": (1, lambda: True)}, summary, "group")
    assert [r["name"] for r in cell_results()] == ["fourth"] and summary["group"]() is True
    begin_cell()
    assert all_visible({"a": (1, lambda: True)})() is True
    with pytest.raises(AssertionError, match="wrong"):
        all_visible(visible)()
    assert cell_results() == []


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
        last = c.source.rstrip().splitlines()[-1]
        # a test cell ends in an assert, or in checks_done(), which raises AssertionError
        assert last.startswith("assert ") or last == "checks_done()", last
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
                # short generic lines (`optimizer.step()`, a table rule) may also stand in given code
                if len(line.strip()) >= 24:
                    assert line not in text, f"solution line leaked into the release: {line!r}"


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


def hidden_values(source: str) -> set[str]:
    """Literal values of a test cell's hidden block that its visible part does not show."""
    import ast

    from grader.notebook import HIDDEN_BEGIN, HIDDEN_END, visible_source

    if HIDDEN_BEGIN not in source:
        return set()
    hidden = source.split(HIDDEN_BEGIN, 1)[1].split(HIDDEN_END, 1)[0]
    names = set()
    try:
        tree = ast.parse(hidden)
    except SyntaxError:
        return set()
    for n in ast.walk(tree):  # check names are shown on purpose
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "check" and n.args and isinstance(n.args[0], ast.Constant):
            names.add(n.args[0].value)
    # the literal pieces of an f-string are message text, not hidden inputs
    pieces = {id(c) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for c in n.values}
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and not isinstance(n.value, bool) and id(n) not in pieces:
            v = n.value
            if isinstance(v, (int, float)) and (abs(v) >= 100 or (isinstance(v, float) and len(repr(v)) >= 5)):
                out.add(repr(v))
            elif isinstance(v, str) and len(v) >= 12 and v not in names and "{" not in v:
                out.add(v)
    visible = visible_source(source)
    return {v for v in out if v not in visible}


def scan_feedback(course: str, name: str, students) -> list:
    """(student, test cell, value) for each hidden value found in an autograded report."""
    source = nbformat.read(os.path.join(ROOT, "solutions", name, f"{name}.ipynb"), as_version=4)
    values = {c.metadata["nbgrader"]["grade_id"]: hidden_values(c.source) for c in source.cells
              if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"}
    found = []
    for student in students:
        nb = nbformat.read(os.path.join(course, "autograded", student, name, f"{name}.ipynb"), as_version=4)
        text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
        # a check's name is shown on purpose (whether it is written out or built from a table)
        text = re.sub(r"(?m)^(\s*(?:ok|FAIL)\s+).+? (\([\d.]+ pts?\))", r"\1\2", text)
        found += [(student, gid, v) for gid, vs in values.items() for v in vs if v in text]
    return found


@needs_bwrap
@pytest.mark.timeout(1800)
def test_demo_class_every_attack_scores_zero_every_honest_case_keeps_its_points(tmp_path):
    from grader import students as demo_students
    from grader.notebook import answer_sources

    name = "hw6_decoding"
    course = str(tmp_path / "course")
    custom = dict(demo_students.load(name))
    custom.update(demo_students.load(name, os.path.join(ROOT, "tests", "grading_students")))
    scores, seconds, canaries = grade_demo.grade([name], timeout=10, log=lambda *a: None, course=course,
                                                 custom={name: custom})
    assert canaries == []
    for student in grade_demo.STUDENTS:
        cells = scores[name, student]
        assert grade_demo.expected_ok(name, student, cells), (student, cells)
    loop, crash = scores[name, "loop"], scores[name, "crash"]
    assert loop["test_top_k"][0] == 0 and loop["test_top_p"][0] == 3  # the looped answer only
    assert crash["test_speculative_generate"][0] == 0 and crash["test_beam_search"][0] == 4  # the last answer
    manual = grade_demo.manual_grade_ids(name)
    for key, spec in custom.items():  # honest: full marks; partial and attack: exactly their expect
        assert demo_students.mismatches(spec, scores[name, demo_students.demo_id(key)], manual) == [], key
    # the autograded notebook shows exactly the code that was graded (a markdown copy never shadows)
    sub = nbformat.read(os.path.join(course, "submitted", "shadow", name, f"{name}.ipynb"), as_version=4)
    auto = nbformat.read(os.path.join(course, "autograded", "shadow", name, f"{name}.ipynb"), as_version=4)
    assert answer_sources(auto) == answer_sources(sub)
    assert all("### BEGIN SOLUTION" not in c.source for c in auto.cells)
    # no feedback shows a hidden case's values
    students = list(grade_demo.STUDENTS) + [demo_students.demo_id(k) for k in custom]
    assert scan_feedback(course, name, students) == []
    for (hw, student), s in sorted(seconds.items()):
        print(f"{hw} {student}: {s:.1f} s")


@needs_bwrap
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", [h for h in HOMEWORK if h != "hw6_decoding"])  # hw6: the demo class above
def test_demo_students_of_each_homework_get_exactly_their_expected_points(name, tmp_path):
    """grader/students/<hw>.py: honest students in other styles get full marks, partial and
    attacking students exactly their ``expect`` (the feedback scan runs on the HW6 class above)."""
    from grader import students as demo_students

    custom = demo_students.load(name)
    assert sum(s["kind"] == "honest" for s in custom.values()) >= 4, "at least four honest styles"
    assert sum(s["kind"] == "partial" for s in custom.values()) >= 2, "at least two partial students"
    course = str(tmp_path / "course")
    scores, _, canaries = grade_demo.grade([name], timeout=20, students=("solution",), log=lambda *a: None,
                                           course=course, custom={name: custom})
    assert canaries == []
    manual = grade_demo.manual_grade_ids(name)
    wrong = {key: demo_students.mismatches(spec, scores[name, demo_students.demo_id(key)], manual)
             for key, spec in custom.items()}
    assert {k: v for k, v in wrong.items() if v} == {}


@needs_bwrap
@pytest.mark.timeout(900)
def test_sleepers_are_bounded_by_the_cell_limit_and_the_budget(tmp_path):
    """Correct answers that sleep just under the per-call limit at every call."""
    budget = 20
    scores, seconds, _ = grade_demo.grade(["hw6_decoding"], timeout=2, students=("sleeper",), custom={},
                                          log=lambda *a: None, cell_timeout=8, budget=budget)
    cells = scores["hw6_decoding", "sleeper"]
    assert sum(s for s, _ in cells.values()) < sum(m for _, m in cells.values())
    assert seconds["hw6_decoding", "sleeper"] < budget + 90  # + sandbox start-ups, never counted


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
    auto_points = sum(float(c.metadata["nbgrader"]["points"]) for c in nbformat.read(
        os.path.join(ROOT, "solutions", name, f"{name}.ipynb"), as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution"))
    assert float(rows["solution"]["raw_score"]) == auto_points  # every autograded point


def test_without_bubblewrap_the_code_still_runs_in_another_process(tmp_path):
    """--no-sandbox: no isolation of files, but the same proxies and plain data."""
    part = _part(str(tmp_path), [("<answer>", "import os\ndef pid():\n    return os.getpid()\n")], isolate=False)
    assert grade.Remote(part, {"name": "pid"})() != os.getpid()
    part.sb.kill()


# ---- the grading package: protocol, sandbox limits, notebook, partial credit, similarity ------


def test_protocol_refuses_what_would_cost_the_trusted_side():
    from grader import protocol as p

    p.check_plain({"a": [torch.zeros(3), 1.5, "s", None, (1, 2)], 3: torch.float32})
    bad = {
        "stride 0": torch.zeros(1).expand(2**40),
        "view of a larger storage": torch.zeros(100)[:3],
        "non-contiguous": torch.zeros(4, 4).t(),
        "subclass": torch.zeros(2).as_subclass(Rigged),
        "dtype not allowed": torch.zeros(2, dtype=torch.float8_e4m3fn) if hasattr(torch, "float8_e4m3fn") else object(),
        "not plain": object(),
    }
    for what, value in bad.items():
        with pytest.raises(p.ProtocolError):
            p.check_plain({"ok": value})
            pytest.fail(f"accepted: {what}")
    x: list = []
    for _ in range(60):  # 2^60 lists if walked naively
        x = [x, x]
    with pytest.raises(p.ProtocolError, match="twice"):
        p.check_plain(x)
    t = torch.zeros(3)
    with pytest.raises(p.ProtocolError, match="twice"):
        p.check_plain([t, t])
    with pytest.raises(p.ProtocolError):
        p.dtype_from_name("load")  # {"__dtype__": "load"} would have been getattr(torch, "load")
    assert p.dtype_from_name("torch.float64") is torch.float64
    r, w = os.pipe()
    os.write(w, p.dumps("x" * 5000))
    with pytest.raises(p.ProtocolError, match="larger than the limit"):
        p.read_message(r, None, max_bytes=1000)
    os.close(r)
    os.close(w)


def test_decode_accepts_only_handles_and_allowed_dtypes(tmp_path):
    part = _part(str(tmp_path), [])
    assert grade.decode({"__dtype__": "float16"}, part) is torch.float16
    for tagged in ({"__dtype__": "load"}, {"__gpt__": {}, "state": {}}, {"__callback__": 0}):
        with pytest.raises(grade.StudentError):
            grade.decode({"ok": tagged}, part)


def test_answer_cells_only_code_and_symlinks_refused(tmp_path):
    from grader.notebook import (
        SubmissionRefused,
        answer_sources,
        check_submission_folder,
        read_submission,
    )

    nb = nbformat.v4.new_notebook()
    md = nbformat.v4.new_markdown_cell("def f():\n    return 1")
    code = nbformat.v4.new_code_cell("def f():\n    return 2")
    for c in (md, code):
        c.metadata["nbgrader"] = {"grade_id": "f", "solution": True, "grade": False}
    nb.cells = [md, code]
    assert answer_sources(nb) == {"f": "def f():\n    return 2"}  # the markdown copy never shadows
    sub = tmp_path / "submitted" / "alice" / "hw"
    sub.mkdir(parents=True)
    nbformat.write(nb, str(tmp_path / "real.ipynb"))
    os.symlink(tmp_path / "real.ipynb", sub / "hw.ipynb")
    with pytest.raises(SubmissionRefused, match="symlink"):
        read_submission(str(sub / "hw.ipynb"), str(tmp_path / "submitted"))
    assert any("symlink" in line for line in check_submission_folder(str(sub)))


@needs_bwrap
def test_sandbox_is_never_privileged_even_as_root(tmp_path):
    """Remount, unmount, mount and writes outside the private tmpfs all fail (CI runs as root)."""
    code = '''
import ctypes, os, torch
def probe():
    libc = ctypes.CDLL(None, use_errno=True)
    site = os.path.dirname(os.path.dirname(torch.__file__))
    out = {"uid": os.getuid(), "caps": open("/proc/self/status").read().split("CapEff:")[1].split()[0]}
    out["remount"] = [libc.mount(None, p.encode(), None, 32 | 4096, None) for p in ("/", "/usr", site)]
    out["umount"] = [libc.umount2(p.encode(), 2) for p in ("/tmp", site)]
    out["mount"] = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
    writes = []
    for d in (site, os.path.join(site, "torch"), "/", "/usr"):
        try:
            open(os.path.join(d, "probe"), "w").write("x")
            writes.append(d)
        except OSError:
            pass
    out["writes"] = writes
    try:
        with open("/tmp/big", "wb") as f:
            for _ in range(400):
                f.write(b"x" * 2**20)
        out["tmp_limited"] = False
    except OSError:
        out["tmp_limited"] = True
    os.remove("/tmp/big")
    try:
        os.unshare(0x10000000) if hasattr(os, "unshare") else None
        out["userns"] = hasattr(os, "unshare")
    except OSError:
        out["userns"] = False
    return out
'''
    part = _part(str(tmp_path), [("<answer>", code)])
    seen = grade.Remote(part, {"name": "probe"})()
    part.stop()
    assert seen["uid"] == 1000 and int(seen["caps"], 16) == 0, seen
    assert all(r != 0 for r in seen["remount"] + seen["umount"] + [seen["mount"]]), seen
    assert seen["writes"] == [] and seen["tmp_limited"] and not seen["userns"], seen
    import torch as _torch

    assert not os.path.exists(os.path.join(os.path.dirname(os.path.dirname(_torch.__file__)), "probe"))


@needs_bwrap
def test_one_sandbox_per_student_and_a_clean_child_per_test_cell(tmp_path):
    code = "import torch\nCOUNT = []\ndef count(x):\n    COUNT.append(1)\n    return len(COUNT)\n"
    part = _part(str(tmp_path), [("<answer>", code)])
    g = part.grader
    f = grade.Remote(part, {"name": "count"})
    assert [f(1), f(2)] == [1, 2]
    part.end_cell()
    assert f(3) == 1  # the next test cell starts from the state after the answer cells
    other = g.part({"allow": ["lmcourse.model"]})
    first = part.sb.proc
    assert grade.Remote(other, {"name": "count"})(0) == 1
    assert first.poll() is not None, "the other part's sandbox must be dead before this one starts"
    other.stop()


@needs_bwrap
def test_models_and_inputs_come_back_unchanged(tmp_path):
    from lmcourse.model import GPT, GPTConfig

    code = '''import torch
def spoil(model):
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return 0
def step(model, opt):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    return 0
def inplace(x):
    x.mul_(2)
    return x
def fine(x, xs):
    return x * 2, xs + [1]
'''
    part = _part(str(tmp_path), [("<answer>", code)], allow=("lmcourse.model",))
    r = lambda n: grade.Remote(part, {"name": n})  # noqa: E731
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(grade.StudentError, match="changed the model"):
        r("spoil")(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing written back
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    r("step")(model, opt)  # with its optimizer: a training step, the new weights come back
    assert all(torch.equal(before[k] + 1, v) for k, v in model.state_dict().items())
    x = torch.ones(3)
    with pytest.raises(grade.StudentError, match="in place"):
        r("inplace")(x)
    assert torch.equal(x, torch.ones(3))
    xs = [0]
    y, ys = r("fine")(x, xs)
    assert torch.equal(y, 2 * x) and ys == [0, 1] and xs == [0]
    part.stop()


@needs_bwrap
def test_course_packages_importable_answers_libraries_absent(tmp_path):
    code = '''
def probe():
    out = {}
    for mod in ("numpy", "tqdm", "tqdm.auto", "matplotlib.pyplot", "transformers", "tokenizers", "lmcourse.metrics"):
        try:
            __import__(mod)
            out[mod] = True
        except ImportError:
            out[mod] = False
    import matplotlib
    out["backend"] = matplotlib.get_backend().lower()
    return out
'''
    part = _part(str(tmp_path), [("<answer>", code)])
    seen = grade.Remote(part, {"name": "probe"})()
    part.stop()
    assert seen == {"numpy": True, "tqdm": True, "tqdm.auto": True, "matplotlib.pyplot": True, "transformers": False,
                    "tokenizers": False, "lmcourse.metrics": False, "backend": "agg"}


@needs_bwrap
def test_blocked_operators_every_overload_and_decomposition(tmp_path):
    """Enumerates torch's own registries in the sandbox: every overload of a blocked operator
    and every Python decomposition table entry for one of them must raise."""
    code = '''
import torch
import worker
def probe(names):
    out = {"overloads": 0, "decomp": 0, "bad": []}
    x = torch.randn(2, 3)
    for op in worker.blocked_overloads(names):
        out["overloads"] += 1
        table = torch._C._dispatch_dump_table(op._schema.name + ("" if op._overloadname == "default" else "." + op._overloadname))
        for key in ("CPU:", "AutogradCPU:"):
            line = next((l for l in table.splitlines() if l.startswith(key)), "")
            if "/dev/null:0" not in line:  # the raising kernels registered from Python
                out["bad"].append((str(op), line))
    blocked = set(worker.blocked_overloads(names))
    for table in worker.decomposition_tables():
        for key, fn in table.items():
            if key in blocked:
                out["decomp"] += 1
                if getattr(fn, "__qualname__", "") != "_raiser":  # the raiser of the running worker
                    out["bad"].append(("decomposition", str(key)))
    for route in (lambda: torch.log_softmax(x, -1), lambda: x.log_softmax(-1), lambda: torch.special.log_softmax(x, -1),
                  lambda: torch.nn.functional.log_softmax(x, -1), lambda: torch.ops.aten._log_softmax(x, 1, False),
                  lambda: torch.compile(torch.log_softmax)(x, -1)):
        try:
            route()
            out["bad"].append("a route ran")
        except (RuntimeError, ImportError):
            pass
    return out
'''
    names = ["_log_softmax", "log_softmax", "special_log_softmax"]
    part = _part(str(tmp_path), [("<answer>", code)],
                 block_ops=names)
    seen = grade.Remote(part, {"name": "probe"})(names)
    part.stop()
    from grader.worker import blocked_overloads

    assert seen["overloads"] == len(blocked_overloads(names)) >= 5 and seen["bad"] == [], seen


def _homework_test_cells():
    for name in HOMEWORK:
        nb = nbformat.read(os.path.join(ROOT, "solutions", name, f"{name}.ipynb"), as_version=4)
        for c in nb.cells:
            meta = c.metadata.get("nbgrader", {})
            if c.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
                yield name, c


def test_check_points_add_up_to_each_cell():
    """Every test cell that uses check(): its checks' points (literal ones) add up to the cell's."""
    import ast

    for name, cell in _homework_test_cells():
        tree = ast.parse(cell.source)
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "check"]
        if not calls:
            continue
        in_loop = {id(c) for n in ast.walk(tree) if isinstance(n, (ast.For, ast.While, ast.comprehension))
                   for c in ast.walk(n) if isinstance(c, ast.Call)}
        helpers = {getattr(n.func, "id", "") for n in ast.walk(tree) if isinstance(n, ast.Call)}
        if "run_visible" in helpers or any(
                id(c) in in_loop or len(c.args) < 2 or not isinstance(c.args[1], ast.Constant) for c in calls):
            continue  # computed points: the grader itself refuses a mismatch (InstructorError)
        total = sum(float(c.args[1].value) for c in calls)
        assert total == float(cell.metadata["nbgrader"]["points"]), (name, cell.metadata["nbgrader"]["grade_id"], total)


PARTIAL_SOURCE = '''
from lmcourse.grading import check, checks_done
with check("doubles small numbers", 1):
    assert double(2) == 4
### BEGIN HIDDEN TESTS
with check("doubles large numbers", 2):
    assert double(123457) == 246914, f"expected 246914, got {double(123457)}"
### END HIDDEN TESTS
checks_done()
'''


def _tiny_homework(test_source, points, answer):
    src, sub = nbformat.v4.new_notebook(), nbformat.v4.new_notebook()
    a = nbformat.v4.new_code_cell("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n")
    a.metadata["nbgrader"] = {"grade_id": "double", "solution": True, "grade": False}
    t = nbformat.v4.new_code_cell(test_source)
    t.metadata["nbgrader"] = {"grade_id": "test_double", "solution": False, "grade": True, "points": points}
    src.cells = [a, t]
    s = nbformat.v4.new_code_cell(answer)
    s.metadata["nbgrader"] = dict(a.metadata["nbgrader"])
    sub.cells = [s]
    return src, sub


@needs_bwrap
def test_partial_credit_and_feedback_without_hidden_values(tmp_path):
    from grader.gradebook import feedback_text

    os.chmod(tmp_path, 0o755)
    src, sub = _tiny_homework(PARTIAL_SOURCE, 3, "def double(x):\n    return 2 * x if x < 1000 else -1\n")
    (r,) = grade.SubmissionGrader(src, sub, tmp=str(tmp_path)).run()
    assert (r.score, r.points) == (1.0, 3.0)
    text = feedback_text(r)
    assert "ok   doubles small numbers (1 pt)" in text and "FAIL doubles large numbers (2 pt)" in text
    assert "246914" not in text and "123457" not in text, text
    src, sub = _tiny_homework(PARTIAL_SOURCE, 4, "def double(x):\n    return 2 * x\n")
    with pytest.raises(grade.InstructorError, match="add up to 3"):
        grade.SubmissionGrader(src, sub, tmp=str(tmp_path)).run()


def test_similarity_flags_a_pasted_reference_not_an_honest_answer():
    import inspect

    import lmcourse.sampling
    from grader.similarity import report

    pasted = inspect.getsource(lmcourse.sampling.top_p_filter)
    renamed = pasted.replace("logits", "scores").replace("sorted", "ordered")
    honest = '''def top_p_filter(logits, p):
    probs = torch.softmax(logits, dim=-1)
    out = logits.clone()
    for row in range(probs.shape[0] if probs.dim() > 1 else 1):
        pr = probs[row] if probs.dim() > 1 else probs
        order = sorted(range(pr.numel()), key=lambda i: -float(pr[i]))
        total, keep = 0.0, []
        for i in order:
            keep.append(i)
            total += float(pr[i])
            if total >= p:
                break
        mask = torch.ones(pr.numel(), dtype=torch.bool)
        mask[keep] = False
        (out[row] if probs.dim() > 1 else out)[mask] = float("-inf")
    return out
'''
    flags = report({"copy": {"top_p": "import torch\n\n" + renamed}, "honest": {"top_p": honest}})
    assert any(f.student == "copy" and f.like.endswith("top_p_filter") for f in flags), flags
    assert not any(f.student == "honest" for f in flags), flags


@pytest.mark.parametrize("name", HOMEWORK)
def test_summary_cells_injected_from_one_place(name, tmp_path, monkeypatch):
    """Every homework ends with the builder's Summary cells, whether its source holds a copy or not."""
    nb = build_homework.notebook(name)
    assert nb.cells[-1].source == build_homework.SUMMARY_CELL
    assert nb.cells[-2].source in (build_homework.SUMMARY_MARKDOWN, build_homework.SUMMARY_MARKDOWN_WRITTEN)
    # a source that still ends with its own copy of the Summary cells builds the same notebook
    for f in os.listdir(build_homework.SOURCES):
        if f.endswith(".py"):
            shutil.copy(os.path.join(build_homework.SOURCES, f), tmp_path / f)
    copy = ('\n\n# %% [markdown] nbgrader={"grade": false, "grade_id": "md-summary", "locked": true, '
            '"schema_version": 3, "solution": false}\n# ## Summary\n#\n# An old copy.\n\n'
            '# %% nbgrader={"grade": false, "grade_id": "summary", "locked": true, "schema_version": 3, '
            '"solution": false}\nprint("an old summary")\n')
    with open(tmp_path / f"{name}.py", "a") as f:
        f.write(copy)
    monkeypatch.setattr(build_homework, "SOURCES", str(tmp_path))
    again = build_homework.notebook(name)
    assert [c.source for c in again.cells] == [c.source for c in nb.cells]


@needs_bwrap
@pytest.mark.timeout(900)
def test_one_stuck_student_never_blocks_the_class(tmp_path):
    """A grading process past its hard limit is killed and replaced; the others are graded."""
    from grader.course import make_course, nbgrader
    from grader.grade import grade_class

    stall = '''import signal, time
from lmcourse.grading import check, checks_done
with check("works", 1):
    if double(0) == "stall":  # this student makes the grading process itself hang
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        time.sleep(600)
    assert double(2) == 4
checks_done()
'''
    src, _ = _tiny_homework(stall, 1, "")
    for c in src.cells:
        c.metadata["nbgrader"].update(locked=c.metadata["nbgrader"].get("grade", False), schema_version=3)
    course = make_course(str(tmp_path / "course"))
    os.makedirs(os.path.join(course, "solutions", "hw9_stall"))
    nbformat.write(src, os.path.join(course, "solutions", "hw9_stall", "hw9_stall.ipynb"))
    nbgrader(course, "generate_assignment", "hw9_stall", "--force")
    for student, answer in (("stuck", "def double(x):\n    return 'stall' if x == 0 else 2 * x\n"),
                            ("fine", "def double(x):\n    return 2 * x\n")):
        _, sub = _tiny_homework(stall, 1, answer)
        os.makedirs(os.path.join(course, "submitted", student, "hw9_stall"))
        nbformat.write(sub, os.path.join(course, "submitted", student, "hw9_stall", "hw9_stall.ipynb"))
    lines = []
    done = grade_class(course, "hw9_stall", ["stuck", "fine"], jobs=1, log=lines.append, hard_limit=40)
    assert set(done) == {"fine"} and done["fine"][0][0].score == 1.0, lines
    assert any("stuck" in line and "longer than 40 s" in line for line in lines), lines
