"""Tokenisers: from text to integer ids and back.

Chapter 2 (tokenisation) teaches this file; homework 2 checks students' BPE against
:class:`BPETokenizer`.

Every tokeniser here has the same small interface (:class:`Tokenizer`):

    encode(text, allow_special=False) -> list[int]
    decode(ids) -> str
    vocab_size                     number of ids, specials included
    special_tokens                 {"<|bos|>": id, ...}
    bos_id, eos_id, pad_id         ids of the three role tokens
    save(path) / Class.load(path)  one file; ``load_tokenizer(path)`` dispatches on it
    tokenizer_to_dict / tokenizer_from_dict   plain dicts, stored inside checkpoints

Three implementations:

* :class:`CharTokenizer` -- one id per character of the corpus (chapter 1's char model).
* :class:`BPETokenizer` -- byte-level BPE in plain, readable Python (the reference).
* :class:`HFBPETokenizer` -- the same algorithm trained by Hugging Face ``tokenizers``
  (Rust, fast); the default for the chapters.

Special-token rule (all classes): by default (``allow_special=False``) text is only text:
a special-token string such as ``"<|im_end|>"`` inside it is encoded like any other
characters, so content can never produce a control id. Only a caller who asks for it
(``allow_special=True``, e.g. a chat template writing its own markers) gets every
occurrence of a special string encoded as that token's single id; overlapping candidates
are then resolved leftmost first, longest first. :mod:`lmcourse.chat` encodes the
template's markers as ids and the messages' contents as text.

Pre-splitting uses GPT-2's regex, which needs the ``regex`` package (a declared
dependency, preinstalled on Colab): the standard library's ``re`` has no ``\\p{L}``.
"""

from __future__ import annotations

import functools
import heapq
import json
import operator
import os
import re
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from typing import Any, Iterable, Optional, Sequence, Union

import regex as _re  # GPT-2's pattern needs \p{L} / \p{N}; a declared dependency

__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "IM_START",
    "IM_END",
    "DEFAULT_SPECIAL_TOKENS",
    "GPT2_PATTERN",
    "Tokenizer",
    "CharTokenizer",
    "BPETokenizer",
    "HFBPETokenizer",
    "bytes_to_unicode",
    "load_tokenizer",
    "tokenizer_to_dict",
    "tokenizer_from_dict",
]

PathLike = Union[str, os.PathLike]

BOS = "<|bos|>"
EOS = "<|eos|>"
PAD = "<|pad|>"
IM_START = "<|im_start|>"  # ChatML
IM_END = "<|im_end|>"  # ChatML
DEFAULT_SPECIAL_TOKENS: tuple[str, ...] = (BOS, EOS, PAD, IM_START, IM_END)

# The GPT-2 pre-tokenisation regex (also what HF's ByteLevel pre-tokeniser uses). It cuts
# text into chunks -- contractions, words with one leading space, numbers, punctuation
# runs, whitespace -- and BPE never merges across two chunks.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


# --------------------------------------------------------------------------------------
# Helpers shared by all tokenisers
# --------------------------------------------------------------------------------------


def _check_text(text: str) -> None:
    """Reject non-strings and strings that cannot be UTF-8 encoded (lone surrogates)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = text[e.start : e.end]
        raise ValueError(
            f"text contains {bad!r} at position {e.start}, which cannot be encoded as UTF-8 "
            "(a lone surrogate); remove it or fix the decoding that produced it"
        ) from None


@functools.lru_cache(maxsize=32)
def _specials_regex(specials: tuple[str, ...]) -> re.Pattern[str]:
    """Alternation of the special strings, longest first (so the longest match wins)."""
    return re.compile("|".join(re.escape(s) for s in specials))


def _split_specials(
    text: str, specials: Iterable[str], allow_special: bool
) -> list[tuple[str, bool]]:
    """Cut ``text`` into ``(piece, is_special)`` pieces following the module's rule."""
    specials = tuple(sorted(specials, key=lambda s: (-len(s), s)))  # longest first
    if not allow_special or not specials or not text:
        return [(text, False)] if text else []
    pattern = _specials_regex(specials)
    pieces: list[tuple[str, bool]] = []
    start = 0
    for m in pattern.finditer(text):
        if m.start() > start:
            pieces.append((text[start : m.start()], False))
        pieces.append((m.group(), True))
        start = m.end()
    if start < len(text):
        pieces.append((text[start:], False))
    return pieces


def _check_specials(special_tokens: Sequence[str]) -> list[str]:
    specials = list(special_tokens)
    for s in specials:
        if not isinstance(s, str) or not s:
            raise ValueError(f"special_tokens must be non-empty strings, got {s!r}")
    if len(set(specials)) != len(specials):
        raise ValueError(f"special_tokens contains duplicates: {specials!r}")
    return specials


def _compile_pattern(pattern: Optional[str]) -> Optional[Any]:
    """Compile a pre-split regex (``None``: no pre-splitting); ValueError if it is invalid."""
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a regex string, 'gpt2' or None, got {type(pattern).__name__}")
    try:
        compiled = _re.compile(pattern)
    except _re.error as e:
        raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {e}") from None
    return compiled


def _pre_split(compiled: Optional[Any], piece: str) -> list[str]:
    """Cut a special-free piece into the chunks BPE merges inside of.

    The chunks must cover the piece exactly: a custom pattern that skips characters
    would silently lose text, so that is a ValueError.
    """
    if compiled is None:
        return [piece]
    chunks = [m.group() for m in compiled.finditer(piece)]
    if sum(map(len, chunks)) != len(piece):
        raise ValueError(
            f"pattern {compiled.pattern!r} does not cover the text {piece[:40]!r}: its matches "
            "must tile every character (end it with an alternative such as '|.' or '|\\s+')"
        )
    return chunks


def _check_vocab_size(vocab_size: int, n_specials: int) -> None:
    """A byte-level BPE needs room for the 256 bytes and every special token."""
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        raise ValueError(f"vocab_size must be an integer, got {vocab_size!r}")
    if vocab_size < 256 + n_specials:
        raise ValueError(
            f"vocab_size must be >= 256 + {n_specials} special tokens = "
            f"{256 + n_specials}, got {vocab_size}"
        )



def _read_json(path: PathLike) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _write_json(path: PathLike, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)


class Tokenizer(ABC):
    """The interface shared by every tokeniser of the course."""

    #: ``{special string: id}``; set by subclasses.
    special_tokens: dict[str, int]

    @abstractmethod
    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        """Text to ids. See the module docstring for the special-token rule."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Ids to text. Special ids decode to their strings."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of distinct ids (specials included); ids are in ``range(vocab_size)``."""

    @abstractmethod
    def save(self, path: PathLike) -> None:
        """Write the tokeniser to one file, readable by ``load`` and ``load_tokenizer``."""

    @classmethod
    @abstractmethod
    def load(cls, path: PathLike) -> Tokenizer:
        """Read a tokeniser written by ``save``."""

    def _role_id(self, token: str, role: str) -> int:
        if token not in self.special_tokens:
            raise ValueError(
                f"this tokenizer has no {role} token {token!r}; its special tokens are "
                f"{sorted(self.special_tokens)}"
            )
        return self.special_tokens[token]

    @property
    def bos_id(self) -> int:
        """Id of the beginning-of-sequence token ``<|bos|>``."""
        return self._role_id(BOS, "BOS")

    @property
    def eos_id(self) -> int:
        """Id of the end-of-sequence token ``<|eos|>``."""
        return self._role_id(EOS, "EOS")

    @property
    def pad_id(self) -> int:
        """Id of the padding token ``<|pad|>``."""
        return self._role_id(PAD, "PAD")

    def _check_ids(self, ids: Iterable[int]) -> list[int]:
        """Plain ints in ``range(vocab_size)``: TypeError for floats, strings, bools."""
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise TypeError(f"ids must be an iterable of integer token ids, got {type(ids).__name__}")
        out: list[int] = []
        for k, i in enumerate(ids):
            # operator.index accepts int, NumPy integers and integer 0-d tensors, and
            # rejects 1.0, "3" and float tensors instead of truncating them.
            try:
                if isinstance(i, bool) or type(i).__name__ == "bool_":
                    raise TypeError
                i = operator.index(i)
            except TypeError:
                raise TypeError(
                    f"ids[{k}] must be an integer token id, got {i!r} ({type(i).__name__})"
                ) from None
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"ids[{k}]: token id {i} is out of range [0, {self.vocab_size})")
            out.append(i)
        return out


# --------------------------------------------------------------------------------------
# Characters
# --------------------------------------------------------------------------------------


class CharTokenizer(Tokenizer):
    """One id per character: ids ``0..n_chars-1`` are the sorted characters, specials follow.

    Characters not in the vocabulary raise a ``ValueError`` naming the character, unless
    an ``unk`` token is configured, in which case they encode to its id. They are never
    silently dropped.
    """

    def __init__(
        self,
        chars: Sequence[str],
        special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
        unk: Optional[str] = None,
    ) -> None:
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"chars must be single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("chars contains duplicates")
        specials = _check_specials(special_tokens)
        if unk is not None and unk not in specials:
            specials.append(unk)  # the UNK token is a special token too
        self.chars = chars
        self.unk = unk
        self.stoi = {c: i for i, c in enumerate(chars)}
        self.special_tokens = {s: len(chars) + k for k, s in enumerate(specials)}
        self.itos = chars + specials

    @classmethod
    def from_text(
        cls,
        text: str,
        specials: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
        unk: Optional[str] = None,
    ) -> CharTokenizer:
        """Build the vocabulary from the sorted set of characters of ``text``.

        Args:
            text: the corpus.
            specials: special-token strings, given ids after the characters in this order.
            unk: if set (e.g. ``"<|unk|>"``), unknown characters encode to this token
                (added to the specials if missing); if ``None`` they raise ``ValueError``.
        """
        _check_text(text)
        return cls(sorted(set(text)), specials, unk)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @property
    def unk_id(self) -> Optional[int]:
        """Id of the UNK token, or ``None`` when unknown characters are an error."""
        return None if self.unk is None else self.special_tokens[self.unk]

    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        _check_text(text)
        ids: list[int] = []
        for piece, is_special in _split_specials(text, self.special_tokens, allow_special):
            if is_special:
                ids.append(self.special_tokens[piece])
                continue
            for pos, c in enumerate(piece):
                i = self.stoi.get(c)
                if i is None:
                    if self.unk is None:
                        raise ValueError(
                            f"character {c!r} (U+{ord(c):04X}) at position {pos} of the "
                            "text piece is not in the vocabulary; "
                            "build the tokenizer from a corpus containing it or pass unk="
                        )
                    i = self.special_tokens[self.unk]
                ids.append(i)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[i] for i in self._check_ids(ids))

    def save(self, path: PathLike) -> None:
        specials = sorted(self.special_tokens, key=self.special_tokens.__getitem__)
        _write_json(
            path, {"type": "char", "chars": self.chars, "special_tokens": specials, "unk": self.unk}
        )

    @classmethod
    def load(cls, path: PathLike) -> CharTokenizer:
        data = _read_json(path)
        if data.get("type") != "char":
            raise ValueError(f"{path} is not a CharTokenizer file")
        return cls(data["chars"], data["special_tokens"], data["unk"])


# --------------------------------------------------------------------------------------
# Byte-level BPE, from scratch
# --------------------------------------------------------------------------------------


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from the 256 byte values to printable Unicode characters.

    Printable Latin-1 bytes map to themselves; the other 68 (control characters, space,
    ...) map to ``chr(256 + k)`` in byte order. HF's ByteLevel stores tokens this way.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in printable}
    k = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + k)
            k += 1
    return table


# Training, in four named steps. Step 1 cuts the corpus into chunks (special-token
# strings removed, so no merge ever reaches into them) and counts each distinct chunk
# once. Each round then (2) counts the adjacent pairs, weighted by chunk counts, (3)
# picks the most frequent pair, and (4) merges it everywhere into a new id.
# ``_learn_merges`` is that loop as written in a textbook (and in homework 2);
# ``_learn_merges_fast`` gives the same merges by updating the counts incrementally.


def _count_chunks(text: str, compiled: Optional[Any], specials: Sequence[str]) -> Counter[str]:
    """Step 1: ``{chunk: how often it occurs}`` for the special-free pieces of ``text``."""
    chunk_counts: Counter[str] = Counter()
    for piece, is_special in _split_specials(text, specials, allow_special=True):
        if not is_special:
            chunk_counts.update(_pre_split(compiled, piece))
    return chunk_counts


def _count_pairs(words: list[list[int]], counts: list[int]) -> Counter[tuple[int, int]]:
    """Step 2: how often each adjacent pair of ids occurs, over all chunks and repeats."""
    pair_counts: Counter[tuple[int, int]] = Counter()
    for word, c in zip(words, counts):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += c
    return pair_counts


def _most_frequent_pair(pair_counts: dict[tuple[int, int], int]) -> tuple[int, int]:
    """Step 3: the most frequent pair; ties go to the smallest pair ``(a, b)``."""
    return min(pair_counts, key=lambda p: (-pair_counts[p], p))


def _merge(word: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Step 4: replace every non-overlapping occurrence of ``pair``, left to right."""
    out: list[int] = []
    i = 0
    n = len(word)
    while i < n:
        if i + 1 < n and word[i] == pair[0] and word[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def _learn_merges(words: list[list[int]], counts: list[int], n_merges: int) -> list[tuple[int, int]]:
    """The reference loop: recount every pair, merge the best one, repeat ``n_merges`` times.

    Merge ``r`` creates id ``256 + r``. Stops early when no chunk has two ids left.
    """
    merges: list[tuple[int, int]] = []
    while len(merges) < n_merges:
        pair_counts = _count_pairs(words, counts)
        if not pair_counts:
            break  # every chunk is a single token: nothing left to merge
        best = _most_frequent_pair(pair_counts)
        words = [_merge(word, best, 256 + len(merges)) for word in words]
        merges.append(best)
    return merges


def _learn_merges_fast(
    words: list[list[int]], counts: list[int], n_merges: int
) -> list[tuple[int, int]]:
    """Same merges as :func:`_learn_merges`, without recounting everything each round.

    Pair counts are kept up to date by touching only the chunks that contain the merged
    pair (``where`` indexes them), and a heap ordered like :func:`_most_frequent_pair`
    (count descending, then pair ascending) finds the best pair; heap entries whose count
    has changed since they were pushed are skipped when popped.
    """
    words = [list(w) for w in words]
    pair_counts = _count_pairs(words, counts)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for w, word in enumerate(words):
        for pair in zip(word, word[1:]):
            where[pair].add(w)
    heap = [(-c, pair) for pair, c in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    while len(merges) < n_merges:
        best = None
        while heap:
            neg, pair = heapq.heappop(heap)
            if pair_counts.get(pair, 0) == -neg > 0:  # an up-to-date entry
                best = pair
                break
        if best is None:
            break  # nothing left to merge
        new_id = 256 + len(merges)
        merges.append(best)
        touched: set[tuple[int, int]] = set()
        for w in where.pop(best):
            word, c = words[w], counts[w]
            for pair in zip(word, word[1:]):  # remove the chunk's old pairs ...
                pair_counts[pair] -= c
                touched.add(pair)
            word = words[w] = _merge(word, best, new_id)
            for pair in zip(word, word[1:]):  # ... and add its new ones
                pair_counts[pair] += c
                where[pair].add(w)
                touched.add(pair)
        for pair in touched:
            c = pair_counts[pair]
            if c > 0:
                heapq.heappush(heap, (-c, pair))
            else:
                del pair_counts[pair]
    return merges


def _vocab_from_merges(merges: Sequence[tuple[int, int]]) -> dict[int, bytes]:
    """The 256 bytes, then the bytes of each merged token (``256 + r`` for merge ``r``)."""
    vocab = {i: bytes([i]) for i in range(256)}
    for r, (a, b) in enumerate(merges):
        vocab[256 + r] = vocab[a] + vocab[b]
    return vocab


class BPETokenizer(Tokenizer):
    """Byte-level byte-pair encoding in readable Python.

    The base vocabulary is the 256 byte values (ids 0..255); merge ``r`` creates id
    ``256 + r``; special tokens come after the merges. Text is UTF-8 encoded, optionally
    pre-split into chunks with a regex (GPT-2's by default), and each chunk is encoded by
    applying merges by rank, lowest rank (earliest learned) first, until none applies.

    ``decode`` joins the tokens' bytes and decodes them with ``errors="replace"``: an
    arbitrary id list may produce invalid UTF-8 (e.g. half of a multi-byte character),
    which becomes U+FFFD instead of raising. ``decode(encode(s)) == s`` for every string
    that can be UTF-8 encoded.

    Args:
        vocab: id -> bytes, for every non-special id. Must contain all 256 single bytes.
        merges: pairs of ids, in rank order.
        special_tokens: special strings in id order, or a ``{string: id}`` dict.
        pattern: pre-split regex, or ``None`` to treat each special-free piece as one chunk.
        merge_ids: id produced by each merge; by default ``256 + rank``.
    """

    def __init__(
        self,
        vocab: dict[int, bytes],
        merges: Sequence[tuple[int, int]],
        special_tokens: Union[Sequence[str], dict[str, int]] = (),
        pattern: Optional[str] = GPT2_PATTERN,
        merge_ids: Optional[Sequence[int]] = None,
    ) -> None:
        self.vocab = {int(i): bytes(b) for i, b in vocab.items()}
        self.merges = [(int(a), int(b)) for a, b in merges]
        if merge_ids is None:
            merge_ids = [256 + r for r in range(len(self.merges))]
        if len(merge_ids) != len(self.merges):
            raise ValueError("merge_ids must have one id per merge")
        byte_ids = {b: i for i, b in self.vocab.items() if len(b) == 1}
        missing = [x for x in range(256) if bytes([x]) not in byte_ids]
        if missing:
            raise ValueError(f"vocab must contain all 256 single bytes; missing {missing[:8]}")
        self._byte_ids = [byte_ids[bytes([x])] for x in range(256)]
        self._ranks: dict[tuple[int, int], tuple[int, int]] = {}
        for r, (pair, new_id) in enumerate(zip(self.merges, merge_ids)):
            if pair[0] not in self.vocab or pair[1] not in self.vocab or new_id not in self.vocab:
                raise ValueError(f"merge {r} {pair} -> {new_id} uses ids missing from vocab")
            self._ranks.setdefault(pair, (r, int(new_id)))
        if isinstance(special_tokens, dict):
            self.special_tokens = {s: int(i) for s, i in special_tokens.items()}
        else:
            start = max(self.vocab) + 1
            specials = _check_specials(special_tokens)
            self.special_tokens = {s: start + k for k, s in enumerate(specials)}
        for s, i in self.special_tokens.items():
            if i in self.vocab:
                raise ValueError(f"special token {s!r} id {i} collides with an ordinary token")
        self._special_strings = {i: s for s, i in self.special_tokens.items()}
        self.pattern = pattern
        self._compiled = _compile_pattern(pattern)
        self._cache: dict[str, list[int]] = {}

    # ---- training -------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        pattern: Optional[str] = "gpt2",
        special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
        fast: bool = False,
    ) -> BPETokenizer:
        """Learn merges on ``text`` until the vocabulary has ``vocab_size`` ids.

        ``vocab_size`` counts the 256 bytes, the merges and the special tokens. Training
        stops early -- with a smaller vocabulary -- if no adjacent pair is left to merge.

        Each step merges the most frequent adjacent pair. Tie-break: among equally
        frequent pairs the smallest pair of ids ``(a, b)`` (compared as tuples) wins, so
        training is deterministic. Special-token strings in ``text`` are cut out first and
        never take part in merges; merges never cross pre-split chunk boundaries.

        Args:
            text: training corpus.
            vocab_size: at least ``256 + len(special_tokens)``.
            pattern: ``"gpt2"`` (GPT-2 pre-splitting regex), ``None`` (no pre-splitting:
                simple but slow on large corpora), or a custom regex string whose
                matches tile the text.
            special_tokens: special strings, given the ids after the merges.
            fast: use the incremental trainer (:func:`_learn_merges_fast`): the same
                merges, much faster for thousands of merges. The default is the plain
                loop (:func:`_learn_merges`), the reference homework 2 reproduces.
        """
        _check_text(text)
        specials = _check_specials(special_tokens)
        _check_vocab_size(vocab_size, len(specials))
        if not isinstance(fast, bool):
            raise TypeError(f"fast must be a bool, got {fast!r}")
        if pattern == "gpt2":
            pattern = GPT2_PATTERN
        chunk_counts = _count_chunks(text, _compile_pattern(pattern), specials)  # step 1
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        counts = list(chunk_counts.values())
        learn = _learn_merges_fast if fast else _learn_merges
        merges = learn(words, counts, vocab_size - 256 - len(specials))  # steps 2-4
        return cls(_vocab_from_merges(merges), merges, specials, pattern)

    @classmethod
    def from_hf(cls, hf: Union[HFBPETokenizer, Any]) -> BPETokenizer:
        """Build a ``BPETokenizer`` with the vocabulary, ids and merges of a HF byte-level BPE.

        ``hf`` is an :class:`HFBPETokenizer` or a ``tokenizers.Tokenizer`` with a BPE model
        and a ByteLevel pre-tokeniser (GPT-2 regex, ``add_prefix_space=False``). HF stores
        tokens as strings through GPT-2's :func:`bytes_to_unicode` table; we map them back.
        """
        tok = hf.hf if isinstance(hf, HFBPETokenizer) else hf
        data = json.loads(tok.to_str())
        if data["model"]["type"] != "BPE":
            raise ValueError(f"expected a BPE model, got {data['model']['type']!r}")
        u2b = {u: b for b, u in bytes_to_unicode().items()}

        def to_bytes(token: str) -> bytes:
            return bytes(u2b[ch] for ch in token)

        specials = {t["content"]: t["id"] for t in data.get("added_tokens", []) if t["special"]}
        str_ids: dict[str, int] = data["model"]["vocab"]
        vocab = {i: to_bytes(s) for s, i in str_ids.items() if s not in specials}
        merges, merge_ids = [], []
        for m in data["model"]["merges"]:
            a, b = m.split(" ") if isinstance(m, str) else m
            merges.append((str_ids[a], str_ids[b]))
            merge_ids.append(str_ids[a + b])
        return cls(vocab, merges, specials, GPT2_PATTERN, merge_ids)

    # ---- encoding / decoding ---------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return max([*self.vocab, *self.special_tokens.values()]) + 1

    def _encode_chunk(self, chunk: str) -> list[int]:
        """Bytes of one chunk, then merges applied lowest rank first."""
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        ids = [self._byte_ids[b] for b in chunk.encode("utf-8")]
        while len(ids) >= 2:
            ranked = [self._ranks[p] for p in zip(ids, ids[1:]) if p in self._ranks]
            if not ranked:
                break
            rank, new_id = min(ranked)
            ids = _merge(ids, self.merges[rank], new_id)
        if len(chunk) <= 64 and len(self._cache) < 100_000:  # words repeat; cache them
            self._cache[chunk] = ids
        return ids

    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        _check_text(text)
        ids: list[int] = []
        for piece, is_special in _split_specials(text, self.special_tokens, allow_special):
            if is_special:
                ids.append(self.special_tokens[piece])
            else:
                for chunk in _pre_split(self._compiled, piece):
                    ids.extend(self._encode_chunk(chunk))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        out: list[str] = []
        buf = bytearray()
        for i in self._check_ids(ids):
            if i in self._special_strings:
                out.append(buf.decode("utf-8", errors="replace"))
                buf.clear()
                out.append(self._special_strings[i])
            elif i in self.vocab:
                buf += self.vocab[i]
            else:
                raise ValueError(f"token id {i} is not in the vocabulary")
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)

    # ---- files -------------------------------------------------------------------------

    def save(self, path: PathLike) -> None:
        _write_json(
            path,
            {
                "type": "bpe",
                "pattern": self.pattern,
                "vocab": [[i, b.hex()] for i, b in sorted(self.vocab.items())],
                "merges": [list(p) for p in self.merges],
                "merge_ids": [self._ranks[p][1] for p in self.merges],
                "special_tokens": self.special_tokens,
            },
        )

    @classmethod
    def load(cls, path: PathLike) -> BPETokenizer:
        data = _read_json(path)
        if data.get("type") != "bpe":
            raise ValueError(f"{path} is not a BPETokenizer file")
        vocab = {i: bytes.fromhex(h) for i, h in data["vocab"]}
        merges = [tuple(p) for p in data["merges"]]
        return cls(vocab, merges, data["special_tokens"], data["pattern"], data["merge_ids"])


# --------------------------------------------------------------------------------------
# Byte-level BPE, Hugging Face tokenizers
# --------------------------------------------------------------------------------------


class HFBPETokenizer(Tokenizer):
    """Byte-level BPE trained and run by Hugging Face ``tokenizers`` (fast; chapter default).

    Same algorithm and same pre-splitting as :class:`BPETokenizer` (GPT-2 regex, no prefix
    space, all 256 bytes in the initial alphabet), but ids are laid out by HF: special
    tokens first, then the byte alphabet, then the merges. HF's tie-break among equally
    frequent pairs differs from ours, so merges can differ; ``BPETokenizer.from_hf`` gives
    a pure-Python tokenizer with exactly HF's ids.

    Args:
        hf: a ``tokenizers.Tokenizer``.
    """

    def __init__(self, hf: Any) -> None:
        self.hf = hf
        self.special_tokens = {
            t.content: i for i, t in hf.get_added_tokens_decoder().items() if t.special
        }

    @classmethod
    def train(
        cls,
        text: Union[str, Iterable[str]],
        vocab_size: int,
        special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
    ) -> HFBPETokenizer:
        """Train with ``BpeTrainer.train_from_iterator``; ``vocab_size`` counts everything.

        Args:
            text: the corpus, as one string or an iterable of strings (e.g. lines).
            vocab_size: at least ``256 + len(special_tokens)``; HF may stop earlier if it
                runs out of pairs.
            special_tokens: special strings, given ids ``0..len-1``.
        """
        from tokenizers import Tokenizer as _HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        specials = _check_specials(special_tokens)
        _check_vocab_size(vocab_size, len(specials))
        if not isinstance(text, str) and not isinstance(text, Iterable):
            raise TypeError(f"text must be a str or an iterable of str, got {type(text).__name__}")
        texts = [text] if isinstance(text, str) else list(text)
        for t in texts:
            _check_text(t)
        # Like BPETokenizer.train: cut the special strings out first, so that no merge is
        # learned inside them (HF's trainer would otherwise count "<|", "im", ... as text).
        pieces = [
            piece
            for t in texts
            for piece, is_special in _split_specials(t, specials, allow_special=True)
            if not is_special
        ]
        tok = _HFTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(pieces, trainer=trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        _check_text(text)
        self.hf.encode_special_tokens = not allow_special
        try:
            return self.hf.encode(text, add_special_tokens=False).ids
        finally:
            self.hf.encode_special_tokens = False

    def decode(self, ids: Iterable[int]) -> str:
        """HF's ByteLevel decoder; invalid UTF-8 becomes U+FFFD (``errors="replace"``)."""
        return self.hf.decode(self._check_ids(ids), skip_special_tokens=False)

    def save(self, path: PathLike) -> None:
        """Write HF's ``tokenizer.json`` format."""
        self.hf.save(str(path))

    @classmethod
    def load(cls, path: PathLike) -> HFBPETokenizer:
        from tokenizers import Tokenizer as _HFTokenizer

        return cls(_HFTokenizer.from_file(str(path)))


# --------------------------------------------------------------------------------------
# Loading any of them
# --------------------------------------------------------------------------------------


def load_tokenizer(path: PathLike) -> Tokenizer:
    """Load a tokenizer saved by any class here, dispatching on the file's contents.

    ``{"type": "char"}`` -> :class:`CharTokenizer`, ``{"type": "bpe"}`` ->
    :class:`BPETokenizer`, a HF ``tokenizer.json`` (has ``"model"``) ->
    :class:`HFBPETokenizer`.
    """
    data = _read_json(path)
    kind = data.get("type")
    if kind == "char":
        return CharTokenizer.load(path)
    if kind == "bpe":
        return BPETokenizer.load(path)
    if "model" in data:
        return HFBPETokenizer.load(path)
    raise ValueError(f"{path} is not a tokenizer file written by lmcourse.tokenization")


# --------------------------------------------------------------------------------------
# Plain-dict (de)serialisation, for checkpoints
# --------------------------------------------------------------------------------------

TOKENIZER_DICT_VERSION = 1


def tokenizer_to_dict(tok: Tokenizer) -> dict[str, Any]:
    """Describe ``tok`` with plain Python types only (str, int, list, dict, None).

    The result can be stored inside a checkpoint that ``torch.load(..., weights_only=True)``
    reads back. Its ``"kind"`` key says which class it is: ``"char"``, ``"bpe"`` or ``"hf"``.
    :func:`tokenizer_from_dict` is the inverse.
    """
    if isinstance(tok, CharTokenizer):
        specials = sorted(tok.special_tokens, key=tok.special_tokens.__getitem__)
        return {"kind": "char", "version": TOKENIZER_DICT_VERSION, "chars": list(tok.chars),
                "special_tokens": specials, "unk": tok.unk}
    if isinstance(tok, BPETokenizer):
        return {
            "kind": "bpe",
            "version": TOKENIZER_DICT_VERSION,
            "pattern": tok.pattern,
            "vocab": [[i, b.hex()] for i, b in sorted(tok.vocab.items())],
            "merges": [[a, b] for a, b in tok.merges],
            "merge_ids": [tok._ranks[p][1] for p in tok.merges],
            "special_tokens": dict(tok.special_tokens),
        }
    if isinstance(tok, HFBPETokenizer):
        return {"kind": "hf", "version": TOKENIZER_DICT_VERSION, "json": tok.hf.to_str()}
    raise TypeError(
        f"tok must be a CharTokenizer, BPETokenizer or HFBPETokenizer, got {type(tok).__name__}"
    )


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    """Rebuild the tokenizer described by :func:`tokenizer_to_dict`."""
    if not isinstance(d, dict):
        raise TypeError(f"d must be a dict written by tokenizer_to_dict, got {type(d).__name__}")
    kind = d.get("kind")
    if d.get("version", TOKENIZER_DICT_VERSION) != TOKENIZER_DICT_VERSION:
        raise ValueError(
            f"tokenizer dict version {d.get('version')!r} is not supported "
            f"(this lmcourse reads version {TOKENIZER_DICT_VERSION})"
        )
    try:
        if kind == "char":
            return CharTokenizer(d["chars"], d["special_tokens"], d.get("unk"))
        if kind == "bpe":
            vocab = {int(i): bytes.fromhex(h) for i, h in d["vocab"]}
            merges = [(int(a), int(b)) for a, b in d["merges"]]
            return BPETokenizer(vocab, merges, dict(d["special_tokens"]), d["pattern"], d["merge_ids"])
        if kind == "hf":
            from tokenizers import Tokenizer as _HFTokenizer

            return HFBPETokenizer(_HFTokenizer.from_str(d["json"]))
    except KeyError as e:
        raise ValueError(f"tokenizer dict of kind {kind!r} lacks the key {e.args[0]!r}") from None
    raise ValueError(f"tokenizer dict 'kind' must be 'char', 'bpe' or 'hf', got {kind!r}")
