"""Shared fixtures of the test suite.

* ``tiny_gpt(**overrides)``: a factory of small, seeded GPTs in eval mode;
* ``char_tokenizer`` and ``bpe_tokenizer``: small tokenizers built from fixed text;
* ``one_thread``: run a test on one CPU thread (tiny models are fastest so, and the
  machine's cores are shared); ask for it by name or with ``pytest.mark.usefixtures``;
* ``load_script(name)``: import ``scripts/<name>.py`` as a module, without ``sys.path``.

Matplotlib draws headless: the Agg backend is chosen here, once, before any test imports
it (the Makefile also sets ``MPLBACKEND=Agg``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest
import torch

from lmcourse.model import GPT, GPTConfig
from lmcourse.tokenization import BPETokenizer, CharTokenizer

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Headless matplotlib, chosen before any test module is imported (collected)."""
    os.environ.setdefault("MPLBACKEND", "Agg")

#: The sizes of ``tiny_gpt`` unless overridden: small enough for a CPU test in milliseconds.
TINY = dict(vocab_size=32, block_size=32, n_layer=2, n_head=2, n_embd=16)

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"


def make_tiny_gpt(seed: int = 0, **overrides: Any) -> GPT:
    """A GPT of :data:`TINY` sizes (any :class:`GPTConfig` field overridden), seeded, in eval mode."""
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**TINY, **overrides})).eval()


@pytest.fixture(scope="session")
def tiny_gpt() -> Callable[..., GPT]:
    """``tiny_gpt(seed=0, **GPTConfig overrides)`` -> a small GPT in eval mode."""
    return make_tiny_gpt


@pytest.fixture(scope="session")
def char_tokenizer() -> CharTokenizer:
    """A character tokenizer over :data:`TEXT`."""
    return CharTokenizer(TEXT)


@pytest.fixture(scope="session")
def bpe_tokenizer() -> BPETokenizer:
    """A byte-level BPE tokenizer with 20 merges learnt from :data:`TEXT`."""
    return BPETokenizer.train(TEXT, vocab_size=256 + 20)


@pytest.fixture
def one_thread():
    """Run the test on one CPU thread, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` as a module named ``name``."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def script() -> Callable[[str], ModuleType]:
    """``script("train_subword_model")`` -> that script as a module (see :func:`load_script`)."""
    return load_script
