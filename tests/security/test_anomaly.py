"""The update anomaly score: unit behaviour and the seeded non-IID benchmark."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.anomaly_fpr import SKEWS, make_partitions, measure, run_federation
from flmon.security.updates import (
    DEFAULT_THRESHOLD,
    MalformedUpdateError,
    round_stats,
    sample_positions,
    summarize_update,
)


def _honest(n: int, size: int = 200, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=size)
    return {i: direction * rng.uniform(0.7, 1.3) + 0.3 * rng.normal(size=size)
            for i in range(1, n + 1)}


def test_honest_round_has_no_anomaly_and_scores_are_finite() -> None:
    stats = round_stats(_honest(6))
    assert len(stats) == 6
    for s in stats.values():
        assert 0 <= s.score < DEFAULT_THRESHOLD
        assert 0.5 < s.cosine <= 1.0


@pytest.mark.parametrize("factor", [5.0, 50.0])
def test_a_scaled_update_is_flagged_by_its_norm(factor: float) -> None:
    updates = _honest(6)
    updates[6] = updates[6] * factor
    stats = round_stats(updates)
    assert stats[6].norm_score >= DEFAULT_THRESHOLD
    assert all(stats[i].score < DEFAULT_THRESHOLD for i in range(1, 6))


def test_a_sign_flipped_update_is_flagged_by_its_cosine() -> None:
    updates = _honest(6)
    updates[6] = -updates[6]
    stats = round_stats(updates)
    assert stats[6].cosine < -0.5
    assert stats[6].cosine_score >= DEFAULT_THRESHOLD
    assert all(stats[i].score < DEFAULT_THRESHOLD for i in range(1, 6))


def test_a_small_update_is_not_an_anomaly() -> None:
    """Only large norms count: a small update cannot take over the average."""
    updates = _honest(6)
    updates[6] = updates[6] * 0.01
    stats = round_stats(updates)
    assert stats[6].norm_score == 0.0
    assert stats[6].score < DEFAULT_THRESHOLD


def test_the_reference_is_robust_to_a_huge_update() -> None:
    """A huge update cannot pull the reference towards itself (it would with a mean)."""
    updates = _honest(6)
    updates[6] = -1000.0 * updates[6]
    stats = round_stats(updates)
    assert stats[6].cosine < -0.5
    assert all(stats[i].cosine > 0.5 for i in range(1, 6))


def test_fewer_than_three_clients_have_no_scores() -> None:
    updates = _honest(2)
    updates[2] = -50 * updates[2]
    stats = round_stats(updates)
    assert all(s.score == 0.0 for s in stats.values())
    assert stats[2].norm > stats[1].norm


def test_identical_updates_do_not_turn_noise_into_alarms() -> None:
    base = np.linspace(-1, 1, 100)
    rng = np.random.default_rng(3)
    updates = {i: base + 1e-9 * rng.normal(size=100) for i in range(1, 7)}
    assert all(s.score < 1.0 for s in round_stats(updates).values())


def test_sampling_estimates_the_full_norm() -> None:
    rng = np.random.default_rng(0)
    full = rng.normal(size=100_000)
    positions = sample_positions(full.size, 10_000, seed=1)
    assert positions is not None and positions.size == 10_000
    scale = np.sqrt(full.size / positions.size)
    stats = round_stats({1: full[positions], 2: full[positions], 3: full[positions]}, scale)
    assert stats[1].norm == pytest.approx(np.linalg.norm(full), rel=0.03)
    assert sample_positions(100, 1000, seed=1) is None


def test_malformed_updates_raise() -> None:
    with pytest.raises(MalformedUpdateError):
        summarize_update([np.zeros(3)], [np.zeros(4)])
    with pytest.raises(MalformedUpdateError):
        summarize_update([np.array([np.nan, 0.0])], [np.zeros(2)])
    with pytest.raises(MalformedUpdateError):
        summarize_update([np.zeros(2)], [np.zeros(2), np.zeros(1)])


def test_benchmark_partitions_are_non_iid() -> None:
    parts = make_partitions(0, 6, SKEWS["moderate"])
    sizes = {len(p.y) for p in parts}
    shares = [float(p.y.mean()) for p in parts]
    means = np.stack([p.x.mean(axis=0) for p in parts])
    assert len(sizes) > 1
    assert max(shares) - min(shares) > 0.1
    assert np.ptp(means, axis=0).mean() > 0.2


def test_benchmark_run_records_the_attacker_in_flmon_metrics() -> None:
    scores, metrics = run_federation(seed=1, clients=6, rounds=2, attacker="scaled")
    assert len(scores.rounds) == 2
    flagged = metrics.registry.get_sample_value("fl_anomalous_updates_total", {"client": "6"})
    assert flagged == sum(r[6].score >= DEFAULT_THRESHOLD for r in scores.rounds) >= 1


def test_benchmark_figures_on_a_small_seeded_set() -> None:
    """The benchmark at a tiny size: low false positives, scaled updates caught.

    The full figures (100 seeds, in docs/security.md) come from
    ``python -m benchmarks.anomaly_fpr --seeds 100``.
    """
    figures = measure(seeds=range(8), clients=6, rounds=3)
    assert figures.honest_updates == 8 * 3 * 6
    assert figures.false_positive_rate <= 0.02
    assert figures.honest_score_max < 10
    scaled = figures.attack["scaled"]
    assert scaled["attacker_updates"] == 8 * 3
    assert scaled["detection_rate"] >= 0.8
    assert scaled["runs_isolated_in_first_two_rounds"] >= 0.75
    flip = figures.attack["sign-flip"]
    assert 0.0 < flip["detection_rate"] <= 1.0
    assert flip["honest_false_positive_rate"] <= 0.05
    with pytest.raises(ValueError, match="skew"):
        measure(seeds=1, skew="extreme")
