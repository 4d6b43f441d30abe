"""Made-up students for the grader's own tests (the format of grader/students/<hw>.py)."""

STUDENTS = {
    "class-helpers": {
        "kind": "honest",
        "answers": {
            "temperature": '''import sys

from tqdm.auto import tqdm  # an ordinary import must not cost points


class _Checks:
    @staticmethod
    def positive(name, value):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")


def apply_temperature(logits, temperature):
    _Checks.positive("temperature", temperature)
    print("scaling", file=sys.stderr)
    return torch.div(logits, temperature)
''',
            "top_k": '''import numpy as np


def top_k_filter(logits, k):
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k!r}")
    k = min(k, logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))
''',
        },
    },
    "top-k-off-by-one": {
        "kind": "partial",
        "answers": {
            "top_k": '''def top_k_filter(logits, k):
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k!r}")
    kth = logits.sort(dim=-1, descending=True).values[..., k:k + 1]
    return torch.where(logits >= kth, logits, torch.full_like(logits, float("-inf")))
''',
        },
        "expect": {"test_top_k": 0.5},
    },
}
