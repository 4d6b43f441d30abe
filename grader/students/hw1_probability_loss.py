"""Made-up students of HW1 (probability and loss): data only, see grader/students/__init__.py."""

NUMPY_FLOAT64 = {
    "log_softmax": '''
import numpy as np


def log_softmax(logits, dim=-1):
    """Stable log-softmax computed in numpy float64, cast back to the input's dtype."""
    x = np.moveaxis(logits.detach().cpu().numpy().astype(np.float64), dim, -1)
    top = x.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = (x - top) - np.log(np.exp(x - top).sum(axis=-1, keepdims=True))
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(out, -1, dim))).to(logits.dtype)
''',
    "entropy": '''
def entropy(logits, dim=-1):
    x = np.moveaxis(logits.detach().cpu().numpy().astype(np.float64), dim, -1)
    logp = log_softmax(torch.from_numpy(x), dim=-1).numpy()
    p = np.exp(logp)
    terms = np.where(p > 0, p * np.where(p > 0, logp, 0.0), 0.0)
    return torch.from_numpy(np.asarray(-terms.sum(axis=-1) / np.log(2.0))).to(logits.dtype)
''',
}

HELPERS_ELSEWHERE = {
    "log_softmax": '''
def _shift(logits, dim):
    """logits minus their (finite) maximum along dim: every exponent is at most 1."""
    top = logits.amax(dim=dim, keepdim=True)
    return logits - torch.where(torch.isfinite(top), top, torch.zeros_like(top))


def _log_normaliser(shifted, dim):
    return shifted.exp().sum(dim=dim, keepdim=True).log()


def log_softmax(logits, dim=-1):
    shifted = _shift(logits, dim)
    return shifted - _log_normaliser(shifted, dim)
''',
    "sequence_log_prob": '''
def sequence_log_prob(logits, ids):
    """An explicit loop over positions, in the style of the chain rule written out."""
    total = torch.zeros(logits.shape[:-2], dtype=logits.dtype)
    for t in range(1, ids.size(-1)):
        row = log_softmax(logits[..., t - 1, :])
        total = total + row.gather(-1, ids[..., t : t + 1]).squeeze(-1)
    return total
''',
    "cross_entropy": '''
def cross_entropy(logits, targets, ignore_index=-100):
    flat = logits.reshape(-1, logits.size(-1))
    y = targets.reshape(-1)
    keep = y != ignore_index
    nll = -(log_softmax(flat)[torch.arange(flat.size(0))[keep], y[keep]])
    return nll.sum() / keep.sum().to(logits.dtype)
''',
    "perplexity": '''
def perplexity(logits, targets, ignore_index=-100):
    loss = cross_entropy(logits, targets, ignore_index).item()
    return float("nan") if loss != loss else float(math.e ** loss)
''',
}

CLASSES_DECORATORS = {
    "log_softmax": '''
import functools


def same_dtype(f):
    """A decorator: the result is cast back to the dtype of the first argument."""
    @functools.wraps(f)
    def wrapper(x, *args, **kwargs):
        return f(x, *args, **kwargs).to(x.dtype)
    return wrapper


class Softmaxes:
    """All the log-space helpers in one place."""

    @staticmethod
    @same_dtype
    def log_softmax(logits, dim=-1):
        m = logits.max(dim=dim, keepdim=True).values.nan_to_num(neginf=0.0)
        return logits - m - torch.log(torch.sum(torch.exp(logits - m), dim=dim, keepdim=True))


log_softmax = Softmaxes.log_softmax
''',
    "entropy": '''
class Entropy:
    def __init__(self, base=2.0):
        self.scale = 1.0 / math.log(base)  # reciprocal multiplication instead of a division

    def __call__(self, logits, dim=-1):
        logp = log_softmax(logits, dim=dim)
        p = logp.exp()
        return -(p * logp.masked_fill(p == 0, 0.0)).sum(dim=dim) * self.scale


entropy = Entropy()
''',
    "surprisal": '''
class Surprisal:
    def __call__(self, p):
        if isinstance(p, torch.Tensor):
            return -torch.log(p) * (1.0 / math.log(2.0))
        return math.inf if p == 0 else -math.log(p) / math.log(2.0)


surprisal = Surprisal()
''',
}

RECURSION_PRINTS = {
    "log_softmax": '''
def log_softmax(logits, dim=-1):
    """Recursion over the leading dimensions until one row is left; prints its progress."""
    dim = dim % logits.dim()
    if dim != logits.dim() - 1:
        return log_softmax(logits.movedim(dim, -1), -1).movedim(-1, dim)
    if logits.dim() > 1:
        return torch.stack([log_softmax(row, -1) for row in logits.unbind(0)])
    m = logits.max()
    m = m if torch.isfinite(m) else torch.zeros_like(m)
    return logits - m - (logits - m).exp().sum().log()


print("log_softmax defined")
''',
    "sequence_log_prob": '''
def sequence_log_prob(logits, ids):
    if ids.dim() > 1:  # one sequence at a time
        return torch.stack([sequence_log_prob(l, i) for l, i in zip(logits, ids)])
    print(f"scoring a sequence of {ids.numel()} tokens")
    if ids.numel() < 2:
        return torch.zeros((), dtype=logits.dtype)
    return sequence_log_prob(logits[:-1], ids[:-1]) + log_softmax(logits[-2])[ids[-1]]
''',
    "surprisal": '''
def surprisal(p):
    if isinstance(p, torch.Tensor):
        return torch.where(p > 0, -torch.log2(p), torch.full_like(p, math.inf))
    print("surprisal of", p)
    return -math.log2(p) if p > 0 else math.inf
''',
}

STUDENTS = {
    "numpy-float64": {"kind": "honest", "answers": NUMPY_FLOAT64},
    "helpers-in-earlier-cells": {"kind": "honest", "answers": HELPERS_ELSEWHERE},
    "classes-decorators-reciprocal": {"kind": "honest", "answers": CLASSES_DECORATORS},
    "recursion-and-prints": {"kind": "honest", "answers": RECURSION_PRINTS},
    # 0 * log 0 is nan: the checks with -inf logits fail, the others pass
    "entropy-without-zero-guard": {"kind": "partial", "answers": {"entropy": '''
def entropy(logits, dim=-1):
    logp = log_softmax(logits, dim=dim)
    return -(logp.exp() * logp).sum(dim=dim) / math.log(2.0)
'''}, "expect": {"test_entropy": 1.0}},
    # math.log2(0.0) raises: only the visible float check (which tests p = 0) fails
    "surprisal-of-zero-raises": {"kind": "partial", "answers": {"surprisal": '''
def surprisal(p):
    if isinstance(p, torch.Tensor):
        return -torch.log2(p)
    return -math.log2(p)
'''}, "expect": {"test_surprisal": 0.75}},
    # the book's aligned convention, although the text says (in bold) this part shifts
    "aligned-convention": {"kind": "partial", "answers": {"sequence_log_prob": '''
def sequence_log_prob(logits, ids):
    return log_softmax(logits).gather(-1, ids.unsqueeze(-1)).squeeze(-1).sum(-1)
'''}, "expect": {"test_sequence_log_prob": 0.0}},
    # the disabled kernels: logsumexp (and through log_softmax every part built on it)
    "logsumexp-kernel": {"kind": "attack", "answers": {"log_softmax": '''
def log_softmax(logits, dim=-1):
    return logits - torch.logsumexp(logits, dim=dim, keepdim=True)
'''}, "expect": {"test_log_softmax": 0, "test_sequence_log_prob": 0, "test_cross_entropy": 0,
                 "test_perplexity": 0, "test_entropy": 0}},
    "entr-kernel": {"kind": "attack", "answers": {"entropy": '''
def entropy(logits, dim=-1):
    return torch.special.entr(torch.softmax(logits, dim=dim)).sum(dim=dim) / math.log(2.0)
'''}, "expect": {"test_entropy": 0}},
}
