"""Made-up students of HW2 (byte-level BPE): data only, see grader/students/__init__.py."""

RECURSION_LRU = {
    "merge": '''
def merge(ids, pair, new_id):
    """Recursive: look at the first two ids, then merge the rest."""
    if len(ids) < 2:
        return list(ids)
    if (ids[0], ids[1]) == tuple(pair):
        return [new_id] + merge(ids[2:], pair, new_id)
    return [ids[0]] + merge(ids[1:], pair, new_id)
''',
    "decode": '''
import functools


def decode(ids, merges):
    @functools.lru_cache(maxsize=None)
    def token_bytes(i):  # recursive, memoised by a decorator
        if i < 256:
            return bytes([i])
        a, b = merges[i - 256]
        return token_bytes(a) + token_bytes(b)

    return b"".join(token_bytes(i) for i in ids).decode("utf-8", errors="replace")
''',
}

SLOW_TRAINING = {
    "train_bpe": '''
def train_bpe(text, n_merges):
    """The slow way: no counting of identical chunks, every pair recounted from scratch."""
    chunks = [list(c.encode("utf-8")) for c in pretokenize(text)]
    merges = []
    for r in range(n_merges):
        counts = {}
        for chunk in chunks:
            for i in range(len(chunk) - 1):
                counts[(chunk[i], chunk[i + 1])] = counts.get((chunk[i], chunk[i + 1]), 0) + 1
        if not counts:
            break
        top = max(counts.values())
        best = sorted(p for p, n in counts.items() if n == top)[0]
        chunks = [merge(chunk, best, 256 + r) for chunk in chunks]
        merges.append(best)
    return merges
''',
}

CLASS_TOKENIZER = {
    "encode": '''
class Encoder:
    """A tokenizer object built once per call; encode is its method."""

    def __init__(self, merges):
        self.rank = {}
        for r, (a, b) in enumerate(merges):
            self.rank.setdefault((a, b), r)

    def encode_chunk(self, ids):
        while len(ids) > 1:
            pairs = set(zip(ids, ids[1:]))
            best = min(pairs, key=lambda p: self.rank.get(p, float("inf")))
            if best not in self.rank:
                return ids
            ids = merge(ids, best, 256 + self.rank[best])
        return ids

    def __call__(self, text):
        out = []
        for chunk in pretokenize(text):
            out += self.encode_chunk(list(chunk.encode("utf-8")))
        return out


def encode(text, merges):
    return Encoder(merges)(text)
''',
    "decode": '''
class Decoder:
    def __init__(self, merges):
        self.vocab = {i: bytes([i]) for i in range(256)}
        for r, (a, b) in enumerate(merges):
            self.vocab[256 + r] = self.vocab[a] + self.vocab[b]

    def __call__(self, ids):
        return bytes().join(self.vocab[i] for i in ids).decode("utf-8", "replace")


def decode(ids, merges):
    return Decoder(merges)(ids)
''',
}

NUMPY_COUNTER_PRINTS = {
    "merge": '''
import numpy as np


def merge(ids, pair, new_id):
    """numpy finds the candidate positions; a left-to-right pass drops overlaps."""
    a = np.asarray(ids, dtype=np.int64)
    if a.size < 2:
        return [int(x) for x in a]
    hits = np.nonzero((a[:-1] == pair[0]) & (a[1:] == pair[1]))[0].tolist()
    out, pos = [], 0
    for h in hits:
        if h < pos:
            continue
        out.extend(int(x) for x in a[pos:h])
        out.append(int(new_id))
        pos = h + 2
    out.extend(int(x) for x in a[pos:])
    return out
''',
    "train_bpe": '''
from collections import Counter


def train_bpe(text, n_merges):
    words = Counter(tuple(c.encode("utf-8")) for c in pretokenize(text))
    merges = []
    while len(merges) < n_merges:
        pairs = Counter()
        for word, n in words.items():
            for p in zip(word, word[1:]):
                pairs[p] += n
        if not pairs:
            print("nothing left to merge after", len(merges), "merges")
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))[0]
        new = Counter()
        for word, n in words.items():
            new[tuple(merge(list(word), best, 256 + len(merges)))] += n
        words = new
        merges.append(best)
        print(f"merge {len(merges)}: {best}")
    return merges
''',
}

TQDM_PROGRESS = {
    "train_bpe": '''
from collections import Counter

from tqdm.auto import tqdm


def train_bpe(text, n_merges):
    """A progress bar over the merges (needs tqdm in the grading sandbox)."""
    counts = Counter(pretokenize(text))
    chunks = {c: list(c.encode("utf-8")) for c in counts}
    merges = []
    for r in tqdm(range(n_merges), desc="merges", leave=False):
        pairs = Counter()
        for c, ids in chunks.items():
            for pair in zip(ids, ids[1:]):
                pairs[pair] += counts[c]
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        chunks = {c: merge(ids, best, 256 + r) for c, ids in chunks.items()}
        merges.append(best)
    return merges
''',
}

STUDENTS = {
    "recursion-and-lru-cache": {"kind": "honest", "answers": RECURSION_LRU},
    "slow-training": {"kind": "honest", "answers": SLOW_TRAINING},
    "tokenizer-classes": {"kind": "honest", "answers": CLASS_TOKENIZER},
    "numpy-counter-prints": {"kind": "honest", "answers": NUMPY_COUNTER_PRINTS},
    "tqdm-progress": {"kind": "honest", "answers": TQDM_PROGRESS},
    # an off-by-one in the loop: asked for 0 merges it still learns one
    "zero-merges-learns-one": {"kind": "partial", "answers": {"train_bpe": '''
from collections import Counter


def train_bpe(text, n_merges):
    chunks = [list(c.encode("utf-8")) for c in pretokenize(text)]
    merges = []
    while True:
        pairs = Counter(p for chunk in chunks for p in zip(chunk, chunk[1:]))
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        chunks = [merge(chunk, best, 256 + len(merges)) for chunk in chunks]
        merges.append(best)
        if len(merges) >= n_merges:
            return merges
'''}, "expect": {"test_train_bpe": 2.875}},
    # decodes every token on its own: characters split over several tokens are lost, which
    # also breaks the round trip of multi-byte text
    "decode-token-by-token": {"kind": "partial", "answers": {"decode": '''
def decode(ids, merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for r, (a, b) in enumerate(merges):
        vocab[256 + r] = vocab[a] + vocab[b]
    return "".join(vocab[i].decode("utf-8", errors="replace") for i in ids)
'''}, "expect": {"test_decode": 1.0, "test_round_trip": 0}},
    # the raw UTF-8 bytes round-trip, but that is not BPE
    "identity-encoder": {"kind": "attack", "answers": {"encode": '''
def encode(text, merges):
    return list(text.encode("utf-8"))
''', "decode": '''
def decode(ids, merges):
    return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
'''}, "expect": {"test_encode": 0.25, "test_decode": 0.5, "test_round_trip": 0}},
    # right values, but the caller's list is rewritten in place
    "merge-in-place": {"kind": "attack", "answers": {"merge": '''
def merge(ids, pair, new_id):
    out, pos = [], 0
    while pos < len(ids):
        if pos + 1 < len(ids) and (ids[pos], ids[pos + 1]) == tuple(pair):
            out.append(new_id)
            pos += 2
        else:
            out.append(ids[pos])
            pos += 1
    ids[:] = out
    return ids
'''}, "expect": {"test_merge": 0}},
}
