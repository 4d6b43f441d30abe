"""The package's layering rule: every module is in ``lmcourse.LAYERS`` and imports
only modules listed before it; ``import lmcourse`` stays cheap.

Imports are read with ``ast`` from the source files (nothing is imported), anywhere in a
file: a lazy import inside a function is still a dependency. Only ``if TYPE_CHECKING:``
blocks are skipped (they never run).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import lmcourse

PACKAGE = Path(lmcourse.__file__).resolve().parent


def _module_name(path: Path) -> str:
    """``lmcourse/plots/tokens.py`` -> ``lmcourse.plots.tokens``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _unit(module: str) -> str:
    """The entry of ``MODULE_ORDER`` a module belongs to: ``lmcourse.plots.tokens`` -> ``plots``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> set[str]:
    """Every ``lmcourse`` module imported by the file (absolute or relative), with its line."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "lmcourse")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "lmcourse":
                if target == "lmcourse" or node.module is None:
                    # ``from . import model`` / ``from lmcourse import x``: x may be a module
                    found.update(f"{target}.{a.name}" for a in node.names)
                else:
                    found.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return found


FILES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_is_in_the_layer_order():
    units = {_unit(_module_name(p)) for p in FILES} - {""}
    missing = sorted(units - set(lmcourse.MODULE_ORDER))
    assert not missing, (
        f"modules missing from lmcourse.LAYERS (lmcourse/__init__.py): {missing}; "
        "add each to the layer it belongs to"
    )
    assert len(set(lmcourse.MODULE_ORDER)) == len(lmcourse.MODULE_ORDER), "a module is listed twice"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_upward_import(path):
    order = {m: k for k, m in enumerate(lmcourse.MODULE_ORDER)}
    unit = _unit(_module_name(path))
    if unit == "":  # lmcourse/__init__.py: the facade imports lazily, see the next test
        assert _imports(path) == set(), "lmcourse/__init__.py must not import submodules eagerly"
        return
    upward = []
    for target in sorted(_imports(path)):
        dep = _unit(target)
        if dep in ("", unit):
            continue  # the package itself (lazy facade) or the module's own subpackage
        if dep not in order:
            upward.append(f"{target} (not in lmcourse.LAYERS)")
        elif order[dep] > order[unit]:
            upward.append(f"{target} (layer order: {unit} is below {dep})")
    assert not upward, f"{path.relative_to(PACKAGE.parent)} imports upward: {upward}"


def test_the_parser_sees_every_kind_of_import(tmp_path, monkeypatch):
    """The checker itself: absolute, relative, lazy and ``from . import`` forms are found;
    TYPE_CHECKING blocks are not."""
    pkg = tmp_path / "lmcourse"
    (pkg / "plots").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    src = (
        "import lmcourse.model\n"
        "from ..sampling import x\n"
        "from .. import beam\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from lmcourse.cli import y\n"
        "def f():\n    from lmcourse.train import Trainer\n"
        "import os\n"
    )
    (pkg / "plots" / "demo.py").write_text(src)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    assert _imports(pkg / "plots" / "demo.py") == {
        "lmcourse.model", "lmcourse.sampling", "lmcourse.beam", "lmcourse.train"
    }


def test_import_lmcourse_is_lazy():
    code = (
        "import sys, lmcourse\n"
        "eager = sorted(m for m in sys.modules if m.startswith('lmcourse.') or m == 'torch')\n"
        "assert eager == [], eager\n"
        "assert callable(lmcourse.setup) and callable(lmcourse.load_pretrained)\n"
        "assert lmcourse.model.GPT.__name__ == 'GPT'\n"
        "assert 'lmcourse.model' in sys.modules\n"
        "try:\n    lmcourse.no_such_name\nexcept AttributeError as e:\n    assert 'no_such_name' in str(e)\n"
        "else:\n    raise AssertionError('expected AttributeError')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_no_two_modules_define_the_same_public_name():
    """One name, one meaning: a public function or class is defined in one module only
    (the sub-command protocol of ``lmcourse.cli``, ``add_arguments`` and ``run``, excepted)."""
    where: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                where.setdefault(node.name, []).append(_module_name(path))
    protocol = {"add_arguments", "run"}
    twice = {name: mods for name, mods in where.items() if len(mods) > 1 and name not in protocol}
    assert not twice, f"public names defined in several modules: {twice}"
    assert all(m.startswith("lmcourse.cli.") for m in where["run"])


def test_model_imports_nothing_from_lmcourse():
    """The homework grader copies ``lmcourse/model.py`` alone into its sandbox, so the model
    file must stand on torch only."""
    tree = ast.parse((PACKAGE / "model.py").read_text())
    found = [
        ast.unparse(node)
        for node in ast.walk(tree)
        if (isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("lmcourse")))
        or (isinstance(node, ast.Import) and any(a.name.startswith("lmcourse") for a in node.names))
    ]
    assert not found, found
