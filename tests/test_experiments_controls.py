"""The positive controls of chapters 9 and 15b: what they return, and their argument checks.

Tiny settings keep these fast; the chapters run the full ones and report what they measure.
"""

import numpy as np
import pytest

from lmcourse.experiments import copy_task_retrieval, exposure_bias_control


def test_exposure_bias_control_measures_a_sparse_source():
    out = exposure_bias_control(train_tokens=3000, iters=5, n_samples=8)
    curves = out["curves"]
    assert len(curves["kl_own"]) == len(curves["kl_data"]) == 32 - 2  # block_size - order positions
    assert np.all(np.asarray(curves["kl_own"]) >= -1e-9) and np.all(np.asarray(curves["kl_data"]) >= -1e-9)
    assert out["n_states"] == 8**2 and 0 <= out["rare_states"] <= out["n_states"]
    assert 0.0 <= out["rare_share_own"] <= 1.0 and 0.0 <= out["rare_share_data"] <= 1.0
    # sparse rows: the source's entropy rate is well below the uniform log(8)
    assert out["entropy_rate"] < 0.5 * np.log(8)


def test_exposure_bias_control_rare_share_counts_states():
    # with rare=1 a state is "rare" only if it never occurred in training; with a huge
    # threshold every state is rare, so every position is in a rare state
    out = exposure_bias_control(train_tokens=3000, iters=2, n_samples=4, rare=10**9)
    assert out["rare_states"] == out["n_states"]
    assert out["rare_share_own"] == out["rare_share_data"] == 1.0


@pytest.mark.parametrize("kwargs, error", [({"iters": 0}, ValueError), ({"train_tokens": 1.5}, TypeError),
                                           ({"n_samples": True}, TypeError)])
def test_exposure_bias_control_rejects_bad_sizes(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        exposure_bias_control(**kwargs)


def test_copy_task_retrieval_returns_rates_and_finds_every_passage():
    out = copy_task_retrieval(steps=3, n_questions=6, store_size=10)
    for mode in ("closed-book", "with retrieval"):
        # an exactly right answer has all three digits right, so exact <= per-digit accuracy
        assert 0.0 <= out["accuracy"][mode] <= out["digit_accuracy"][mode] + 1e-12
        assert out["digit_accuracy"][mode] <= 1.0
    assert out["retrieval_hits"] == 1.0  # keys are distinct words, so BM25 ranks the right passage first
    assert out["n_questions"] == 6 and out["chance"] == pytest.approx(1e-3)


def test_copy_task_retrieval_rejects_more_questions_than_facts():
    with pytest.raises(ValueError, match="n_questions"):
        copy_task_retrieval(steps=1, n_questions=11, store_size=10)
    with pytest.raises(ValueError, match="steps"):
        copy_task_retrieval(steps=0)
