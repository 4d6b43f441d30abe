"""BM25 against the formula computed by hand on a toy corpus, and retrieval properties."""

import math

import pytest

from lmcourse.retrieval import BM25Index, split_passages, words

DOCS = ["the cat sat on the mat", "the dog sat", "a cat and a cat and a bird"]


def test_score_matches_hand_computed_formula():
    index = BM25Index(DOCS, k1=1.2, b=0.75)
    lengths = [6, 3, 8]
    avgdl = sum(lengths) / 3
    idf_cat = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))  # "cat" is in 2 of 3 passages
    idf_sat = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))
    for i, (f_cat, f_sat) in enumerate([(1, 1), (0, 1), (2, 0)]):
        norm = 1.2 * (1 - 0.75 + 0.75 * lengths[i] / avgdl)
        expected = sum(
            idf * f * 2.2 / (f + norm) for idf, f in ((idf_cat, f_cat), (idf_sat, f_sat)) if f
        )
        assert index.score("Cat, sat!", i) == pytest.approx(expected, rel=1e-12)


def test_search_ranks_and_ignores_unrelated_passages():
    index = BM25Index(DOCS)
    hits = index.search("cat", k=5)
    assert [h.index for h in hits] == [2, 0]  # 2 cats beat 1; "the dog sat" has no cat
    assert hits[0].score > hits[1].score > 0
    assert index.search("zebra") == []


def test_exact_passage_is_found_in_the_real_corpus_and_order_does_not_matter():
    from lmcourse.data import shakespeare_text

    passages = split_passages(shakespeare_text()[:200_000])
    assert all(len(p) <= 400 or "\n" not in p for p in passages)
    index = BM25Index(passages)
    target = max(range(len(passages)), key=lambda i: len(set(words(passages[i]))))
    assert index.search(passages[target], k=1)[0].index == target
    reordered = BM25Index(passages[::-1])
    j = len(passages) - 1 - target
    assert reordered.score("mercy and justice", j) == pytest.approx(index.score("mercy and justice", target))


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one"):
        BM25Index([])
    with pytest.raises(ValueError, match="b must be"):
        BM25Index(DOCS, b=2)
    with pytest.raises(ValueError, match="k must be"):
        BM25Index(DOCS).search("cat", k=0)
    with pytest.raises(ValueError, match="index must be"):
        BM25Index(DOCS).score("cat", 3)
    with pytest.raises(ValueError, match="max_chars"):
        split_passages("x", max_chars=0)
