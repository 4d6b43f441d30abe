"""The shipped checkpoints load, and reproduce their recorded validation loss (chapter 4)."""

from __future__ import annotations

import pytest
import torch

from lmcourse.pretrained import available, load_pretrained, metadata
from lmcourse.train import estimate_loss


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match="shakespeare-char"):
        load_pretrained("no-such-model")


@pytest.mark.parametrize("name", ["shakespeare-char", "shakespeare-char-draft"])
def test_recorded_val_loss_reproduces(name):
    assert name in available()
    from lmcourse.data import shakespeare_text, split

    model, tokenizer = load_pretrained(name)
    assert not model.training
    meta = metadata(name)
    for key in ("command", "seed", "iters", "val_loss", "train_seconds"):
        assert key in meta
    text = shakespeare_text()
    val_ids = torch.tensor(tokenizer.encode(split(text)[1], allow_special=False))
    ev = meta["eval"]
    loss = estimate_loss(model, val_ids, ev["eval_iters"], ev["batch_size"], ev["block_size"], ev["seed"])
    assert loss == pytest.approx(meta["val_loss"], abs=0.02)
    assert tokenizer.decode(tokenizer.encode("ROMEO:")) == "ROMEO:"
