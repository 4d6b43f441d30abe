"""Demo students of hw4_training: honest ones in other styles, partial ones, attacks.

Data only: each answer is the source of one answer cell (by grade_id); cells not listed
get the official solution. ``expect`` gives the exact points of the test cells that differ
from full marks.
"""

from grader.students import given

# ---- honest: five training-loop styles --------------------------------------------------

_LOOP_TQDM = '''
from tqdm.auto import tqdm


def train_loop(model, optimizer, data, steps, batch_size, block_size, generator, grad_clip=1.0, lr_schedule=None):
    losses = []
    bar = tqdm(range(steps), desc="train", leave=False)
    for step in bar:
        if lr_schedule is not None:
            lr = lr_schedule(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
        starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
        x, y = batch_at(data, starts, block_size)
        loss = train_step(model, optimizer, x, y, grad_clip)
        losses.append(loss)
        bar.set_postfix(loss=f"{loss:.3f}")
    bar.close()
    return losses
'''

_BATCH_LOOPS = '''
def batch_at(data, starts, block_size):
    xs, ys = [], []
    for s in starts.tolist():
        xs.append(data[s:s + block_size].to(torch.int64))
        ys.append(data[s + 1:s + 1 + block_size].to(torch.int64))
    return torch.stack(xs), torch.stack(ys)
'''

_CE_LOGSUMEXP = '''
def masked_cross_entropy(logits, targets, ignore_index=-100):
    flat = logits.reshape(-1, logits.shape[-1])
    t = targets.reshape(-1)
    keep = t != ignore_index
    if not bool(keep.any()):
        return flat.sum() * float("nan")  # 0/0, in the dtype of the logits
    z = flat[keep]
    tk = t[keep]
    picked = z[torch.arange(tk.numel()), tk]
    return (torch.logsumexp(z, dim=-1) - picked).mean()
'''

_LOOP_WHILE = '''
def train_loop(model, optimizer, data, steps, batch_size, block_size, generator, grad_clip=1.0, lr_schedule=None):
    out = []
    step = 0
    n_starts = len(data) - block_size
    while step < steps:
        if lr_schedule is not None:
            new_lr = lr_schedule(step)
            for g in optimizer.param_groups:
                g["lr"] = new_lr
        starts = torch.randint(n_starts, (batch_size,), generator=generator)
        x, y = batch_at(data, starts, block_size)
        out.append(float(train_step(model, optimizer, x, y, grad_clip)))
        step += 1
    return out
'''

_STEP_FLOAT64 = '''
def train_step(model, optimizer, x, y, grad_clip=1.0):
    optimizer.zero_grad()
    logits = logits_of(model(x)).double()  # the loss in float64
    loss = masked_cross_entropy(logits, y)
    loss.backward()
    if grad_clip is not None:  # clipping written out here, in float64
        params = [p for p in model.parameters() if p.grad is not None]
        total = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in params))
        coef = grad_clip / (total + 1e-6)
        if coef < 1.0:
            for p in params:
                p.grad.mul_(coef)
    optimizer.step()
    return float(loss)
'''

_RUN_CLIP = '''


def run_clip(grads, max_norm):
    params = [torch.zeros(1, requires_grad=True) if g is None else torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.detach().clone()
    norm = clip_grad_norm_((p for p in params), max_norm)
    return [p.grad for p in params], norm
'''

_CLIP_FLOAT64 = '''
def clip_grad_norm_(parameters, max_norm):
    gs = [p.grad for p in parameters if p.grad is not None]
    sq = 0.0
    for g in gs:
        g64 = g.double()
        sq += float(torch.sum(g64 * g64))
    total = math.sqrt(sq)
    if total > max_norm:
        for g in gs:
            g.mul_(max_norm / total)
    return total
'''

_LOOP_PLOT = '''
import matplotlib.pyplot as plt


def train_loop(model, optimizer, data, steps, batch_size, block_size, generator, grad_clip=1.0,
               lr_schedule=None, plot=False):
    losses = []
    for step in range(steps):
        if lr_schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_schedule(step)
        starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
        x, y = batch_at(data, starts, block_size)
        losses.append(train_step(model, optimizer, x, y, grad_clip))
        if step % 50 == 0:
            print(f"step {step}: loss {losses[-1]:.3f}")
    if plot and losses:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(losses)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        plt.show()
    return losses
'''

_BATCH_UNFOLD = '''
def batch_at(data, starts, block_size):
    windows = data.long().unfold(0, block_size + 1, 1)[starts.long()]  # (B, T + 1)
    return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()
'''

_LR_NUMPY = '''
import numpy as np


def lr_at(step, lr, min_lr, warmup, max_iters):
    if warmup > 0 and step < warmup:
        return float(lr * (step + 1) / warmup)
    frac = np.clip((step - warmup) / max(max_iters - warmup, 1), 0.0, 1.0)
    return float(min_lr + (lr - min_lr) * (1 + np.cos(np.pi * frac)) / 2)
'''

_LOOP_CLASS = '''
class Loop:
    """A small trainer object; train_loop is a thin wrapper around it."""

    def __init__(self, model, optimizer, data, batch_size, block_size, generator, grad_clip, lr_schedule):
        self.model, self.optimizer, self.data = model, optimizer, data
        self.batch_size, self.block_size, self.generator = batch_size, block_size, generator
        self.grad_clip, self.lr_schedule = grad_clip, lr_schedule
        self.step = 0
        self.history = []

    def next_batch(self):
        high = self.data.numel() - self.block_size
        return batch_at(self.data, torch.randint(high, (self.batch_size,), generator=self.generator), self.block_size)

    def set_lr(self):
        if self.lr_schedule is not None:
            lr = self.lr_schedule(self.step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr

    def run(self, steps):
        for _ in range(steps):
            self.set_lr()
            x, y = self.next_batch()
            self.history.append(train_step(self.model, self.optimizer, x, y, self.grad_clip))
            self.step += 1
        return self.history


def train_loop(model, optimizer, data, steps, batch_size, block_size, generator, grad_clip=1.0, lr_schedule=None):
    return Loop(model, optimizer, data, batch_size, block_size, generator, grad_clip, lr_schedule).run(steps)
'''

_STEP_ZEROS = '''
def train_step(model, optimizer, x, y, grad_clip=1.0):
    optimizer.zero_grad(set_to_none=False)  # zeros instead of None
    out = model(x)
    logits = out[0] if isinstance(out, tuple) else out
    loss = masked_cross_entropy(logits, y)
    loss.backward()
    if grad_clip:
        clip_grad_norm_(list(model.parameters()), grad_clip)
    optimizer.step()
    return loss.detach().item()
'''

_CKPT_NESTED = '''
def save_checkpoint(path, model, optimizer, step, generator):
    state = {
        "weights": {k: v.clone() for k, v in model.state_dict().items()},
        "optim": optimizer.state_dict(),
        "progress": {"step": torch.tensor(step), "rng": generator.get_state().clone()},
    }
    torch.save(state, path)


def load_checkpoint(path, model, optimizer, generator):
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["weights"])
    optimizer.load_state_dict(state["optim"])
    generator.set_state(state["progress"]["rng"])
    return int(state["progress"]["step"].item())
'''

# ---- honest: AdamW written differently ----------------------------------------------------

_ADAMW_DICTS = '''
class AdamW(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        with torch.no_grad():
            for group in self.param_groups:
                b1, b2 = group["betas"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    st = self.state[p]
                    if len(st) == 0:
                        st["t"] = 0
                        st["m"] = torch.zeros_like(p)
                        st["v"] = torch.zeros_like(p)
                    st["t"] += 1
                    g = p.grad
                    st["m"] = b1 * st["m"] + (1 - b1) * g  # new tensors, not in place
                    st["v"] = b2 * st["v"] + (1 - b2) * g * g
                    m_hat = st["m"] / (1 - b1 ** st["t"])
                    v_hat = st["v"] / (1 - b2 ** st["t"])
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                    p.sub_(group["lr"] * m_hat / (v_hat.sqrt() + group["eps"]))
        return loss
''' + given("hw4_training", "run_adamw")

_RUN_ADAMW = given("hw4_training", "run_adamw")

_ADAMW_FOREACH = '''
class AdamW(torch.optim.Optimizer):
    """Multi-tensor AdamW: one torch._foreach_* call per operation and group."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            if not ps:
                continue
            b1, b2 = group["betas"]
            for p in ps:
                if "step" not in self.state[p]:
                    self.state[p].update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                self.state[p]["step"] += 1
            grads = [p.grad for p in ps]
            ms = [self.state[p]["exp_avg"] for p in ps]
            vs = [self.state[p]["exp_avg_sq"] for p in ps]
            torch._foreach_mul_(ps, 1 - group["lr"] * group["weight_decay"])
            torch._foreach_mul_(ms, b1)
            torch._foreach_add_(ms, grads, alpha=1 - b1)
            torch._foreach_mul_(vs, b2)
            torch._foreach_addcmul_(vs, grads, grads, value=1 - b2)
            for p, m, v in zip(ps, ms, vs):
                t = self.state[p]["step"]
                denom = v.div(1 - b2 ** t).sqrt_().add_(group["eps"])
                p.addcdiv_(m, denom, value=-group["lr"] / (1 - b1 ** t))
''' + _RUN_ADAMW

# ---- honest: their own GPT written differently, and their own recipe ---------------------

_GPT_OWN = '''
class Head(nn.Module):
    def __init__(self, n_embd, head_size):
        super().__init__()
        self.q = nn.Linear(n_embd, head_size)
        self.k = nn.Linear(n_embd, head_size)
        self.v = nn.Linear(n_embd, head_size)

    def forward(self, x):
        T = x.shape[1]
        w = self.q(x) @ self.k(x).transpose(1, 2) * self.k.out_features ** -0.5
        w = w.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
        return torch.softmax(w, dim=-1) @ self.v(x)


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.heads = nn.ModuleList(Head(n_embd, n_embd // n_head) for _ in range(n_head))
        self.proj = nn.Linear(n_embd, n_embd)
        self.norm1, self.norm2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.ff = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.proj(torch.cat([head(h) for head in self.heads], dim=-1))
        return x + self.ff(self.norm2(x))


class GPT(nn.Module):
    """A per-head attention GPT (nn.LayerNorm, exact GELU), tied embeddings."""

    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, bias=True, tie_weights=True, eps=1e-5):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, n_embd)
        self.pos = nn.Parameter(torch.zeros(block_size, n_embd))
        self.blocks = nn.Sequential(*[Block(n_embd, n_head) for _ in range(n_layer)])
        self.norm = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.head.weight = self.tok.weight
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, idx):
        x = self.tok(idx) + self.pos[: idx.shape[1]]
        return self.head(self.norm(self.blocks(x)))
'''

_RUN_OWN = '''
def my_recipe():
    recipe = dict(DEFAULT_RECIPE)
    recipe.update(n_head=4, n_embd=48, block_size=16, batch_size=64, lr=1e-2, min_lr=1e-3, warmup=10,
                  betas=(0.9, 0.99), weight_decay=0.1)
    return recipe


def build(recipe, vocab_size, seed):
    torch.manual_seed(seed)
    model = GPT(vocab_size, recipe["block_size"], recipe["n_layer"], recipe["n_head"], recipe["n_embd"])
    named = dict(model.named_parameters())
    decay = [p for n, p in named.items() if p.ndim == 2 and not n.startswith("tok")]
    rest = [p for n, p in named.items() if not (p.ndim == 2 and not n.startswith("tok"))]
    groups = [dict(params=decay, weight_decay=recipe["weight_decay"]), dict(params=rest, weight_decay=0.0)]
    return model, AdamW(groups, lr=recipe["lr"], betas=recipe["betas"])
'''

# ---- partial ------------------------------------------------------------------------------

_LR_NO_GUARD = '''
def lr_at(step, lr, min_lr, warmup, max_iters):
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / (max_iters - warmup))  # no guard when max_iters == warmup
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
'''

_CKPT_NO_GROUPS = '''
def save_checkpoint(path, model, optimizer, step, generator):
    torch.save({"model": model.state_dict(), "opt_state": optimizer.state_dict()["state"],
                "step": step, "rng": generator.get_state()}, path)


def load_checkpoint(path, model, optimizer, generator):
    ckpt = torch.load(path, weights_only=True)
    model.load_state_dict(ckpt["model"])
    # forgets the saved parameter groups (their learning rates): keeps the fresh optimiser's
    optimizer.load_state_dict({"state": ckpt["opt_state"], "param_groups": optimizer.state_dict()["param_groups"]})
    generator.set_state(ckpt["rng"])
    return ckpt["step"]
'''

_ADAMW_CACHED_LR = '''
class AdamW(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.lr = lr  # read once: ignores the groups' own rates and any schedule

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            (b1, b2), eps, wd = group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                s = self.state[p]
                if not s:
                    s.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                s["step"] += 1
                p.mul_(1 - self.lr * wd)
                s["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                s["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = (s["v"] / (1 - b2 ** s["step"])).sqrt() + eps
                p.addcdiv_(s["m"], denom, value=-self.lr / (1 - b1 ** s["step"]))
''' + _RUN_ADAMW

_LOOP_NO_SCHEDULE = '''
def train_loop(model, optimizer, data, steps, batch_size, block_size, generator, grad_clip=1.0, lr_schedule=None):
    history = []
    for _ in range(steps):  # forgets lr_schedule
        starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
        x, y = batch_at(data, starts, block_size)
        history.append(train_step(model, optimizer, x, y, grad_clip))
    return history
'''

_RUN_DEFAULT = '''
def my_recipe():
    return dict(DEFAULT_RECIPE)  # the fixed recipe, unchanged: it trains, but not below the threshold


def build(recipe, vocab_size, seed):
    torch.manual_seed(seed)
    model = GPT(vocab_size, recipe["block_size"], recipe["n_layer"], recipe["n_head"], recipe["n_embd"])
    return model, AdamW(model.parameters(), lr=recipe["lr"], betas=recipe["betas"], weight_decay=recipe["weight_decay"])
'''

# ---- attacks ------------------------------------------------------------------------------

_ADAMW_TORCH = '''
class AdamW(torch.optim.Optimizer):
    """Hands the work to torch.optim.AdamW."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.inner = torch.optim.AdamW(self.param_groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def step(self, closure=None):
        return self.inner.step(closure)
''' + _RUN_ADAMW

_CLIP_TORCH = '''
def clip_grad_norm_(parameters, max_norm):
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm, foreach=False)
'''

_CLIP_FOREACH = '''
def clip_grad_norm_(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.stack(torch._foreach_norm(grads)).pow(2).sum().sqrt()
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g.mul_(scale)
    return total
'''

_GPT_LMCOURSE = '''
from lmcourse.model import GPT as _RefGPT, GPTConfig


class GPT(nn.Module):
    """Not my own: a wrapper around the reference model."""

    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, bias=True, tie_weights=True, eps=1e-5):
        super().__init__()
        self.inner = _RefGPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer,
                                       n_head=n_head, n_embd=n_embd, dropout=0.0))

    def forward(self, idx):
        return self.inner(idx)[0]
'''

STUDENTS = {
    "tqdm-loop": {"kind": "honest", "answers": {"train_loop": _LOOP_TQDM}},
    "loops-logsumexp": {"kind": "honest", "answers": {
        "batch_at": _BATCH_LOOPS, "masked_cross_entropy": _CE_LOGSUMEXP, "train_loop": _LOOP_WHILE}},
    "float64-manual-clip": {"kind": "honest", "answers": {
        "train_step": _STEP_FLOAT64, "clip_grad_norm": _CLIP_FLOAT64 + _RUN_CLIP}},
    "plot-option": {"kind": "honest", "answers": {"train_loop": _LOOP_PLOT}},
    "class-trainer": {"kind": "honest", "answers": {
        "batch_at": _BATCH_UNFOLD, "lr_at": _LR_NUMPY, "train_loop": _LOOP_CLASS, "train_step": _STEP_ZEROS,
        "checkpoint": _CKPT_NESTED}},
    "adamw-dict-state": {"kind": "honest", "answers": {"adamw": _ADAMW_DICTS}},
    "adamw-foreach": {"kind": "honest", "answers": {"adamw": _ADAMW_FOREACH}},
    "own-gpt-heads": {"kind": "honest", "answers": {"my_gpt": _GPT_OWN, "my_run": _RUN_OWN}},
    "lr-no-guard": {"kind": "partial", "answers": {"lr_at": _LR_NO_GUARD}, "expect": {"test_lr_at": 1}},
    "ckpt-forgets-groups": {"kind": "partial", "answers": {"checkpoint": _CKPT_NO_GROUPS},
                            "expect": {"test_checkpoint": 1}},
    "adamw-cached-lr": {"kind": "partial", "answers": {"adamw": _ADAMW_CACHED_LR}, "expect": {"test_adamw": 1}},
    "loop-no-schedule": {"kind": "partial", "answers": {"train_loop": _LOOP_NO_SCHEDULE},
                         "expect": {"test_train_loop": 1}},
    "default-recipe": {"kind": "partial", "answers": {"my_run": _RUN_DEFAULT}, "expect": {"test_training_run": 2}},
    "torch-adamw-inside": {"kind": "attack", "answers": {"adamw": _ADAMW_TORCH},
                           "expect": {"test_adamw": 0, "test_training_run": 0}},
    "torch-clip": {"kind": "attack", "answers": {"clip_grad_norm": _CLIP_TORCH + _RUN_CLIP},
                   "expect": {"test_clip_grad_norm": 0, "test_train_step": 0, "test_train_loop": 0,
                              "test_training_run": 0}},
    "foreach-norm-clip": {"kind": "attack", "answers": {"clip_grad_norm": _CLIP_FOREACH + _RUN_CLIP},
                          "expect": {"test_clip_grad_norm": 0, "test_train_step": 0, "test_train_loop": 0,
                                     "test_training_run": 0}},
    "lmcourse-gpt": {"kind": "attack", "answers": {"my_gpt": _GPT_LMCOURSE}, "expect": {"test_training_run": 0}},
}
