"""The explorers in a real browser: headless Chromium moves each control and reads the drawing.

For every explorer the test changes a control (keyboard, slider, dropdown or button, as a
reader would) and checks that what is drawn follows the maths, computed here independently
from the explorer's own JSON with torch and lmcourse (softmax at the temperature, the
package's filters, the KV-cache formula, ...).

Two sources of pages:
- a standalone page generated from the shipped checkpoint (always, when a browser is
  installed);
- the built book in ``_build/html`` (when it exists, i.e. after ``make book``): every one of
  the eight explorers must be on some chapter page and pass the same checks.

Pages are opened from ``file://`` with networking switched off. The browser is Debian's
``chromium`` + ``chromium-driver`` (``scripts/install_browser.sh``), driven by selenium;
the tests are skipped when either is missing, unless ``LMCOURSE_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# the built book; LMCOURSE_BUILT_HTML points elsewhere (e.g. scripts/build_pages.py's output)
BUILT = Path(os.environ.get("LMCOURSE_BUILT_HTML", ROOT / "_build" / "html"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
NAMES = ("temperature", "decoding", "attention", "teacher_forcing", "generation",
         "attention_ops", "kv_memory", "pipeline")

# CI sets LMCOURSE_REQUIRE_BROWSER=1: there a missing browser is a failure, not a skip
_MISSING = "chromium / chromedriver / selenium missing (scripts/install_browser.sh, requirements.txt)"
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
except ImportError:
    webdriver = None
if webdriver is None or not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    if os.environ.get("LMCOURSE_REQUIRE_BROWSER") == "1":
        pytest.fail(_MISSING, pytrace=False)
    pytest.skip(_MISSING, allow_module_level=True)


@pytest.fixture(scope="module")
def driver():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-default-apps", "--window-size=1280,2000",
                "--host-resolver-rules=MAP * ~NOTFOUND"):  # no name resolves: no network
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """One page with all eight explorers, made from the shipped checkpoint."""
    from lmcourse import explorers as ex
    from lmcourse.experiments import run_pipeline, trace_generation
    from lmcourse.pretrained import load_pretrained
    from lmcourse.sampling import SamplingConfig

    model, tok = load_pretrained("shakespeare-char")
    trace = trace_generation(model, tok, "ROMEO:\n", 12, SamplingConfig(temperature=0.8), 5,
                             torch.Generator().manual_seed(0))
    request = run_pipeline([{"role": "user", "content": "Speak."}], model, tok, max_new_tokens=8)
    views = [
        ex.temperature_view(model, tok, ["ROMEO:\nWhat is", "The quick brown"]),
        ex.decoding_view(model, tok, ["ROMEO:\nWhat is"], temperature=0.8, top_p=0.95),
        ex.attention_view(model, tok, "First Citizen:\nBefore we", query=5),
        ex.teacher_forcing_view(model, tok, "First Citizen:\nBefore we proceed", position=2),
        ex.generation_view(trace),
        ex.attention_ops_view(n=16, max_n=64),
        ex.kv_memory_view(),
        ex.pipeline_view(request),
    ]
    page = tmp_path_factory.mktemp("explorers") / "explorers.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
                    + "".join(v._repr_html_() for v in views) + "</body></html>", encoding="utf-8")
    return page


# ---- helpers ---------------------------------------------------------------------------

def _open(driver, page: Path, name: str, own_page: bool = True):
    """Load ``page`` from disk; return (the explorer's root element, its JSON data).

    The explorers' code may raise nothing (``LMC.errors``, filled by every explorer
    callback; checked again after the interactions). On a page made only of explorers
    (``own_page``) there may be no JavaScript error at all and nothing may be requested
    outside the file; a book page may try to load the theme's own assets (e.g. MathJax)
    from the network, which is blocked here, and the explorers must work all the same.
    """
    driver.get(page.as_uri())
    roots = driver.find_elements(By.CSS_SELECTOR, f'.lmc-explorer[data-explorer="{name}"]')
    assert roots, f"no {name} explorer on {page}"
    root = roots[0]
    assert root.get_attribute("data-ready") == "true", f"{name} did not start on {page}"
    data = json.loads(driver.find_element(By.ID, root.get_attribute("id") + "-data").get_attribute("textContent"))
    _no_explorer_errors(driver)
    notes = root.find_elements(By.CSS_SELECTOR, ":scope > p.lmc-note")
    assert len(notes) == 1 and "no Python kernel" in notes[0].text, "every explorer shows the one shared note"
    if own_page:
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        fetched = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith('file:'))")
        assert not fetched, f"the page fetched {fetched}"
    return root, data


def _no_explorer_errors(driver) -> None:
    errors = driver.execute_script("return window.LMC.errors")
    assert errors == [], errors


def _control(root, name: str):
    return root.find_element(By.CSS_SELECTOR, f'[data-control="{name}"]')


def _set(driver, el, value) -> None:
    """Move a range slider or number box to ``value`` as a drag would (fires 'input')."""
    driver.execute_script(
        "arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", el, str(value))


def _bars(driver, svg) -> list[dict]:
    return driver.execute_script(
        "return Array.from(arguments[0].querySelectorAll('rect.lmc-bar')).map(r => ({"
        "label: r.dataset.label, value: +r.dataset.value, height: +r.getAttribute('height'),"
        "selected: r.dataset.selected === 'true'}));", svg)


def _readout(root, key: str) -> str:
    return root.find_element(By.CSS_SELECTOR, f'[data-key="{key}"]').get_attribute("textContent")


def _check_heights(svg, bars) -> None:
    """Bar heights are proportional to the values drawn (the picture is the numbers)."""
    ymax, ymin = float(svg.get_attribute("data-ymax")), float(svg.get_attribute("data-ymin"))
    full = float(svg.get_attribute("data-plot-height"))
    for b in bars:
        assert b["height"] == pytest.approx(full * abs(b["value"]) / (ymax - ymin), abs=0.05)


# ---- one check per explorer ---------------------------------------------------------

def check_temperature(driver, root, data):
    z = torch.tensor(data["contexts"][0]["logits"], dtype=torch.float64)
    order = torch.argsort(z, descending=True)[: data["k"]].tolist()
    slider = _control(root, "temperature")
    probs_svg = root.find_element(By.CSS_SELECTOR, "svg.lmc-probs")
    seen = {}
    for key, t in ((Keys.HOME, 0.1), (None, 1.0), (Keys.END, 3.0)):
        if key is None:
            _set(driver, slider, t)
        else:
            slider.send_keys(key)  # the keyboard moves it to its end
        assert float(slider.get_attribute("value")) == pytest.approx(t)
        p = torch.softmax(z / t, dim=0)
        bars = _bars(driver, probs_svg)
        assert [b["label"] for b in bars] == [data["vocab"][i] for i in order]  # order never changes
        assert [b["value"] for b in bars] == pytest.approx(p[order].tolist(), abs=1e-6)
        _check_heights(probs_svg, bars)
        entropy = -(p * p.clamp_min(1e-300).log2()).sum().item()
        assert float(_readout(root, "entropy_bits")) == pytest.approx(entropy, abs=1e-3)
        seen[t] = (bars[0]["value"], entropy)
    # sharper at 0.1 (the top bar holds nearly all the mass), flatter at 3.0
    assert seen[0.1][0] > seen[1.0][0] > seen[3.0][0]
    assert seen[0.1][1] < seen[1.0][1] < seen[3.0][1]
    gap = (z[order[0]] - z[order[1]]).item()
    if gap > 0.5:  # a clear favourite: at 0.1 its probability is at least 1 / (1 + (V-1) e^{-10 gap})
        assert seen[0.1][0] > 0.95


def check_decoding(driver, root, data):
    from lmcourse.sampling import filter_stats

    z = torch.tensor(data["contexts"][0]["logits"])
    after_svg = root.find_element(By.CSS_SELECTOR, "svg.lmc-after")
    _set(driver, _control(root, "min_p"), 0)
    for T, k, p in ((1.0, 3, 1.0), (0.7, 0, 0.6), (1.5, 10, 0.9)):
        _set(driver, _control(root, "temperature"), T)
        _set(driver, _control(root, "top_k"), k)
        _set(driver, _control(root, "top_p"), p)
        ref = filter_stats(z, T, k or None, p if p < 1 else None)  # lmcourse's own filters
        assert int(_readout(root, "n_kept")) == ref["n_kept"]
        after = {b["label"]: b["value"] for b in _bars(driver, after_svg)}
        for i in torch.argsort(z, descending=True)[: data["k"]].tolist():
            assert after[data["vocab"][i]] == pytest.approx(ref["after"][i].item(), abs=1e-4)
    _set(driver, _control(root, "top_k"), 1)  # top-k 1 is greedy: one bar holds everything
    values = sorted(b["value"] for b in _bars(driver, after_svg))
    assert values[-1] == pytest.approx(1.0) and values[-2] == 0


def check_attention(driver, root, data):
    L, H, T = len(data["weights"]), len(data["weights"][0]), len(data["tokens"])
    Select(_control(root, "layer")).select_by_value(str(L - 1))
    Select(_control(root, "head")).select_by_value(str(H - 1))
    for q in (0, T // 2, T - 1):
        _set(driver, _control(root, "query"), q)
        row = _bars(driver, root.find_element(By.CSS_SELECTOR, "svg.lmc-row"))
        values = [b["value"] for b in row]
        assert values == pytest.approx(data["weights"][L - 1][H - 1][q][: q + 1] + [0] * (T - 1 - q), abs=1e-6)
        assert sum(values) == pytest.approx(1.0, abs=2e-3)  # softmax over the visible keys
        assert all(v == 0 for v in values[q + 1:])  # the future is masked
    cells = root.find_elements(By.CSS_SELECTOR, 'svg.lmc-grid rect.lmc-cell[data-masked="false"]')
    assert len(cells) == T * (T + 1) // 2


def check_teacher_forcing(driver, root, data):
    t0 = data["position"]
    nxt = root.find_element(By.CSS_SELECTOR, '[data-control="next"]')
    nxt.click()
    nxt.click()
    t = t0 + 2
    assert int(_control(root, "position").get_attribute("value")) == t
    assert _readout(root, "prefix") == "".join(data["vocab"][i] for i in data["inputs"][: t + 1])
    assert float(_readout(root, "prob")) == pytest.approx(data["probs"][t], abs=1e-4)
    assert float(_readout(root, "loss")) == pytest.approx(-math.log(data["probs"][t]), abs=1e-4)
    assert float(_readout(root, "loss")) == pytest.approx(data["losses"][t], abs=1e-3)
    losses = _bars(driver, root.find_element(By.CSS_SELECTOR, "svg.lmc-losses"))
    assert [i for i, b in enumerate(losses) if b["selected"]] == [t]
    assert [b["value"] for b in losses] == pytest.approx(data["losses"], abs=1e-6)
    cand = [b for b in _bars(driver, root.find_element(By.CSS_SELECTOR, "svg.lmc-candidates")) if b["selected"]]
    assert len(cand) == 1 and cand[0]["label"] == data["vocab"][data["targets"][t]]


def check_generation(driver, root, data):
    nxt = root.find_element(By.CSS_SELECTOR, '[data-control="next"]')
    step = data["step"]
    for _ in range(3):
        nxt.click()
        step += 1
        text = _readout(root, "prompt") + _readout(root, "generated") + _readout(root, "chosen")
        assert text == "".join(data["vocab"][i] for i in data["prompt_ids"] + data["chosen"][: step + 1])
        chosen = [b for b in _bars(driver, root.find_element(By.CSS_SELECTOR, "svg.lmc-candidates")) if b["selected"]]
        assert len(chosen) == 1 and chosen[0]["label"] == data["vocab"][data["chosen"][step]]
        assert chosen[0]["value"] == pytest.approx(data["chosen_probs"][step], abs=1e-6)
    _control(root, "step").send_keys(Keys.END)
    assert _readout(root, "chosen") == data["vocab"][data["chosen"][-1]]


def check_attention_ops(driver, root, data):
    from lmcourse.long_context import attention_ops

    n_max = min(data["max_n"], 20)
    _set(driver, _control(root, "n"), n_max)
    ops = attention_ops(n_max)
    for t in (1, 7, n_max):
        _set(driver, _control(root, "t"), t)
        assert _readout(root, "step_no_cache").replace(",", "") == str(t * (t + 1) // 2)
        assert _readout(root, "step_cache").replace(",", "") == str(t)
        # one drawn cell per dot product computed at step t
        assert len(root.find_elements(By.CSS_SELECTOR, "svg.lmc-grid-no-cache rect.lmc-op")) == ops["no_cache"][t - 1]
        assert len(root.find_elements(By.CSS_SELECTOR, "svg.lmc-grid-cache rect.lmc-op")) == ops["cache"][t - 1]
    assert _readout(root, "total_no_cache").replace(",", "") == str(ops["cum_no_cache"][-1])
    assert _readout(root, "total_cache").replace(",", "") == str(ops["cum_cache"][-1])


def check_kv_memory(driver, root, data):
    from lmcourse.long_context import format_bytes, kv_cache_bytes

    preset = next(k for k in data["presets"] if "Llama-3-8B" in k)
    Select(_control(root, "preset")).select_by_value(preset)
    Select(_control(root, "context")).select_by_value("8192")
    Select(_control(root, "dtype")).select_by_value("fp32")
    L, h, d = data["presets"][preset]
    expected = kv_cache_bytes(L, h, d, 8192, 1, 4)
    assert int(_readout(root, "bytes")) == expected
    assert _readout(root, "human") == format_bytes(expected)
    _set(driver, _control(root, "h"), 1)  # multi-query attention: one KV head
    _set(driver, _control(root, "batch"), 8)
    assert int(_readout(root, "bytes")) == kv_cache_bytes(L, 1, d, 8192, 8, 4)
    bar = root.find_element(By.CSS_SELECTOR, 'svg.lmc-memory rect[data-series="current"][data-context="8192"]')
    assert int(float(bar.get_attribute("data-value"))) == kv_cache_bytes(L, 1, d, 8192, 8, 4)


def check_pipeline(driver, root, data):
    _set(driver, _control(root, "stage"), 3)  # 3. prompt token ids
    boxes = root.find_elements(By.CSS_SELECTOR, ".lmc-panel .lmc-tok")
    assert [int(b.get_attribute("data-id")) for b in boxes] == data["prompt_ids"]
    specials = root.find_elements(By.CSS_SELECTOR, ".lmc-panel .lmc-tok.lmc-special")
    assert len(specials) == sum(t in data["specials"] for t in data["prompt_tokens"]) > 0
    root.find_element(By.CSS_SELECTOR, '[data-control="next"]').click()  # 4. generated tokens
    boxes = root.find_elements(By.CSS_SELECTOR, ".lmc-panel .lmc-tok")
    assert [int(b.get_attribute("data-id")) for b in boxes] == data["new_ids"]
    _set(driver, _control(root, "n_new"), 2)
    assert len(root.find_elements(By.CSS_SELECTOR, ".lmc-panel .lmc-tok")) == min(2, len(data["new_ids"]))
    root.find_element(By.CSS_SELECTOR, '[data-control="next"]').click()  # 5. reply
    assert _readout(root, "reply") == data["reply"]
    assert json.loads(_readout(root, "response"))["choices"][0]["message"]["content"] == data["reply"]


CHECKS = {name: globals()[f"check_{name}"] for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_explorer_standalone(driver, standalone, name):
    root, data = _open(driver, standalone, name)
    CHECKS[name](driver, root, data)
    _no_explorer_errors(driver)


def _built_pages() -> dict[str, Path]:
    pages = {}
    for page in sorted(BUILT.rglob("*.html")):
        text = page.read_text(encoding="utf-8", errors="replace")
        for name in NAMES:
            if name not in pages and f'data-explorer="{name}"' in text:
                pages[name] = page
    return pages


@pytest.mark.skipif(not BUILT.is_dir(), reason="no built book in _build/html (run make book)")
@pytest.mark.parametrize("name", NAMES)
def test_explorer_in_built_book(driver, name):
    pages = _built_pages()
    assert name in pages, f"no chapter page in {BUILT} shows the {name} explorer"
    root, data = _open(driver, pages[name], name, own_page=False)
    CHECKS[name](driver, root, data)
    _no_explorer_errors(driver)


# ---- formulas offline ------------------------------------------------------------------

MATHJAX = ROOT / "third_party" / "mathjax" / "tex-mml-chtml.js"


def _wait_typeset(driver) -> None:
    import time

    deadline = time.time() + 30
    while time.time() < deadline:
        state = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const p = (window.MathJax && MathJax.startup && MathJax.startup.promise);"
            "if (!p) { done(null); } else { p.then(() => done('done'), e => done('error: ' + e)); }")
        if state == "done":
            return
        assert state is None or not state.startswith("error"), state
        time.sleep(0.2)
    raise AssertionError("MathJax never finished typesetting")


def _rendered_math(driver) -> list[str]:
    """The text of every typeset formula on the page (MathJax's CHTML output elements)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('mjx-container')).map(e => e.textContent)")


def test_vendored_mathjax_typesets_from_file_without_network(driver, tmp_path):
    # A page that loads the book's own copy of MathJax from file://, with every host name
    # unresolvable (see the driver): the formula must come out typeset, not as raw TeX.
    assert MATHJAX.exists(), "run scripts/vendor_mathjax.py"
    page = tmp_path / "formula.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'>"
                    f"<script id='MathJax-script' src='{MATHJAX.as_uri()}'></script></head>"
                    r"<body><p id='f'>\(p_i = \frac{e^{z_i}}{\sum_j e^{z_j}}\)</p></body></html>",
                    encoding="utf-8")
    driver.get(page.as_uri())
    _wait_typeset(driver)
    assert len(_rendered_math(driver)) == 1
    assert "\\frac" not in driver.find_element(By.ID, "f").text  # no raw TeX left on the page
    assert driver.find_elements(By.CSS_SELECTOR, "#f mjx-container mjx-mfrac")  # a real fraction
    fetched = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith('file:'))")
    assert not fetched, f"the page fetched {fetched}"


def test_mathjax_check_fails_without_mathjax(driver, tmp_path):
    # the check above is not vacuous: the same page with a missing script shows raw TeX
    page = tmp_path / "no_mathjax.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'>"
                    f"<script src='{(tmp_path / 'missing.js').as_uri()}'></script></head>"
                    r"<body><p id='f'>\(x^2\)</p></body></html>", encoding="utf-8")
    driver.get(page.as_uri())  # returns after the load event: the script has failed by then
    assert driver.execute_script("return typeof window.MathJax") == "undefined"
    assert _rendered_math(driver) == [] and "x^2" in driver.find_element(By.ID, "f").text


def test_built_book_typesets_formulas_offline(driver):
    # The built chapter 3 (softmax, surprisal, entropy) loads MathJax from its own _static
    # folder, and its formulas are typeset with the network blocked.
    page = BUILT / "book" / "03_logits_softmax.html"
    if not page.exists():
        pytest.skip("book not built")
    html = page.read_text(errors="replace")
    assert "/mathjax/tex-mml-chtml.js" in html and "cdn.jsdelivr.net/npm/mathjax" not in html
    assert (BUILT / "mathjax" / "tex-mml-chtml.js").exists()
    assert "mathjax/input/tex/extensions" not in html  # extensions load on demand, not on every page
    driver.get(page.as_uri())
    _wait_typeset(driver)
    formulas = _rendered_math(driver)
    assert len(formulas) >= 5, f"only {len(formulas)} formulas typeset"
