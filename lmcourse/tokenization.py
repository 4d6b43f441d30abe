"""Tokenisers: from text to integer ids and back.

Chapter 2 (tokenisation) teaches this file; homework 2 checks students' BPE against
:class:`BPETokenizer`.

Every tokeniser here has the same small interface (:class:`Tokenizer`):

    encode(text, allow_special=False) -> list[int]
    encode_iterable(lines)         the same ids, streamed from a large file in bounded memory
    decode(ids) -> str
    vocab_size                     number of ids, specials included
    special_tokens                 {"<|bos|>": id, ...}
    bos_id, eos_id, pad_id         ids of the three role tokens
    save(path) / Class.load(path)  one file (a path or a file object); ``load_tokenizer(path)``
                                   dispatches on it. Files are untrusted input: they are
                                   checked before use (see ``Tokenizer.load``)
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
import itertools
import json
import operator
import os
import re
import time
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from typing import IO, Any, Iterable, Iterator, Optional, Sequence, Union

import regex as _re  # GPT-2's pattern needs \p{L} / \p{N}; a declared dependency

from .checks import require_bool

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
    "split_specials",
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


def split_specials(text: str, specials: Iterable[str]) -> list[str]:
    """Cut ``text`` so that every occurrence of a special string is its own piece.

    The longest special wins where several start at the same place, as in every encoder
    here; ``"".join`` of the result is ``text``. (Chapter 14 draws a prompt this way.)
    """
    return [piece for piece, _ in _split_specials(text, [s for s in specials if s], allow_special=True)]


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
    if pattern != GPT2_PATTERN:
        _probe_pattern(compiled)
    return compiled


# Texts on which a pattern with nested or stacked quantifiers backtracks for ages
_PROBES = tuple(body * n + end for n in (64, 1024) for body in ("x", "1", " ", "x1 ", "!")
                for end in ("", "!"))


@functools.lru_cache(maxsize=64)
def _probe_pattern(compiled: Any, seconds: float = 1.0) -> None:
    """Refuse a custom pre-split pattern that takes far too long on short probe texts.

    A regex such as ``(\\w|\\w\\w)+\\d`` takes exponential time (a tokenizer file could
    carry one and hang every ``encode``). Each probe text may take at most ``seconds``
    in all; benign patterns take microseconds.
    """
    deadline = time.monotonic() + seconds
    for text in _PROBES:
        try:
            for _ in compiled.finditer(text, timeout=max(0.01, deadline - time.monotonic())):
                pass
        except TimeoutError:
            raise ValueError(
                f"pattern {compiled.pattern[:80]!r} takes too long to split even short texts such as "
                f"{text[:12]!r}... (catastrophic backtracking: nested or repeated quantifiers); "
                "use 'gpt2', None or a simpler pattern") from None


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



# Bounds on what a tokenizer file may hold: far above any real tokenizer (GPT-2's file is
# 1.4 MB with 50,257 ids; the largest common vocabularies have about 256,000 ids).
MAX_FILE_BYTES = 64 << 20  #: largest tokenizer file read (bytes)
MAX_JSON_DEPTH = 32  #: deepest nesting of lists / objects in a tokenizer file
MAX_VOCAB = 1 << 24  #: ids must be below this
# Bounds on the work of training (see _check_training_work)
MAX_CHUNK_WORK = 200_000_000  #: longest pre-split chunk (bytes) times merges, for BPETokenizer
MAX_DISTINCT_BYTES = 2_000_000  #: total bytes of the distinct chunks BPETokenizer trains on
MAX_DISTINCT_CHUNKS = 250_000  #: distinct chunks BPETokenizer trains on
PLAIN_LOOP_WORK = 30_000_000  #: merges times distinct bytes for the plain loop (about 10 s)
HF_MAX_CHUNK = 10_000  #: longest chunk HF's trainer gets (its time grows as the square)

FileOrPath = Union[PathLike, IO[Any]]


def _is_file_object(path: Any) -> bool:
    return hasattr(path, "read") or hasattr(path, "write")


def _file_name(path: FileOrPath) -> str:
    if _is_file_object(path):
        return str(getattr(path, "name", f"<{type(path).__name__}>"))
    return os.fspath(path)


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _json_depth(text: str) -> int:
    """Deepest nesting of ``[`` / ``{`` in JSON ``text`` (strings skipped), without recursion."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = deepest = 0
    for ch in brackets:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _parse_json(text: Union[str, bytes], where: str) -> dict[str, Any]:
    """A JSON object from ``text``, with bounded size and depth; ValueError naming ``where``."""
    if len(text) > MAX_FILE_BYTES:
        raise ValueError(f"{where}: a tokenizer file is at most {MAX_FILE_BYTES:,} bytes, this one "
                         f"has {len(text):,}")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if _json_depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels; not a tokenizer file")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise ValueError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a tokenizer file holds a JSON object, got {type(data).__name__}")
    return data


def _read_text(path: FileOrPath) -> bytes:
    """The bytes of a file (path or file object), refusing files over MAX_FILE_BYTES."""
    where = _file_name(path)
    if _is_file_object(path):
        data = path.read(MAX_FILE_BYTES + 1)
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if os.path.getsize(path) > MAX_FILE_BYTES:
        raise ValueError(f"{where}: a tokenizer file is at most {MAX_FILE_BYTES:,} bytes, this one "
                         f"has {os.path.getsize(path):,}")
    with open(path, "rb") as f:
        return f.read(MAX_FILE_BYTES + 1)


def _read_json(path: FileOrPath) -> dict[str, Any]:
    return _parse_json(_read_text(path), _file_name(path))


def _write_text(path: FileOrPath, text: str) -> None:
    """Write ``text`` (UTF-8) to a path or to a text or binary file object."""
    if _is_file_object(path):
        try:
            path.write(text)
        except TypeError:  # a binary file
            path.write(text.encode("utf-8"))
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _write_json(path: FileOrPath, data: dict[str, Any]) -> None:
    _write_text(path, json.dumps(data, ensure_ascii=False))


def _fields(data: dict[str, Any], where: str, *names: str) -> list[Any]:
    """``data[name]`` for each name; a missing key is a ValueError naming it and ``where``."""
    missing = [n for n in names if n not in data]
    if missing:
        raise ValueError(f"{where}: lacks the key {missing[0]!r}")
    return [data[n] for n in names]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_id(value: Any, what: str) -> int:
    """A token id: an integer (NumPy and 0-d tensors included) in ``[0, MAX_VOCAB)``."""
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be an integer token id, got {value!r}") from None
    if not 0 <= value < MAX_VOCAB:
        raise ValueError(f"{what}: token id {value} is out of range [0, {MAX_VOCAB:,})")
    return value


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
    def save(self, path: FileOrPath) -> None:
        """Write the tokeniser to one file (a path or an open file object), readable by
        ``load`` and ``load_tokenizer``."""

    @classmethod
    @abstractmethod
    def load(cls, path: FileOrPath) -> Tokenizer:
        """Read a tokeniser written by ``save`` (a path or an open file object).

        The file is checked before anything is built: at most :data:`MAX_FILE_BYTES`,
        JSON nested at most :data:`MAX_JSON_DEPTH` deep, every key present with the right
        type, ids contiguous from 0 and below :data:`MAX_VOCAB`, special tokens distinct
        from each other and from ordinary tokens (BPE: every merge gives exactly its two
        parts' bytes). Anything else is a ValueError naming the file and the problem.
        """

    # ---- streaming ---------------------------------------------------------------------

    def _stream_regex(self) -> Optional[Any]:
        """The pre-split regex whose chunk boundaries are safe cut points (None: any point)."""
        return None

    def encode_iterable(self, texts: Iterable[str], allow_special: bool = False,
                        flush_chars: int = 1 << 16) -> Iterator[int]:
        """Encode a stream of strings (e.g. an open text file, line by line), yielding ids.

        The ids are exactly ``encode("".join(texts), allow_special)``, but only about
        ``flush_chars`` characters (plus the longest pre-split chunk) are held at a time,
        so a file far larger than memory can be encoded: text is cut only at chunk
        boundaries that more text cannot move (at least 3 characters before the end of
        what has been read, the longest lookahead of GPT-2's pattern, and clear of any
        special token that could still be completed).
        """
        require_bool("allow_special", allow_special)
        if isinstance(texts, str) or not isinstance(texts, Iterable):
            raise TypeError(f"texts must be an iterable of str (e.g. an open text file), got "
                            f"{type(texts).__name__}")
        if not _is_int(flush_chars) or flush_chars < 1:
            raise ValueError(f"flush_chars must be a positive integer, got {flush_chars!r}")
        compiled = self._stream_regex()
        longest_special = max(map(len, self.special_tokens), default=1) if allow_special else 1
        buf = ""
        for k, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{k}] must be a str, got {type(text).__name__}")
            buf += text
            if len(buf) < flush_chars:
                continue
            limit = len(buf) - max(3, longest_special - 1)
            cut = self._safe_cut(buf, compiled, limit, allow_special)
            if cut > 0:
                yield from self.encode(buf[:cut], allow_special=allow_special)
                buf = buf[cut:]
        if buf:
            yield from self.encode(buf, allow_special=allow_special)

    def _safe_cut(self, buf: str, compiled: Optional[Any], limit: int, allow_special: bool) -> int:
        """The last chunk boundary of ``buf`` at or before ``limit`` (0 when there is none)."""
        if limit <= 0:
            return 0
        cut, start = 0, 0
        for piece, is_special in _split_specials(buf, self.special_tokens, allow_special):
            end = start + len(piece)
            if is_special:
                if end <= limit:
                    cut = end
            elif compiled is None:  # no pre-splitting: any point of ordinary text will do
                cut = max(cut, min(end, limit))
            else:
                for m in compiled.finditer(piece):  # a chunk's start is where the last one ends
                    if start + m.start() > limit:
                        break
                    if start + m.start() > 0:
                        cut = max(cut, start + m.start())
            if end > limit:
                break
            start = end
        return cut

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
        require_bool("allow_special", allow_special)
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

    def save(self, path: FileOrPath) -> None:
        specials = sorted(self.special_tokens, key=self.special_tokens.__getitem__)
        _write_json(
            path, {"type": "char", "chars": self.chars, "special_tokens": specials, "unk": self.unk}
        )

    @classmethod
    def load(cls, path: FileOrPath) -> CharTokenizer:
        data = _read_json(path)
        if data.get("type") != "char":
            raise ValueError(f"{_file_name(path)} is not a CharTokenizer file")
        return cls._from_data(data, _file_name(path))

    @classmethod
    def _from_data(cls, data: dict[str, Any], where: str) -> CharTokenizer:
        chars, specials = _fields(data, where, "chars", "special_tokens")
        unk = data.get("unk")
        if not isinstance(chars, list) or not isinstance(specials, list):
            raise ValueError(f"{where}: 'chars' and 'special_tokens' must be lists of strings")
        if unk is not None and not isinstance(unk, str):
            raise ValueError(f"{where}: 'unk' must be a string or null, got {unk!r}")
        if len(chars) + len(specials) + 1 > MAX_VOCAB:
            raise ValueError(f"{where}: more than {MAX_VOCAB:,} ids")
        try:
            return cls(chars, specials, unk)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None


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
        if is_special:
            continue
        if compiled is None:
            chunk_counts[piece] += 1
            continue
        matches, covered = compiled.finditer(piece), 0
        while batch := [m.group() for m in itertools.islice(matches, 100_000)]:
            covered += sum(map(len, batch))
            chunk_counts.update(batch)
            if len(chunk_counts) > MAX_DISTINCT_CHUNKS:  # stop early on random data
                raise ValueError(
                    f"the corpus has more than {MAX_DISTINCT_CHUNKS:,} distinct pre-split chunks "
                    "(real text repeats its words; this looks like binary or random data). Train "
                    "on less or more ordinary text, or use HFBPETokenizer.train")
        if covered != len(piece):
            _pre_split(compiled, piece)  # raises the error naming the uncovered text
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


def _check_training_work(words: list[list[int]], n_merges: int, fast: bool) -> None:
    """Refuse a training run whose work would take minutes (see ``BPETokenizer.train``)."""
    if not words or n_merges <= 0:
        return
    longest = max(map(len, words))
    if longest * n_merges > MAX_CHUNK_WORK:
        raise ValueError(
            f"the longest pre-split chunk of the corpus has {longest:,} bytes; with {n_merges:,} "
            f"merges BPE training would take about {longest * n_merges:,} steps (limit "
            f"{MAX_CHUNK_WORK:,}). Cut the text into lines or documents, pre-split it "
            "(pattern='gpt2'), or ask for fewer merges")
    distinct = sum(map(len, words))
    if distinct > MAX_DISTINCT_BYTES:
        raise ValueError(
            f"the corpus has {len(words):,} distinct pre-split chunks totalling {distinct:,} bytes "
            f"(limit {MAX_DISTINCT_BYTES:,}: real text repeats its words; this looks like binary or "
            "random data). Train on less or more ordinary text, or use HFBPETokenizer.train")
    if not fast and distinct * n_merges > PLAIN_LOOP_WORK:
        raise ValueError(
            f"the plain training loop would take about {distinct * n_merges:,} steps ({n_merges:,} "
            f"merges over {distinct:,} distinct bytes; limit {PLAIN_LOOP_WORK:,}); use fast=True "
            "(the same merges)")


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
        self.vocab = {_as_id(i, "vocab id"): bytes(b) for i, b in vocab.items()}
        self.merges = [(_as_id(a, f"merges[{r}]"), _as_id(b, f"merges[{r}]"))
                       for r, (a, b) in enumerate(merges)]
        if merge_ids is None:
            merge_ids = [256 + r for r in range(len(self.merges))]
        merge_ids = [_as_id(i, f"merge_ids[{r}]") for r, i in enumerate(merge_ids)]
        if len(merge_ids) != len(self.merges):
            raise ValueError("merge_ids must have one id per merge")
        byte_ids = {b: i for i, b in self.vocab.items() if len(b) == 1}
        missing = [x for x in range(256) if bytes([x]) not in byte_ids]
        if missing:
            raise ValueError(f"vocab must contain all 256 single bytes; missing {missing[:8]}")
        if len(set(self.vocab.values())) != len(self.vocab) or b"" in self.vocab.values():
            seen: dict[bytes, int] = {}
            for i, tok in sorted(self.vocab.items()):
                if not tok:
                    raise ValueError(f"vocab id {i} has no bytes")
                if tok in seen:
                    raise ValueError(f"vocab ids {seen[tok]} and {i} are the same bytes {tok!r}")
                seen[tok] = i
        self._byte_ids = [byte_ids[bytes([x])] for x in range(256)]
        self._ranks: dict[tuple[int, int], tuple[int, int]] = {}
        for r, (pair, new_id) in enumerate(zip(self.merges, merge_ids)):
            if pair[0] not in self.vocab or pair[1] not in self.vocab or new_id not in self.vocab:
                raise ValueError(f"merge {r} {pair} -> {new_id} uses ids missing from vocab")
            if self.vocab[new_id] != self.vocab[pair[0]] + self.vocab[pair[1]]:
                # also rules out cycles: a merged token is longer than each of its parts
                raise ValueError(
                    f"merge {r} {pair} -> {new_id} is inconsistent: the parts' bytes "
                    f"{self.vocab[pair[0]] + self.vocab[pair[1]]!r} are not token {new_id}'s "
                    f"{self.vocab[new_id]!r}")
            if pair in self._ranks:
                raise ValueError(f"merge {r} {pair} repeats merge {self._ranks[pair][0]}")
            self._ranks[pair] = (r, new_id)
        if isinstance(special_tokens, dict):
            for s in special_tokens:
                if not isinstance(s, str) or not s:
                    raise ValueError(f"special tokens must be non-empty strings, got {s!r}")
            self.special_tokens = {s: _as_id(i, f"special token {s!r}") for s, i in special_tokens.items()}
        else:
            start = max(self.vocab) + 1
            specials = _check_specials(special_tokens)
            self.special_tokens = {s: start + k for k, s in enumerate(specials)}
        for s, i in self.special_tokens.items():
            if i in self.vocab:
                raise ValueError(f"special token {s!r} id {i} collides with an ordinary token")
        if len(set(self.special_tokens.values())) != len(self.special_tokens):
            raise ValueError(f"two special tokens share an id: {self.special_tokens}")
        ids = sorted([*self.vocab, *self.special_tokens.values()])
        if ids[-1] != len(ids) - 1:
            gap = next(k for k, i in enumerate(ids) if i != k)
            raise ValueError(f"token ids must be contiguous from 0; id {gap} is missing "
                             f"({len(ids)} ids, the largest is {ids[-1]})")
        if pattern is not None and not isinstance(pattern, str):
            raise ValueError(f"pattern must be a regex string or None, got {type(pattern).__name__}")
        self._special_strings = {i: s for s, i in self.special_tokens.items()}
        self.pattern = pattern
        self._compiled = _compile_pattern(pattern)
        self._cache: dict[str, list[int]] = {}

    # ---- training -------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        text: Union[str, os.PathLike],
        vocab_size: int,
        pattern: Optional[str] = "gpt2",
        special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
        fast: bool = True,
    ) -> BPETokenizer:
        """Learn merges on ``text`` until the vocabulary has ``vocab_size`` ids.

        ``vocab_size`` counts the 256 bytes, the merges and the special tokens. Training
        stops early -- with a smaller vocabulary -- if no adjacent pair is left to merge.

        Each step merges the most frequent adjacent pair. Tie-break: among equally
        frequent pairs the smallest pair of ids ``(a, b)`` (compared as tuples) wins, so
        training is deterministic. Special-token strings in ``text`` are cut out first and
        never take part in merges; merges never cross pre-split chunk boundaries.

        Args:
            text: training corpus: the text itself (a ``str``) or the path of a UTF-8
                text file (a ``pathlib.Path`` or other ``os.PathLike``; a ``str`` is
                always the text).
            vocab_size: at least ``256 + len(special_tokens)``.
            pattern: ``"gpt2"`` (GPT-2 pre-splitting regex), ``None`` (no pre-splitting:
                simple but slow on large corpora), or a custom regex string whose
                matches tile the text.
            special_tokens: special strings, given the ids after the merges.
            fast: ``True`` (default) uses the incremental trainer
                (:func:`_learn_merges_fast`); ``False`` the plain loop
                (:func:`_learn_merges`), the textbook version that chapter 2 teaches and
                homework 2 reproduces. Both give exactly the same merges; the plain loop
                recounts every pair each round, so it is several times slower.

        The work is bounded: a corpus whose longest pre-split chunk times the number of
        merges exceeds :data:`MAX_CHUNK_WORK` (e.g. megabytes of one repeated character,
        or ``pattern=None`` on a long text), whose distinct chunks exceed
        :data:`MAX_DISTINCT_CHUNKS` or :data:`MAX_DISTINCT_BYTES` (e.g. binary junk), or, for the plain loop, whose
        merges times distinct bytes exceed :data:`PLAIN_LOOP_WORK`, is refused with a
        ValueError saying what to change, instead of running for minutes.
        """
        if isinstance(text, os.PathLike):
            with open(text, encoding="utf-8") as f:
                text = f.read()
        _check_text(text)
        specials = _check_specials(special_tokens)
        _check_vocab_size(vocab_size, len(specials))
        require_bool("fast", fast)
        if pattern == "gpt2":
            pattern = GPT2_PATTERN
        chunk_counts = _count_chunks(text, _compile_pattern(pattern), specials)  # step 1
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        counts = list(chunk_counts.values())
        n_merges = vocab_size - 256 - len(specials)
        _check_training_work(words, n_merges, fast)
        learn = _learn_merges_fast if fast else _learn_merges
        merges = learn(words, counts, n_merges)  # steps 2-4
        return cls(_vocab_from_merges(merges), merges, specials, pattern)

    @classmethod
    def from_hf(cls, hf: Union[HFBPETokenizer, Any]) -> BPETokenizer:
        """Build a ``BPETokenizer`` with the vocabulary, ids and merges of a HF byte-level BPE.

        ``hf`` is an :class:`HFBPETokenizer` or a ``tokenizers.Tokenizer`` with a BPE model
        and a ByteLevel pre-tokeniser (GPT-2 regex, ``add_prefix_space=False``). HF stores
        tokens as strings through GPT-2's :func:`bytes_to_unicode` table; we map them back.
        """
        tok = hf.hf if isinstance(hf, HFBPETokenizer) else hf
        data = _check_hf_data(json.loads(tok.to_str()), "the HF tokenizer")
        u2b = {u: b for b, u in bytes_to_unicode().items()}

        def to_bytes(token: str) -> bytes:
            try:
                return bytes(u2b[ch] for ch in token)
            except KeyError as e:
                raise ValueError(f"token {token!r} is not byte-level BPE (character {e.args[0]!r} "
                                 "is not in GPT-2's byte table)") from None

        specials = {t["content"]: t["id"] for t in data.get("added_tokens", []) if t.get("special")}
        str_ids: dict[str, int] = data["model"]["vocab"]
        vocab = {i: to_bytes(s) for s, i in str_ids.items() if s not in specials}
        merges, merge_ids = [], []
        for m in data["model"]["merges"]:
            a, b = _hf_merge(m)
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

    def _stream_regex(self) -> Optional[Any]:
        if self._compiled is None:
            raise ValueError("encode_iterable needs a pre-splitting pattern (this tokenizer has "
                             "pattern=None, so the whole text is one chunk); use encode")
        return self._compiled

    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        _check_text(text)
        require_bool("allow_special", allow_special)
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

    def save(self, path: FileOrPath) -> None:
        data = tokenizer_to_dict(self)
        del data["kind"], data["version"]
        _write_json(path, {"type": "bpe", **data})

    @classmethod
    def load(cls, path: FileOrPath) -> BPETokenizer:
        data = _read_json(path)
        if data.get("type") != "bpe":
            raise ValueError(f"{_file_name(path)} is not a BPETokenizer file")
        return cls._from_data(data, _file_name(path))

    @classmethod
    def _from_data(cls, data: dict[str, Any], where: str) -> BPETokenizer:
        """Build from a file's or a checkpoint's dict, checking every field's type first."""
        items, merges, specials, pattern = _fields(data, where, "vocab", "merges", "special_tokens", "pattern")
        merge_ids = data.get("merge_ids")
        if not isinstance(items, list) or not isinstance(merges, list):
            raise ValueError(f"{where}: 'vocab' and 'merges' must be lists")
        if len(items) > MAX_VOCAB or len(merges) > MAX_VOCAB:
            raise ValueError(f"{where}: more than {MAX_VOCAB:,} tokens")
        vocab: dict[int, bytes] = {}
        for k, entry in enumerate(items):
            if not (isinstance(entry, list) and len(entry) == 2 and _is_int(entry[0])
                    and isinstance(entry[1], str)):
                raise ValueError(f"{where}: vocab[{k}] must be [id, hex bytes], got {str(entry)[:60]}")
            if entry[0] in vocab:
                raise ValueError(f"{where}: vocab id {entry[0]} appears twice")
            try:
                vocab[entry[0]] = bytes.fromhex(entry[1])
            except ValueError:
                raise ValueError(f"{where}: vocab[{k}] bytes {entry[1][:40]!r} are not hex") from None
        for k, m in enumerate(merges):
            if not (isinstance(m, list) and len(m) == 2 and all(map(_is_int, m))):
                raise ValueError(f"{where}: merges[{k}] must be a pair of ids, got {str(m)[:60]}")
        if merge_ids is not None and (not isinstance(merge_ids, list) or not all(map(_is_int, merge_ids))):
            raise ValueError(f"{where}: 'merge_ids' must be a list of ids")
        if not isinstance(specials, dict) or not all(map(_is_int, specials.values())):
            raise ValueError(f"{where}: 'special_tokens' must map strings to ids")
        if pattern is not None and not isinstance(pattern, str):
            raise ValueError(f"{where}: 'pattern' must be a regex string or null")
        try:
            return cls(vocab, [tuple(m) for m in merges], specials, pattern, merge_ids)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None


# --------------------------------------------------------------------------------------
# Byte-level BPE, Hugging Face tokenizers
# --------------------------------------------------------------------------------------


def _check_hf_chunks(text: str) -> None:
    """Refuse text with a pre-split chunk longer than HF_MAX_CHUNK (HF's time is quadratic in it)."""
    for run in _re.finditer(rf"\S{{{HF_MAX_CHUNK},}}|\s{{{HF_MAX_CHUNK},}}", text):
        longest = max(len(m.group()) for m in _re.finditer(GPT2_PATTERN, run.group()))
        if longest > HF_MAX_CHUNK:
            raise ValueError(
                f"text has a pre-split chunk of {longest:,} characters at position {run.start():,} "
                f"(limit {HF_MAX_CHUNK:,}): the HF trainer's time grows as the square of a chunk's "
                "length (minutes for 100,000). Cut such runs (e.g. repeated characters, minified "
                "data) out of the corpus")


def _hf_merge(m: Any) -> tuple[str, str]:
    """A HF merge, stored as ``"a b"`` (older files) or ``["a", "b"]``."""
    parts = m.split(" ") if isinstance(m, str) else m
    if not (isinstance(parts, list) and len(parts) == 2 and all(isinstance(p, str) and p for p in parts)):
        raise ValueError(f"merge {str(m)[:60]!r} is not a pair of tokens")
    return parts[0], parts[1]


def _check_hf_data(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Check a HF ``tokenizer.json`` dict: a BPE model with contiguous ids and sound merges."""
    model = data.get("model")
    if not isinstance(model, dict):
        raise ValueError(f"{where}: not a tokenizers file (no 'model' object)")
    if model.get("type", "BPE") != "BPE":
        raise ValueError(f"{where}: model type {model.get('type')!r}; only byte-level 'BPE' is supported")
    vocab, merges = model.get("vocab"), model.get("merges", [])
    if not isinstance(vocab, dict) or not isinstance(merges, list):
        raise ValueError(f"{where}: the model needs a 'vocab' object and a 'merges' list")
    added = data.get("added_tokens") or []
    if not isinstance(added, list) or not all(
            isinstance(t, dict) and isinstance(t.get("content"), str) and _is_int(t.get("id")) for t in added):
        raise ValueError(f"{where}: 'added_tokens' must be a list of {{'id': int, 'content': str, ...}}")
    for token, i in vocab.items():
        if not _is_int(i) or not 0 <= i < MAX_VOCAB:
            raise ValueError(f"{where}: token {token[:40]!r} has id {i!r}, not an integer in [0, {MAX_VOCAB:,})")
    ids = dict(vocab)
    for t in added:
        if not 0 <= t["id"] < MAX_VOCAB:
            raise ValueError(f"{where}: added token {t['content'][:40]!r} has id {t['id']}, not in [0, {MAX_VOCAB:,})")
        if ids.get(t["content"], t["id"]) != t["id"]:
            raise ValueError(f"{where}: added token {t['content'][:40]!r} has two ids")
        ids[t["content"]] = t["id"]
    values = sorted(ids.values())
    if len(set(values)) != len(values):
        raise ValueError(f"{where}: two tokens share an id")
    if values and values[-1] != len(values) - 1:
        gap = next(k for k, i in enumerate(values) if i != k)
        raise ValueError(f"{where}: token ids must be contiguous from 0; id {gap} is missing "
                         f"({len(values)} ids, the largest is {values[-1]})")
    for k, m in enumerate(merges):
        try:
            a, b = _hf_merge(m)
        except ValueError as e:
            raise ValueError(f"{where}: merges[{k}]: {e}") from None
        for part in (a, b, a + b):
            if part not in vocab:
                raise ValueError(f"{where}: merges[{k}] {a!r} + {b!r}: token {part[:40]!r} is not in the vocab")
    return data


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
            text: the corpus, as one string, an iterable of strings (e.g. lines) or the
                path of a UTF-8 text file (an ``os.PathLike``).
            vocab_size: at least ``256 + len(special_tokens)``; HF may stop earlier if it
                runs out of pairs.
            special_tokens: special strings, given ids ``0..len-1``.
        """
        from tokenizers import Tokenizer as _HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        specials = _check_specials(special_tokens)
        _check_vocab_size(vocab_size, len(specials))
        if isinstance(text, os.PathLike):
            with open(text, encoding="utf-8") as f:
                text = f.read()
        if not isinstance(text, str) and not isinstance(text, Iterable):
            raise TypeError(f"text must be a str, a path or an iterable of str, got {type(text).__name__}")
        texts = [text] if isinstance(text, str) else list(text)
        for t in texts:
            _check_text(t)
            _check_hf_chunks(t)
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

    def _stream_regex(self) -> Optional[Any]:
        return _re.compile(GPT2_PATTERN)  # what HF's ByteLevel pre-tokeniser splits on

    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        _check_text(text)
        require_bool("allow_special", allow_special)
        self.hf.encode_special_tokens = not allow_special
        try:
            return self.hf.encode(text, add_special_tokens=False).ids
        finally:
            self.hf.encode_special_tokens = False

    def decode(self, ids: Iterable[int]) -> str:
        """HF's ByteLevel decoder; invalid UTF-8 becomes U+FFFD (``errors="replace"``)."""
        return self.hf.decode(self._check_ids(ids), skip_special_tokens=False)

    def save(self, path: FileOrPath) -> None:
        """Write HF's ``tokenizer.json`` format."""
        _write_text(path, self.hf.to_str())

    @classmethod
    def load(cls, path: FileOrPath) -> HFBPETokenizer:
        """Read a HF ``tokenizer.json`` holding a byte-level BPE, checked first (see ``Tokenizer.load``)."""
        return cls._from_json(_read_text(path), _file_name(path))

    @classmethod
    def _from_json(cls, text: Union[str, bytes], where: str) -> HFBPETokenizer:
        from tokenizers import Tokenizer as _HFTokenizer

        data = _check_hf_data(_parse_json(text, where), where)
        try:
            hf = _HFTokenizer.from_str(json.dumps(data))
        except Exception as e:  # the library raises a bare Exception for malformed files
            raise ValueError(f"{where}: the tokenizers library cannot read it: {e}") from None
        return cls(hf)


# --------------------------------------------------------------------------------------
# Loading any of them
# --------------------------------------------------------------------------------------


def load_tokenizer(path: FileOrPath) -> Tokenizer:
    """Load a tokenizer saved by any class here, dispatching on the file's contents.

    ``{"type": "char"}`` -> :class:`CharTokenizer`, ``{"type": "bpe"}`` ->
    :class:`BPETokenizer`, a HF ``tokenizer.json`` (has ``"model"``) ->
    :class:`HFBPETokenizer`.
    """
    where = _file_name(path)
    text = _read_text(path)
    data = _parse_json(text, where)
    kind = data.get("type")
    if kind == "char":
        return CharTokenizer._from_data(data, where)
    if kind == "bpe":
        return BPETokenizer._from_data(data, where)
    if "model" in data:
        return HFBPETokenizer._from_json(text, where)
    raise ValueError(f"{where} is not a tokenizer file written by lmcourse.tokenization")


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
    version = d.get("version", TOKENIZER_DICT_VERSION)
    if not _is_int(version) or version != TOKENIZER_DICT_VERSION:
        raise ValueError(
            f"tokenizer dict version {version!r} is not supported "
            f"(this lmcourse reads version {TOKENIZER_DICT_VERSION})"
        )
    where = f"tokenizer dict of kind {kind!r}"
    if kind == "char":
        return CharTokenizer._from_data(d, where)
    if kind == "bpe":
        return BPETokenizer._from_data(d, where)
    if kind == "hf":
        (text,) = _fields(d, where, "json")
        if not isinstance(text, str):
            raise ValueError(f"{where}: 'json' must be a string")
        return HFBPETokenizer._from_json(text, where)
    raise ValueError(f"tokenizer dict 'kind' must be 'char', 'bpe' or 'hf', got {kind!r}")
