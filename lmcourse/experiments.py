"""Measurements the book's figures and explorers show, computed with the package's own models.

:mod:`lmcourse.plots`, :mod:`lmcourse.widgets` and :mod:`lmcourse.explorers` only draw and
interact; what they draw is computed here (or in the module that owns the concept):

- :func:`next_token_logits`: the model's logits for the token after a context;
- :func:`attention_weights`: every layer's and head's causal attention on one sequence;
- :func:`teacher_forcing_table`: per-position targets, probabilities and losses of one
  teacher-forced forward pass;
- :func:`trace_generation`: a generation with the top candidates of every step, read from
  :func:`lmcourse.generate.generate`'s recorded steps (a :class:`LoopTrace`);
- :func:`exposure_curves`: a model's quality on its own samples vs on real data, against a
  :class:`~lmcourse.data.MarkovSource` whose true distribution is known (chapter 9);
- :func:`exposure_bias_control`: the same measurement on a sparse source with little data,
  where the model's own samples reach states it barely saw (chapter 9's positive control);
- :func:`copy_task_retrieval`: a model trained to copy an answer from its context, asked with
  and without the retrieved passage (chapter 15b's positive control);
- :func:`peak_tensor_bytes` and :func:`measure_attention_cost`: time and memory of explicit
  vs fused causal attention (chapter 10);
- :func:`simulate_batching` and :func:`kv_allocation`: serving simulations (chapter 11).
"""

from __future__ import annotations

import json
import math
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils import benchmark

from .beam import beam_search
from .chat import apply_chat_template, encode_chat, end_marker, reassemble
from .checks import require_int
from .data import MarkovSource
from .generate import generate
from .model import causal_mask, eval_mode, scaled_dot_product_attention
from .sampling import SamplingConfig

__all__ = [
    "next_token_logits",
    "attention_weights",
    "teacher_forcing_table",
    "LoopTrace",
    "trace_generation",
    "exposure_curves",
    "exposure_bias_control",
    "copy_task_retrieval",
    "peak_tensor_bytes",
    "measure_attention_cost",
    "simulate_batching",
    "kv_allocation",
    "log2_buckets",
    "attention_patterns",
    "STAGES",
    "PipelineTrace",
    "run_pipeline",
    "DECODING_SHOWCASE",
    "decoding_showcase",
]


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def next_token_logits(model, tokenizer, context: str) -> torch.Tensor:
    """The (V,) logits ``model`` gives to the token after ``context`` (last position only).

    The context is cropped to the model's last ``block_size`` tokens. Returns a float32
    CPU tensor whatever the model's device.
    """
    ids = tokenizer.encode(context)[-model.config.block_size :]
    if not ids:
        raise ValueError("context must encode to at least one token")
    idx = torch.tensor([ids], dtype=torch.long, device=_device(model))  # (1, T)
    with eval_mode(model):
        logits, _ = model(idx)  # (1, T, V)
    return logits[0, -1].float().cpu()


@torch.no_grad()
def attention_weights(model, idx: torch.Tensor) -> torch.Tensor:
    """All attention weights of ``model`` for one sequence ``idx`` (T,) or (1, T).

    Returns:
        A (n_layer, n_head, T, T) float32 tensor on the CPU; row i holds what query i
        attends to (0 on the masked future).
    """
    if idx.dim() == 1:
        idx = idx.unsqueeze(0)
    if idx.dim() != 2 or idx.shape[0] != 1:
        raise ValueError(f"idx must be one sequence, (T,) or (1, T); got shape {tuple(idx.shape)}")
    with eval_mode(model):
        maps = model.attention_maps(idx.to(_device(model)))  # L x (1, H, T, T)
    return torch.stack([m[0] for m in maps]).float().cpu()


@torch.no_grad()
def teacher_forcing_table(model, ids: Sequence[int], k: int = 5) -> dict[str, torch.Tensor]:
    """Teacher-forced predictions of ``model`` along one token sequence, in one forward pass.

    With ``x = ids[:-1]`` as input and ``y = ids[1:]`` as targets, position ``t`` sees the
    true prefix ``ids[: t + 1]`` and is scored on ``ids[t + 1]``.

    Args:
        model: a model whose ``forward(idx)`` returns ``(logits, loss)`` (an
            :class:`lmcourse.model.GPT`); ``len(ids) - 1`` must fit its context.
        ids: at least 2 token ids.
        k: how many top candidates to keep per position.

    Returns:
        A dict of CPU tensors, all with T = ``len(ids) - 1`` rows: ``inputs`` (T,),
        ``targets`` (T,), ``probs`` (T,) the probability of each target, ``losses`` (T,)
        its negative log-probability in nats, ``top_ids`` (T, k) and ``top_probs`` (T, k).
    """
    ids_t = torch.as_tensor(list(ids), dtype=torch.long)
    if ids_t.dim() != 1 or ids_t.numel() < 2:
        raise ValueError("ids must be a sequence of at least 2 token ids")
    x = ids_t[:-1][None].to(_device(model))  # (1, T)
    y = ids_t[1:]  # (T,)
    with eval_mode(model):
        logits, _ = model(x)  # (1, T, V)
    logp = torch.log_softmax(logits[0].float().cpu(), dim=-1)  # (T, V)
    target_logp = logp.gather(-1, y[:, None]).squeeze(-1)  # (T,)
    k = min(k, logp.shape[-1])
    top_logp, top_ids = logp.topk(k, dim=-1)  # (T, k)
    return {
        "inputs": ids_t[:-1],
        "targets": y,
        "probs": target_logp.exp(),
        "losses": -target_logp,
        "top_ids": top_ids,
        "top_probs": top_logp.exp(),
    }


@dataclass
class LoopTrace:
    """A recorded generation: the prompt, the chosen tokens and the top candidates per step.

    Attributes:
        prompt_ids: the prompt's token ids.
        chosen: the id chosen at every step (length n_steps).
        top_ids: (n_steps, k) ids of the k most likely candidates at every step, best first.
        top_probs: (n_steps, k) their probabilities under the distribution that was sampled.
        chosen_probs: (n_steps,) the probability of the chosen token.
        vocab: the token strings, in id order.
    """

    prompt_ids: list[int]
    chosen: list[int]
    top_ids: np.ndarray
    top_probs: np.ndarray
    chosen_probs: np.ndarray
    vocab: list[str]

    @property
    def n_steps(self) -> int:
        """Number of generated tokens."""
        return len(self.chosen)

    def prefix(self, step: int) -> str:
        """The text the model saw when it chose the token of ``step`` (prompt + earlier picks)."""
        ids = self.prompt_ids + self.chosen[:step]
        return "".join(self.vocab[i] for i in ids)

    def chosen_rank(self, step: int) -> Optional[int]:
        """0-based rank of the chosen token among the top-k of ``step`` (None if outside)."""
        hits = np.nonzero(self.top_ids[step] == self.chosen[step])[0]
        return int(hits[0]) if hits.size else None


def trace_generation(
    model,
    tokenizer: Any,
    prompt: str,
    n_steps: int,
    sampling: Optional[SamplingConfig] = None,
    k: int = 5,
    generator: Optional[torch.Generator] = None,
) -> LoopTrace:
    """Generate ``n_steps`` tokens after ``prompt`` and keep the top-``k`` candidates of each step.

    The tokens and distributions are those :func:`lmcourse.generate.generate` records with
    ``record_steps=True`` (its ``DecodeStep.probs`` is the distribution each token was
    drawn from), so with the same ``generator`` seed it picks the same tokens. The prompt
    plus the new tokens must fit in the model's ``block_size``.

    Args:
        model: an lmcourse GPT.
        tokenizer: anything with ``encode``, ``decode`` and ``vocab_size``.
        prompt: the text to continue.
        n_steps: number of tokens to generate (>= 1).
        sampling: how to pick (default: plain sampling at temperature 1).
        k: how many candidates to record per step.
        generator: ``torch.Generator`` for the draws, on any device.
    """
    ids = list(tokenizer.encode(prompt))
    require_int("n_steps", n_steps, minimum=1)
    if not ids:
        raise ValueError("trace_generation needs a prompt that encodes to at least one token")
    if len(ids) + n_steps > model.config.block_size:
        raise ValueError(
            f"prompt ({len(ids)} tokens) + n_steps ({n_steps}) exceeds block_size={model.config.block_size}"
        )
    out = generate(model, ids, n_steps, sampling, generator=generator, record_steps=True)
    k = min(k, model.config.vocab_size)
    probs = torch.stack([step.probs[0] for step in out.steps]).float().cpu()  # (n_steps, V)
    chosen = [int(step.token[0]) for step in out.steps]
    top = torch.topk(probs, k, dim=-1)  # (n_steps, k)
    return LoopTrace(
        prompt_ids=ids,
        chosen=chosen,
        top_ids=top.indices.numpy(),
        top_probs=top.values.numpy(),
        chosen_probs=probs[torch.arange(len(chosen)), chosen].numpy(),
        vocab=[tokenizer.decode([i]) for i in range(model.config.vocab_size)],
    )


# --------------------------------------------------------------------------------------
# Exposure bias (chapter 9)
# --------------------------------------------------------------------------------------


def _true_log_probs(source: MarkovSource, seqs: torch.Tensor) -> torch.Tensor:
    """(B, N) sequences -> (B, N - K, V): log p_true(v | the K tokens before) at each position.

    Uses only the source's public ``log_prob``: every context is completed with each of the
    V possible next tokens and scored as a (K + 1)-token window.
    """
    K, V = source.order, source.vocab_size
    ctx = seqs.unfold(-1, K + 1, 1)[..., :K]  # (B, N-K, K)
    lead = ctx.shape[:-1]
    windows = torch.cat(
        [ctx.unsqueeze(-2).expand(*lead, V, K), torch.arange(V).expand(*lead, V).unsqueeze(-1)], dim=-1
    )  # (B, N-K, V, K+1)
    return source.log_prob(windows.reshape(-1, K + 1), conditional=True).reshape(*lead, V)


@torch.no_grad()
def _kl_to_truth(model, log_p: torch.Tensor, seqs: torch.Tensor, K: int) -> torch.Tensor:
    """(B, N - K) KL(p_true(. | state_t) || q_model(. | x_<t)) at every predicted position."""
    logits, _ = model(seqs[:, :-1].to(_device(model)))  # (B, N-1, V): position t predicts t+1
    log_q = torch.log_softmax(logits.double().cpu(), -1)[:, K - 1 :]  # (B, N-K, V)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


@torch.no_grad()
def exposure_curves(
    model,
    source: MarkovSource,
    n_samples: int = 256,
    length: Optional[int] = None,
    seed: int = 0,
    temperature: float = 1.0,
) -> dict[str, np.ndarray]:
    """Per-position quality of ``model`` on its own samples and on samples of the source.

    Every sequence starts with ``K = source.order`` true tokens (a stationary start); the
    model then generates ``length - K`` tokens (sampling at ``temperature``). For every
    generated position t (1-based count of generated tokens) it returns, averaged over the
    ``n_samples`` sequences:

    - ``"true_logp_model"``: log p_true(x_t | state), the true source's log-probability (nats)
      of the token the *model* sampled;
    - ``"true_logp_data"``: the same for sequences drawn from the source itself (their mean
      is about ``-source.entropy_rate()``);
    - ``"kl_own"``: KL(p_true || q_model) of the model's next-token distribution when its
      context is its *own* earlier samples (free running);
    - ``"kl_data"``: the same KL when the context is real data (teacher forcing).

    Also ``"position"`` (1 .. length - K) and ``"entropy_rate"``.

    Args:
        model: a :class:`~lmcourse.model.GPT` trained on ``source``'s tokens (any device).
        source: the :class:`~lmcourse.data.MarkovSource`.
        n_samples: number of sequences per curve.
        length: total sequence length (default the model's ``block_size``).
        seed: seeds the prompts, the source's sequences and the model's draws (CPU
            generators: the same numbers whatever the model's device).
        temperature: sampling temperature of the model (1 is its own distribution).
    """
    K = source.order
    length = model.config.block_size if length is None else length
    if not K < length <= model.config.block_size:
        raise ValueError(f"length must be in ({K}, {model.config.block_size}], got {length}")
    g = torch.Generator().manual_seed(seed)
    data = torch.stack([source.sample(length, g) for _ in range(n_samples)])  # (B, N)
    prompts = data[:, :K]  # the same stationary starts for the model
    with eval_mode(model):
        out = generate(
            model, prompts, length - K, SamplingConfig(temperature=temperature),
            generator=torch.Generator().manual_seed(seed + 1),
        )
        own = torch.tensor(out.sequences, dtype=torch.long)  # (B, N)
        curves = {}
        for name, seqs in (("model", own), ("data", data)):
            log_p = _true_log_probs(source, seqs)  # (B, N-K, V)
            taken = log_p.gather(-1, seqs[:, K:].unsqueeze(-1)).squeeze(-1)  # (B, N-K)
            curves[f"true_logp_{name}"] = taken.mean(0).numpy()
            curves["kl_own" if name == "model" else "kl_data"] = _kl_to_truth(model, log_p, seqs, K).mean(0).numpy()
    return {
        "position": np.arange(1, length - K + 1),
        "true_logp_model": curves["true_logp_model"],
        "true_logp_data": curves["true_logp_data"],
        "kl_own": curves["kl_own"],
        "kl_data": curves["kl_data"],
        "entropy_rate": np.float64(source.entropy_rate()),
    }


def exposure_bias_control(
    concentration: float = 0.05,
    order: int = 2,
    vocab_size: int = 8,
    train_tokens: int = 20_000,
    iters: int = 300,
    n_samples: int = 128,
    rare: int = 5,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train a small GPT with teacher forcing on a sparse Markov source; measure exposure bias.

    With a small Dirichlet ``concentration`` most transitions of the source have almost zero
    probability, so real text visits few of the ``vocab_size ** order`` states and the model
    sees the others rarely or never in ``train_tokens`` tokens. Sampling from its own
    (smoothed) distribution, the model now and then takes a near-impossible token and lands
    in such a state. The model is the one of chapter 9 (2 layers, width 32, context 32),
    trained for ``iters`` steps of 32 windows.

    Returns a dict with ``curves`` (the :func:`exposure_curves` result, ``n_samples``
    sequences), ``val_loss``, ``entropy_rate``, ``train_seconds``, ``n_states``,
    ``rare_states`` (states seen fewer than ``rare`` times in training) and the share of
    generated positions whose state is rare, on the model's own samples
    (``rare_share_own``) and on the source's (``rare_share_data``).
    """
    import time

    from .model import GPT, GPTConfig
    from .train import TrainConfig, Trainer

    for name, value in (("iters", iters), ("train_tokens", train_tokens), ("n_samples", n_samples), ("rare", rare)):
        require_int(name, value, minimum=1)
    source = MarkovSource(vocab_size, order=order, seed=seed, concentration=concentration)
    g = torch.Generator().manual_seed(seed)
    train_ids, val_ids = source.sample(train_tokens, g), source.sample(20_000, g)
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32, dropout=0.0))
    cfg = TrainConfig(max_iters=iters, batch_size=32, block_size=32, lr=3e-3, min_lr=3e-4, warmup_iters=20,
                      eval_interval=0, eval_iters=10, device=device, dtype="float32", progress=False)
    t0 = time.perf_counter()
    trainer = Trainer(model, cfg, train_ids, val_ids)
    trainer.train()
    seconds = time.perf_counter() - t0
    curves = exposure_curves(model, source, n_samples=n_samples, seed=seed + 1)

    counts = torch.bincount(source._state_index(train_ids.unfold(0, order, 1)), minlength=source.n_states)
    is_rare = counts < rare
    gen = torch.Generator().manual_seed(seed + 2)
    length = model.config.block_size
    data = torch.stack([source.sample(length, gen) for _ in range(n_samples)])
    with eval_mode(model):
        out = generate(model, data[:, :order], length - order, SamplingConfig(temperature=1.0),
                       generator=torch.Generator().manual_seed(seed + 3))
    own = torch.tensor(out.sequences, dtype=torch.long)

    def rare_share(seqs: torch.Tensor) -> float:
        states = source._state_index(seqs.unfold(-1, order, 1)[:, :-1])  # the state before each generated token
        return float(is_rare[states].double().mean())

    return {
        "curves": curves,
        "val_loss": float(trainer.history[-1]["val_loss"]),
        "entropy_rate": float(source.entropy_rate()),
        "train_seconds": seconds,
        "n_states": int(source.n_states),
        "rare_states": int(is_rare.sum()),
        "rare_share_own": rare_share(own),
        "rare_share_data": rare_share(data),
    }


def _fact_passages(n: int, facts: int, rng: np.random.Generator) -> list[list[tuple[str, str]]]:
    """``n`` passages of ``facts`` (key, value) pairs: distinct 4-letter keys, 3-digit values."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    keys: set[str] = set()
    while len(keys) < n * facts:
        keys.add("".join(rng.choice(letters, 4)))
    order = sorted(keys)
    rng.shuffle(order)
    values = [f"{v:03d}" for v in rng.integers(0, 1000, n * facts)]
    pairs = list(zip(order, values))
    return [pairs[i * facts : (i + 1) * facts] for i in range(n)]


def _passage_text(pairs: Sequence[tuple[str, str]]) -> str:
    return " ".join(f"{k}={v}" for k, v in pairs)


def copy_task_retrieval(
    steps: int = 150,
    facts: int = 1,
    batch_size: int = 32,
    n_questions: int = 100,
    store_size: int = 200,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Retrieval helps a model that was trained to copy from its context.

    A training example is a passage of ``facts`` facts ``key=value``, a newline, then a
    question ``key?`` and its value, with a fresh random passage each time, so the only way to get the value right is to
    find the key in the context and copy the three digits after it; the loss is on the value
    only. A small GPT (2 layers, width 64) is trained for ``steps`` AdamW steps of
    ``batch_size`` examples. Then ``n_questions`` keys from a store of ``store_size`` such passages (never
    seen in training) are asked greedily, closed-book (``"<key>?"``) and with the passage
    that :class:`~lmcourse.retrieval.BM25Index` ranks first placed in front.

    Returns a dict with ``accuracy`` (exact value, per mode: ``"closed-book"``,
    ``"with retrieval"``), ``digit_accuracy`` (per digit), ``retrieval_hits`` (questions whose
    passage was ranked first), ``chance`` (1/1000), ``final_loss``, ``train_seconds`` and
    ``n_params``.
    """
    import time

    from .model import GPT, GPTConfig
    from .retrieval import BM25Index
    from .tokenization import CharTokenizer

    for name, value in (("steps", steps), ("facts", facts), ("batch_size", batch_size), ("n_questions", n_questions),
                        ("store_size", store_size)):
        require_int(name, value, minimum=1)
    if n_questions > store_size * facts:
        raise ValueError(f"n_questions must be <= store_size * facts = {store_size * facts}, got {n_questions}")
    rng = np.random.default_rng(seed)
    tok = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyz0123456789=? \n")
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=4, n_embd=64,
                          dropout=0.0)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)

    def example(pairs: Sequence[tuple[str, str]], ask: int) -> tuple[list[int], int]:
        key, value = pairs[ask]
        prompt = tok.encode(_passage_text(pairs) + "\n" + key + "?")
        return prompt + tok.encode(value + "\n"), len(prompt)

    t0 = time.perf_counter()
    losses = []
    model.train()
    for _ in range(steps):
        batch = [example(p, int(rng.integers(facts))) for p in _fact_passages(batch_size, facts, rng)]
        width = max(len(ids) for ids, _ in batch)
        x = torch.full((len(batch), width - 1), tok.encode(" ")[0], dtype=torch.long)
        y = torch.full((len(batch), width - 1), -100, dtype=torch.long)
        for row, (ids, start) in enumerate(batch):
            x[row, : len(ids) - 1] = torch.tensor(ids[:-1])
            y[row, start - 1 : start + 2] = torch.tensor(ids[start : start + 3])  # the three digits
        _, loss = model(x.to(device), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    seconds = time.perf_counter() - t0

    store = _fact_passages(store_size, facts, np.random.default_rng(seed + 1))
    index = BM25Index([_passage_text(p) for p in store])
    asked = [(i, j) for i in range(store_size) for j in range(facts)]
    picks = np.random.default_rng(seed + 2).permutation(len(asked))[:n_questions]
    exact = {"closed-book": 0, "with retrieval": 0}
    digits = {"closed-book": 0, "with retrieval": 0}
    hits = 0
    with eval_mode(model):
        for q in picks:
            i, j = asked[int(q)]
            key, value = store[i][j]
            top = index.search(key, k=1)
            hits += bool(top) and top[0].text == _passage_text(store[i])
            for mode in exact:
                context = (top[0].text + "\n" if (mode == "with retrieval" and top) else "") + key + "?"
                out = generate(model, tok.encode(context), 3, SamplingConfig(temperature=0))
                answer = tok.decode(out.new_tokens[0])
                exact[mode] += answer == value
                digits[mode] += sum(a == b for a, b in zip(answer, value))
    n = len(picks)
    return {
        "accuracy": {m: exact[m] / n for m in exact},
        "digit_accuracy": {m: digits[m] / (3 * n) for m in digits},
        "retrieval_hits": hits / n,
        "chance": 1 / 1000,
        "final_loss": float(np.mean(losses[-20:])),
        "train_seconds": seconds,
        "n_params": model.num_params(),
        "n_questions": n,
    }


# --------------------------------------------------------------------------------------
# Time and memory of attention (chapter 10)
# --------------------------------------------------------------------------------------


class _LiveBytes(TorchFunctionMode):
    """Counts the bytes of every new storage a torch function returns, until it is freed."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, list[int]] = {}  # data_ptr -> [number of live tensors, nbytes]
        self._outside: set[int] = set()  # storages that existed before the call

    def _release(self, ptr: int) -> None:
        entry = self._refs.get(ptr)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self.live -= entry[1]
            del self._refs[ptr]

    @staticmethod
    def _tensors(x) -> list[torch.Tensor]:
        if isinstance(x, torch.Tensor):
            return [x]
        if isinstance(x, (list, tuple)):
            return [t for v in x for t in _LiveBytes._tensors(v)]
        if isinstance(x, dict):
            return [t for v in x.values() for t in _LiveBytes._tensors(v)]
        return []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: D105
        for t in self._tensors((args, kwargs or {})):
            ptr = t.untyped_storage().data_ptr()
            if ptr not in self._refs:
                self._outside.add(ptr)
        out = func(*args, **(kwargs or {}))
        for t in self._tensors(out):
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr == 0 or ptr in self._outside:
                continue  # empty, or a view / in-place result on a pre-existing tensor
            if ptr not in self._refs:
                self._refs[ptr] = [0, storage.nbytes()]
                self.live += storage.nbytes()
                self.peak = max(self.peak, self.live)
            self._refs[ptr][0] += 1
            weakref.finalize(t, self._release, ptr)
        return out


def peak_tensor_bytes(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """Run ``fn(*args, **kwargs)``; return its result and the peak of live tensor bytes.

    Every tensor a torch function or tensor method returns during the call is counted
    from its creation until the last Python reference to it (or to a view of it) dies
    (tracked with the public ``torch.overrides.TorchFunctionMode``). What is *not* counted:
    the inputs (they existed before), and buffers a single operator allocates and frees
    inside itself (for the fused attention kernel, its scratch tiles).
    """
    tracker = _LiveBytes()
    with tracker:
        result = fn(*args, **kwargs)
    return result, tracker.peak


def _best_ms(fn: Callable[[], Any], repeats: int) -> float:
    """Fastest of ``repeats`` timed calls, in ms. ``torch.utils.benchmark.Timer`` synchronises
    CUDA before and after each measurement, so GPU time is run time, not launch time."""
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn})
    return 1000 * min(timer.timeit(1).median for _ in range(repeats))


@torch.no_grad()
def measure_attention_cost(
    lengths: Sequence[int],
    n_head: int = 4,
    head_dim: int = 32,
    batch: int = 1,
    repeats: int = 3,
    seed: int = 0,
    device: Optional[torch.device] = None,
) -> dict[str, list[float]]:
    """Time and peak memory of causal attention, explicit vs fused, for each length T.

    The explicit path is :func:`lmcourse.model.scaled_dot_product_attention` with
    :func:`lmcourse.model.causal_mask` (what ``GPTConfig(attn_impl="explicit")`` runs);
    the fused path is ``F.scaled_dot_product_attention(..., is_causal=True)`` (the
    default ``attn_impl="sdpa"``). Queries, keys and values are random (batch, n_head, T,
    head_dim) fp32 tensors, drawn on the CPU (the same numbers on every device) and moved
    to ``device``.

    Returns:
        A dict of lists, one entry per length: ``lengths``; ``explicit_ms`` and
        ``fused_ms`` (best of ``repeats`` timed calls with ``torch.utils.benchmark``, which
        synchronises the GPU, after the memory-measuring call); ``explicit_bytes`` and
        ``fused_bytes`` (:func:`peak_tensor_bytes` of the tensors each call allocates);
        ``weights_bytes``, the size of one (batch, n_head, T, T) fp32 tensor, computed;
        ``max_abs_diff`` between the outputs.
    """
    require_int("repeats", repeats, minimum=1)
    gen = torch.Generator().manual_seed(seed)
    res: dict[str, list[float]] = {
        k: []
        for k in ("lengths", "explicit_ms", "fused_ms", "explicit_bytes", "fused_bytes", "weights_bytes", "max_abs_diff")
    }
    for T in lengths:
        q, k, v = torch.randn(3, batch, n_head, T, head_dim, generator=gen).to(device).unbind(0)

        def explicit(q=q, k=k, v=v, T=T) -> torch.Tensor:
            return scaled_dot_product_attention(q, k, v, causal_mask(T, device=q.device))[0]

        def fused(q=q, k=k, v=v) -> torch.Tensor:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

        out_e, bytes_e = peak_tensor_bytes(explicit)  # also the warm-up call
        out_f, bytes_f = peak_tensor_bytes(fused)
        res["lengths"].append(T)
        res["explicit_ms"].append(_best_ms(explicit, repeats))
        res["fused_ms"].append(_best_ms(fused, repeats))
        res["explicit_bytes"].append(bytes_e)
        res["fused_bytes"].append(bytes_f)
        res["weights_bytes"].append(batch * n_head * T * T * 4)
        res["max_abs_diff"].append(float((out_e - out_f).abs().max()))
    return res


# --------------------------------------------------------------------------------------
# Serving (chapter 11)
# --------------------------------------------------------------------------------------


def simulate_batching(lengths: Sequence[int], slots: int, policy: str = "continuous") -> dict:
    """Schedule requests needing ``lengths[i]`` decode steps on ``slots`` batch slots.

    All requests are waiting at step 0, served in order. ``"static"``: fill all slots,
    run until the *longest* request of the batch finishes, then start the next batch.
    ``"continuous"`` (iteration-level scheduling, Orca): after every step a finished
    request's slot is given to the next waiting request at once.

    Returns:
        A dict with ``"grid"``: (slots, steps) int array of the request id in each slot
        at each step, -1 when idle; ``"steps"``: total steps; ``"utilisation"``: busy
        slot-steps / all slot-steps; ``"finish"``: finishing step of every request.
    """
    if slots < 1 or any(n < 1 for n in lengths):
        raise ValueError("need slots >= 1 and every length >= 1")
    if policy not in ("static", "continuous"):
        raise ValueError(f"policy must be 'static' or 'continuous', got {policy!r}")
    n = len(lengths)
    columns: list[list[int]] = []
    finish = [0] * n
    if policy == "static":
        for start in range(0, n, slots):
            batch = list(range(start, min(start + slots, n)))
            span = max(lengths[r] for r in batch)
            for t in range(span):
                columns.append([batch[s] if s < len(batch) and t < lengths[batch[s]] else -1 for s in range(slots)])
            for r in batch:
                finish[r] = len(columns) - span + lengths[r]
    else:
        waiting = list(range(n))
        current = [-1] * slots
        left = [0] * slots
        while waiting or any(r >= 0 for r in current):
            for s in range(slots):
                if current[s] < 0 and waiting:
                    current[s] = waiting.pop(0)
                    left[s] = lengths[current[s]]
            columns.append(list(current))
            for s in range(slots):
                if current[s] >= 0:
                    left[s] -= 1
                    if left[s] == 0:
                        finish[current[s]] = len(columns)
                        current[s] = -1
    grid = np.array(columns, dtype=int).T.reshape(slots, -1)
    steps = grid.shape[1]
    return {
        "grid": grid,
        "steps": steps,
        "utilisation": float((grid >= 0).sum()) / (slots * steps) if steps else 0.0,
        "finish": finish,
    }


def kv_allocation(lengths: Sequence[int], max_len: int, block: int = 16) -> dict:
    """Token slots of KV cache reserved for requests of ``lengths`` tokens.

    A contiguous allocator reserves ``max_len`` slots per request up front (it cannot know
    how long the answer will be); a paged allocator (PagedAttention) hands out blocks of
    ``block`` slots as the sequence grows, so at most ``block - 1`` slots per request are
    unused.

    Returns:
        ``{"used", "contiguous", "paged"}`` totals in token slots, plus the wasted
        fractions ``"contiguous_waste"`` and ``"paged_waste"``.
    """
    if block < 1 or any(not 1 <= n <= max_len for n in lengths):
        raise ValueError("need block >= 1 and 1 <= length <= max_len for every request")
    used = int(sum(lengths))
    contiguous = max_len * len(lengths)
    paged = int(sum(math.ceil(n / block) * block for n in lengths))
    return {
        "used": used,
        "contiguous": contiguous,
        "paged": paged,
        "contiguous_waste": 1 - used / contiguous,
        "paged_waste": 1 - used / paged,
    }


def log2_buckets(values: Sequence[float]) -> tuple[list[int], list[float]]:
    """Average ``values[t]`` (t = 0, 1, ...) over the context sizes 1, 2, 3-4, 5-8, 9-16, ...

    Returns:
        ``(ends, means)``: the largest context size of each bucket (1, 2, 4, 8, ...) and the
        mean of the values whose context size t + 1 falls in it.
    """
    y = np.asarray(values, dtype=float)
    ends, means, prev, end = [], [], 0, 1
    while prev < len(y):
        end = min(end, len(y))
        ends.append(end)
        means.append(float(y[prev:end].mean()))  # context sizes prev + 1 .. end
        prev, end = end, 2 * end
    return ends, means


# --------------------------------------------------------------------------------------
# Chapter 15: which positions each model family lets a query see
# --------------------------------------------------------------------------------------


def attention_patterns(T: int, n_source: int) -> dict[str, torch.Tensor]:
    """Boolean (T, T) "query may attend to key" patterns of three model families.

    * ``"decoder-only (GPT)"``: the causal mask, :func:`lmcourse.model.causal_mask`.
    * ``"bidirectional (BERT)"``: every position sees every position.
    * ``"encoder-decoder (T5, BART)"``: the first ``n_source`` positions (the source) see
      each other fully; each target position sees the whole source and the earlier targets.
      (In a real encoder-decoder the two parts are separate stacks joined by
      cross-attention; drawn on one sequence, the allowed pairs are these.)
    """
    if not 0 < n_source < T:
        raise ValueError(f"n_source must be in [1, T-1], got {n_source} for T={T}")
    causal = causal_mask(T)
    seq2seq = causal.clone()
    seq2seq[:n_source, :n_source] = True
    return {
        "decoder-only (GPT)": causal,
        "bidirectional (BERT)": torch.ones(T, T, dtype=torch.bool),
        "encoder-decoder (T5, BART)": seq2seq,
    }


# --------------------------------------------------------------------------------------
# Chapter 14: one chat request, from JSON messages to the reassembled reply
# --------------------------------------------------------------------------------------

#: The five stages of a chat request, in order.
STAGES = ("messages (JSON)", "chat template", "prompt token ids", "generated tokens", "reply")


@dataclass
class PipelineTrace:
    """Everything one chat request goes through, stage by stage.

    Attributes:
        messages: the request's messages (role/content dicts).
        request_json: the request body as an API client would send it.
        template: the chat-template name used.
        prompt: the rendered template string (ending with the assistant header).
        specials: the tokenizer's special-token strings.
        prompt_ids, prompt_tokens: the prompt's token ids and their strings.
        new_ids, new_tokens: the generated token ids and their strings.
        raw_output: the decoded generated tokens, template markers included.
        reply: the reassembled reply (cut at the end-of-turn marker, stripped).
        finish_reason: ``"stop"`` (end-of-turn token) or ``"length"`` (token limit).
        response_json: the response body: the reply and the token usage.
    """

    messages: list[dict]
    request_json: str
    template: str
    prompt: str
    specials: list[str]
    prompt_ids: list[int]
    prompt_tokens: list[str]
    new_ids: list[int]
    new_tokens: list[str]
    raw_output: str
    reply: str
    finish_reason: str
    response_json: str


def run_pipeline(
    messages: Sequence[dict],
    model: Any,
    tokenizer: Any,
    template: str = "chatml",
    max_new_tokens: int = 40,
    sampling: Optional[SamplingConfig] = None,
    model_name: str = "lmcourse-demo",
    generator: Optional[torch.Generator] = None,
) -> PipelineTrace:
    """Run one chat request through the five stages and record them.

    1. messages -> request JSON; 2. ``apply_chat_template`` with the generation prompt;
    3. ``tokenizer.encode`` (special markers become single ids); 4. ``generate``, stopping
    at the template's end-of-turn token when the tokenizer has it; 5. decode and
    :func:`reassemble`.

    Args:
        messages: role/content dicts, as for :func:`lmcourse.chat.apply_chat_template`.
        model: an lmcourse GPT.
        tokenizer: a tokenizer with ``encode``/``decode``/``special_tokens``.
        template: chat-template name.
        max_new_tokens: token limit of the reply.
        sampling: decoding settings (default greedy, temperature 0).
        model_name: the ``"model"`` field of the request JSON.
        generator: random generator for sampling.
    """
    messages = [dict(m) for m in messages]
    sampling = SamplingConfig(temperature=0.0) if sampling is None else sampling
    request = {"model": model_name, "messages": messages, "max_tokens": max_new_tokens,
               "temperature": sampling.temperature}
    prompt = apply_chat_template(messages, template, add_generation_prompt=True)
    # template markers become control ids; message contents can never produce one
    prompt_ids = encode_chat(messages, tokenizer, template, add_generation_prompt=True)[0].tolist()
    end = end_marker(template)
    eos = tokenizer.special_tokens.get(end)
    out = generate(model, prompt_ids, max_new_tokens, sampling, eos_token_id=eos,
                   tokenizer=tokenizer, generator=generator)
    new_ids = out.new_tokens[0]
    raw = tokenizer.decode(new_ids)
    reply = reassemble(raw, template)
    finish = "stop" if out.finish_reasons[0] == "eos" else out.finish_reasons[0]
    response = {
        "model": model_name,
        "choices": [{"message": {"role": "assistant", "content": reply}, "finish_reason": finish}],
        "usage": {"prompt_tokens": len(prompt_ids), "completion_tokens": len(new_ids),
                  "total_tokens": len(prompt_ids) + len(new_ids)},
    }
    return PipelineTrace(
        messages=messages,
        request_json=json.dumps(request, indent=2),
        template=template,
        prompt=prompt,
        specials=sorted(tokenizer.special_tokens),
        prompt_ids=prompt_ids,
        prompt_tokens=[tokenizer.decode([i]) for i in prompt_ids],
        new_ids=list(new_ids),
        new_tokens=[tokenizer.decode([i]) for i in new_ids],
        raw_output=raw,
        reply=reply,
        finish_reason=finish,
        response_json=json.dumps(response, indent=2),
    )


# --------------------------------------------------------------------------------------
# Chapter 5c: the decoding methods of chapter 8 on a real checkpoint
# --------------------------------------------------------------------------------------

#: the sampled settings the showcase runs (besides greedy's twin, 4-beam search)
DECODING_SHOWCASE: dict[str, SamplingConfig] = {
    "greedy": SamplingConfig(temperature=0),
    "temperature 0.7, top-p 0.9": SamplingConfig(temperature=0.7, top_p=0.9),
    "top-k 40": SamplingConfig(top_k=40),
}


def decoding_showcase(model, tokenizer: Any, prompt: str, max_new_tokens: int = 40,
                      seed: int = 0, num_beams: int = 4) -> dict[str, str]:
    """Continue ``prompt`` with every setting of :data:`DECODING_SHOWCASE` and with beam search.

    Each sampled setting draws from its own generator seeded with ``seed`` (on the model's
    device), so the texts are reproducible. Returns ``{setting name: continuation}`` (the
    prompt not repeated), the beam-search result under ``"beam search, <n> beams"``.
    ``scripts/record_gpt2_outputs.py`` stores what GPT-2 gives, for the offline book.
    """
    ids = tokenizer.encode(prompt)
    out: dict[str, str] = {}
    for name, sampling in DECODING_SHOWCASE.items():
        gen = torch.Generator(device=model.device).manual_seed(seed)
        result = generate(model, ids, max_new_tokens, sampling, tokenizer=tokenizer, generator=gen)
        out[name] = result.text[0]
    beams = beam_search(model, ids, num_beams=num_beams, max_new_tokens=max_new_tokens)
    out[f"beam search, {num_beams} beams"] = tokenizer.decode(list(beams.sequences[0][len(ids):]))
    return out
