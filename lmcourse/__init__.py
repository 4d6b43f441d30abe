"""lmcourse: the reference implementation of an open course on autoregressive language models.

Modules (lower layers never import upper ones):

- ``lmcourse.devices``      device choice, mixed-precision dtype, seeding
- ``lmcourse.model``        the GPT, attention, KV cache
- ``lmcourse.tokenization`` character, from-scratch byte-level BPE, and HF tokenizers
- ``lmcourse.data``         shipped corpora, synthetic sources, batches
- ``lmcourse.chat``         chat templates (ChatML, ...)
- ``lmcourse.metrics``      log-probabilities, perplexity, entropy, surprisal
- ``lmcourse.train``        the Trainer, presets, checkpoints
- ``lmcourse.sampling``     logits processors (temperature, top-k, top-p, ...)
- ``lmcourse.generate``     the generation loop (prefill + decode with the KV cache)
- ``lmcourse.beam``         beam search
- ``lmcourse.speculative``  speculative decoding
- ``lmcourse.pretrained``   the shipped checkpoints
- ``lmcourse.widgets`` / ``lmcourse.plots``  the book's explorers and figures
- ``lmcourse.grading``      helpers for the nbgrader homework
"""

from .devices import autocast_dtype, device, needs_grad_scaler, seed_everything, setup
from .pretrained import load_pretrained

__version__ = "0.1.0"

__all__ = ["load_pretrained", "device", "autocast_dtype", "needs_grad_scaler", "seed_everything", "setup", "__version__"]
