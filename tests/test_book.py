"""Checks on the built book; skipped when _build/html does not exist (run `make book` first).

The same checks run after the build in CI via scripts/check_built_book.py.
"""

import importlib.util
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_built_book", ROOT / "scripts" / "check_built_book.py")
cbb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cbb)

HTML = ROOT / "_build" / "html"
PAGES = cbb.toc_files(ROOT)
built = pytest.mark.skipif(not (HTML / "index.html").exists(), reason="book not built (run `make book`)")


def test_toc_names_the_chapters():
    assert PAGES[0] == "book/intro"
    assert sum(cbb.is_notebook(p, ROOT) for p in PAGES) >= 16
    for page in PAGES:
        assert (ROOT / f"{page}.md").exists() or (ROOT / f"{page}.ipynb").exists(), page


@built
@pytest.mark.parametrize("page", PAGES)
def test_page_is_built(page):
    assert (HTML / f"{page}.html").exists()


@built
@pytest.mark.parametrize("page", [p for p in PAGES if cbb.is_notebook(p, ROOT)])
def test_notebook_page_has_colab_link(page):
    text = (HTML / f"{page}.html").read_text(errors="replace")
    assert "colab.research.google.com" in text


@built
@pytest.mark.parametrize("page", cbb.FIGURE_CHAPTERS)
def test_chapter_has_a_figure(page):
    # Here (unlike scripts/check_built_book.py, which is strict) a chapter not written yet
    # or changed since the last build is skipped, so a stale local build blocks no one.
    if cbb.is_placeholder(page, ROOT) or cbb.is_stale(page, HTML, ROOT):
        pytest.skip("chapter not written yet, or built before its last change")
    text = (HTML / f"{page}.html").read_text(errors="replace")
    if not cbb.IMG.search(text) and not os.environ.get("LMCOURSE_STRICT_BOOK"):
        # A local build is shared by everyone's pre-commit run: report, don't block.
        # scripts/check_built_book.py (run after `make book` in CI) is strict.
        pytest.xfail(f"{page} shows no figure (plt.show() under MPLBACKEND=Agg draws nothing)")
    assert cbb.IMG.search(text), f"{page} shows no figure"


@built
@pytest.mark.parametrize("page", PAGES)
def test_no_error_output(page):
    path = HTML / f"{page}.html"
    if not path.exists():
        pytest.skip("page not built")
    if cbb.is_stale(page, HTML, ROOT):
        pytest.skip("built before the page's last change")
    text = path.read_text(errors="replace")
    assert not [m for m in cbb.ERROR_MARKERS if m in text]


@built
@pytest.mark.parametrize("page", [p for p in PAGES if cbb.is_notebook(p, ROOT)])
def test_no_unresolved_eval_role(page):
    path = HTML / f"{page}.html"
    if not path.exists() or cbb.is_stale(page, HTML, ROOT):
        pytest.skip("page not built, or built before its last change")
    text = cbb.CODE.sub("", path.read_text(errors="replace"))
    assert not cbb.UNRESOLVED_ROLE.search(text)


def test_unresolved_role_detector():
    # the check used above and by scripts/check_built_book.py, on made-up HTML
    shown = '<p>The value is {eval}`f"{x:.3f}"` here.</p>'
    documented = '<p>Write <code>{eval}`f"{x:.3f}"`</code> in the prose.</p>'
    assert cbb.UNRESOLVED_ROLE.search(cbb.CODE.sub("", shown))
    assert not cbb.UNRESOLVED_ROLE.search(cbb.CODE.sub("", documented))
    assert cbb.UNRESOLVED_ROLE.search("{glue:text}`ch1_x`")


@built
def test_causal_masking_page_has_math_and_explorer_figure():
    if cbb.is_stale("book/05_causal_masking", HTML, ROOT):
        pytest.skip("built before the chapter's last change")
    text = (HTML / "book" / "05_causal_masking.html").read_text(errors="replace")
    assert "mathjax" in text.lower()
    assert len(cbb.IMG.findall(text)) >= 2
