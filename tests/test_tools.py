"""The tool loop on a model that always writes one chosen character, and the calculator."""

import random

import pytest
import torch

from lmcourse.model import GPT, GPTConfig
from lmcourse.sampling import SamplingConfig
from lmcourse.tokenization import CharTokenizer
from lmcourse.tools import calculator, generate_with_tools, parse_call

TOK = CharTokenizer(sorted(set("<>calc 0123456789+x\n")), special_tokens=())
GREEDY = SamplingConfig(temperature=0)


def constant_model(char: str) -> GPT:
    """A GPT whose every weight is zero except the path that makes ``char`` the argmax."""
    cfg = GPTConfig(vocab_size=TOK.vocab_size, block_size=64, n_layer=1, n_head=1, n_embd=8,
                    tie_weights=False)
    model = GPT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.transformer.ln_f.bias[0] = 1.0  # ln_f(0) = its bias
        model.lm_head.weight[TOK.encode(char)[0], 0] = 10.0
    return model.eval()


def test_call_is_parsed_run_and_its_result_inserted():
    seen = []

    def calc(arg: str) -> str:
        seen.append(arg)
        return calculator(arg)

    run = generate_with_tools(constant_model(">"), TOK, "x <calc 2+3", {"calc": calc}, 3, GREEDY)
    assert seen == ["2+3"]
    assert run.text == ">5>>"  # the call closes, "5" is inserted, the model goes on
    assert [(c.name, c.argument, c.result) for c in run.calls] == [("calc", "2+3", "5")]
    assert run.finish_reason == "length"


def test_max_calls_unknown_tool_and_stop_strings():
    run = generate_with_tools(constant_model(">"), TOK, "<calc 1+1", {"calc": calculator}, 5,
                              GREEDY, max_calls=1)
    assert (run.text, run.finish_reason) == (">2", "max_calls")
    run = generate_with_tools(constant_model(">"), TOK, "<x 1", {}, 1, GREEDY)
    assert run.calls[0].result == "unknown tool"
    run = generate_with_tools(constant_model("\n"), TOK, "12", {}, 5, GREEDY, stop_strings=["\n"])
    assert (run.text, run.finish_reason, run.calls) == ("\n", "stop", [])


def test_calculator_matches_python_and_refuses_code():
    rng = random.Random(0)
    for _ in range(200):
        a, b, c = (rng.randint(-999, 999) for _ in range(3))
        op1, op2 = rng.choice("+-*"), rng.choice(["+", "-", "*", "//", "%"])
        expr = f"({a} {op1} {b}) {op2} {c}"
        expected = "error" if op2 in ("//", "%") and c == 0 else str(eval(expr))
        assert calculator(expr) == expected
    assert calculator("07+045") == "52" and calculator("0*10") == "0"
    for bad in ["__import__('os').system('true')", "2**10", "x+1", "1/2", "", "9" * 20 + "*" + "9" * 20]:
        assert calculator(bad) == "error"


def test_parse_call():
    assert parse_call("so <calc 12+34>") == ("calc", "12+34")
    assert parse_call("[[search the moon]]", "[[", "]]") == ("search", "the moon")
    assert parse_call("no call>") is None
    assert parse_call("<calc 1+1") is None
    assert parse_call("<calc 1>2>") is None


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_with_tools(constant_model(">"), TOK, "x", {}, -1)
    with pytest.raises(ValueError, match="marker"):
        generate_with_tools(constant_model(">"), TOK, "x", {}, 1, close_marker="")
