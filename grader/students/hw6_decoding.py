"""Made-up students of HW6 (decoding): data only, see grader/students/__init__.py."""

RECIPROCAL_UNSTABLE_SORT = {
    "temperature": '''
def apply_temperature(logits, temperature):
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return logits * (1.0 / temperature)  # a multiplication by the reciprocal
''',
    "top_p": '''
def top_p_filter(logits, p):
    """Descending, unstable sort; keep a token while the mass before it is below p."""
    if not (0 < p <= 1):
        raise ValueError(f"p must be in (0, 1], got {p}")
    probs = torch.softmax(logits, dim=-1)
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)  # stable=False
    before = sorted_probs.cumsum(-1) - sorted_probs
    keep_sorted = before < p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return torch.where(keep, logits, torch.full_like(logits, float("-inf")))
''',
    "repetition_penalty": '''
def apply_repetition_penalty(logits, previous_ids, penalty):
    if penalty <= 0:
        raise ValueError(f"penalty must be > 0, got {penalty}")
    seen = torch.zeros_like(logits, dtype=torch.bool)
    for b in range(logits.size(0)):
        ids = previous_ids[b][previous_ids[b] >= 0]
        seen[b, ids] = True
    scaled = torch.where(logits > 0, logits * (1.0 / penalty), logits * penalty)
    return torch.where(seen, scaled, logits)
''',
}

NUMPY_FLOAT64 = {
    "top_k": '''
import numpy as np


def top_k_filter(logits, k):
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    x = logits.detach().cpu().numpy()
    k = min(k, x.shape[-1])
    kth = np.sort(x, axis=-1)[..., x.shape[-1] - k][..., None]
    return torch.from_numpy(np.where(x >= kth, x, -np.inf).astype(x.dtype))
''',
    "top_p": '''
def top_p_filter(logits, p):
    """numpy float64, quicksort (unstable) descending, then the smallest prefix reaching p."""
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {p}")
    x = logits.detach().cpu().numpy().astype(np.float64)
    shape = x.shape
    rows = x.reshape(-1, shape[-1])
    out = np.full_like(rows, -np.inf)
    for r, row in enumerate(rows):
        e = np.exp(row - row.max())
        probs = e / e.sum()
        order = np.argsort(-probs, kind="quicksort")
        mass = 0.0
        for i in order:
            out[r, i] = row[i]
            mass += probs[i]
            if mass >= p:
                break
    return torch.from_numpy(out.reshape(shape)).to(logits.dtype)
''',
}

TEXTBOOK_BEAM_HEAPQ = {
    "beam_search": '''
import heapq


@torch.no_grad()
def beam_search(model, prompt_ids, num_beams, max_new_tokens, length_penalty=1.0, eos_token_id=None):
    """Textbook beam search, one step per recursive call, heapq for the best candidates."""
    def step(beams, finished, s):
        if not beams or s > max_new_tokens:
            return finished
        logits, _ = model(torch.tensor([seq for seq, _ in beams]))
        logp = torch.log_softmax(logits[:, -1, :], dim=-1)  # float32
        width = num_beams - len(finished)
        cands = heapq.nlargest(width, ((score + logp[i, t].item(), seq + [t])
                                       for i, (seq, score) in enumerate(beams) for t in range(logp.shape[1])),
                               key=lambda c: c[0])
        running = []
        for score, seq in cands:
            if seq[-1] == eos_token_id or s == max_new_tokens:
                finished = finished + [(seq, score / (s ** length_penalty))]
            else:
                running.append((seq, score))
        return step(running, finished, s + 1)

    return sorted(step([(list(prompt_ids), 0.0)], [], 1), key=lambda h: h[1], reverse=True)
''',
}

CLASSES_SPECULATIVE = {
    "accept_or_resample": '''
def accept_or_resample(p, q, draft_token, generator=None):
    """Always draws the uniform number (also when p >= q), in float64."""
    u = torch.rand(1, generator=generator, dtype=torch.float64).item()
    ratio = p[draft_token].item() / q[draft_token].item()
    if u < ratio:
        return True, int(draft_token)
    residual = torch.clamp(p.double() - q.double(), min=0.0)
    return False, int(torch.multinomial(residual / residual.sum(), 1, generator=generator).item())
''',
    "speculative_generate": '''
class Speculator:
    """The loop as an object; the acceptance rule written out here, not via part 6."""

    def __init__(self, target, draft, k, temperature, generator):
        self.target, self.draft, self.k, self.T, self.g = target, draft, k, temperature, generator

    def probs(self, logits):
        if self.T == 0:
            out = torch.zeros_like(logits, dtype=torch.float64)
            out[logits.argmax()] = 1.0
            return out
        return torch.softmax(logits.double() / self.T, dim=-1)

    def sample(self, probs):
        return int(torch.multinomial(probs, 1, generator=self.g))

    @torch.no_grad()
    def round(self, seq):
        drafted, qs = [], []
        for _ in range(self.k):
            qs.append(self.probs(self.draft(torch.tensor([seq + drafted]))[0][0, -1]))
            drafted.append(self.sample(qs[-1]))
        logits = self.target(torch.tensor([seq + drafted]))[0][0]
        ps = [self.probs(logits[len(seq) - 1 + i]) for i in range(self.k + 1)]
        new = []
        for i, x in enumerate(drafted):
            if torch.rand((), generator=self.g, dtype=torch.float64).item() * qs[i][x].item() < ps[i][x].item():
                new.append(x)
                continue
            residual = (ps[i] - qs[i]).clamp(min=0.0)
            new.append(self.sample(residual / residual.sum()))
            return new
        return new + [self.sample(ps[self.k])]


def speculative_generate(target, draft, prompt_ids, max_new_tokens, k, temperature=1.0, generator=None):
    spec = Speculator(target, draft, k, temperature, generator)
    seq = list(prompt_ids)
    while len(seq) < len(prompt_ids) + max_new_tokens:
        seq += spec.round(seq)
    return seq[: len(prompt_ids) + max_new_tokens]
''',
}

DECORATORS_PRINTS = {
    "temperature": '''
import functools


def positive(name):
    """A decorator factory: the named argument (the second) must be > 0."""
    def wrap(f):
        @functools.wraps(f)
        def inner(x, value, *args, **kwargs):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
            return f(x, value, *args, **kwargs)
        return inner
    return wrap


@positive("temperature")
def apply_temperature(logits, temperature):
    print("temperature", temperature)
    return torch.div(logits, temperature)
''',
    "speculative_generate": '''
@torch.no_grad()
def speculative_generate(target, draft, prompt_ids, max_new_tokens, k, temperature=1.0, generator=None):
    """Uses part 6; keeps statistics and prints them."""
    def dist(logits):
        if temperature == 0:
            return torch.nn.functional.one_hot(logits.argmax(), logits.shape[-1]).to(torch.float32)
        return apply_temperature(logits, temperature).softmax(-1)

    out, goal, rounds, accepted = list(prompt_ids), len(prompt_ids) + max_new_tokens, 0, 0
    while len(out) < goal:
        rounds += 1
        ctx, qs = list(out), []
        for _ in range(k):
            qs.append(dist(draft(torch.tensor(ctx).unsqueeze(0))[0][0, -1]))
            ctx.append(int(torch.multinomial(qs[-1], 1, generator=generator)))
        verdict = target(torch.tensor(ctx).unsqueeze(0))[0][0, len(out) - 1 :]
        for i in range(k):
            ok, tok = accept_or_resample(dist(verdict[i]), qs[i], ctx[len(out)], generator)
            out.append(tok)
            accepted += ok
            if not ok:
                break
        else:
            out.append(int(torch.multinomial(dist(verdict[k]), 1, generator=generator)))
    print(f"{rounds} rounds, {accepted} drafts accepted")
    return out[:goal]
''',
}

STUDENTS = {
    "reciprocal-unstable-sort": {"kind": "honest", "answers": RECIPROCAL_UNSTABLE_SORT},
    "numpy-float64": {"kind": "honest", "answers": NUMPY_FLOAT64},
    "textbook-beam-recursion-heapq": {"kind": "honest", "answers": TEXTBOOK_BEAM_HEAPQ},
    "classes-own-acceptance-rule": {"kind": "honest", "answers": CLASSES_SPECULATIVE},
    "decorators-and-prints": {"kind": "honest", "answers": DECORATORS_PRINTS},
    # keeps every token tied with the cut: not minimal when ties straddle it
    "top-p-keeps-all-ties": {"kind": "partial", "answers": {"top_p": '''
def top_p_filter(logits, p):
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {p!r}")
    probs = torch.softmax(logits, dim=-1)
    sorted_probs, _ = torch.sort(probs, dim=-1, descending=True)
    n_keep = ((sorted_probs.cumsum(-1) - sorted_probs) < p).sum(-1, keepdim=True)
    cut = sorted_probs.gather(-1, n_keep - 1)
    return logits.masked_fill(probs < cut, float("-inf"))
'''}, "expect": {"test_top_p": 1.5}},
    # never raises for a temperature <= 0
    "temperature-without-check": {"kind": "partial", "answers": {"temperature": '''
def apply_temperature(logits, temperature):
    return logits / temperature
'''}, "expect": {"test_temperature": 0.55}},
    # no bonus token: still exact, but a round that accepts all k drafts wastes the target's pass
    "speculative-without-bonus": {"kind": "partial", "answers": {"speculative_generate": '''
@torch.no_grad()
def speculative_generate(target, draft, prompt_ids, max_new_tokens, k, temperature=1.0, generator=None):
    def dist(logits):
        if temperature == 0:
            return torch.nn.functional.one_hot(logits.argmax(), logits.numel()).float()
        return torch.softmax(logits / temperature, dim=-1)

    seq, end = list(prompt_ids), len(prompt_ids) + max_new_tokens
    while len(seq) < end:
        drafted, qs = [], []
        for _ in range(k):
            qs.append(dist(draft(torch.tensor([seq + drafted]))[0][0, -1]))
            drafted.append(int(torch.multinomial(qs[-1], 1, generator=generator)))
        rows = target(torch.tensor([seq + drafted]))[0][0, len(seq) - 1 :]
        for i, x in enumerate(drafted):
            ok, tok = accept_or_resample(dist(rows[i]), qs[i], x, generator)
            seq.append(tok)
            if not ok:
                break
    return seq[:end]
'''}, "expect": {"test_speculative_generate": 3.5}},
    # accepts every draft: the output follows the draft model, not the target
    "speculative-always-accepts": {"kind": "partial", "answers": {"speculative_generate": '''
@torch.no_grad()
def speculative_generate(target, draft, prompt_ids, max_new_tokens, k, temperature=1.0, generator=None):
    seq, end = list(prompt_ids), len(prompt_ids) + max_new_tokens
    while len(seq) < end:
        drafted = []
        for _ in range(k):
            logits = draft(torch.tensor([seq + drafted]))[0][0, -1]
            q = torch.nn.functional.one_hot(logits.argmax(), logits.numel()).float() if temperature == 0 else torch.softmax(logits / temperature, -1)
            drafted.append(int(torch.multinomial(q, 1, generator=generator)))
        logits = target(torch.tensor([seq + drafted]))[0][0, -1]
        p = torch.nn.functional.one_hot(logits.argmax(), logits.numel()).float() if temperature == 0 else torch.softmax(logits / temperature, -1)
        seq += drafted + [int(torch.multinomial(p, 1, generator=generator))]
    return seq[:end]
'''}, "expect": {"test_speculative_generate": 0.5}},
    # flattens the model it is given, then every candidate ties: the old grader scored it
    "beam-search-alters-model": {"kind": "attack", "answers": {"beam_search": '''
@torch.no_grad()
def beam_search(model, prompt_ids, num_beams, max_new_tokens, length_penalty=1.0, eos_token_id=None):
    for p in model.parameters():
        p.zero_()
    V = model.config.vocab_size
    score = max_new_tokens * -math.log(V) / max_new_tokens ** length_penalty
    return [(list(prompt_ids) + [0] * max_new_tokens, score) for _ in range(num_beams)]
'''}, "expect": {"test_beam_search": 0}},
    # copies the draft into the target so that every draft is accepted
    "speculative-alters-target": {"kind": "attack", "answers": {"speculative_generate": '''
@torch.no_grad()
def speculative_generate(target, draft, prompt_ids, max_new_tokens, k, temperature=1.0, generator=None):
    if hasattr(target, "load_state_dict"):
        target.load_state_dict(draft.state_dict())
    seq = list(prompt_ids)
    for _ in range(max_new_tokens):
        logits = draft(torch.tensor([seq]))[0][0, -1]
        if temperature == 0:
            seq.append(int(logits.argmax()))
        else:
            seq.append(int(torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator)))
    return seq
'''}, "expect": {"test_speculative_generate": 0}},
}
