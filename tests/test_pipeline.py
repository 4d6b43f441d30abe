"""Chapter 14's request pipeline: a real request end to end, its reassembly and its figure."""

import json

import matplotlib.pyplot as plt
import pytest
import torch

from lmcourse.chat import apply_chat_template, end_marker, reassemble
from lmcourse.experiments import STAGES, run_pipeline
from lmcourse.model import GPT, GPTConfig
from lmcourse.plots.pipeline import plot_pipeline, plot_pipeline_stage
from lmcourse.tokenization import CharTokenizer

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def _model_tok():
    tok = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyzBH .!\n")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16))
    return model, tok


def test_reassemble_cuts_at_end_marker():
    assert reassemble(" Hello!<|im_end|>\njunk") == "Hello!"
    assert reassemble("no end") == "no end"
    assert reassemble("Hi</s>more", "zephyr") == "Hi"
    assert reassemble("Hi<|eot_id|>", "llama3") == "Hi"
    with pytest.raises(ValueError):
        reassemble("x", "nope")


def test_run_pipeline_records_every_stage():
    model, tok = _model_tok()
    trace = run_pipeline(MESSAGES, model, tok, max_new_tokens=12)
    assert json.loads(trace.request_json)["messages"] == MESSAGES
    assert trace.prompt == apply_chat_template(MESSAGES)
    assert trace.prompt_ids == tok.encode(trace.prompt, allow_special=True)
    assert tok.special_tokens["<|im_start|>"] in trace.prompt_ids  # one id per marker
    assert "".join(trace.prompt_tokens) == trace.prompt
    assert 1 <= len(trace.new_ids) <= 12
    assert trace.raw_output == tok.decode(trace.new_ids)
    assert trace.reply == reassemble(trace.raw_output)
    resp = json.loads(trace.response_json)
    assert resp["usage"]["prompt_tokens"] == len(trace.prompt_ids)
    assert resp["usage"]["completion_tokens"] == len(trace.new_ids)
    assert resp["choices"][0]["message"]["content"] == trace.reply
    assert trace.finish_reason in ("stop", "length")
    fig = plot_pipeline(trace)
    assert len(fig.axes) == len(STAGES)
    plt.close(fig)


def test_every_stage_draws_alone():
    model, tok = _model_tok()
    trace = run_pipeline(MESSAGES, model, tok, max_new_tokens=5)
    for step in range(len(STAGES)):
        fig = plot_pipeline_stage(trace, step)
        assert STAGES[step] in fig.axes[0].get_title(loc="left")
        plt.close(fig)
    with pytest.raises(ValueError):
        plot_pipeline_stage(trace, len(STAGES))
    assert end_marker("chatml") == "<|im_end|>"


def test_sft_batch_keeps_only_assistant_targets():
    from lmcourse.chat import encode_chat
    from lmcourse.sft import conversation, sft_batch

    tok = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyzBGHIT .!,;\n")
    a = encode_chat(conversation("Greet Hal.", "Good morrow, Hal!"), tok)
    b = encode_chat(conversation("Thank Ba.", "I thank thee, Ba."), tok)
    x, y = sft_batch([a, b])
    for row, (ids, mask) in enumerate([a, b]):
        n = len(ids) - 1
        assert torch.equal(x[row, :n], ids[:-1])
        kept = y[row, :n] != -100
        assert torch.equal(kept, mask[1:].bool())
        assert torch.equal(y[row, :n][kept], ids[1:][mask[1:].bool()])
        assert bool((y[row, n:] == -100).all())  # padding is ignored
    # the last kept target of a row is the end-of-turn token
    assert int(y[0, len(a[0]) - 3]) == tok.special_tokens["<|im_end|>"]  # then "\n", untrained
