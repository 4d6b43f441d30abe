"""Training a language model: the Trainer, its configuration, presets and checkpoints.

Chapter 4 (training) teaches this file. The :class:`Trainer` knows only "a model whose
``forward(x, targets)`` returns ``(logits, loss)``", so it trains the course's GPT as well
as any small model a homework builds. Read it top to bottom:

1. :class:`TrainConfig`: every knob, validated.
2. :func:`lr_at`: linear warm-up, then cosine decay to ``min_lr``.
3. :func:`param_groups`: decoupled weight decay on matrices only.
4. Batches: random windows of a token stream drawn where the data lives
   (:func:`draw_windows`), or any batch source you pass; :func:`estimate_loss`.
5. :class:`Trainer`: the loop, in named steps (draw a batch, forward and backward, optimizer
   step, log, evaluate, checkpoint, stop early), plus resume and hooks such as
   :func:`scheduled_sampling`.
6. :data:`PRESETS`: ready-made model + training configurations.

Speed on a GPU, after nanoGPT: the token stream is copied to the device once and the batch
offsets are drawn there, so preparing a batch never waits on the host; the loss is read
back to the host (a synchronisation) only on logging steps; AdamW is fused, float32
matmuls may use TF32, ``compile=True`` wraps the model in ``torch.compile``, and
``grad_accum`` builds large batches from small ones.

Checkpoints (:mod:`lmcourse.checkpoint`, one format, loaded without running code): every
``eval_interval`` steps the Trainer writes ``ckpt_<step>.pt`` (everything needed to resume
bit for bit; the last ``keep_last`` are kept) and, when the validation loss improved,
``best.pt`` (the best model so far). Resume from the latest; sample and load the best.

More than one GPU: the same Trainer runs under PyTorch's own distributed engine. Launch
``torchrun --nproc_per_node=N -m lmcourse train --preset gpu-small --out DIR``;
:func:`init_distributed` joins the process group, and a Trainer created inside it wraps
the model in ``DistributedDataParallel``. Every rank draws the same seeded global batch of
``N * batch_size`` windows and trains on its own slice, so N ranks with batch B take the
same steps as one process with batch N·B; evaluation losses are averaged over ranks, and
only rank 0 shows progress, calls callbacks and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Optional, Union

import torch
import torch.distributed as dist
import torch.nn as nn

from . import checkpoint
from .checkpoint import BEST_NAME, list_checkpoints
from .checks import require_int, require_real
from .data import get_batch
from .devices import autocast_dtype, draw_uniform
from .devices import device as pick_device
from .model import eval_mode

__all__ = [
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "PRESETS",
    "preset",
    "lr_at",
    "param_groups",
    "draw_windows",
    "estimate_loss",
    "loss_history",
    "scheduled_sampling",
    "init_distributed",
    "list_checkpoints",
]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

Batch = tuple[torch.Tensor, torch.Tensor]  # (x, y), each (B, T)
BatchSource = Union[torch.Tensor, Callable[[], Batch], Iterable[Batch]]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept on disk."""


# --------------------------------------------------------------------------------------
# 1. Configuration
# --------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Hyper-parameters of a training run. Validated on construction.

    Args:
        lr: peak learning rate, reached at the end of warm-up.
        min_lr: learning rate at ``max_iters`` (end of the cosine decay).
        warmup_iters: steps of linear warm-up from 0 to ``lr``.
        max_iters: number of optimizer steps.
        batch_size: sequences per micro-batch.
        block_size: tokens per sequence.
        grad_accum: micro-batches accumulated per optimizer step (effective batch is
            ``batch_size * grad_accum`` sequences).
        weight_decay: AdamW decoupled weight decay, applied to matrices only.
        betas: AdamW betas.
        grad_clip: clip the global gradient norm to this value (0 disables clipping).
        eval_interval: evaluate (and checkpoint) every this many steps (0: only at the end).
        eval_iters: batches per evaluation; the batches are fixed by ``seed``.
        log_interval: every this many steps, read the loss back to the host, append a
            training record to ``history`` and check that the loss is finite.
        seed: seeds the batch generator (and the model's dropout when resuming).
        device: ``"auto"`` (``lmcourse.device()``), ``"cpu"``, ``"cuda"`` or ``"mps"``.
        compile: wrap the model in ``torch.compile``.
        dtype: ``"auto"`` (``lmcourse.autocast_dtype``), ``"float32"``, ``"bfloat16"`` or
            ``"float16"`` (the latter with a GradScaler).
        tf32: on CUDA, let float32 matmuls use TF32 tensor cores (as nanoGPT does).
        ckpt_dir: folder for checkpoints; ``None`` writes none.
        keep_last: number of most recent ``ckpt_<step>.pt`` kept in ``ckpt_dir``
            (``best.pt`` is kept as well).
        patience: stop early after this many evaluations without a new best validation
            loss (0: never stop early).
        scheduled_sampling: final probability of replacing an input token with the
            model's own greedy prediction; ramps linearly from 0 over training (0 disables).
        progress: show a tqdm progress bar.
    """

    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    max_iters: int = 2000
    batch_size: int = 12
    block_size: int = 64
    grad_accum: int = 1
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_iters: int = 20
    log_interval: int = 10
    seed: int = 1337
    device: str = "auto"
    compile: bool = False
    dtype: str = "auto"
    tf32: bool = True
    ckpt_dir: Optional[str] = None
    keep_last: int = 2
    patience: int = 0
    scheduled_sampling: float = 0.0
    progress: bool = True

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # a list after a JSON / checkpoint round trip
        for name in ("max_iters", "batch_size", "block_size", "grad_accum", "eval_iters",
                     "log_interval", "keep_last"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be an integer >= 1, got {value!r}")
        for name in ("warmup_iters", "eval_interval", "seed", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"TrainConfig.{name} must be an integer >= 0, got {value!r}")
        if self.seed >= 2**63:
            raise ValueError(f"TrainConfig.seed must be < 2**63, got {self.seed!r}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr!r}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"TrainConfig.min_lr must be in [0, lr={self.lr}], got {self.min_lr!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        if not self.grad_clip >= 0:
            raise ValueError(f"TrainConfig.grad_clip must be >= 0 (0 disables), got {self.grad_clip!r}")
        if not isinstance(self.device, str) or (
            self.device not in ("auto", "cpu", "cuda", "mps")
            and not (self.device.startswith("cuda:") and self.device[5:].isdigit())
        ):
            raise ValueError(
                f"TrainConfig.device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {self.device!r}"
            )
        if self.dtype not in ("auto", *_DTYPES):
            raise ValueError(
                f"TrainConfig.dtype must be 'auto' or one of {sorted(_DTYPES)}, got {self.dtype!r}"
            )
        if not 0 <= self.scheduled_sampling <= 1:
            raise ValueError(
                f"TrainConfig.scheduled_sampling must be in [0, 1], got {self.scheduled_sampling!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (what checkpoints store)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise a clear error."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


# --------------------------------------------------------------------------------------
# 2. Learning-rate schedule and 3. weight decay
# --------------------------------------------------------------------------------------


def lr_at(step: int, lr: float, min_lr: float, warmup: int, max_iters: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based).

    Linear warm-up ``lr * (step + 1) / warmup`` for the first ``warmup`` steps, then a half
    cosine from ``lr`` down to ``min_lr`` at ``max_iters`` (and ``min_lr`` after it).
    The Trainer calls it as ``lr_at(step, cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.max_iters)``.
    """
    require_int("step", step, minimum=0)
    require_int("warmup", warmup, minimum=0)
    require_int("max_iters", max_iters, minimum=1)
    lr = require_real("lr", lr, minimum=0.0)
    min_lr = require_real("min_lr", min_lr, minimum=0.0, maximum=lr)
    if step < warmup:
        return lr * (step + 1) / warmup
    span = max(1, max_iters - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: matrices get ``weight_decay``; biases, norms and embeddings do not.

    A parameter decays when it has ``dim >= 2`` and is not the weight of an
    ``nn.Embedding`` (a tied LM head is the embedding matrix, so it does not decay either).
    """
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for p in model.parameters():  # a tied matrix is yielded once
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and id(p) not in embeddings else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


# --------------------------------------------------------------------------------------
# 4. Batches
# --------------------------------------------------------------------------------------


def draw_windows(data: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator) -> Batch:
    """``batch_size`` random windows of ``data``: inputs x and next-token targets y (B, T).

    :func:`lmcourse.data.get_batch` with the batch left where ``data`` lives: the offsets
    are drawn on the generator's device, so with the data and a generator on the GPU
    nothing waits for the host.
    """
    return get_batch(data, batch_size, block_size, generator)  # (B, T), (B, T)


def _world() -> tuple[int, int]:
    """``(rank, world_size)`` of the running process group, or ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _rank_windows(data: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator) -> Batch:
    """This rank's slice of a global batch of ``world_size * batch_size`` windows.

    Every rank draws the same global batch from its (identically seeded) generator and
    keeps rows ``rank * B : (rank + 1) * B``: each rank sees different data, and the
    union over ranks is exactly the batch one process with ``world_size * B`` would draw.
    """
    rank, world = _world()
    x, y = draw_windows(data, world * batch_size, block_size, generator)  # (W*B, T)
    rows = slice(rank * batch_size, (rank + 1) * batch_size)
    return x[rows], y[rows]  # (B, T)


def init_distributed() -> tuple[int, int, int]:
    """Join the process group that ``torchrun`` describes; return (rank, world, local_rank).

    Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) this does nothing and
    returns ``(0, 1, 0)``. Uses NCCL when CUDA is available (one GPU per local rank),
    gloo otherwise (CPU, e.g. to test on a laptop).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size(), local_rank


def _fixed_batches(data: Any, eval_iters: int, batch_size: int, block_size: int, seed: int) -> Iterator[Batch]:
    """Evaluation batches: seeded windows of a token stream, or the given (x, y) batches."""
    if isinstance(data, torch.Tensor):
        gen = torch.Generator().manual_seed(seed)  # on the CPU: the same batches on every device
        for _ in range(eval_iters):
            yield _rank_windows(data, batch_size, block_size, gen)
    else:
        yield from list(data)[:eval_iters]


@torch.no_grad()
def estimate_loss(
    model: nn.Module,
    data: Union[torch.Tensor, Sequence[Batch]],
    eval_iters: int,
    batch_size: int,
    block_size: int,
    seed: int,
    dtype: torch.dtype = torch.float32,
) -> float:
    """Mean loss of ``model`` over ``eval_iters`` batches fixed by ``seed`` (eval mode).

    ``data`` is a 1-D token stream (windows drawn with ``seed``) or a list of ``(x, y)``
    batches (the first ``eval_iters`` are used). Inside a process group each rank
    evaluates its slice of every global batch and the result is averaged over ranks, so
    every rank returns the same number. One host synchronisation, at the end.
    """
    dev = next(model.parameters()).device
    acc = torch.float32 if dev.type == "mps" else torch.float64  # MPS has no float64
    total = torch.zeros((), dtype=acc, device=dev)
    count = 0
    with eval_mode(model):
        for x, y in _fixed_batches(data, eval_iters, batch_size, block_size, seed):
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
                _, loss = model(x.to(dev), y.to(dev))
            total += loss.to(acc)
            count += 1
    if count == 0:
        raise ValueError("estimate_loss got no batches")
    _, world = _world()
    if world > 1:
        t = total.reshape(1) if dist.get_backend() == "nccl" else total.reshape(1).cpu()
        dist.all_reduce(t)  # sum over ranks
        total = t / world
    return float(total) / count


def loss_history(history: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """Split a :class:`Trainer` history (``Trainer.history``) into arrays for plotting.

    Returns:
        ``{"train_step", "train_loss", "val_step", "val_loss"}`` as lists of floats.
    """
    train = [r for r in history if r.get("kind") == "train"]
    val = [r for r in history if r.get("kind") == "eval"]
    return {
        "train_step": [float(r["step"]) for r in train],
        "train_loss": [float(r["loss"]) for r in train],
        "val_step": [float(r["step"]) for r in val],
        "val_loss": [float(r["val_loss"]) for r in val],
    }


def scheduled_sampling(trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> Batch:
    """A batch hook: replace input tokens (not the first) by the model's greedy guess.

    The probability ramps linearly from 0 to ``config.scheduled_sampling`` over
    training; the targets stay the true next tokens (Bengio et al., 2015).
    """
    p = trainer.config.scheduled_sampling * trainer.step / trainer.config.max_iters
    if p <= 0:
        return x, y
    with torch.no_grad(), trainer.autocast():
        logits, _ = trainer.forward_model(x)
    guess = logits.argmax(-1)  # guess[:, t] predicts x[:, t + 1]
    swap = draw_uniform(x[:, 1:].shape, trainer.generator, device=x.device) < p  # (B, T-1)
    x = x.clone()
    x[:, 1:] = torch.where(swap, guess[:, :-1], x[:, 1:])
    return x, y


# --------------------------------------------------------------------------------------
# 5. The Trainer
# --------------------------------------------------------------------------------------

Callback = Callable[["Trainer", dict[str, Any]], None]
BatchHook = Callable[["Trainer", torch.Tensor, torch.Tensor], Batch]


class Trainer:
    """Train ``model`` (``forward(x, targets) -> (logits, loss)``) on token ids or batches.

    Example::

        trainer = Trainer(GPT(GPTConfig(...)), TrainConfig(max_iters=500), train_ids, val_ids)
        trainer.train()
        trainer.history[-1]  # {'step': 500, 'val_loss': ..., 'val_ppl': ...}

    Args:
        model: the model to train (moved to the config's device).
        config: the :class:`TrainConfig`.
        train_data: a 1-D tensor of token ids (the Trainer draws seeded random windows of
            ``block_size``), or a batch source: a callable returning ``(x, y)`` or an
            iterable of ``(x, y)`` batches (supervised fine-tuning uses this). Bitwise
            resume needs the 1-D tensor (a batch source keeps its own state).
        val_data: a 1-D tensor, or a list of fixed ``(x, y)`` batches, for evaluation.
        callbacks: each is called as ``callback(trainer, record)`` for every new record.
        batch_hooks: each is called as ``hook(trainer, x, y) -> (x, y)`` on every training
            micro-batch before the forward pass (:func:`scheduled_sampling` is one; it is
            added when ``config.scheduled_sampling > 0``).
        tokenizer: stored in every checkpoint, so ``sample`` and
            :func:`lmcourse.checkpoint.load_model` get it back.

    ``history`` is a list of dicts (``kind`` "train" or "eval") ready for plotting.
    Created inside a ``torch.distributed`` process group (see :func:`init_distributed`),
    the Trainer trains with ``DistributedDataParallel``: ``config.batch_size`` is then
    the batch of each rank.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        train_data: BatchSource,
        val_data: Optional[Union[torch.Tensor, Sequence[Batch]]] = None,
        callbacks: Optional[list[Callback]] = None,
        batch_hooks: Optional[list[BatchHook]] = None,
        tokenizer: Any = None,
    ) -> None:
        self.config = config
        self.rank, self.world_size = _world()
        self.is_main = self.rank == 0  # only rank 0 logs, calls callbacks, writes files
        self.device = pick_device(None if config.device == "auto" else config.device)
        if self.world_size > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.dtype = autocast_dtype(self.device) if config.dtype == "auto" else _DTYPES[config.dtype]
        if self.device.type == "cuda" and config.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.model = model.to(self.device)
        self.model.train()
        self.tokenizer = tokenizer
        # batches: a token stream lives on the device, and so does the generator drawing
        # the window offsets (on CUDA); on CPU and MPS the generator is a CPU one
        gen_device = self.device if self.device.type == "cuda" else torch.device("cpu")
        self.generator = torch.Generator(device=gen_device).manual_seed(config.seed)
        self.train_data = self._check_stream("train_data", train_data)
        self._source = None if isinstance(self.train_data, torch.Tensor) else _as_source(train_data)
        self.val_data = self._check_stream("val_data", val_data)
        self.callbacks = list(callbacks or [])
        self.batch_hooks = list(batch_hooks or [])
        if config.scheduled_sampling > 0:
            self.batch_hooks.append(scheduled_sampling)
        self.optimizer = torch.optim.AdamW(
            param_groups(self.model, config.weight_decay),
            lr=config.lr,
            betas=config.betas,
            fused=self.device.type == "cuda",
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        torch.manual_seed(config.seed + self.rank)  # dropout: a different mask on each rank
        self._ddp: Optional[nn.Module] = None
        wrapped = self.model
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self._ddp = wrapped = DistributedDataParallel(self.model, device_ids=ids)
        self.forward_model = torch.compile(wrapped) if config.compile else wrapped
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.last_checkpoint: Optional[str] = None
        self.best_val_loss = math.inf
        self.best_step: Optional[int] = None
        self.stopped_early = False
        self._last_loss: Optional[torch.Tensor] = None
        if config.ckpt_dir is not None and self.is_main:
            checkpoint.check_run_folder(config.ckpt_dir)  # no links or non-files to write through
            checkpoint.clean_stale_temp_files(config.ckpt_dir)

    def _check_stream(self, name: str, data: Any) -> Any:
        """A 1-D token tensor goes to the device (once); batch sources pass through."""
        if data is None or not isinstance(data, torch.Tensor):
            return data
        if data.dim() != 1 or data.numel() <= self.config.block_size:
            raise ValueError(
                f"{name} must be a 1-D tensor of more than block_size={self.config.block_size} "
                "token ids (or, for train_data, a batch source)"
            )
        if data.dtype.is_floating_point or data.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer token ids, got dtype {data.dtype}")
        return data.to(self.device)

    # ---- one step, in named parts ---------------------------------------------------------

    def autocast(self) -> torch.autocast:
        """Mixed precision for this device and dtype (a no-op in float32)."""
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)

    def next_batch(self) -> Batch:
        """The next training micro-batch (B, T) on the device, after the batch hooks."""
        cfg = self.config
        if self._source is None:
            x, y = _rank_windows(self.train_data, cfg.batch_size, cfg.block_size, self.generator)
        else:
            x, y = self._source()
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        for hook in self.batch_hooks:
            x, y = hook(self, x, y)
        return x, y

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor, last: bool) -> torch.Tensor:
        """Loss of one micro-batch, with the gradient of ``loss / grad_accum`` accumulated."""
        # DDP all-reduces gradients in backward; skip it on all but the last micro-batch
        # (no_sync must wrap the forward: that is where DDP reads the flag)
        sync = contextlib.nullcontext() if self._ddp is None or last else self._ddp.no_sync()
        with sync, self.autocast():
            _, loss = self.forward_model(x, y)
        self.scaler.scale(loss / self.config.grad_accum).backward()
        return loss.detach()

    def optimizer_step(self) -> None:
        """Clip the gradient norm, take one AdamW step at ``lr_at(step)``, zero the gradients."""
        cfg = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.max_iters)
        if cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def train_step(self) -> torch.Tensor:
        """One optimizer step (``grad_accum`` micro-batches); returns the mean loss.

        The loss is a 0-d tensor on the device: reading it (``float(loss)``) waits for the
        GPU, so the loop does that only on logging steps.
        """
        total = torch.zeros((), device=self.device)
        for micro in range(self.config.grad_accum):
            x, y = self.next_batch()
            total += self.forward_backward(x, y, last=micro == self.config.grad_accum - 1)
        self.optimizer_step()
        self.step += 1
        self._last_loss = total / self.config.grad_accum
        return self._last_loss

    # ---- logging and evaluation ------------------------------------------------------------

    def _check_finite(self, value: float, what: str) -> None:
        if not math.isfinite(value):
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingDiverged(
                f"{what} is {value} at step {self.step}; stopping. The last good checkpoint is "
                f"{self.last_checkpoint or '(none written)'}. Try a lower lr, more warm-up, or grad_clip."
            )

    def log(self, loss: float, tokens_per_s: float) -> dict[str, Any]:
        """Check that the training ``loss`` is finite and record it with the throughput."""
        self._check_finite(loss, "the training loss")
        cfg = self.config
        lr = lr_at(self.step - 1, cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.max_iters)
        record = {"kind": "train", "step": self.step, "loss": loss, "lr": lr, "tokens_per_s": tokens_per_s}
        self._record(record)
        return record

    def evaluate(self) -> dict[str, Any]:
        """Validation loss and perplexity on ``eval_iters`` fixed batches (seeded by ``seed``)."""
        if self.val_data is None:
            raise ValueError("evaluate() needs val_data")
        cfg = self.config
        loss = estimate_loss(
            self.forward_model, self.val_data, cfg.eval_iters, cfg.batch_size, cfg.block_size,
            cfg.seed, self.dtype,
        )
        record = {"kind": "eval", "step": self.step, "val_loss": loss,
                  "val_ppl": math.exp(loss) if loss < 700 else math.inf}
        self._record(record)
        return record

    def _record(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.is_main:
            for callback in self.callbacks:
                callback(self, record)

    # ---- the loop --------------------------------------------------------------------------

    def train(self, until: Optional[int] = None) -> list[dict[str, Any]]:
        """Train from the current step to ``until`` (default ``max_iters``); return history.

        Evaluates and checkpoints every ``eval_interval`` steps and at ``max_iters``;
        stops early after ``patience`` evaluations without improvement (``stopped_early``).
        Raises :class:`TrainingDiverged` on a NaN/inf loss (checked on logging steps and
        before every checkpoint, so no checkpoint holds a diverged model).
        """
        cfg = self.config
        until = cfg.max_iters if until is None else until
        if not self.step <= until <= cfg.max_iters:
            raise ValueError(f"until must be in [{self.step}, max_iters={cfg.max_iters}], got {until}")
        from tqdm.auto import tqdm

        bar = tqdm(total=until, initial=self.step, disable=not (cfg.progress and self.is_main), desc="train")
        tokens_per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum * self.world_size
        t0, steps_timed = time.perf_counter(), 0
        try:
            while self.step < until and not self.stopped_early:
                loss = self.train_step()
                steps_timed += 1
                bar.update(1)
                if self.step % cfg.log_interval == 0:
                    value = float(loss)  # waits for the GPU: only on logging steps
                    tok_s = tokens_per_step * steps_timed / max(time.perf_counter() - t0, 1e-9)
                    self.log(value, tok_s)
                    bar.set_postfix(loss=f"{value:.3f}", tok_s=f"{tok_s:,.0f}")
                    t0, steps_timed = time.perf_counter(), 0
                at_eval = cfg.eval_interval and self.step % cfg.eval_interval == 0
                if at_eval or self.step == cfg.max_iters:
                    self.evaluate_and_checkpoint()
                    t0, steps_timed = time.perf_counter(), 0  # do not count eval in tokens/s
        finally:
            bar.close()
        return self.history

    def evaluate_and_checkpoint(self) -> None:
        """Evaluate; write ``best.pt`` on a new best and ``ckpt_<step>.pt``; maybe stop early."""
        cfg = self.config
        if self.val_data is not None:
            val = self.evaluate()["val_loss"]
            self._check_finite(val, "the validation loss")
            improved = val < self.best_val_loss
            if improved:
                self.best_val_loss, self.best_step = val, self.step
        else:
            improved = False
            if self._last_loss is not None:
                self._check_finite(float(self._last_loss), "the training loss")
        if cfg.ckpt_dir is not None and self.is_main:
            if improved:
                self.save_checkpoint(os.path.join(cfg.ckpt_dir, BEST_NAME), full=False)
            self.save_checkpoint()
        if cfg.patience and self.best_step is not None:
            evals_since_best = sum(1 for h in self.history if h["kind"] == "eval" and h["step"] > self.best_step)
            self.stopped_early = evals_since_best >= cfg.patience

    # ---- checkpoints -----------------------------------------------------------------------

    def save_checkpoint(self, path: Optional[str] = None, full: bool = True) -> str:
        """Write a checkpoint atomically (default ``ckpt_dir/ckpt_<step>.pt``); keep the last N.

        ``full=False`` writes the model, tokenizer and metrics only (what ``best.pt``
        needs); ``full=True`` adds the optimizer, scaler, RNG states and history, all
        that :meth:`resume` needs to continue bit for bit. Under DDP call it on rank 0
        only (:meth:`train` does); the weights are the same on every rank.
        """
        periodic = path is None
        if periodic:
            if self.config.ckpt_dir is None:
                raise ValueError("save_checkpoint() needs a path or TrainConfig.ckpt_dir")
            path = os.path.join(self.config.ckpt_dir, checkpoint.checkpoint_name(self.step))
        fields: dict[str, Any] = {
            "train_config": self.config.to_dict(),
            "step": self.step,
            "metrics": {"val_loss": self._last_val(), "best_val_loss": self.best_val_loss,
                        "best_step": self.best_step},
        }
        if full:
            fields.update(
                optimizer=self.optimizer.state_dict(),
                scaler=self.scaler.state_dict(),
                history=list(self.history),
                rng={"torch": torch.get_rng_state(),
                     "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                     "batches": self.generator.get_state()},
            )
        checkpoint.save(path, self.model, self.tokenizer, **fields)
        if periodic:
            self.last_checkpoint = path
            for old in list_checkpoints(self.config.ckpt_dir)[: -self.config.keep_last]:
                os.remove(old)
        return path

    def _last_val(self) -> Optional[float]:
        evals = [h["val_loss"] for h in self.history if h["kind"] == "eval"]
        return evals[-1] if evals else None

    def load_best(self) -> int:
        """Put the weights of ``ckpt_dir/best.pt`` into the model; returns its step."""
        if self.config.ckpt_dir is None:
            raise ValueError("load_best() needs TrainConfig.ckpt_dir")
        ckpt = checkpoint.load(os.path.join(self.config.ckpt_dir, BEST_NAME), map_location=self.device)
        self.model.load_state_dict(ckpt["model"])
        return int(ckpt["step"])

    def resume(self, path: Union[str, os.PathLike]) -> int:
        """Continue from a checkpoint file, or the latest one in a folder; returns the step.

        A folder without any checkpoint (or a folder that does not exist yet) means a
        run that has not written one: training starts fresh at step 0, so the same
        ``train --resume`` command works for the first start and for every restart. A
        file that does not exist raises ``FileNotFoundError``; a corrupt file or one
        written for a different model raises ``ValueError`` naming the file. Nothing in
        the file is executed (``weights_only=True``).
        """
        path = os.fspath(path)
        if os.path.isdir(path) or not os.path.splitext(path)[1]:
            found = checkpoint.latest_checkpoint(path)
            if found is None:
                return self.step
            path = found
        ckpt = checkpoint.load(path, map_location=self.device)
        if ckpt["optimizer"] is None or ckpt["rng"] is None:
            raise ValueError(f"{path!r} holds a model only (like best.pt), not a training state to resume")
        model_config = getattr(self.model, "config", None)
        saved = ckpt["model_config"]
        current = model_config.to_dict() if hasattr(model_config, "to_dict") else None
        if saved is not None and current is not None and saved != current:
            diff = {k: (v, current.get(k)) for k, v in saved.items() if current.get(k) != v}
            raise ValueError(f"checkpoint {path!r} is for a different model; (saved, current): {diff}")
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise ValueError(f"checkpoint {path!r} does not fit this model/optimizer: {e}") from e
        metrics = ckpt["metrics"] or {}
        best_val, best_step = metrics.get("best_val_loss", math.inf), metrics.get("best_step")
        if ckpt["step"] is None or (best_step is not None and not isinstance(best_step, int)) \
                or isinstance(best_val, bool) or not isinstance(best_val, (int, float)):
            raise ValueError(f"checkpoint {path!r}: its step or best-validation record is invalid")
        try:
            if ckpt["scaler"]:
                self.scaler.load_state_dict(ckpt["scaler"])
            rng = ckpt["rng"]
            torch.set_rng_state(rng["torch"].cpu())
            if rng.get("cuda") is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
            self.generator.set_state(rng["batches"].cpu())
        except (KeyError, TypeError, AttributeError, RuntimeError, ValueError) as e:
            raise ValueError(f"checkpoint {path!r}: its scaler or random-number state is invalid "
                             f"({type(e).__name__}: {e})") from None
        self.step = ckpt["step"]
        self.history = list(ckpt["history"] or [])
        self.best_val_loss, self.best_step = float(best_val), best_step
        if self.world_size > 1:  # the checkpoint holds rank 0's dropout state
            torch.manual_seed(self.config.seed + self.rank + self.step)
        self.last_checkpoint = path
        return self.step



def _as_source(data: Any) -> Callable[[], Batch]:
    """A callable returning ``(x, y)`` from a callable or an iterable of batches."""
    if callable(data):
        return data
    if isinstance(data, Iterable):
        iterator = iter(data)

        def next_batch() -> Batch:
            try:
                return next(iterator)
            except StopIteration:
                raise ValueError("train_data (an iterator of batches) ran out before max_iters") from None

        return next_batch
    raise TypeError(f"train_data must be a 1-D token tensor, a callable returning (x, y) or an "
                    f"iterable of (x, y) batches, got {type(data).__name__}")


# --------------------------------------------------------------------------------------
# 6. Presets
# --------------------------------------------------------------------------------------

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Char-level Shakespeare on a laptop CPU. Measured on a 2-core VM (torch 2.13 CPU,
    # 2 threads): val loss 1.846 in 149 s. With lr 1e-3 (nanoGPT's laptop setting) the same
    # run ends at 1.937: on this corpus the higher rate is better within 2000 steps.
    "cpu-tiny": {
        "model": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0),
        "train": dict(lr=2e-3, min_lr=2e-4, warmup_iters=100, max_iters=2000, batch_size=12,
                      block_size=64, eval_interval=250, eval_iters=20),
    },
    # Char-level Shakespeare on one GPU: nanoGPT's "shakespeare-char" model (6 x 6 x 384,
    # context 256, batch 64, dropout 0.2, AdamW beta2 0.99, lr 1e-3 -> 1e-4, clip 1.0).
    # Measured before (one H200): 5000 steps reached the best val loss 1.4719 at step 2250
    # and then overfitted (1.7352 at 5000). So: a schedule that ends where overfitting
    # begins (cosine to min_lr over 2500 steps), the best model kept in best.pt, and early
    # stopping after 4 evaluations without improvement. To measure the retuned schedule:
    #   python -m lmcourse train --preset gpu-small --out runs/gpu-small
    "gpu-small": {
        "model": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2),
        "train": dict(lr=1e-3, min_lr=1e-4, warmup_iters=100, max_iters=2500, batch_size=64,
                      block_size=256, betas=(0.9, 0.99), eval_interval=250, eval_iters=200,
                      patience=4),
    },
    # GPT-2 small's shape (124M parameters with vocab 50304), for bench-train: the
    # configuration nanoGPT's MFU figures use (T = 1024, batch 16, dropout 0).
    "gpt2-small": {
        "model": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, dropout=0.0),
        "train": dict(lr=6e-4, min_lr=6e-5, warmup_iters=2000, max_iters=600000, batch_size=16,
                      block_size=1024, betas=(0.9, 0.95), eval_interval=2000, eval_iters=200),
    },
}
# vocabulary of a preset's model when no tokenizer decides it (bench-train's random tokens)
PRESET_VOCAB = {"cpu-tiny": 65, "gpu-small": 65, "gpt2-small": 50304}


def preset(name: str, **train_overrides: Any) -> tuple[dict[str, Any], TrainConfig]:
    """``(model kwargs without vocab_size, TrainConfig)`` of a preset, with overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
    p = PRESETS[name]
    return dict(p["model"]), replace(TrainConfig(**p["train"]), **train_overrides)
