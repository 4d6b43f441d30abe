"""The rules a homework's header states match what the grader enforces (cell metadata).

Each homework header has a **Forbidden while graded** paragraph naming the ATen operators
disabled (``aten::name``) and the ``lmcourse`` modules that are not installed, and an
**Available while graded** paragraph naming the ``lmcourse`` modules a part may use. The
grader reads the same facts from each test cell's ``lmcourse`` metadata (``block_ops``,
``allow``); these tests fail when the two disagree. The header's list of components and
points must also match the test cells' points, in order.
"""

from __future__ import annotations

import os
import re

import nbformat
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATED = ["hw1_probability_loss", "hw2_tokenisation", "hw3_causal_attention", "hw6_decoding"]


def _notebook(hw):
    return nbformat.read(os.path.join(ROOT, "solutions", hw, f"{hw}.ipynb"), as_version=4)


def _header(nb) -> str:
    return next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "md-1")


def _paragraph(header: str, title: str) -> str:
    start = header.index(f"**{title}")
    end = header.find("\n\n", start)
    return " ".join(header[start : end if end >= 0 else None].split())


def _tests(nb):
    return [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]


@pytest.mark.parametrize("hw", STATED)
def test_disabled_operators_are_the_stated_ones(hw):
    nb = _notebook(hw)
    forbidden = _paragraph(_header(nb), "Forbidden while graded")
    stated = set(re.findall(r"`aten::(\w+)`", forbidden))
    for name in stated:
        assert getattr(torch.ops.aten, name, None) is not None, f"{hw}: aten::{name} is not an operator"
    if not stated:
        assert "No PyTorch operator is disabled" in forbidden, f"{hw}: say that no operator is disabled"
    assert "(every part)" in forbidden or not stated, f"{hw}: say which parts the operators are disabled in"
    for cell in _tests(nb):
        gid = cell.metadata["nbgrader"]["grade_id"]
        blocked = set(cell.metadata.get("lmcourse", {}).get("block_ops", []))
        assert blocked == stated, f"{hw}/{gid}: the grader disables {sorted(blocked)}, the header states {sorted(stated)}"


@pytest.mark.parametrize("hw", STATED)
def test_allowed_modules_are_the_stated_ones(hw):
    nb = _notebook(hw)
    header = _header(nb)
    forbidden = _paragraph(header, "Forbidden while graded")
    available = _paragraph(header, "Available while graded")
    offered = set(re.findall(r"`(lmcourse\.\w+)`", available))
    refused = set(re.findall(r"`(lmcourse\.\w+)`", forbidden))
    whole_package = "the `lmcourse` package" in forbidden
    assert not offered & refused, f"{hw}: {sorted(offered & refused)} stated both available and forbidden"
    parts = re.search(r"in parts ([\d, and]+)", available)
    for number, cell in enumerate(_tests(nb), start=1):
        gid = cell.metadata["nbgrader"]["grade_id"]
        allow = set(cell.metadata.get("lmcourse", {}).get("allow", []))
        assert allow <= offered, f"{hw}/{gid}: the grader allows {sorted(allow - offered)}, not stated as available"
        assert not allow & refused, f"{hw}/{gid}: allows {sorted(allow & refused)}, stated as forbidden"
        if whole_package:
            assert not allow, f"{hw}/{gid}: the header forbids the lmcourse package, the grader allows {sorted(allow)}"
        if parts:
            named = {int(n) for n in re.findall(r"\d+", parts.group(1))}
            assert bool(allow) == (number in named), f"{hw}/{gid} (part {number}): allow {sorted(allow)}, header says parts {sorted(named)}"


@pytest.mark.parametrize("hw", STATED)
def test_component_points_are_the_test_cells_points(hw):
    nb = _notebook(hw)
    text = "\n".join(line for line in _header(nb).splitlines())
    items = re.split(r"\n(?=\d+\. )", text[text.index("\n1. ") + 1 :])
    stated = []
    for item in items:
        if not re.match(r"\d+\. ", item):
            break
        found = re.search(r"\((\d+) points?", item)
        assert found, f"{hw}: no points in the component {item[:60]!r}"
        stated.append(int(found.group(1)))
    points = [c.metadata["nbgrader"]["points"] for c in _tests(nb)]
    assert stated == points, f"{hw}: the header lists points {stated}, the test cells have {points}"
