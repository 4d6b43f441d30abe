"""A tiny retriever for retrieval-augmented generation (RAG): BM25 over text passages.

Chapter 15b (grounding, tools, verification, preferences) teaches this file.

Retrieval-augmented generation puts passages found in a document collection into the
model's context before it generates, so that it can copy facts instead of inventing them.
The retriever here is the classic BM25 ranking function (Robertson & Zaragoza 2009): a
passage scores high when it contains the query's words, rare words count more than common
ones (inverse document frequency), repeated words saturate (``k1``) and long passages are
penalised (``b``). For a query q and passage d::

    score(q, d) = sum over words w in q of
        idf(w) * f(w, d) * (k1 + 1) / (f(w, d) + k1 * (1 - b + b * len(d) / avgdl))
    idf(w) = ln(1 + (N - n(w) + 0.5) / (n(w) + 0.5))

with f(w, d) the count of w in d, len(d) the passage length in words, avgdl the mean length,
N the number of passages and n(w) the number of passages that contain w.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

__all__ = ["BM25Index", "Hit", "split_passages", "words"]

_WORD = re.compile(r"[a-z']+")


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` (letters and apostrophes; punctuation dropped)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


def split_passages(text: str, max_chars: int = 400) -> list[str]:
    """Cut ``text`` at blank lines into passages, then cut passages longer than ``max_chars``.

    For a play this gives one passage per speech (speaker line and verse); the long ones are
    cut at line breaks so that no passage exceeds ``max_chars`` (a single longer line is
    kept whole).
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    passages: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        block = block.strip()
        current = ""
        for line in block.splitlines():
            if current and len(current) + 1 + len(line) > max_chars:
                passages.append(current)
                current = line
            else:
                current = f"{current}\n{line}" if current else line
        if current:
            passages.append(current)
    return passages


@dataclass
class Hit:
    """One search result: passage index, its BM25 score and its text."""

    index: int
    score: float
    text: str


class BM25Index:
    """BM25 search over a fixed list of passages.

    Example::

        index = BM25Index(split_passages(corpus))
        index.search("the quality of mercy", k=3)  # list of Hit, best first

    Args:
        passages: the texts to search (at least one).
        k1: term-frequency saturation (>= 0; 0 ignores repetitions).
        b: length normalisation in [0, 1] (0: none, 1: full).
    """

    def __init__(self, passages: list[str], k1: float = 1.5, b: float = 0.75) -> None:
        if not passages:
            raise ValueError("BM25Index needs at least one passage")
        if not k1 >= 0:
            raise ValueError(f"k1 must be >= 0, got {k1!r}")
        if not 0 <= b <= 1:
            raise ValueError(f"b must be in [0, 1], got {b!r}")
        self.passages = list(passages)
        self.k1, self.b = k1, b
        self.counts = [Counter(words(p)) for p in self.passages]  # f(w, d) per passage
        self.lengths = [sum(c.values()) for c in self.counts]  # |d|
        self.avgdl = max(sum(self.lengths) / len(self.lengths), 1e-9)
        df: Counter[str] = Counter()
        for c in self.counts:
            df.update(c.keys())  # n(w): passages containing w
        n = len(self.passages)
        self.idf = {w: math.log(1 + (n - m + 0.5) / (m + 0.5)) for w, m in df.items()}
        self.postings: dict[str, list[int]] = {}
        for i, c in enumerate(self.counts):
            for w in c:
                self.postings.setdefault(w, []).append(i)

    def score(self, query: str, index: int) -> float:
        """BM25 score of passage ``index`` for ``query`` (0 when they share no word)."""
        if not 0 <= index < len(self.passages):
            raise ValueError(f"index must be in [0, {len(self.passages) - 1}], got {index}")
        counts, length = self.counts[index], self.lengths[index]
        norm = self.k1 * (1 - self.b + self.b * length / self.avgdl)
        total = 0.0
        for w in words(query):
            f = counts.get(w, 0)
            if f:
                total += self.idf[w] * f * (self.k1 + 1) / (f + norm)
        return total

    def search(self, query: str, k: int = 3) -> list[Hit]:
        """The ``k`` best passages for ``query``, best first (ties: lower index first).

        Only passages sharing at least one word with the query are returned, so fewer
        than ``k`` hits come back when fewer match.
        """
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        candidates = {i for w in words(query) for i in self.postings.get(w, [])}
        scored = sorted(((self.score(query, i), i) for i in candidates), key=lambda s: (-s[0], s[1]))
        return [Hit(i, s, self.passages[i]) for s, i in scored[:k]]
