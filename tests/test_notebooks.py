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
