"""Checks on the committed book notebooks: no outputs, one install URL everywhere, no book-only
machinery in the code a student runs, and {eval} roles that can be evaluated where they stand."""

import ast
import builtins
import importlib
import importlib.util
import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def repository_url() -> str:
    text = (ROOT / "_config.yml").read_text()
    match = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", text, re.M)
    assert match, "_config.yml has no repository.url"
    return match.group(1)


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 16


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name} has outputs; clear them before committing"
            assert cell.get("execution_count") is None, f"{path.name} has execution counts"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_has_a_unique_id(path):
    # nbformat 4.5 requires cell ids; a cell inserted by a script without one makes every
    # execution warn (MissingIDFieldWarning) and will be an error in later nbformat versions
    ids = [cell.get("id") for cell in json.loads(path.read_text())["cells"]]
    assert None not in ids, f"{path.name}: cells {[i for i, c in enumerate(ids) if c is None]} have no id"
    assert len(set(ids)) == len(ids), f"{path.name}: duplicated cell ids"


def _setup_cell() -> str:
    spec = importlib.util.spec_from_file_location("new_chapter", ROOT / "scripts" / "new_chapter.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SETUP_CELL


def test_setup_cell_text():
    # What the setup cell promises: install only on Colab or when LMCOURSE_INSTALL is set,
    # from the configured repository by default, never reinstall torch, enable Colab's
    # widget manager (ipywidgets 8 explorers show nothing on Colab without it), then setup().
    cell = _setup_cell()
    assert re.findall(r"git\+(\S+?)[\"']", cell) == [repository_url()]
    assert 'os.environ.get("LMCOURSE_INSTALL"' in cell and '%pip install -q "{install_from}"' in cell
    assert "enable_custom_widget_manager()" in cell
    assert not re.search(r"%pip[^\n]*torch", cell)  # Colab's CUDA torch is kept
    assert cell.rstrip().endswith("device = lmcourse.setup(seed=0)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_is_the_locked_cell(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, f"{path.name} has no code cell"
    assert "".join(code[0]["source"]) == _setup_cell(), (
        f"{path.name}: the first code cell must be scripts/new_chapter.py's SETUP_CELL"
    )
    assert "setup" in code[0].get("metadata", {}).get("tags", []), f"{path.name}: tag the setup cell 'setup'"

EVAL_ROLE = re.compile(r"\{eval\}`([^`]+)`")


def _magic_free(source: str) -> str:
    """A code cell's source with IPython magics and shell escapes replaced by ``pass``."""
    lines = source.splitlines()
    return "\n".join(
        line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
        for line in lines
    )


def _bound_names(tree: ast.AST) -> set[str]:
    """Names a cell binds at top level or anywhere inside it (assignments, imports, defs, loops)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_book_only_imports_or_glue(path):
    # A chapter needs only lmcourse: myst_nb is a book-build package that Colab does not have.
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            assert "myst_nb" not in source, f"{path.name} imports myst_nb: use {{eval}} in the prose"
            assert not re.search(r"\bglue\(", source), f"{path.name} calls glue(): use {{eval}} in the prose"
        else:
            assert "{glue" not in source, f"{path.name} uses a glue role: use {{eval}}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_eval_roles_use_only_names_defined_above(path):
    # {eval} runs when the book build reaches the markdown cell, so every name it reads must be
    # bound by a code cell above it (or be a builtin). Catches forward references without a build.
    nb = json.loads(path.read_text())
    known = set(dir(builtins))
    for index, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            known |= _bound_names(ast.parse(_magic_free(source)))
            continue
        for expr in EVAL_ROLE.findall(source):
            tree = ast.parse(expr, mode="eval")  # a SyntaxError here names the bad expression
            local = _bound_names(tree)  # comprehension variables
            used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            missing = used - known - local
            assert not missing, f"{path.name} cell {index}: {{eval}}`{expr}` reads {sorted(missing)} before a code cell defines it"


def test_colab_check_fills_every_released_solution_cell(monkeypatch):
    # scripts/colab_check.py runs each released assignment with the instructor's solution
    # cells (matched by nbgrader grade_id); every solution cell must have its counterpart.
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    cc = importlib.import_module("colab_check")
    released = cc.assignments(ROOT)
    assert released, "no released assignment found"
    for path in released:
        nb = cc.with_solutions(path, ROOT)
        solved = [c for c in nb.cells if (c.metadata.get("nbgrader") or {}).get("solution") and c.cell_type == "code"]
        assert solved, f"{path.name}: no solution cell"
        assert not any("raise NotImplementedError()" in c.source for c in solved), path.name


def test_colab_check_reports_the_first_failing_cell(monkeypatch, tmp_path):
    # A notebook whose second cell fails is reported failed, with that cell and its error.
    import nbformat

    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    cc = importlib.import_module("colab_check")
    good = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                          nbformat.v4.new_code_cell("import no_such_module_xyz")])
    results = cc.run_notebooks([("good", good, tmp_path), ("bad", bad, tmp_path)], "python3", 2, 60)
    assert [(r.name, r.ok) for r in results] == [("good", True), ("bad", False)]
    assert results[1].error == "cell 1: ModuleNotFoundError: No module named 'no_such_module_xyz'"
    assert "1/2 ok" in cc.table(results)


def test_colab_check_runs_every_chapter(monkeypatch):
    # a chapter the Colab-like check skips (e.g. 05b_transformer) is a chapter no one ran there
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    cc = importlib.import_module("colab_check")
    assert set(cc.chapters(ROOT)) == set(NOTEBOOKS)


HOMEWORK = ("hw1_probability_loss", "hw2_tokenisation", "hw3_causal_attention", "hw3b_transformer",
            "hw4_training", "hw5_generation_kv_cache", "hw6_decoding", "hw7_capstone")
DROPDOWN = re.compile(r"^:::\{admonition\} (Answer|Solution)\n:class: dropdown\n", re.M)


def _markdown(path):
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_has_the_teaching_parts(path):
    # Every chapter: 3-5 learning outcomes right after the intro, 2-4 check-your-understanding
    # questions with collapsible answers, a summary, 3-6 exercises with collapsible solutions
    # after it, and a "Now build it" pointer to a homework notebook on Colab, in that order.
    md = _markdown(path)
    outcomes = next((i for i, s in enumerate(md) if s.startswith("**After this chapter you can**")), None)
    assert outcomes is not None and outcomes <= 1, f"{path.name}: no learning outcomes after the intro"
    n_outcomes = len(re.findall(r"^- ", md[outcomes], re.M))
    assert 3 <= n_outcomes <= 5, f"{path.name}: {n_outcomes} learning outcomes"

    text = "\n\n".join(md)
    summary = text.find("\n## Summary\n")
    exercises = text.find("\n## Exercises\n")
    build = text.find("\n## Now build it\n")
    assert 0 < summary < exercises < build, f"{path.name}: summary, exercises and 'Now build it' missing or out of order"

    checks = re.findall(r"\*\*Check your understanding \d+\.\*\*(.*?)(?=\n\*\*Check your understanding|\Z)", text[:summary], re.S)
    assert 2 <= len(checks) <= 4, f"{path.name}: {len(checks)} check-your-understanding questions"
    assert all(DROPDOWN.search(c) for c in checks), f"{path.name}: a question without a collapsible answer"

    block = text[exercises:build]
    parts = re.split(r"\n\*\*Exercise \d+ \(([^)]+)\)\.\*\*", block)[1:]
    labels, items = parts[0::2], parts[1::2]
    assert 3 <= len(items) <= 6, f"{path.name}: {len(items)} exercises"
    assert all(DROPDOWN.search(item) for item in items), f"{path.name}: an exercise without a collapsible solution"
    assert any("code" in label for label in labels), f"{path.name}: no exercise asks for code"
    assert any("experiment" in label for label in labels), f"{path.name}: no exercise is an experiment"

    links = re.findall(r"https://colab\.research\.google\.com/github/lmcourse-org/lmcourse/blob/main/assignments/(\w+)/(\w+)\.ipynb",
                       text[build:])
    assert links and all(a == b and a in HOMEWORK for a, b in links), f"{path.name}: no valid homework link in 'Now build it'"


def test_teaching_parts_check_rejects_a_bare_chapter(tmp_path):
    # the check above fails on a chapter with only prose (guards against a test that cannot fail)
    nb = {"cells": [{"cell_type": "markdown", "id": "a", "metadata": {}, "source": ["# T\n\nProse.\n\n## Summary\n\n- x\n"]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    bare = tmp_path / "99_bare.ipynb"
    bare.write_text(json.dumps(nb))
    with pytest.raises(AssertionError):
        test_chapter_has_the_teaching_parts(bare)
