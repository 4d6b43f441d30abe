"""Supervised fine-tuning (SFT) of a chat format: the loss on assistant tokens only.

Chapter 14 (from API call to token stream) uses this. :func:`sft_batch` turns
``(ids, assistant_mask)`` pairs from :func:`lmcourse.chat.encode_chat` into shifted
``(x, y)`` batches whose targets are ``-100`` (``ignore_index``) wherever the mask is 0;
:func:`finetune` runs a few AdamW steps on them. The "herald" data set (greet, bid
farewell, thank a named Shakespeare character) is a tiny task a char model can learn in a
hundred steps: the point is the format (markers, the end-of-turn token), not the content.
``scripts/finetune_chat_demo.py`` uses it to make ``lmcourse/assets/chat_herald.pt``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Optional, Union

import torch

from .chat import encode_chat
from .model import GPT

__all__ = ["SYSTEM", "INTENTS", "NAMES", "HELD_OUT", "conversation", "training_conversations",
           "sft_batch", "finetune", "HERALD_PATH", "load_herald"]

SYSTEM = "Be brief."
INTENTS = [
    ("Greet {n}.", "Good morrow, {n}!"),
    ("Bid {n} farewell.", "Farewell, {n}; adieu."),
    ("Thank {n}.", "I thank thee, {n}."),
]
NAMES = [
    "Romeo", "Juliet", "Hamlet", "Ophelia", "Portia", "Brutus", "Cassius", "Horatio",
    "Viola", "Olivia", "Antonio", "Bianca", "Lear", "Cordelia", "Edgar", "Edmund", "Banquo",
    "Duncan", "Prospero", "Miranda", "Ariel", "Othello", "Iago", "Emilia", "Rosalind",
    "Orlando", "Celia", "Beatrice", "Benedick", "Hero", "Claudio", "Falstaff", "Hal",
    "Titania", "Oberon", "Puck", "Helena", "Hermia", "Lysander", "Demetrius", "Sebastian",
    "Malvolio", "Feste", "Kate", "Petruchio", "Lucio", "Isabella", "Angelo", "Timon",
    "Pericles", "Marina", "Imogen", "Posthumus", "Leontes", "Perdita", "Paulina", "Caliban",
    "Nerissa", "Shylock", "Jessica", "Lorenzo", "Gratiano", "Tybalt", "Mercutio", "Paris",
    "Laertes", "Polonius", "Gertrude", "Claudius", "Regan", "Goneril", "Kent", "Gloucester",
]
HELD_OUT = ["Macbeth", "Desdemona", "Cleopatra"]  # never in the training conversations


def conversation(question: str, answer: Optional[str] = None) -> list[dict]:
    """The messages of one herald exchange (no assistant message when ``answer`` is None)."""
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    if answer is not None:
        msgs.append({"role": "assistant", "content": answer})
    return msgs


def training_conversations() -> list[list[dict]]:
    """Every intent for every training name."""
    return [conversation(q.format(n=n), a.format(n=n)) for n in NAMES for q, a in INTENTS]


def sft_batch(rows: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(x, y)``: y is x shifted by one, -100 where the mask is 0 or padding."""
    T = max(len(ids) for ids, _ in rows) - 1
    x = torch.zeros(len(rows), T, dtype=torch.long)
    y = torch.full((len(rows), T), -100, dtype=torch.long)
    for i, (ids, mask) in enumerate(rows):
        n = len(ids) - 1
        x[i, :n] = ids[:-1]
        y[i, :n] = torch.where(mask[1:].bool(), ids[1:], torch.full_like(ids[1:], -100))
    return x, y


def finetune(model: GPT, tokenizer, steps: int = 150, batch_size: int = 16, lr: float = 1e-3,
             seed: int = 0, device: Optional[str] = None) -> list[float]:
    """SFT on :func:`training_conversations` with the assistant mask; returns every step's loss.

    The loop is :class:`lmcourse.train.Trainer` with a batch source (random conversations
    made into ``sft_batch`` batches): AdamW at a constant ``lr``, no weight decay, no
    clipping, float32.

    Args:
        model: the model to fine-tune in place (left in eval mode).
        tokenizer: its tokenizer (must have the ChatML specials).
        steps, batch_size, lr, seed: the run's settings.
        device: where to train (default: the model's device).
    """
    from .train import TrainConfig, Trainer

    device = device or next(model.parameters()).device
    data = [encode_chat(c, tokenizer) for c in training_conversations()]
    rng = random.Random(seed)
    config = TrainConfig(
        lr=lr, min_lr=lr, warmup_iters=0, max_iters=steps, batch_size=batch_size,
        block_size=max(len(ids) for ids, _ in data) - 1, weight_decay=0.0, betas=(0.9, 0.999),
        grad_clip=0.0, eval_interval=0, log_interval=1, seed=seed, device=str(device),
        dtype="float32", progress=False,
    )
    losses: list[float] = []
    trainer = Trainer(model, config, lambda: sft_batch(rng.sample(data, batch_size)),
                      callbacks=[lambda t, r: losses.append(r["loss"]) if r["kind"] == "train" else None])
    trainer.train()
    model.eval()
    return losses


HERALD_PATH = Path(__file__).parent / "assets" / "chat_herald.pt"


def load_herald(path: Optional[Union[str, Path]] = None,
                device: Optional[Union[str, torch.device]] = None) -> tuple[GPT, Any, dict]:
    """The shipped char model after SFT on the herald conversations.

    ``scripts/finetune_chat_demo.py`` wrote the file, an :mod:`lmcourse.checkpoint` file
    (fp16 weights of ``shakespeare-char`` after :func:`finetune`, its tokenizer, and the
    settings and per-step losses in ``meta``), loaded with ``weights_only=True``.

    Returns:
        ``(model, tokenizer, metadata)``; the model is in eval mode, in fp32.
    """
    from .checkpoint import load, load_model

    path = path or HERALD_PATH
    model, tok = load_model(path, device=device)
    if tok is None:
        raise ValueError(f"{path} holds no tokenizer; it is not the chat-demo checkpoint")
    return model, tok, dict(load(path, check=False)["meta"])
