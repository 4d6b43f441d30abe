"""The argument rule of the public API: TypeError for a wrong type, ValueError for a wrong value.

First the checks themselves (lmcourse.checks), then every public decoding function called
once with an argument of the wrong type and once with a value out of range: the error has
the class the rule says and names the parameter.
"""

import numpy as np
import pytest
import torch

from lmcourse import checks
from lmcourse.beam import beam_search
from lmcourse.fastgen import fast_generate
from lmcourse.generate import generate, stream
from lmcourse.sampling import SamplingConfig, decode_step, pick_token, sample_next
from lmcourse.speculative import accept_or_resample, expected_tokens_per_round, speculative_generate
from lmcourse.tokenization import CharTokenizer
from lmcourse.tools import calculator, generate_with_tools

# ---- the checks --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, "no", "", None, 1.0, np.bool_(True)])
def test_require_bool_refuses_anything_but_a_bool(value):
    with pytest.raises(TypeError, match="flag must be True or False"):
        checks.require_bool("flag", value)


def test_require_bool_returns_the_bool():
    assert checks.require_bool("flag", True) is True and checks.require_bool("flag", False) is False


def test_require_int_types_and_ranges():
    assert checks.require_int("n", np.int64(3), minimum=0) == 3 and type(checks.require_int("n", np.int64(3))) is int
    for wrong in (True, 3.0, "3", None):
        with pytest.raises(TypeError, match="n must be an integer"):
            checks.require_int("n", wrong)
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, 4\], got 5"):
        checks.require_int("n", 5, minimum=1, maximum=4)
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        checks.require_int("n", 0, minimum=1)
    assert checks.require_int("n", -7) == -7  # no bounds, no range error


def test_require_real_types_and_ranges():
    assert checks.require_real("x", 2) == 2.0 and isinstance(checks.require_real("x", 2), float)
    for wrong in (False, "0.5", None, 1j):
        with pytest.raises(TypeError, match="x must be a finite real number"):
            checks.require_real("x", wrong)
    for bad in (float("nan"), float("inf"), -0.1):
        with pytest.raises(ValueError, match="x must be"):
            checks.require_real("x", bad, minimum=0.0)


def test_require_choice_does_not_take_1_for_true():
    assert checks.require_choice("mode", "never", (True, False, "never")) == "never"
    assert checks.require_choice("mode", True, (True, False)) is True
    with pytest.raises(ValueError, match="mode must be one of"):
        checks.require_choice("mode", 1, (True, False))


def test_require_generator_any_device_and_a_hint_for_seeds():
    g = torch.Generator()
    assert checks.require_generator("generator", g) is g and checks.require_generator("generator", None) is None
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator or None, got int: pass torch.Generator\(\)"):
        checks.require_generator("generator", 42)
    with pytest.raises(TypeError, match="must be a torch.Generator, got NoneType"):
        checks.require_generator("generator", None, optional=False)


def test_require_instance_and_callable():
    assert checks.require_instance("s", "a", str) == "a"
    assert checks.require_instance("s", None, str, optional=True) is None
    with pytest.raises(TypeError, match="s must be a str, got int"):
        checks.require_instance("s", 3, str)
    with pytest.raises(TypeError, match=r"f must be callable as f\(x\), got int"):
        checks.require_callable("f", 3, "f(x)")


def test_require_prompts_forms():
    assert checks.require_prompts("p", [1, 2], 5) == [[1, 2]]
    assert checks.require_prompts("p", [[1], [2, 3]], 5) == [[1], [2, 3]]
    assert checks.require_prompts("p", torch.tensor([[1, 2], [3, 4]]), 5) == [[1, 2], [3, 4]]
    assert checks.require_prompts("p", np.array([1, 2]), 5) == [[1, 2]]
    for wrong in ("hello", None, 3, [1.0], torch.tensor([1.0])):
        with pytest.raises(TypeError, match="p"):
            checks.require_prompts("p", wrong, 5)
    for bad in ([], [[]], [5], torch.zeros(1, 1, 1, dtype=torch.long)):
        with pytest.raises(ValueError, match="p"):
            checks.require_prompts("p", bad, 5)
    with pytest.raises(ValueError, match="takes one"):
        checks.require_prompts("p", [[1], [2]], 5, one=True)


def test_require_eos_ids():
    assert checks.require_eos_ids("eos", None, 5) == set() and checks.require_eos_ids("eos", [1, 2], 5) == {1, 2}
    with pytest.raises(TypeError, match="eos"):
        checks.require_eos_ids("eos", "1", 5)
    with pytest.raises(ValueError, match="eos"):
        checks.require_eos_ids("eos", 5, 5)


# ---- the rule over the public decoding API ---------------------------------------------------


@pytest.fixture(scope="module")
def model(tiny_gpt):
    return tiny_gpt(vocab_size=20, block_size=16, n_layer=1, n_embd=8)


def _calls(model):
    """(function, keyword arguments that work, parameter, a wrong-type value, a wrong value)."""
    tok = CharTokenizer("abc<>0123456789+=")
    p = torch.full((20,), 0.05)
    base_gen = dict(model=model, prompt_ids=[1, 2], max_new_tokens=2)
    return [
        (generate, base_gen, "max_new_tokens", 2.0, -1),
        (generate, base_gen, "use_cache", "yes", None),
        (generate, base_gen, "return_logprobs", 1, None),
        (generate, base_gen, "record_steps", "no", None),
        (generate, base_gen, "generator", 42, None),
        (generate, base_gen, "eos_token_id", "1", 99),
        (generate, base_gen, "prompt_ids", "ab", [99]),
        (generate, base_gen, "model", "gpt", None),
        (generate, base_gen, "stop_strings", 3, ""),
        (stream, base_gen, "use_cache", 0, None),
        (stream, base_gen, "generator", 0, None),
        (beam_search, dict(model=model, prompt_ids=[1], num_beams=2, max_new_tokens=2), "num_beams", True, 0),
        (beam_search, dict(model=model, prompt_ids=[1], num_beams=2, max_new_tokens=2), "early_stopping", 1, "sometimes"),
        (beam_search, dict(model=model, prompt_ids=[1], num_beams=2, max_new_tokens=2), "length_penalty", "1", float("nan")),
        (beam_search, dict(model=model, prompt_ids=[1], num_beams=2, max_new_tokens=2), "num_return_sequences", 1.5, 3),
        (speculative_generate, dict(target=model, draft=model, prompt_ids=[1], max_new_tokens=2), "num_draft_tokens", "4", 0),
        (speculative_generate, dict(target=model, draft=model, prompt_ids=[1], max_new_tokens=2), "generator", 7, None),
        (speculative_generate, dict(target=model, draft=model, prompt_ids=[1], max_new_tokens=2), "draft", object(), None),
        (expected_tokens_per_round, dict(alpha=0.5, k=2), "alpha", "0.5", 1.5),
        (expected_tokens_per_round, dict(alpha=0.5, k=2), "k", 2.0, -1),
        (accept_or_resample, dict(p=p, q=p, draft_token=0), "generator", 1, None),
        (fast_generate, dict(model=model, prompt_ids=torch.tensor([[1, 2]]), max_new_tokens=2), "compile", "yes", None),
        (fast_generate, dict(model=model, prompt_ids=torch.tensor([[1, 2]]), max_new_tokens=2), "generator", 42, None),
        (fast_generate, dict(model=model, prompt_ids=torch.tensor([[1, 2]]), max_new_tokens=2), "max_new_tokens", 1.0, -2),
        (fast_generate, dict(model=model, prompt_ids=torch.tensor([[1, 2]]), max_new_tokens=2), "prompt_ids", [[1, 2]], torch.tensor([[99]])),
        (fast_generate, dict(model=model, prompt_ids=torch.tensor([[1, 2]]), max_new_tokens=2), "model", "gpt", None),
        (decode_step, dict(logits=torch.zeros(1, 20), config=SamplingConfig()), "generator", 42, None),
        (decode_step, dict(logits=torch.zeros(1, 20), config=SamplingConfig()), "config", {"temperature": 1}, None),
        (sample_next, dict(logits=torch.zeros(1, 20), config=SamplingConfig()), "generator", "seed", None),
        (pick_token, dict(processed_logits=torch.zeros(1, 20), config=SamplingConfig()), "generator", 3, None),
        (generate_with_tools, dict(model=model, tokenizer=tok, prompt="1+1=", tools={"calc": calculator}, max_new_tokens=2),
         "max_calls", 1.0, -1),
        (generate_with_tools, dict(model=model, tokenizer=tok, prompt="1+1=", tools={"calc": calculator}, max_new_tokens=2),
         "generator", 42, None),
        (generate_with_tools, dict(model=model, tokenizer=tok, prompt="1+1=", tools={"calc": calculator}, max_new_tokens=2),
         "close_marker", 0, ""),
    ]


def _ids(calls):
    return [f"{f.__name__}-{name}" for f, _, name, _, _ in calls]


_CALLS = _calls(None)


@pytest.mark.parametrize("i", range(len(_CALLS)), ids=_ids(_CALLS))
def test_public_decoders_follow_the_error_rule(model, i):
    function, kwargs, name, wrong_type, wrong_value = _calls(model)[i]
    function(**kwargs) if function is not stream else list(function(**kwargs))  # the base call works
    run = (lambda **kw: list(stream(**kw))) if function is stream else function
    with pytest.raises(TypeError, match=name.split(".")[0]):
        run(**dict(kwargs, **{name: wrong_type}))
    if wrong_value is not None:
        with pytest.raises(ValueError, match=name):
            run(**dict(kwargs, **{name: wrong_value}))
