# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-1", "locked": true, "schema_version": 3, "solution": false}
# # HW2: Tokenisation with byte-level BPE
#
# Open this notebook on Colab: <https://colab.research.google.com/github/lmcourse-org/lmcourse/blob/main/assignments/hw2_tokenisation/hw2_tokenisation.ipynb>
#
# A language model reads integers, not text. In this homework you build the tokeniser that
# GPT-2 and most of its successors use, **byte-level byte-pair encoding (BPE)**, from scratch,
# following [Chapter 2, *Tokenisation*](https://lmcourse-org.github.io/lmcourse/book/02_tokenisation.html):
#
# 1. `merge(ids, pair, new_id)`: replace every occurrence of a pair of ids by one new id (1 point);
# 2. `train_bpe(text, n_merges)`: learn the merges from a corpus (3 points);
# 3. `encode(text, merges)`: text to ids, applying the merges in the order they were learned (2 points);
# 4. `decode(ids, merges)`: ids back to text (2 points);
# 5. the round trip `decode(encode(s)) == s` on *any* Unicode string (2 points).
#
# Your functions must produce exactly the merges and ids of the course's reference,
# `lmcourse.tokenization.BPETokenizer` (with no special tokens), so the rules below (the
# pre-splitting, the tie-break, the id numbering) are part of the specification.
#
# Write your code between the `# YOUR CODE HERE` lines only and do not edit the test cells.
# Each test cell is split into named checks, each worth part of the cell's points; it shows
# some checks, and more (hidden) checks run when the homework is graded, on other corpora,
# random Unicode strings and edge cases. No function may modify its arguments in place.
#
# **Forbidden while graded** (every part): the `lmcourse` package (the reference
# `lmcourse.tokenization`), the Hugging Face `tokenizers` and `transformers` libraries and
# `tiktoken` are not installed, so importing them fails and the check scores 0. No PyTorch
# operator is disabled.
#
# **Available while graded:** plain Python (lists, dicts, `collections.Counter`, `bytes`, `re`,
# and the rest of the standard library), `regex`, numpy, torch, tqdm and matplotlib, and your
# own functions from the earlier parts. Run all cells (*Runtime / Run all*) before you
# submit; the last cell prints a summary.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false} tags=["setup"]
# The course setup cell (SETUP_CELL of scripts/new_chapter.py) is put here by scripts/build_homework.py.

# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false}
from collections import Counter

VISIBLE_TESTS = {}  # name -> function re-run by the summary cell at the end

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-2", "locked": true, "schema_version": 3, "solution": false}
# ## The pieces you are given: bytes and pre-splitting
#
# **Bytes.** Byte-level BPE starts from the UTF-8 bytes of the text, so its base vocabulary
# is the 256 byte values: id `b` (0-255) is the single byte `b`. Every string, in any
# language, with emoji or control characters, is a sequence of these 256 ids, so nothing is
# ever out of vocabulary. In Python, `list("é🐉".encode("utf-8"))` gives the ids
# `[195, 169, 240, 159, 144, 137]`, and `bytes(ids).decode("utf-8")` goes back.
#
# **Merges and ids.** Training learns a list of merges `[(a, b), ...]`, pairs of ids, in the
# order they were learned. Merge number `r` (counting from 0) creates the new id `256 + r`,
# which stands for the bytes of `a` followed by the bytes of `b`.
#
# **Pre-splitting.** Before counting anything, the text is cut into chunks by GPT-2's regular
# expression (words with their leading space, numbers, punctuation runs, whitespace), and
# **merges never cross a chunk boundary**, so a token never glues the end of one word to the
# start of the next. The locked cell below gives you this step as `pretokenize(text)`; use it
# in `train_bpe` and `encode`.

# %% nbgrader={"grade": false, "grade_id": "pretokenize", "locked": true, "schema_version": 3, "solution": false}
# The GPT-2 pre-splitting regex, as in lmcourse.tokenization.GPT2_PATTERN.
try:
    import regex as _regex  # understands \p{L} (any letter) and \p{N} (any digit)

    GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
except ImportError:  # the standard library's `re`: letters are [^\W\d_], digits \d
    import re as _regex

    GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""

_CHUNK = _regex.compile(GPT2_PATTERN)


def pretokenize(text: str) -> list[str]:
    """Cut text into the GPT-2 chunks that BPE merges inside of (never across)."""
    return _CHUNK.findall(text)


print(pretokenize("Hello world, it's 2024!  Ünïcödé 🐉"))


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-3", "locked": true, "schema_version": 3, "solution": false}
# ## 1. Merging one pair
#
# The basic operation of BPE, used both in training and in encoding: scan a list of ids
# from left to right and replace every occurrence of the adjacent pair `(a, b)` by `new_id`.
# Occurrences do not overlap: in `[7, 7, 7]` the pair `(7, 7)` is replaced once, at the
# left, giving `[new_id, 7]`.
#
# Write `merge(ids, pair, new_id)` returning a **new** list (do not modify `ids`).

# %% nbgrader={"grade": false, "grade_id": "merge", "locked": false, "schema_version": 3, "solution": true}
def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace each non-overlapping occurrence of ``pair`` in ``ids``, left to right, by ``new_id``."""
    ### BEGIN SOLUTION
    merged, pos = [], 0
    while pos < len(ids):
        if pos + 1 < len(ids) and ids[pos] == pair[0] and ids[pos + 1] == pair[1]:
            merged.append(new_id)
            pos += 2
        else:
            merged.append(ids[pos])
            pos += 1
    return merged
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_merge", "locked": true, "points": 1, "schema_version": 3, "solution": false}
import random

import lmcourse.tokenization as ref
from lmcourse.data import shakespeare_text
from lmcourse.grading import all_visible, check, checks_done, run_visible

SHAKESPEARE = shakespeare_text()


def reference_merges(text, n_merges):
    """The merges lmcourse's reference learns (no special tokens, GPT-2 pre-splitting)."""
    return ref.BPETokenizer.train(text, 256 + n_merges, special_tokens=()).merges


def reference_tokenizer(merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for r, (a, b) in enumerate(merges):
        vocab[256 + r] = vocab[a] + vocab[b]
    return ref.BPETokenizer(vocab, merges, special_tokens=())


def _same(got, expected):
    """True when ``got`` equals ``expected`` with exactly the same types all the way down."""
    if type(got) is not type(expected):
        return False
    if isinstance(expected, (list, tuple)):
        return len(got) == len(expected) and all(_same(g, e) for g, e in zip(got, expected))
    return got == expected


def _equal(name, got, expected, on):
    """Exact comparison of plain lists of ints / tuples of ints / strings (no look-alike objects)."""
    where = f"{name} (on input {on})"
    assert type(got) is type(expected), f"{where}: expected a {type(expected).__name__}, got {type(got).__name__}"
    if isinstance(expected, list):
        for i, (g, e) in enumerate(zip(got, expected)):
            assert _same(g, e), f"{where}: item {i} should be {e!r}, got {g!r}"
        assert len(got) == len(expected), f"{where}: expected {len(expected)} items, got {len(got)}"
    else:
        assert _same(got, expected), f"{where}: expected {expected!r}, got {got!r}"


def unchanged(name, before, after):
    """Your functions must not modify their arguments in place."""
    assert before == after, f"{name} modified its input in place"


def _merge_values():
    _equal("merge", merge([1, 2, 3, 1, 2], (1, 2), 256), [256, 3, 256], on="[1, 2, 3, 1, 2], (1, 2) -> 256")
    _equal("merge", merge([7, 7, 7], (7, 7), 300), [300, 7], on="[7, 7, 7], (7, 7) -> 300: no overlap")
    _equal("merge", merge([5, 6], (6, 5), 256), [5, 6], on="[5, 6], pair (6, 5) absent")
    _equal("merge", merge([], (1, 2), 256), [], on="empty list")
    return True


def _merge_input():
    ids = [1, 2, 1, 2]
    merge(ids, (1, 2), 256)
    unchanged("merge", [1, 2, 1, 2], ids)
    return True


_VISIBLE = {"examples: overlap, absent pair, empty (visible)": (0.25, _merge_values), "the input list is not modified (visible)": (0.25, _merge_input)}
VISIBLE_TESTS["merge"] = all_visible(_VISIBLE)
run_visible(_VISIBLE)
### BEGIN HIDDEN TESTS
with check("random lists over 4 ids", 0.25):
    _rng = random.Random(1)
    for ids, pair in [([_rng.randrange(4) for _ in range(_rng.randrange(0, 40))], (_rng.randrange(4), _rng.randrange(4))) for _ in range(30)]:
        _ids = list(ids)
        _equal("merge", merge(_ids, pair, 999), ref._merge(ids, pair, 999), on=f"{ids}, {pair} -> 999")
        unchanged("merge", ids, _ids)
with check("runs, one id, overlapping pairs", 0.25):
    for ids, pair in [([9] * 7, (9, 9)), ([3], (3, 3)), ([1, 2, 2, 1, 2], (2, 1))]:
        _equal("merge", merge(list(ids), pair, 999), ref._merge(ids, pair, 999), on=f"{ids}, {pair} -> 999")
### END HIDDEN TESTS
checks_done()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-4", "locked": true, "schema_version": 3, "solution": false}
# ## 2. Training: learning the merges
#
# Training starts from the bytes of every chunk and repeats, `n_merges` times:
#
# 1. **Count** every adjacent pair of ids inside each chunk (pairs overlap: the chunk
#    `[7, 7, 7]` contains the pair `(7, 7)` twice). Identical chunks occur many times in a
#    corpus: count each distinct chunk once and weight its pairs by how often it occurs.
# 2. **Pick** the most frequent pair. **Tie-break** (the reference's documented rule): among
#    equally frequent pairs, the smallest pair `(a, b)` compared as a tuple wins, e.g.
#    `(32, 99)` before `(97, 98)` before `(97, 99)`. This makes training deterministic.
# 3. **Merge** it into the new id `256 + r` (`r` = number of merges so far) in every chunk,
#    and record the pair.
#
# Stop early, with fewer merges, when no chunk has two ids left (nothing to merge).
#
# Write `train_bpe(text, n_merges)` returning the merges, a list of `(a, b)` tuples of ints
# in the order they were learned. It must equal the reference,
# `BPETokenizer.train(text, 256 + n_merges, special_tokens=()).merges`, exactly. Worked
# example: in `"abab cd cd"` the chunks are `"abab"`, `" cd"`, `" cd"`; the pairs
# `(97, 98)` ("ab"), `(32, 99)` (" c") and `(99, 100)` ("cd") all occur twice, and the tie-break
# picks `(32, 99)` first.

# %% nbgrader={"grade": false, "grade_id": "train_bpe", "locked": false, "schema_version": 3, "solution": true}
def train_bpe(text: str, n_merges: int) -> list[tuple[int, int]]:
    """Learn up to ``n_merges`` byte-level BPE merges on ``text``; merge r creates id 256 + r."""
    ### BEGIN SOLUTION
    chunk_counts = Counter(pretokenize(text))
    chunks = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    weights = list(chunk_counts.values())
    learned = []
    while len(learned) < n_merges:
        pair_counts = Counter()
        for chunk, weight in zip(chunks, weights):
            for pair in zip(chunk, chunk[1:]):
                pair_counts[pair] += weight
        if not pair_counts:
            break  # every chunk is a single token: nothing left to merge
        best = min(pair_counts, key=lambda p: (-pair_counts[p], p))  # most frequent, then smallest
        chunks = [merge(chunk, best, 256 + len(learned)) for chunk in chunks]
        learned.append(best)
    return learned
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_train_bpe", "locked": true, "points": 3, "schema_version": 3, "solution": false}
def _random_words(seed, n_words, alphabet):
    rng = random.Random(seed)
    return " ".join("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(n_words))


def _bpe_example():
    _equal("train_bpe", train_bpe("abab cd cd", 10), [(32, 99), (97, 98), (256, 100), (257, 257)],
           on='"abab cd cd", 10 merges: ties broken by the smallest pair, stops after 4')
    return True


def _bpe_shakespeare():
    corpus = SHAKESPEARE[:2000]
    _equal("train_bpe", train_bpe(corpus, 30), reference_merges(corpus, 30), on="the first 2000 characters of Shakespeare, 30 merges")
    return True


def _bpe_ties():
    ties = _random_words(0, 80, "ab")
    _equal("train_bpe", train_bpe(ties, 12), reference_merges(ties, 12), on=f"80 random words over 'ab' (many ties): {ties[:40]!r}...")
    return True


def _bpe_empty():
    _equal("train_bpe", train_bpe("", 5), [], on="empty text")
    return True


_VISIBLE = {"the worked example (visible)": (0.5, _bpe_example), "Shakespeare, 30 merges (visible)": (0.25, _bpe_shakespeare),
            "many ties (visible)": (0.25, _bpe_ties), "empty text (visible)": (0.25, _bpe_empty)}
VISIBLE_TESTS["train_bpe"] = all_visible(_VISIBLE)
run_visible(_VISIBLE)
### BEGIN HIDDEN TESTS
_groups = {  # check name -> (points, description, text, n_merges)
    "a longer corpus, 80 merges": (0.5, "Shakespeare[200000:204000], 80 merges", SHAKESPEARE[200000:204000], 80),
    "random words over three letters": (0.25, "300 random words over 'abc', 40 merges", _random_words(1, 300, "abc"), 40),
    "multi-byte characters": (0.25, "200 random words of multi-byte characters, 30 merges", _random_words(2, 200, "日本語é🐉ü"), 30),
    "overlapping pairs and early stop": (0.25, "'aaaaaaa bbb', 10 merges", "aaaaaaa bbb", 10),
    "one character": (0.125, "one character", "x", 3),
    "whitespace and newlines only": (0.25, "whitespace and newlines", " \n\n  \t\n\n  \n", 5),
    "zero merges": (0.125, "Shakespeare[5000:5500], 0 merges", SHAKESPEARE[5000:5500], 0),
}
for _name, (_pts, desc, t, n) in _groups.items():
    with check(_name, _pts):
        _equal("train_bpe", train_bpe(t, n), reference_merges(t, n), on=desc)
### END HIDDEN TESTS
checks_done()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-5", "locked": true, "schema_version": 3, "solution": false}
# ## 3. Encoding
#
# To encode a text, pre-split it with `pretokenize`, turn each chunk into its UTF-8 byte
# ids, and inside each chunk apply merges **in the order they were learned**: among the
# adjacent pairs of the chunk that are merges, take the one learned first (lowest rank `r`),
# merge all its occurrences into `256 + r`, and repeat until no adjacent pair is a merge.
# The ids of the chunks, concatenated, are the encoding.
#
# The order matters. With `merges = [(98, 99), (97, 98)]` ("bc" first, then "ab"), `"abc"`
# encodes to `[97, 256]`: "bc" was learned first, so it wins, even though "ab" comes first
# in the text.
#
# Write `encode(text, merges)` returning a list of ints, equal to the reference's
# `BPETokenizer.encode` for a tokenizer with these merges and no special tokens.

# %% nbgrader={"grade": false, "grade_id": "encode", "locked": false, "schema_version": 3, "solution": true}
def encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    """Text -> ids: UTF-8 bytes of each GPT-2 chunk, then merges applied lowest rank first."""
    ### BEGIN SOLUTION
    rank = {tuple(pair): r for r, pair in reversed(list(enumerate(merges)))}
    encoded = []
    for chunk in pretokenize(text):
        part = list(chunk.encode("utf-8"))
        while len(part) >= 2:
            applicable = [rank[p] for p in zip(part, part[1:]) if p in rank]
            if not applicable:
                break
            first = min(applicable)
            part = merge(part, tuple(merges[first]), 256 + first)
        encoded.extend(part)
    return encoded
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_encode", "locked": true, "points": 2, "schema_version": 3, "solution": false}
SHAKESPEARE_MERGES = reference_merges(SHAKESPEARE[:3000], 60)  # learned by the reference


def _enc_shakespeare():
    tok = reference_tokenizer(SHAKESPEARE_MERGES)
    for text in ("To be, or not to be, that is the question", "the thee theee", "Ünïcödé and 🐉!"):
        merges = list(SHAKESPEARE_MERGES)
        _equal("encode", encode(text, merges), tok.encode(text), on=f"{text!r}, 60 merges learned on Shakespeare[:3000]")
        unchanged("encode", SHAKESPEARE_MERGES, merges)
    return True


def _enc_rank():
    _equal("encode", encode("abc", [(98, 99), (97, 98)]), [97, 256], on="'abc' with merges [(98, 99), (97, 98)]: rank order")
    return True


def _enc_edges():
    _equal("encode", encode("héllo", []), list("héllo".encode("utf-8")), on="'héllo' with no merges: the UTF-8 bytes")
    _equal("encode", encode("", SHAKESPEARE_MERGES), [], on="empty text")
    return True


_VISIBLE = {"Shakespeare merges, merges not modified (visible)": (0.5, _enc_shakespeare), "merges apply in rank order (visible)": (0.25, _enc_rank),
            "no merges, empty text (visible)": (0.25, _enc_edges)}
VISIBLE_TESTS["encode"] = all_visible(_VISIBLE)
run_visible(_VISIBLE)
### BEGIN HIDDEN TESTS
_merges_u = reference_merges(_random_words(3, 300, "日本語éü🐉 ab"), 50)
_merges_s = reference_merges(SHAKESPEARE[100000:106000], 150)
_texts = [SHAKESPEARE[300000:301500], "  leading and trailing spaces  ", "日本語 🐉🐉 éé ab", "a\n\n\nb\t\tc", "x" * 50]
with check("150 merges learned on Shakespeare", 0.5):
    for t in _texts:
        _equal("encode", encode(t, list(_merges_s)), reference_tokenizer(_merges_s).encode(t), on=f"{t[:40]!r}, 150 Shakespeare merges")
with check("merges of multi-byte text", 0.25):
    for t in _texts:
        _equal("encode", encode(t, list(_merges_u)), reference_tokenizer(_merges_u).encode(t), on=f"{t[:40]!r}, 50 multi-byte merges")
with check("merges of merged tokens", 0.25):
    for t, m in (("aaaa", [(97, 97), (256, 256)]), ("aaa", [(97, 97), (256, 97)])):
        _equal("encode", encode(t, list(m)), reference_tokenizer(m).encode(t), on=f"{t!r}, {m}")
### END HIDDEN TESTS
checks_done()


# %% [markdown] nbgrader={"grade": false, "grade_id": "md-6", "locked": true, "schema_version": 3, "solution": false}
# ## 4. Decoding
#
# Decoding goes the other way: build the bytes of every id (ids 0-255 are single bytes;
# merge `r` gives id `256 + r` the bytes of `a` followed by the bytes of `b`), join the bytes
# of all the ids, and decode them as UTF-8 **once, at the end**.
#
# An arbitrary list of ids need not be valid UTF-8 (for example half of a multi-byte
# character, `[195]`). Like the reference, decode with `errors="replace"`: each invalid
# byte sequence becomes the replacement character `"\ufffd"` instead of raising. (Decoding
# token by token would be wrong: a single character such as `"🐉"` can be spread over
# several tokens.)
#
# Write `decode(ids, merges)` returning a `str`, equal to the reference's `BPETokenizer.decode`.

# %% nbgrader={"grade": false, "grade_id": "decode", "locked": false, "schema_version": 3, "solution": true}
def decode(ids: list[int], merges: list[tuple[int, int]]) -> str:
    """Ids -> text: join every token's bytes, then UTF-8 decode with errors='replace'."""
    ### BEGIN SOLUTION
    token_bytes = [bytes([b]) for b in range(256)]
    for first, second in merges:
        token_bytes.append(token_bytes[first] + token_bytes[second])
    return b"".join(token_bytes[i] for i in ids).decode("utf-8", errors="replace")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_decode", "locked": true, "points": 2, "schema_version": 3, "solution": false}
def _dec_values():
    tok = reference_tokenizer(SHAKESPEARE_MERGES)
    ids = tok.encode("To be, or not to be")
    given = list(ids)
    _equal("decode", decode(given, SHAKESPEARE_MERGES), "To be, or not to be", on=f"{ids}")
    unchanged("decode", ids, given)
    _equal("decode", decode([], SHAKESPEARE_MERGES), "", on="no ids")
    _equal("decode", decode([256, 257], [(104, 105), (256, 33)]), "hihi!", on="[256, 257] with merges [(104, 105), (256, 33)]")
    return True


def _dec_utf8():
    tok = reference_tokenizer(SHAKESPEARE_MERGES)
    _equal("decode", decode([240, 159, 144, 137], []), "🐉", on="[240, 159, 144, 137]: one character in 4 byte tokens")
    _equal("decode", decode([104, 195], []), tok.decode([104, 195]), on="[104, 195]: a cut multi-byte character")
    return True


_VISIBLE = {"merged tokens, no ids (visible)": (0.5, _dec_values), "multi-byte characters, invalid UTF-8 (visible)": (0.5, _dec_utf8)}
VISIBLE_TESTS["decode"] = all_visible(_VISIBLE)
run_visible(_VISIBLE)
### BEGIN HIDDEN TESTS
_merges_u = reference_merges(_random_words(4, 300, "日本語éü🐉 ab"), 40)
_tok_u, _tok_s = reference_tokenizer(_merges_u), reference_tokenizer(SHAKESPEARE_MERGES)
_rng = random.Random(5)
_groups = {
    "encoded texts": (0.5, [(_tok_u.encode("日本語 🐉 éü ab " * 3), _merges_u, "encoded multi-byte text"),
                            (_tok_s.encode(SHAKESPEARE[400000:401000]), SHAKESPEARE_MERGES, "encoded Shakespeare[400000:401000]")]),
    "random ids and bytes (invalid UTF-8)": (0.5, [([_rng.randrange(256 + 40) for _ in range(_rng.randrange(1, 30))], _merges_u, "random ids")
                                                   for _ in range(20)] + [([_rng.randrange(128, 256) for _ in range(12)], [], "random high bytes")]),
}
for _name, (_pts, _cases) in _groups.items():
    with check(_name, _pts):
        for i, m, d in _cases:
            _equal("decode", decode(list(i), list(m)), reference_tokenizer(m).decode(i), on=f"{d}: {i[:12]}")
### END HIDDEN TESTS
checks_done()

# %% [markdown] nbgrader={"grade": false, "grade_id": "md-7", "locked": true, "schema_version": 3, "solution": false}
# ## 5. The round trip on arbitrary Unicode
#
# The promise of a byte-level tokeniser is that **nothing is ever lost**:
# `decode(encode(s)) == s` for every string `s` (that can be UTF-8 encoded), whatever its
# language or script, with emoji, combining accents, zero-width joiners, control characters
# and unusual whitespace, even for characters never seen in training. This test checks your
# `encode` and `decode` together; there is nothing new to write. Each check also compares
# the ids with the reference's encoding: an "encoder" that returns the raw bytes would round
# trip, but it is not BPE.

# %% nbgrader={"grade": true, "grade_id": "test_round_trip", "locked": true, "points": 2, "schema_version": 3, "solution": false}
ROUND_TRIP = [
    "", " ", "\n", "To be, or not to be", "héllo wörld", "日本語のテキスト", "한국어", "Ελληνικά",
    "مرحبا بالعالم", "🐉", "👩‍👩‍👧 family", "e\u0301 (e + combining acute)", "\t\n  \r\n\u00a0\u3000",
    "It's 3.14159!", "\x00\x01\x7f", "a" * 40,
]


def round_trip_problem(strings, merges):
    """None when encode gives the reference's ids and decode gives the string back, for every string."""
    tok = reference_tokenizer(merges)
    for s in strings:
        ids = encode(s, list(merges))
        if ids != tok.encode(s) or not all(type(i) is int for i in ids):
            return f"encode({s!r}) is not the reference's encoding (an encoder that skips merges does not count)"
        back = decode(list(ids), list(merges))
        if type(back) is not str or back != s:
            return f"round trip failed on {s!r}: encode gave {ids}, decode gave {back!r}"
    return None


def _round_trip_visible():
    problem = round_trip_problem(ROUND_TRIP, SHAKESPEARE_MERGES)
    assert problem is None, problem
    return True


_VISIBLE = {"encoding and round trip on the visible strings (visible)": (1, _round_trip_visible)}
VISIBLE_TESTS["round_trip"] = all_visible(_VISIBLE)
run_visible(_VISIBLE)
### BEGIN HIDDEN TESTS
_RANGES = [(0x20, 0x7E), (0x00, 0x1F), (0xA0, 0x17F), (0x300, 0x36F), (0x370, 0x4FF), (0x590, 0x6FF),
           (0x900, 0x97F), (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1F300, 0x1FAFF),
           (0x200B, 0x200D), (0xFE00, 0xFE0F), (0x10000, 0x10FFFF)]


def _random_unicode(rng, length):
    chars = []
    for _ in range(length):
        lo, hi = rng.choice(_RANGES)
        cp = rng.randint(lo, hi)
        chars.append(chr(cp if not 0xD800 <= cp <= 0xDFFF else 0xFFFD))  # no lone surrogates
    return "".join(chars)


_rng = random.Random(6)
_strings = [_random_unicode(_rng, _rng.randrange(0, 25)) for _ in range(150)]
_strings += [" ".join(_random_unicode(_rng, 4) for _ in range(10)) for _ in range(10)]
_merges_u = reference_merges(_random_words(7, 300, "日本語éü🐉 ab"), 40)
with check("random Unicode, Shakespeare merges", 0.5):
    _problem = round_trip_problem(_strings, SHAKESPEARE_MERGES)
    assert _problem is None, _problem
with check("random Unicode, multi-byte merges", 0.5):
    _problem = round_trip_problem(_strings, _merges_u)
    assert _problem is None, _problem
### END HIDDEN TESTS
checks_done()
