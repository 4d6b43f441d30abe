"""The browser explorers' Python side: the JSON each one gets equals what lmcourse computes.

The JavaScript itself is exercised in a real browser by ``tests/test_browser.py``.
"""

import json
import re

import pytest
import torch

from lmcourse import explorers as ex
from lmcourse.experiments import (
    attention_weights,
    next_token_logits,
    run_pipeline,
    teacher_forcing_table,
    trace_generation,
)
from lmcourse.long_context import MODEL_PRESETS, kv_cache_bytes
from lmcourse.model import GPT, GPTConfig
from lmcourse.sampling import SamplingConfig
from lmcourse.tokenization import CharTokenizer


@pytest.fixture(scope="module")
def model_tok():
    tok = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyzBH .!\n<>/")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=2, n_embd=16))
    return model.eval(), tok


def _payload(view):
    """The JSON the browser parses, read back from the HTML."""
    html = view._repr_html_()
    m = re.search(r'<script type="application/json" id="([^"]+)-data">(.*?)</script>', html, re.S)
    assert m and m.group(1) == view.id
    return json.loads(m.group(2))


def test_every_template_ships_and_registers_itself():
    assert ex.EXPLORERS == ("temperature", "decoding", "attention", "teacher_forcing", "generation",
                            "attention_ops", "kv_memory", "pipeline")
    common = ex.javascript("common")
    assert "window.LMC = LMC" in common
    for name in ex.EXPLORERS:
        assert f"LMC.explorers.{name} = function (root, data)" in ex.javascript(name)
    with pytest.raises(ValueError, match="unknown explorer"):
        ex.javascript("nope")


def test_html_is_self_contained_and_survives_script_tokens(tmp_path):
    view = ex.ExplorerView("temperature", {"vocab": ["</script>", "a"], "contexts": [
        {"context": "<b>", "logits": [1.0, 2.0]}], "k": 2, "temperature": 1.0})
    html = view._repr_html_()
    assert html.count("</script>") == 2  # the data's "</script>" is escaped inside the JSON
    assert _payload(view)["vocab"][0] == "</script>"
    assert not re.search(r"\bsrc=|https://|//cdn", html)  # nothing is fetched
    assert 'class="lmc-fallback"' in html  # what a reader without JavaScript sees
    page = view.save(tmp_path / "t.html")
    assert page.read_text().startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError, match="finite"):
        ex.ExplorerView("temperature", {"x": float("nan")})
    with pytest.raises(ValueError, match="unknown explorer"):
        ex.ExplorerView("nope", {})


def test_temperature_and_decoding_data_are_the_models_logits(model_tok):
    model, tok = model_tok
    contexts = ["hello there", "abc"]
    view = ex.temperature_view(model, tok, contexts, k=5, temperature=0.5)
    data = _payload(view)
    assert data["k"] == 5 and data["temperature"] == 0.5
    assert data["vocab"] == [tok.decode([i]) for i in range(tok.vocab_size)]
    for row, c in zip(data["contexts"], contexts):
        assert row["context"] == c
        torch.testing.assert_close(torch.tensor(row["logits"]), next_token_logits(model, tok, c),
                                   rtol=1e-5, atol=1e-5)
    d = _payload(ex.decoding_view(model, tok, "abc", temperature=0.7, top_k=3, top_p=0.9, min_p=0.1))
    assert (d["temperature"], d["top_k"], d["top_p"], d["min_p"]) == (0.7, 3, 0.9, 0.1)
    assert d["contexts"][0]["logits"] == data["contexts"][1]["logits"]
    for bad in ({"temperature": 0.0}, {"top_k": -1}, {"top_k": 10**6}, {"top_p": 0.0}, {"min_p": 2.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ex.decoding_view(model, tok, "abc", **bad)
    with pytest.raises(ValueError, match="temperature"):
        ex.temperature_view(model, tok, "abc", temperature=5.0)
    with pytest.raises(ValueError, match="contexts"):
        ex.temperature_view(model, tok, [])
    with pytest.raises(TypeError, match="top_k"):
        ex.decoding_view(model, tok, "abc", top_k=2.5)
    with pytest.raises(TypeError, match="temperature"):
        ex.temperature_view(model, tok, "abc", temperature="1")


def test_attention_data_are_the_models_weights(model_tok):
    model, tok = model_tok
    text = "hello world!"
    data = _payload(ex.attention_view(model, tok, text, layer=1, head=1, query=4))
    ids = tok.encode(text)
    w = torch.tensor(data["weights"])  # (L, H, T, T)
    torch.testing.assert_close(w, attention_weights(model, torch.tensor(ids)), atol=1e-4, rtol=0)
    assert w.shape == (2, 2, len(ids), len(ids))
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, len(ids)), atol=1e-3, rtol=0)
    assert torch.all(w.triu(diagonal=1) == 0)  # causal: no weight on the future
    assert data["tokens"] == list(text) and (data["layer"], data["head"], data["query"]) == (1, 1, 4)
    with pytest.raises(ValueError, match="head"):
        ex.attention_view(model, tok, text, head=2)


def test_teacher_forcing_data_match_the_models_loss(model_tok):
    model, tok = model_tok
    text = "the quick brown fox"
    data = _payload(ex.teacher_forcing_view(model, tok, text, position=3, k=4))
    ids = tok.encode(text)
    x, y = torch.tensor([ids[:-1]]), torch.tensor([ids[1:]])
    with torch.no_grad():
        _, loss = model(x, y)
    assert sum(data["losses"]) / len(data["losses"]) == pytest.approx(loss.item(), rel=1e-4)
    table = teacher_forcing_table(model, ids, k=4)
    assert data["targets"] == ids[1:] and data["top_ids"] == table["top_ids"].tolist()
    assert data["position"] == 3 and len(data["vocab"]) == tok.vocab_size
    with pytest.raises(ValueError, match="position"):
        ex.teacher_forcing_view(model, tok, text, position=len(ids) - 1)


def test_generation_data_are_the_recorded_trace(model_tok):
    model, tok = model_tok
    trace = trace_generation(model, tok, "ab", 6, SamplingConfig(temperature=0.9), 3,
                             torch.Generator().manual_seed(0))
    data = _payload(ex.generation_view(trace, step=2))
    assert data["chosen"] == trace.chosen and data["prompt_ids"] == tok.encode("ab")
    assert data["top_ids"] == trace.top_ids.tolist() and data["step"] == 2
    assert data["chosen_probs"] == pytest.approx(trace.chosen_probs.tolist(), rel=1e-5)
    with pytest.raises(ValueError, match="step"):
        ex.generation_view(trace, step=6)


def test_formula_explorers_get_the_formulas_inputs():
    d = _payload(ex.attention_ops_view(n=20, t=7, max_n=40))
    assert d == {"n": 20, "t": 7, "max_n": 40}
    for bad in ({"n": 0}, {"n": 5, "t": 6}, {"n": 50, "max_n": 40}):
        with pytest.raises(ValueError):
            ex.attention_ops_view(**bad)
    for bad in ({"n": True}, {"t": 2.0}, {"max_n": "40"}):  # a wrong type is a TypeError
        with pytest.raises(TypeError, match=next(iter(bad))):
            ex.attention_ops_view(**bad)
    d = _payload(ex.kv_memory_view(preset="GPT-2 small (MHA)", context=8192, dtype="fp32", batch=2))
    assert d["presets"] == {k: list(v) for k, v in MODEL_PRESETS.items()}
    assert d["dtypes"]["fp32"] == 4 and d["context"] == 8192 and d["batch"] == 2
    assert all(v[2] in d["head_dims"] for v in MODEL_PRESETS.values())
    L, h, dim = d["presets"][d["preset"]]
    # the browser's product 2 L h d n B b is the package's formula
    assert 2 * L * h * dim * 8192 * 2 * 4 == kv_cache_bytes(L, h, dim, 8192, 2, 4)
    for bad in ({"preset": "x"}, {"context": 1000}, {"dtype": "fp64"}, {"batch": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ex.kv_memory_view(**bad)


def test_pipeline_data_are_the_recorded_request(model_tok):
    model, tok = model_tok
    trace = run_pipeline([{"role": "user", "content": "Hi"}], model, tok, max_new_tokens=5)
    data = _payload(ex.pipeline_view(trace, stage=1))
    assert data["prompt_ids"] == trace.prompt_ids and data["new_ids"] == trace.new_ids
    assert data["reply"] == trace.reply and data["stage"] == 1 and len(data["stages"]) == 5
    assert json.loads(data["request_json"])["messages"] == trace.messages
    with pytest.raises(ValueError, match="stage"):
        ex.pipeline_view(trace, stage=5)
