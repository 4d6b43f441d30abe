"""``scripts/record_gpt2_outputs.py`` on a GPT-2 it saves itself (the hub is out of reach here).

The script loads a checkpoint with ``lmcourse.hf.from_pretrained_hf`` and runs
``lmcourse.experiments.decoding_showcase``. Oracle: transformers' own greedy ``generate`` on
the same weights gives the same greedy text.
"""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

TEXT = "the meaning of life is to read and to write and to learn. " * 20


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    """A 2-layer GPT-2 with a byte-level BPE tokenizer, in a save_pretrained folder."""
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator([TEXT], vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                                     eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return folder, tok


def test_record_writes_every_method_and_greedy_matches_transformers(tiny_gpt2, tmp_path, script):
    folder, tok = tiny_gpt2
    recorder = script("record_gpt2_outputs")
    out = recorder.main(["--model", str(folder), "--out", str(tmp_path / "gpt2.json")])
    rec = json.loads(out.read_text(encoding="utf-8"))
    assert set(rec["outputs"]) == {"greedy", "temperature 0.7, top-p 0.9", "top-k 40", "beam search, 4 beams"}
    assert all(isinstance(v, str) and v for v in rec["outputs"].values())
    assert rec["prompt"] == recorder.PROMPT and rec["versions"]["transformers"] == transformers.__version__
    # what chapter 5c prints from a recorded file
    assert {"date", "command", "device"} <= set(rec) and {"torch", "transformers"} <= set(rec["versions"])

    hf = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    ids = tok(recorder.PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        greedy = hf.generate(ids, max_new_tokens=40, do_sample=False, pad_token_id=tok.eos_token_id,
                             eos_token_id=None)
    assert rec["outputs"]["greedy"] == tok.decode(greedy[0, ids.shape[1]:])

    again = recorder.record(str(folder))  # seeded: the same texts every run
    assert again["outputs"] == rec["outputs"]


def test_record_needs_a_tokenizer(tiny_gpt2, tmp_path, script):
    folder, _ = tiny_gpt2
    weights_only = tmp_path / "no-tokenizer"
    transformers.GPT2LMHeadModel.from_pretrained(folder).save_pretrained(weights_only)
    with pytest.raises(ValueError, match="no tokenizer"):
        script("record_gpt2_outputs").record(str(weights_only))
