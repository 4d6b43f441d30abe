"""Tests of lmcourse.sampling, with the transformers logits processors as the oracle."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from lmcourse.devices import draw_multinomial, draw_uniform
from lmcourse.sampling import (
    SamplingConfig,
    apply_repetition_penalty,
    apply_temperature,
    decode_step,
    min_p_filter,
    process_logits,
    sample_next,
    top_k_filter,
    top_p_filter,
)

V = 50


def random_logits(seed: int, B: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, V, generator=g) * 3


def tied_logits() -> torch.Tensor:
    """Rows with many exact ties (integer logits), where sorting order matters."""
    g = torch.Generator().manual_seed(7)
    return torch.randint(-3, 4, (6, V), generator=g).float()


def dummy_ids(B: int) -> torch.Tensor:
    return torch.zeros(B, 1, dtype=torch.long)


def assert_same(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert ours.shape == theirs.shape
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs)), "different tokens removed"
    finite = ~torch.isinf(theirs)
    torch.testing.assert_close(ours[finite], theirs[finite], rtol=0, atol=0)


INPUTS = [random_logits(0), random_logits(1, B=3), tied_logits()]


@pytest.mark.parametrize("logits", INPUTS)
@pytest.mark.parametrize("t", [0.3, 1.0, 1.7])
def test_temperature_matches_hf(logits, t):
    assert_same(apply_temperature(logits, t), TemperatureLogitsWarper(t)(dummy_ids(len(logits)), logits.clone()))


@pytest.mark.parametrize("logits", INPUTS)
@pytest.mark.parametrize("k", [1, 2, 5, 17, V, V + 10])
def test_top_k_matches_hf(logits, k):
    assert_same(top_k_filter(logits, k), TopKLogitsWarper(k)(dummy_ids(len(logits)), logits.clone()))


def nucleus_reference(row: list[float], p: float) -> set[int]:
    """Holtzman et al.'s definition, written naively: walk the ranking (larger id first
    among ties), keep tokens until the kept mass reaches p."""
    probs = torch.softmax(torch.tensor(row, dtype=torch.float64), -1).tolist()
    order = sorted(range(len(row)), key=lambda i: (-row[i], -i))
    kept, mass = set(), 0.0
    for i in order:
        kept.add(i)
        mass += probs[i]
        if mass >= p:
            break
    return kept


@pytest.mark.parametrize("logits", INPUTS[:2])  # no ties: the kept set is unique
@pytest.mark.parametrize("p", [0.01, 0.3, 0.5, 0.9, 0.99, 1.0])
def test_top_p_matches_hf(logits, p):
    assert_same(top_p_filter(logits, p), TopPLogitsWarper(p)(dummy_ids(len(logits)), logits.clone()))


@pytest.mark.parametrize("p", [0.01, 0.3, 0.5, 0.9, 0.99])
def test_top_p_with_ties_follows_the_definition(p):
    """With ties the smallest nucleus is not unique: ours keeps the larger ids (a stable
    ascending sort's order); transformers' unstable sort may pick others of the tie, but
    always as many tokens."""
    logits = tied_logits()
    ours = top_p_filter(logits, p)
    theirs = TopPLogitsWarper(p)(dummy_ids(len(logits)), logits.clone())
    for r, row in enumerate(logits.tolist()):
        assert set(torch.isfinite(ours[r]).nonzero().flatten().tolist()) == nucleus_reference(row, p)
        assert int(torch.isfinite(ours[r]).sum()) == int(torch.isfinite(theirs[r]).sum())


def test_top_p_boundary_mass_exactly_p():
    """Probabilities 1/2, 1/4, 1/8, 1/8 are exact in float: p = 3/4 is reached exactly by the
    2nd token, which is kept (the smallest set whose mass *reaches* p); p just above 3/4
    needs a 3rd token, and of the tied 1/8 tokens the larger id is kept."""
    logits = torch.log(torch.tensor([[0.125, 0.25, 0.5, 0.125]]))
    probs = torch.softmax(logits, -1)
    assert probs[0].tolist() == [0.125, 0.25, 0.5, 0.125]  # the case really is exact
    assert torch.isfinite(top_p_filter(logits, 0.75)).tolist() == [[False, True, True, False]]
    assert torch.isfinite(top_p_filter(logits, 0.7500001)).tolist() == [[False, True, True, True]]
    assert torch.isfinite(top_p_filter(logits, 0.5)).tolist() == [[False, False, True, False]]
    for p in (0.5, 0.75, 0.7500001, 0.875):
        assert_same(top_p_filter(logits, p), TopPLogitsWarper(p)(dummy_ids(1), logits.clone()))


def test_top_p_keeps_crossing_token():
    # probs 0.5, 0.3, 0.2: p = 0.6 needs 0.5 + 0.3 (the crossing token is kept).
    logits = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.2)]])
    out = top_p_filter(logits, 0.6)
    assert torch.isfinite(out[0, :2]).all() and torch.isinf(out[0, 2])
    assert_same(out, TopPLogitsWarper(0.6)(dummy_ids(1), logits.clone()))
    assert torch.isfinite(top_p_filter(logits, 1e-6)).sum() == 1  # always >= 1 token


@pytest.mark.parametrize("logits", INPUTS)
@pytest.mark.parametrize("m", [0.0, 0.05, 0.2, 0.5, 1.0])
def test_min_p_matches_hf(logits, m):
    assert_same(min_p_filter(logits, m), MinPLogitsWarper(m)(dummy_ids(len(logits)), logits.clone()))


@pytest.mark.parametrize("penalty", [0.7, 1.0, 1.3, 2.0])
def test_repetition_penalty_matches_hf(penalty):
    logits = random_logits(3)
    g = torch.Generator().manual_seed(4)
    prev = torch.randint(0, V, (4, 12), generator=g)  # with repeats
    theirs = RepetitionPenaltyLogitsProcessor(penalty)(prev, logits.clone())
    assert_same(apply_repetition_penalty(logits, prev, penalty), theirs)
    # ragged lists give the same as the tensor rows
    assert_same(apply_repetition_penalty(logits, prev.tolist(), penalty), theirs)


def test_repetition_penalty_ragged_and_single_row():
    logits = torch.tensor([[2.0, -2.0, 1.0], [2.0, -2.0, 1.0]])
    out = apply_repetition_penalty(logits, [[0, 1, 0], [2]], 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0], [2.0, -2.0, 0.5]]
    assert apply_repetition_penalty(logits[0], [1], 2.0).tolist() == [2.0, -4.0, 1.0]


def test_filters_work_on_any_leading_shape_and_do_not_modify_input():
    logits = torch.randn(2, 3, V)
    before = logits.clone()
    for out in (top_k_filter(logits, 5), top_p_filter(logits, 0.5), min_p_filter(logits, 0.1)):
        assert out.shape == logits.shape
    assert torch.equal(logits, before)
    row = logits[0, 0]
    assert torch.equal(top_k_filter(row, 5), top_k_filter(row.unsqueeze(0), 5)[0])
    assert torch.equal(top_p_filter(row, 0.5), top_p_filter(row.unsqueeze(0), 0.5)[0])


CONFIGS = [
    SamplingConfig(),
    SamplingConfig(temperature=0.7, top_k=10),
    SamplingConfig(temperature=1.3, top_p=0.8),
    SamplingConfig(temperature=0.9, min_p=0.1),
    SamplingConfig(temperature=0.8, top_k=20, top_p=0.9, min_p=0.05, repetition_penalty=1.3),
    SamplingConfig(temperature=1.0, top_k=3, repetition_penalty=0.8),
]


def hf_chain(cfg: SamplingConfig) -> LogitsProcessorList:
    procs = LogitsProcessorList()
    if cfg.repetition_penalty is not None:
        procs.append(RepetitionPenaltyLogitsProcessor(cfg.repetition_penalty))
    if cfg.temperature not in (0, 1.0):
        procs.append(TemperatureLogitsWarper(cfg.temperature))
    if cfg.top_k is not None:
        procs.append(TopKLogitsWarper(cfg.top_k))
    if cfg.top_p is not None:
        procs.append(TopPLogitsWarper(cfg.top_p))
    if cfg.min_p is not None:
        procs.append(MinPLogitsWarper(cfg.min_p))
    return procs


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("logits", INPUTS[:2])
def test_process_logits_matches_hf_chain(cfg, logits):
    g = torch.Generator().manual_seed(5)
    prev = torch.randint(0, V, (len(logits), 8), generator=g)
    assert_same(process_logits(logits, cfg, prev), hf_chain(cfg)(prev, logits.clone()))


def test_sample_next_greedy_seed_and_support():
    logits = random_logits(11)
    assert torch.equal(sample_next(logits, SamplingConfig(temperature=0)), logits.argmax(-1))
    cfg = SamplingConfig(temperature=1.0, top_k=3)
    a = sample_next(logits, cfg, torch.Generator().manual_seed(0))
    b = sample_next(logits, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == (4,) and a.dtype == torch.long
    allowed = torch.topk(logits, 3).indices
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        ids = sample_next(logits, cfg, g)
        assert (allowed == ids.unsqueeze(-1)).any(-1).all()


def test_sample_next_frequencies_follow_processed_distribution():
    logits = torch.tensor([[math.log(0.6), math.log(0.3), math.log(0.1)]]).repeat(4000, 1)
    ids = sample_next(logits, SamplingConfig(top_p=0.85), torch.Generator().manual_seed(0))
    freq = torch.bincount(ids, minlength=3).float() / len(ids)
    assert freq[2] == 0
    assert abs(freq[0].item() - 2 / 3) < 0.03


@pytest.mark.parametrize(
    "fn, bad, name",
    [
        (lambda x: apply_temperature(torch.zeros(1, 3), x), -1.0, "temperature"),
        (lambda x: top_k_filter(torch.zeros(1, 3), x), 0, "top_k"),
        (lambda x: top_p_filter(torch.zeros(1, 3), x), 0.0, "top_p"),
        (lambda x: top_p_filter(torch.zeros(1, 3), x), 1.5, "top_p"),
        (lambda x: min_p_filter(torch.zeros(1, 3), x), -0.1, "min_p"),
        (lambda x: apply_repetition_penalty(torch.zeros(1, 3), [[0]], x), 0.0, "repetition_penalty"),
        (lambda x: SamplingConfig(temperature=x), -0.5, "temperature"),
        (lambda x: SamplingConfig(top_k=x), 0, "top_k"),
        (lambda x: SamplingConfig(top_p=x), 0.0, "top_p"),
        (lambda x: SamplingConfig(min_p=x), 2.0, "min_p"),
        (lambda x: SamplingConfig(repetition_penalty=x), -1.0, "repetition_penalty"),
    ],
)
def test_invalid_arguments_raise(fn, bad, name):
    with pytest.raises(ValueError, match=name):
        fn(bad)


# ---- validation of types and values ---------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(temperature=True), TypeError),
        (dict(temperature="0.7"), TypeError),
        (dict(temperature=float("nan")), ValueError),
        (dict(temperature=float("inf")), ValueError),
        (dict(top_k=True), TypeError),
        (dict(top_k=2.0), TypeError),
        (dict(top_k="5"), TypeError),
        (dict(top_p=True), TypeError),
        (dict(top_p="0.9"), TypeError),
        (dict(top_p=float("nan")), ValueError),
        (dict(min_p=False), TypeError),
        (dict(repetition_penalty=True), TypeError),
        (dict(repetition_penalty=float("inf")), ValueError),
    ],
)
def test_config_rejects_bools_strings_and_non_finite(kwargs, error):
    (name,) = kwargs
    with pytest.raises(error, match=name):
        SamplingConfig(**kwargs)


def test_numpy_numbers_are_accepted():
    np = pytest.importorskip("numpy")
    cfg = SamplingConfig(temperature=np.float32(0.5), top_k=np.int64(3), top_p=np.float64(0.9))
    assert cfg.top_k == 3 and isinstance(cfg.temperature, float)


def test_nan_logits_raise_for_greedy_and_sampling():
    logits = random_logits(0)
    logits[1, 3] = float("nan")
    for cfg in (SamplingConfig(temperature=0), SamplingConfig()):
        with pytest.raises(ValueError, match="NaN"):
            sample_next(logits, cfg, torch.Generator().manual_seed(0))


def test_tiny_temperature_and_penalty_give_a_clear_error():
    logits = random_logits(0)
    with pytest.raises(ValueError, match="temperature"):
        sample_next(logits, SamplingConfig(temperature=1e-40), torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="repetition_penalty"):
        sample_next(logits, SamplingConfig(repetition_penalty=1e-40), previous_ids=[[0, 1]] * 4)


def test_decode_step_reports_what_it_computed():
    logits = random_logits(2)
    cfg = SamplingConfig(temperature=0.7, top_k=5)
    choice = decode_step(logits, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(choice.processed_logits, process_logits(logits, cfg))
    torch.testing.assert_close(choice.probs, torch.softmax(choice.processed_logits, -1))
    assert torch.equal(choice.token, sample_next(logits, cfg, torch.Generator().manual_seed(3)))
    assert torch.equal(choice.token, torch.multinomial(choice.probs, 1, generator=torch.Generator().manual_seed(3))[:, 0])


# ---- the device contract: draws happen on the generator's device ---------------------


def test_draw_multinomial_runs_on_the_generators_device(monkeypatch):
    """A generator on another device than the probabilities: the probabilities travel to the
    generator, the ids come back. Simulated on CPU with a generator that reports 'meta'."""
    seen = {}

    def fake_multinomial(probs, n, generator=None):
        seen["device"] = probs.device
        return torch.zeros(probs.shape[0], n, dtype=torch.long)

    monkeypatch.setattr(torch, "multinomial", fake_multinomial)
    other = SimpleNamespace(device=torch.device("meta"))
    ids = draw_multinomial(torch.full((3, 4), 0.25), other)
    assert seen["device"] == torch.device("meta") and ids.device == torch.device("cpu") and ids.shape == (3,)
    draw_multinomial(torch.full((3, 4), 0.25), torch.Generator())
    assert seen["device"] == torch.device("cpu")  # same device: drawn in place


def test_draw_uniform_uses_the_generators_device():
    g = torch.Generator().manual_seed(0)
    u = draw_uniform((5,), g, device=torch.device("cpu"))
    assert torch.equal(u, torch.rand(5, generator=torch.Generator().manual_seed(0)))


def test_seeded_draws_are_reproducible_and_match_plain_multinomial():
    logits = random_logits(4)
    cfg = SamplingConfig(temperature=1.1, top_p=0.9)
    a = [sample_next(logits, cfg, g) for g in [torch.Generator().manual_seed(9)] for _ in range(5)]
    g = torch.Generator().manual_seed(9)
    probs = torch.softmax(process_logits(logits, cfg), -1)
    b = [torch.multinomial(probs, 1, generator=g)[:, 0] for _ in range(5)]  # today's CPU numbers
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_generator_with_cuda_logits_gives_the_cpu_tokens():
    logits = random_logits(5)
    cfg = SamplingConfig(temperature=0.9)
    cpu = sample_next(logits, cfg, torch.Generator().manual_seed(1))
    cuda = sample_next(logits.cuda(), cfg, torch.Generator().manual_seed(1))
    assert cuda.device.type == "cuda" and torch.equal(cuda.cpu(), cpu)
