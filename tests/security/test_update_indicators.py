"""Update indicators: streamed norms, secret sampling, full finiteness, weight shares."""

from __future__ import annotations

import math

import numpy as np
import pytest
from flwr.app import ArrayRecord

from flmon.security.updates import (
    DEFAULT_THRESHOLD,
    MalformedUpdateError,
    all_finite,
    round_stats,
    sample_positions,
    split_positions,
    summarize_update,
    weight_scores,
)
from tests.security.guardkit import HONEST, client, run, sample

SIZE = 100_000
SAMPLED = 1_000


def _direction(size: int) -> np.ndarray:
    return np.linspace(0.5, 1.5, size).astype(np.float32)


# -- summarize_update --------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [1, 7, 1 << 18])
def test_streamed_norm_and_sample_match_the_float64_update(chunk: int) -> None:
    rng = np.random.default_rng(1)
    ref = [rng.standard_normal((5, 7)).astype(np.float32), rng.standard_normal(11)
           .astype(np.float32)]
    mine = [(r + 0.01 * rng.standard_normal(r.shape)).astype(np.float32) for r in ref]
    full = np.concatenate([(m.astype(np.float64) - r.astype(np.float64)).ravel()
                           for m, r in zip(mine, ref, strict=True)])
    positions = np.array([0, 3, 34, 35, 45], dtype=np.int64)
    summary = summarize_update(mine, ref, split_positions(positions, [35, 11]), chunk=chunk)
    assert summary.norm == pytest.approx(float(np.linalg.norm(full)), rel=1e-5)
    assert np.allclose(summary.sample, full[positions], rtol=1e-6)
    everything = summarize_update(mine, ref, None, chunk=chunk)
    assert np.allclose(everything.sample, full, rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 99_999])
def test_one_non_finite_coordinate_anywhere_is_malformed(bad: float, where: int) -> None:
    ref = [np.zeros(SIZE, np.float32)]
    mine = [np.full(SIZE, 0.1, np.float32)]
    mine[0][where] = bad
    positions = split_positions(sample_positions(SIZE, 10, np.random.default_rng(0)), [SIZE])
    with pytest.raises(MalformedUpdateError, match="non-finite"):
        summarize_update(mine, ref, positions)
    assert not all_finite(mine)
    assert all_finite([np.zeros(SIZE, np.float32), np.arange(5)])
    assert not all_finite([np.arange(5), mine[0]])  # an integer array first: still checked


def test_a_finite_update_that_overflows_float32_is_not_malformed() -> None:
    mine = [np.array([3e38, 0.0], np.float32)]
    ref = [np.array([-3e38, 0.0], np.float32)]
    assert summarize_update(mine, ref).norm == pytest.approx(6e38)


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.float64])
def test_other_dtypes_are_summed_in_float64(dtype: type) -> None:
    mine = [np.array([3, 4], dtype=dtype)]
    ref = [np.array([0, 0], dtype=dtype)]
    assert summarize_update(mine, ref).norm == pytest.approx(5.0)


@pytest.mark.parametrize("dtype", [np.uint8, np.bool_, np.int32])
def test_sampled_values_of_integer_and_bool_arrays_do_not_wrap(dtype: type) -> None:
    mine = [np.array([0, 1, 0, 1], dtype=dtype)]
    ref = [np.array([1, 0, 1, 1], dtype=dtype)]
    where = [np.array([0, 1, 3], dtype=np.int64)]
    summary = summarize_update(mine, ref, where)
    assert summary.sample.tolist() == [-1.0, 1.0, 0.0]
    assert summary.norm == pytest.approx(math.sqrt(3))


def test_sampled_float32_values_stay_float32() -> None:
    summary = summarize_update([np.ones(4, np.float32)], [np.zeros(4, np.float32)],
                               [np.array([1, 2], dtype=np.int64)])
    assert summary.sample.dtype == np.float32 and summary.sample.tolist() == [1.0, 1.0]


def test_a_non_finite_global_array_makes_the_update_malformed() -> None:
    with pytest.raises(MalformedUpdateError):
        summarize_update([np.zeros(2, np.float32)], [np.array([np.inf, 0], np.float32)])


def test_mismatched_arrays_are_malformed() -> None:
    with pytest.raises(MalformedUpdateError):
        summarize_update([np.zeros(3)], [np.zeros(4)])
    with pytest.raises(MalformedUpdateError, match="1 arrays, expected 2"):
        summarize_update([np.zeros(2)], [np.zeros(2), np.zeros(1)])
    with pytest.raises(ValueError, match="one entry per array"):
        summarize_update([np.zeros(2)], [np.zeros(2)], [np.zeros(0, np.int64)] * 2)


def test_split_positions_maps_global_positions_into_each_array() -> None:
    parts = split_positions(np.array([0, 2, 3, 9], dtype=np.int64), [3, 0, 5, 2])
    assert parts is not None
    assert [p.tolist() for p in parts] == [[0, 2], [], [0], [1]]
    assert split_positions(None, [3]) is None


# -- sampling ----------------------------------------------------------------------------
def test_positions_come_from_the_generator_not_the_round() -> None:
    a = sample_positions(SIZE, SAMPLED, np.random.default_rng(11))
    b = sample_positions(SIZE, SAMPLED, np.random.default_rng(12))
    assert a is not None and b is not None
    assert a.size == SAMPLED and np.all(np.diff(a) > 0) and a.max() < SIZE
    assert not np.array_equal(a, b)
    assert sample_positions(100, 1000, 1) is None and sample_positions(100, None, 1) is None


def test_poison_on_the_coordinates_a_round_seeded_sample_would_skip_is_flagged() -> None:
    """The attacker knows the old scheme (positions seeded by the round number) and
    sign-flips every other coordinate; with a secret per-round sample it is flagged."""
    def honest(sent: list[np.ndarray], _round: int) -> ArrayRecord:
        return ArrayRecord([sent[0] + 0.1 * _direction(SIZE)])

    def poisoned(sent: list[np.ndarray], server_round: int) -> ArrayRecord:
        update = 0.1 * _direction(SIZE)
        predictable = sample_positions(SIZE, SAMPLED, seed=server_round)
        flipped = -update
        flipped[predictable] = update[predictable]
        return ArrayRecord([sent[0] + flipped])

    apps = {i: client(HONEST, honest) for i in (1, 2, 3, 4)}
    apps[5] = client(HONEST, poisoned)
    _, metrics = run(apps, 2, initial_arrays=ArrayRecord([np.zeros(SIZE, np.float32)]),
                     update_sample_size=SAMPLED)
    assert sample(metrics, "fl_anomalous_updates_total", client="5") == 2
    for node in ("1", "2", "3", "4"):
        assert sample(metrics, "fl_anomalous_updates_total", client=node) == 0
    cosine = sample(metrics, "fl_client_update_cosine_similarity", client="5")
    assert cosine is not None and cosine < -0.9


def test_two_wrappers_sample_different_positions() -> None:
    from flwr.serverapp.strategy import FedAvg

    from flmon.flower import instrument
    from flmon.metrics import FlmonMetrics

    draws = [sample_positions(SIZE, SAMPLED, instrument(
        FedAvg(), metrics=FlmonMetrics(sides=("server",)))._rng) for _ in range(2)]
    assert draws[0] is not None and draws[1] is not None
    assert not np.array_equal(draws[0], draws[1])


# -- scores ------------------------------------------------------------------------------
def test_a_round_of_all_zero_updates_scores_zero_not_nan() -> None:
    stats = round_stats({i: np.zeros(10) for i in range(1, 6)},
                        norms=dict.fromkeys(range(1, 6), 0.0))
    for s in stats.values():
        assert s.score == 0.0 and s.norm == 0.0 and s.cosine == 0.0


def test_one_moving_client_among_still_ones_has_a_finite_score() -> None:
    updates = {i: np.zeros(10) for i in range(1, 6)}
    updates[5] = np.ones(10)
    stats = round_stats(updates)
    assert np.isfinite(stats[5].score) and stats[5].score >= DEFAULT_THRESHOLD


def test_weight_scores_flag_a_ninety_percent_claim_among_equals_only() -> None:
    for equals in (3, 4, 16):
        claim = 9 * 50 * equals  # 90 % of the round's total
        scores = weight_scores([50.0] * equals + [float(claim)])
        assert scores[-1] >= DEFAULT_THRESHOLD, equals
        assert np.all(scores[:-1] == 0.0)
    # honest quantity skew (40 to 400 examples) is not a finding
    assert np.all(weight_scores([40.0] * 5 + [400.0]) < DEFAULT_THRESHOLD)
    assert np.all(weight_scores([40.0, 400.0]) == 0.0)  # fewer than 3: no statistics


def test_round_stats_reports_weight_shares_and_folds_the_weight_score() -> None:
    updates = {i: np.ones(4) for i in range(1, 5)}
    stats = round_stats(updates, weights={1: 50.0, 2: 50.0, 3: 50.0, 4: 1350.0})
    assert stats[4].weight_share == pytest.approx(0.9)
    assert stats[1].weight_share == pytest.approx(50 / 1500)
    assert stats[4].score == stats[4].weight_score >= DEFAULT_THRESHOLD
    assert round_stats(updates)[4].weight_share is None


def test_a_client_claiming_ninety_percent_of_the_examples_is_flagged_and_its_share_exported(
        ) -> None:
    apps = {i: client() for i in (1, 2, 3, 4)}
    apps[5] = client({**HONEST, "num-examples": 9 * 50 * 4})
    _, metrics = run(apps, 2)
    assert sample(metrics, "fl_client_weight_share", client="5") == pytest.approx(0.9)
    assert sample(metrics, "fl_client_weight_share", client="1") == pytest.approx(0.025)
    assert sample(metrics, "fl_anomalous_updates_total", client="5") == 2
    assert sample(metrics, "fl_anomalous_updates_total", client="1") == 0
    score = sample(metrics, "fl_client_anomaly_score", client="5")
    assert score is not None and score >= DEFAULT_THRESHOLD


def test_scores_use_the_round_mad_when_it_is_above_the_floor() -> None:
    updates = {i: np.ones(3) for i in range(1, 6)}
    norms = {1: 1.0, 2: 3.0, 3: 5.0, 4: 7.0, 5: 9.0}  # median 5, MAD 2 (floor 1.5)
    stats = round_stats(updates, norms=norms)
    assert stats[5].norm == 9.0 and stats[1].norm == 1.0  # the exact norms given
    assert stats[5].norm_score == pytest.approx(0.6745 * 4 / 2)
    assert stats[1].norm_score == 0.0


def test_norms_from_the_vectors_and_a_lone_client() -> None:
    stats = round_stats({1: np.array([3.0, 4.0]), 2: np.array([0.0, 1.0])})
    assert stats[1].norm == 5.0 and stats[2].norm == 1.0
    assert round_stats({1: np.array([3.0, 4.0])}, scale=2.0)[1].norm == 10.0
    alone = round_stats({1: np.zeros(3)})[1]
    assert alone.cosine == 1.0 and alone.score == 0.0


def test_sampling_edges_and_reproducibility_for_a_given_generator() -> None:
    assert sample_positions(100, 100, 1) is None
    again = [sample_positions(SIZE, 50, np.random.default_rng(7)) for _ in range(2)]
    assert again[0] is not None and np.array_equal(again[0], again[1])
    seeded = [sample_positions(SIZE, 50, 7) for _ in range(2)]
    assert seeded[0] is not None and np.array_equal(seeded[0], seeded[1])


def test_large_integers_are_squared_without_overflow() -> None:
    summary = summarize_update([np.array([4_000_000_000], np.int64)], [np.zeros(1, np.int64)])
    assert summary.norm == pytest.approx(4e9)


def test_no_arrays_no_update() -> None:
    summary = summarize_update([], [])
    assert summary.norm == 0.0 and summary.sample.size == 0
    with pytest.raises(MalformedUpdateError, match="array 0: 3 values, expected 4"):
        summarize_update([np.zeros(3)], [np.zeros(4)])


def test_statistics_start_at_three_clients() -> None:
    assert weight_scores([50.0, 50.0, 1350.0])[2] >= DEFAULT_THRESHOLD
    updates = {1: np.ones(3), 2: np.ones(3), 3: np.ones(3) * 20}
    assert round_stats(updates)[3].norm_score >= DEFAULT_THRESHOLD
    two = round_stats({1: np.array([1.0, 0.0]), 2: np.array([-1.0, 0.0])})
    assert two[1].cosine == 0.0 and two[2].cosine == 0.0  # their median is zero


def test_fractional_weights_have_shares() -> None:
    stats = round_stats({1: np.ones(2), 2: np.ones(2)}, weights={1: 0.2, 2: 0.3})
    assert stats[1].weight_share == pytest.approx(0.4)


def _rounding_past_one(seed: int) -> bool:
    """Whether round_stats' own arithmetic puts x's cosine with itself above 1."""
    x = np.random.default_rng(seed).normal(size=7)
    matrix = np.stack([x, x, -x])
    norms = np.linalg.norm(matrix, axis=1)
    return bool(float((matrix @ x)[0]) / (float(norms[0]) * float(np.linalg.norm(x))) > 1.0)


def test_cosines_stay_in_minus_one_to_one_where_rounding_would_leave_them() -> None:
    # Some vectors give dot(x, x) / (|x| |x|) = 1 + 2**-52 (and -1 - 2**-52 for -x) in
    # floating point; which ones depends on the BLAS, so one is searched for.
    seed = next((s for s in range(500) if _rounding_past_one(s)), None)
    assert seed is not None
    x = np.random.default_rng(seed).normal(size=7)
    stats = round_stats({1: x, 2: x, 3: -x})
    assert [stats[i].cosine for i in (1, 2, 3)] == [1.0, 1.0, -1.0]


def test_a_cosine_that_is_not_a_number_is_reported_as_zero() -> None:
    # Norms that overflow give inf / inf: the indicator says "no direction", never NaN.
    huge = np.full(4, 1e300)
    with np.errstate(over="ignore", invalid="ignore"):  # the overflow is the point
        stats = round_stats({1: huge, 2: huge, 3: huge})
    assert [stats[i].cosine for i in (1, 2, 3)] == [0.0, 0.0, 0.0]


def test_every_chunk_is_checked_for_non_finite_values() -> None:
    values = np.ones(40)
    values[-1] = np.nan  # past the first two chunks
    assert all_finite([values], chunk=4) is False
    assert all_finite([np.ones(40)], chunk=4) is True


def test_a_non_finite_update_names_its_array() -> None:
    good, bad = np.zeros(3, dtype=np.float32), np.array([0.0, np.inf, 0.0], dtype=np.float32)
    with pytest.raises(MalformedUpdateError, match=r"^array 1: non-finite values$"):
        summarize_update([good, bad], [good, good])


def test_positions_for_another_number_of_arrays_are_refused() -> None:
    arrays = [np.zeros(3, dtype=np.float32)] * 2
    with pytest.raises(ValueError, match=r"^positions must have one entry per array$"):
        summarize_update(arrays, arrays, positions=[np.array([0])])
