"""lmcourse: the reference implementation of an open course on autoregressive language models.

The package is layered: a module imports only modules listed **above** it here (anywhere in
its file, lazy imports inside functions included). ``tests/test_layers.py`` parses every
module and fails on an upward import or on a module missing from this list, so a new module
is added to :data:`LAYERS` in the same change.

Foundations (nothing from lmcourse below them)
    ``checks``        argument checks (TypeError for a wrong type, ValueError for a wrong value)
    ``devices``       device choice, mixed-precision dtype, seeding
    ``tokenization``  character, from-scratch byte-level BPE, and HF tokenizers
    ``data``          shipped corpora, synthetic sources, batches
    ``metrics``       log-probabilities, perplexity, entropy, surprisal, bits per byte
    ``chat``          chat templates (ChatML, Llama 3, Zephyr) and their token ids
The model
    ``model``         the GPT, attention, KV cache
    ``hf``            Hugging Face GPT-2 and Llama checkpoints as lmcourse GPTs
    ``checkpoint``    the one checkpoint format: save, load (weights only), load_model
    ``pretrained``    the shipped checkpoints, by name
Decoding
    ``sampling``      logits processors (temperature, top-k, top-p, ...) and one decode step
    ``generate``      the generation loop (prefill + decode with the KV cache)
    ``beam``          beam search
    ``speculative``   speculative decoding
    ``fastgen``       static KV cache and compiled decoding
Training
    ``train``         the Trainer, presets
    ``sft``           supervised fine-tuning on chat data
Topics of later chapters
    ``scaling``       scaling-law fits
    ``quantization``  int8 / int4 weight quantisation
    ``retrieval``     a tiny retriever for grounded generation
    ``tools``         tool calls inside a generation loop
    ``preference``    preference optimisation (DPO)
    ``long_context``  long-context cost models, KV-cache memory, sparse attention masks
The book
    ``experiments``   the computations behind the book's figures
    ``plots``         figures (drawing only)
    ``explorers``     interactive explorers with static twins
    ``widgets``       ipywidgets that need a live kernel (live sampling, a live loss curve)
    ``grading``       helpers for the nbgrader homework
Command line
    ``cli``           ``python -m lmcourse {train,sample,bench-*}`` sub-commands
    ``__main__``      the entry point

``import lmcourse`` is cheap: it imports nothing heavy (not even torch). The submodules
and the names below (``lmcourse.setup``, ``lmcourse.load_pretrained``, ...) are imported on
first use (PEP 562 module ``__getattr__``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: ``(layer name, modules)`` from the bottom up; see the module docstring.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundations", ("checks", "devices", "tokenization", "data", "metrics", "chat")),
    ("model", ("model", "hf", "checkpoint", "pretrained")),
    ("decoding", ("sampling", "generate", "beam", "speculative", "fastgen")),
    ("training", ("train", "sft")),
    ("topics", ("scaling", "quantization", "retrieval", "tools", "preference", "long_context")),
    ("book", ("experiments", "plots", "explorers", "widgets", "grading")),
    ("command line", ("cli", "__main__")),
)
#: Every module in import order: each may import only the ones before it.
MODULE_ORDER: tuple[str, ...] = tuple(m for _, modules in LAYERS for m in modules)

# Names re-exported at the top level, and the module each comes from.
_EXPORTS = {
    "device": "devices",
    "autocast_dtype": "devices",
    "needs_grad_scaler": "devices",
    "seed_everything": "devices",
    "setup": "devices",
    "load_pretrained": "pretrained",
}

__all__ = [
    "device",
    "autocast_dtype",
    "needs_grad_scaler",
    "seed_everything",
    "setup",
    "load_pretrained",
    "LAYERS",
    "MODULE_ORDER",
    "__version__",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these load lazily
    from .devices import autocast_dtype, device, needs_grad_scaler, seed_everything, setup
    from .pretrained import load_pretrained


def __getattr__(name: str) -> Any:
    """Import a re-exported name or a submodule the first time it is used."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in MODULE_ORDER and name != "__main__":
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # cache: later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(MODULE_ORDER) - {"__main__"})
