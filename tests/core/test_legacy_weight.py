"""Weights on the legacy API (``FitRes.num_examples``), through Flower's own legacy loop
(``start_grid``) with real legacy ClientApps in process.

Honest clients move every parameter by +0.1 per round and claim 50 examples; a hostile
one sends ``ATTACK`` in every parameter and claims what the test says. Without the
guard, FedAvg weights each update by its claim, so a claim of 10**12 makes the global
model the attacker's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from flwr.client import Client, NumPyClient
from flwr.clientapp import ClientApp
from flwr.common import (
    Code,
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Scalar,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.strategy import FedAvg

from flmon.flower import instrument
from flmon.flower.replies import Limits
from flmon.metrics import FlmonMetrics
from flmon.security.updates import DEFAULT_THRESHOLD
from tests.core.legacy_clients import (
    ATTACK,
    STEP,
    RecordingFedAvg,
    run_legacy,
    trained,
)

HONEST = 50
ROUNDS = 2
METRICS: dict[str, Scalar] = {"loss": 0.3, "accuracy": 0.9}


class _Claiming(NumPyClient):
    """Claims ``examples`` in fit and evaluate; sends ``ATTACK`` arrays when hostile."""

    def __init__(self, examples: int, hostile: bool) -> None:
        self.examples, self.hostile = examples, hostile

    def fit(self, parameters: list[np.ndarray], config: dict[str, Scalar]
            ) -> tuple[list[np.ndarray], int, dict[str, Scalar]]:
        return trained(parameters, self.hostile), self.examples, dict(METRICS)

    def evaluate(self, parameters: list[np.ndarray], config: dict[str, Scalar]
                 ) -> tuple[float, int, dict[str, Scalar]]:
        return 0.4, self.examples, {"accuracy": 0.8}


class _FloatClaim(Client):
    """A plain ``Client``: nothing stops it claiming a float (NumPyClient wants an int)."""

    def __init__(self, examples: float) -> None:
        self.examples = examples

    def fit(self, ins: FitIns) -> FitRes:
        arrays = trained(parameters_to_ndarrays(ins.parameters), hostile=False)
        return FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays),
                      self.examples, dict(METRICS))  # type: ignore[arg-type]

    def evaluate(self, ins: EvaluateIns) -> EvaluateRes:
        return EvaluateRes(Status(Code.OK, ""), 0.4, HONEST, {"accuracy": 0.8})


def _app(examples: int = HONEST, hostile: bool = False) -> ClientApp:
    client = _Claiming(examples, hostile)
    return ClientApp(client_fn=lambda context: client.to_client())


def _float_app(examples: float) -> ClientApp:
    client = _FloatClaim(examples)
    return ClientApp(client_fn=lambda context: client)


def _run(apps: Mapping[int, ClientApp], **options: Any
         ) -> tuple[RecordingFedAvg, FlmonMetrics]:
    return run_legacy(apps, ROUNDS, **options)


def _v(metrics: FlmonMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def _quarantined(metrics: FlmonMetrics, reason: str) -> float | None:
    return _v(metrics, "fl_replies_quarantined_total", phase="train", reason=reason)


def _model(base: RecordingFedAvg) -> np.ndarray:
    assert base.final is not None
    return np.concatenate([a.ravel() for a in base.final])


def _attacked(claim: int, honest: int = HONEST) -> dict[int, ClientApp]:
    return {1: _app(honest), 2: _app(honest), 100: _app(claim, hostile=True)}


def test_without_the_guard_a_huge_claim_takes_the_whole_average() -> None:
    base, _ = _run(_attacked(10**12), quarantine=False)
    assert np.allclose(_model(base), ATTACK)


@pytest.mark.parametrize(("claim", "honest"), [(0, HONEST), (-100, HONEST), (-249, 125),
                                               (10**13, HONEST)],
                         ids=["zero", "negative", "sum-to-one", "above-1e12"])
def test_an_invalid_num_examples_is_set_aside_and_the_honest_average_stands(
        claim: int, honest: int) -> None:
    base, m = _run(_attacked(claim, honest))
    assert np.allclose(_model(base), STEP * ROUNDS)
    assert base.aggregated == {1: [1, 2], 2: [1, 2]}
    assert _quarantined(m, "invalid_weight") == ROUNDS
    assert _v(m, "fl_replies_quarantined_total", phase="evaluate",
              reason="invalid_weight") == ROUNDS
    assert _v(m, "fl_model_updates_total", client="100") is None
    assert _v(m, "fl_client_weight_share", client="1") == 0.5
    assert _v(m, "fl_client_weight_share", client="100") is None


def test_a_claim_above_1000_times_the_median_is_an_outlier_and_the_honest_average_stands(
        ) -> None:
    base, m = _run(_attacked(1000 * HONEST + 1))
    assert np.allclose(_model(base), STEP * ROUNDS)
    assert base.aggregated == {1: [1, 2], 2: [1, 2]}
    assert _quarantined(m, "outlying_weight") == ROUNDS
    assert _quarantined(m, "invalid_weight") == 0


def test_a_claim_at_exactly_1000_times_the_median_is_kept_and_scored() -> None:
    apps = {1: _app(), 2: _app(), 100: _app(1000 * HONEST)}  # an honest update
    base, m = _run(apps)
    assert base.aggregated == {1: [1, 2, 100], 2: [1, 2, 100]}
    assert np.allclose(_model(base), STEP * ROUNDS)
    assert _quarantined(m, "outlying_weight") == 0
    assert _v(m, "fl_client_weight_share", client="100") == pytest.approx(
        1000 * HONEST / (1002 * HONEST))
    # The same update as the others: only the claimed share makes it a finding.
    score = _v(m, "fl_client_anomaly_score", client="100")
    assert score is not None and score >= DEFAULT_THRESHOLD
    honest_score = _v(m, "fl_client_anomaly_score", client="1")
    assert honest_score is not None and honest_score < DEFAULT_THRESHOLD
    assert _v(m, "fl_anomalous_updates_total", client="100") == ROUNDS


def test_two_claims_more_than_1000_times_apart_aggregate_nothing() -> None:
    base, m = _run({1: _app(), 100: _app(1000 * HONEST + 1, hostile=True)})
    assert np.all(_model(base) == 0.0)  # the initial parameters stand
    assert base.aggregated == {}
    assert _quarantined(m, "undecided_weights") == 2 * ROUNDS
    assert _v(m, "fl_security_events_total", kind="nothing_aggregated") == 2 * ROUNDS
    assert _v(m, "fl_rounds_completed_total") == ROUNDS


def test_two_claims_exactly_1000_times_apart_are_aggregated() -> None:
    base, m = _run({1: _app(), 2: _app(1000 * HONEST)})
    assert base.aggregated == {1: [1, 2], 2: [1, 2]}
    assert _quarantined(m, "undecided_weights") == 0


def test_each_clients_share_of_the_round_weight_is_exported() -> None:
    _, m = _run({1: _app(10), 2: _app(30), 3: _app(60)})
    shares = [_v(m, "fl_client_weight_share", client=str(n)) for n in (1, 2, 3)]
    assert shares == pytest.approx([0.1, 0.3, 0.6])


@pytest.mark.parametrize(("claim", "reason"), [(float("nan"), "non_finite_metrics"),
                                               (float("inf"), "non_finite_metrics"),
                                               (-0.5, "invalid_weight")],
                         ids=["nan", "inf", "negative"])
def test_a_float_claim_that_is_not_a_finite_positive_number_is_set_aside(
        claim: float, reason: str) -> None:
    base, m = _run({1: _app(), 2: _app(), 3: _float_app(claim)})
    assert base.aggregated == {1: [1, 2], 2: [1, 2]}
    assert _quarantined(m, reason) == ROUNDS


def test_a_finite_float_claim_is_a_weight_like_any_other() -> None:
    base, m = _run({1: _app(), 2: _app(), 3: _float_app(25.5)})
    assert base.aggregated == {1: [1, 2, 3], 2: [1, 2, 3]}
    assert _v(m, "fl_client_weight_share", client="3") == pytest.approx(25.5 / 125.5)


def test_reply_limits_bound_the_legacy_weights() -> None:
    base, m = _run(_attacked(10 * HONEST + 1),
                   reply_limits=Limits(max_weight_ratio=10.0))
    assert base.aggregated == {1: [1, 2], 2: [1, 2]}
    assert _quarantined(m, "outlying_weight") == ROUNDS


def test_reply_limits_of_the_wrong_type_are_refused_by_name() -> None:
    with pytest.raises(TypeError, match="reply_limits"):
        instrument(FedAvg(), reply_limits={"max_weight_ratio": 10.0})
