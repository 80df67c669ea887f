"""The reply guard under attack, through Flower's own FedAvg loop (in-process grid).

Each case states its expected outcome: the honest replies aggregated, or, where the
guard cannot tell honest from hostile, nothing aggregated that round (the global model
stays as it was) and the run going on. In no case does the global model become the
attacker's (``ATTACK`` in every parameter).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from flwr.app import ArrayRecord

from flmon import catalog
from flmon.flower.replies import QUARANTINE_REASONS
from tests.security.guardkit import (
    ATTACK,
    HONEST,
    STEP,
    attack_arrays,
    client,
    global_values,
    quarantined,
    raw_array,
    run,
    sample,
)

HOSTILE_KEYS = {"!": 1.0, "num-examples": 50}
ROUNDS = 2


def _never_the_attackers(result: Any) -> np.ndarray:
    values = global_values(result)
    assert np.all(np.abs(values) < 1.0), values
    return values


def _rounds_completed(metrics: Any) -> float | None:
    return sample(metrics, "fl_rounds_completed_total")


@pytest.mark.parametrize("per_side", [1, 2, 3])
def test_a_tie_without_history_aggregates_nothing_and_the_run_goes_on(per_side: int) -> None:
    apps = {i: client() for i in range(1, per_side + 1)}
    apps.update({100 + i: client(HOSTILE_KEYS, attack_arrays) for i in range(per_side)})
    result, metrics = run(apps, ROUNDS)
    values = _never_the_attackers(result)
    assert np.all(values == 0.0)  # nothing aggregated: the initial model stands
    assert quarantined(metrics, "undecided_metric_keys") == 2 * per_side * ROUNDS
    assert sample(metrics, "fl_security_events_total", kind="nothing_aggregated") == ROUNDS
    assert sample(metrics, "fl_aggregation_failures_total", phase="train") == ROUNDS
    assert _rounds_completed(metrics) == ROUNDS


def test_three_against_three_with_thousands_of_extra_keys_the_honest_win() -> None:
    flood = {**HONEST, **{f"k{i}": 1.0 for i in range(5000)}}
    apps = {i: client() for i in (1, 2, 3)}
    apps.update({100 + i: client(flood, attack_arrays) for i in range(3)})
    result, metrics = run(apps, ROUNDS)
    assert np.allclose(_never_the_attackers(result), STEP * ROUNDS)
    assert quarantined(metrics, "oversized_metrics") == 3 * ROUNDS
    for node in ("100", "101", "102"):
        assert sample(metrics, "fl_model_updates_total", client=node) in (None, 0.0)


def test_three_against_three_with_one_extra_key_is_a_tie() -> None:
    apps = {i: client() for i in (1, 2, 3)}
    apps.update({100 + i: client({**HONEST, "!": 1.0}, attack_arrays) for i in range(3)})
    result, metrics = run(apps, ROUNDS)
    assert np.all(_never_the_attackers(result) == 0.0)
    assert quarantined(metrics, "undecided_metric_keys") == 6 * ROUNDS


def test_the_key_set_of_earlier_rounds_wins_a_later_tie() -> None:
    """A sleeper agrees in round 1 (the shape is established), then turns: 1 vs 1."""
    sleeper = client(lambda r: HONEST if r == 1 else HOSTILE_KEYS,
                     lambda sent, r: (ArrayRecord([a + STEP for a in sent]) if r == 1
                                      else attack_arrays(sent, r)))
    result, metrics = run({1: client(), 2: sleeper}, 3)
    assert np.allclose(_never_the_attackers(result), 3 * STEP)
    assert quarantined(metrics, "inconsistent_metric_keys") == 2  # rounds 2 and 3


def test_a_lone_reply_whose_peer_failed_is_not_a_majority() -> None:
    """Round 1: the honest node fails, the attacker alone replies; round 2: 1 vs 1."""
    apps: dict[int, Any] = {1: _Flaky(client()), 2: client(HOSTILE_KEYS, attack_arrays)}
    result, metrics = run(apps, 2)
    assert np.all(_never_the_attackers(result) == 0.0)
    assert quarantined(metrics, "undecided_metric_keys") == 1 + 2


class _Flaky:
    """A ClientApp that fails its first train call."""

    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, 0

    def __call__(self, msg: Any, context: Any) -> Any:
        if msg.metadata.message_type.startswith("train"):
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("down in round 1")
        return self.app(msg, context)


def test_a_plurality_of_differing_honest_key_sets_is_not_a_majority() -> None:
    other = {"loss": 0.3, "f1": 0.5, "num-examples": 50}
    third = {"loss": 0.3, "auc": 0.7, "num-examples": 50}
    apps = {1: client(), 2: client(), 3: client(other), 4: client(other), 5: client(third)}
    result, metrics = run(apps, 1)
    assert np.all(global_values(result) == 0.0)
    assert quarantined(metrics, "undecided_metric_keys") == 5


def test_a_strict_majority_of_three_in_five_is_kept() -> None:
    other = {"loss": 0.3, "f1": 0.5, "num-examples": 50}
    apps = {1: client(), 2: client(), 3: client(), 4: client(other),
            5: client({"!": 1.0, "num-examples": 50}, attack_arrays)}
    result, metrics = run(apps, 1)
    assert np.allclose(_never_the_attackers(result), STEP)
    assert quarantined(metrics, "inconsistent_metric_keys") == 2


@pytest.mark.parametrize(("honest", "hostile"), [
    ({**HONEST, "curve": 0.5}, {**HONEST, "curve": [0.5, 0.5]}),
    ({**HONEST, "curve": [0.5, 0.5]}, {**HONEST, "curve": 0.5}),
    ({**HONEST, "curve": [0.5, 0.5]}, {**HONEST, "curve": [0.5, 0.5, 0.5]}),
], ids=["list-for-number", "number-for-list", "longer-list"])
def test_a_value_of_another_type_or_length_is_set_aside(
        honest: dict[str, Any], hostile: dict[str, Any]) -> None:
    apps = {1: client(honest), 2: client(honest), 3: client(hostile, attack_arrays)}
    result, metrics = run(apps, ROUNDS)
    assert np.allclose(_never_the_attackers(result), STEP * ROUNDS)
    assert quarantined(metrics, "inconsistent_metric_types") == ROUNDS
    assert _rounds_completed(metrics) == ROUNDS


@pytest.mark.parametrize(("weight", "reason"), [
    (0, "invalid_weight"),
    (-100, "invalid_weight"),
    (-249, "invalid_weight"),
    (1e13, "invalid_weight"),
    (float("nan"), "non_finite_metrics"),
    (float("inf"), "non_finite_metrics"),
    (1e9, "outlying_weight"),
], ids=["zero", "minus-100", "minus-249", "above-max", "nan", "inf", "huge"])
def test_a_bad_weight_is_set_aside(weight: Any, reason: str) -> None:
    apps = {1: client(), 2: client(),
            3: client({**HONEST, "num-examples": weight}, attack_arrays)}
    result, metrics = run(apps, ROUNDS)
    assert np.allclose(_never_the_attackers(result), STEP * ROUNDS)
    assert quarantined(metrics, reason) == ROUNDS
    assert _rounds_completed(metrics) == ROUNDS


def test_a_huge_weight_against_one_honest_client_is_undecided() -> None:
    apps = {1: client(), 2: client({**HONEST, "num-examples": 10**9}, attack_arrays)}
    result, metrics = run(apps, ROUNDS)
    assert np.all(_never_the_attackers(result) == 0.0)
    assert quarantined(metrics, "undecided_weights") == 2 * ROUNDS


@pytest.mark.parametrize("update_stats", [True, False])
@pytest.mark.parametrize("kind", ["text", "complex", "wrong-shape", "forged-dtype",
                                  "truncated", "array-key"])
def test_malformed_arrays_are_set_aside_with_or_without_update_stats(
        kind: str, update_stats: bool) -> None:
    def arrays(sent: list[np.ndarray], _round: int) -> ArrayRecord:
        if kind == "text":
            return ArrayRecord([np.full(a.shape, "1000") for a in sent])
        if kind == "complex":
            return ArrayRecord([np.full(a.shape, ATTACK + 1j) for a in sent])
        if kind == "wrong-shape":
            return ArrayRecord([np.full(a.size + 1, ATTACK, np.float32) for a in sent])
        if kind == "forged-dtype":  # declares float32, carries complex bytes
            return ArrayRecord({str(i): raw_array(np.full(a.shape, ATTACK + 1j), "float32")
                                for i, a in enumerate(sent)})
        if kind == "truncated":
            good = [raw_array(np.full(a.shape, ATTACK, np.float32)) for a in sent]
            for a in good:
                a.data = a.data[:-4]
            return ArrayRecord({str(i): a for i, a in enumerate(good)})
        return ArrayRecord({f"x{i}": raw_array(np.full(a.shape, ATTACK, np.float32))
                            for i, a in enumerate(sent)})

    apps = {1: client(), 2: client(), 3: client(HONEST, arrays)}
    result, metrics = run(apps, ROUNDS, update_stats=update_stats)
    assert np.allclose(_never_the_attackers(result), STEP * ROUNDS)
    reason = "inconsistent_array_keys" if kind == "array-key" else "malformed_arrays"
    assert quarantined(metrics, reason) == ROUNDS
    assert _rounds_completed(metrics) == ROUNDS


@pytest.mark.parametrize("update_stats", [True, False])
def test_one_non_finite_coordinate_is_set_aside_with_or_without_update_stats(
        update_stats: bool) -> None:
    def arrays(sent: list[np.ndarray], _round: int) -> ArrayRecord:
        out = [a + STEP for a in sent]
        out[0][3, 2] = np.nan
        return ArrayRecord(out)

    apps = {1: client(), 2: client(), 3: client(HONEST, arrays)}
    result, metrics = run(apps, ROUNDS, update_stats=update_stats)
    assert np.allclose(_never_the_attackers(result), STEP * ROUNDS)
    assert quarantined(metrics, "non_finite_arrays") == ROUNDS


def test_every_reason_starts_at_zero_and_is_documented_in_the_catalog() -> None:
    result, metrics = run({1: client(), 2: client()}, 1)
    assert np.allclose(global_values(result), STEP)
    for phase in ("train", "evaluate"):
        for reason in QUARANTINE_REASONS:
            assert sample(metrics, "fl_replies_quarantined_total", phase=phase,
                          reason=reason) == 0.0, (phase, reason)
    spec = next(s for s in catalog.CATALOG if s.name == "fl_replies_quarantined_total")
    assert all(reason in spec.help for reason in QUARANTINE_REASONS)
