"""InstrumentedStrategy around real Flower strategies, with real ClientApps in-process."""

from __future__ import annotations

import math

import numpy as np
import pytest
from flwr.app import ArrayRecord, MetricRecord
from flwr.clientapp import ClientApp
from flwr.serverapp import PrivacyConfig
from flwr.serverapp.strategy import (
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    FedProx,
    Krum,
    Strategy,
)

from flmon.flower import InstrumentedStrategy, instrument
from flmon.metrics import FlmonMetrics
from tests.core.clientapps import make_app
from tests.core.ingrid import InProcessGrid

INITIAL = ArrayRecord([np.zeros((4, 3)), np.zeros(3)])


def _fedavg(**kwargs: object) -> FedAvg:
    return FedAvg(min_available_nodes=1, min_train_nodes=1, min_evaluate_nodes=1, **kwargs)  # type: ignore[arg-type]


def _run(strategy: Strategy, apps: dict[int, ClientApp | None], rounds: int = 2,
         **instrument_kwargs: object) -> tuple[InstrumentedStrategy, FlmonMetrics]:
    metrics = FlmonMetrics(sides=("server", "sink"))
    wrapped = instrument(strategy, metrics=metrics, **instrument_kwargs)
    wrapped.start(grid=InProcessGrid(apps), initial_arrays=INITIAL, num_rounds=rounds)
    return wrapped, metrics


def _v(metrics: FlmonMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_honest_federation_counts_rounds_updates_and_clients() -> None:
    apps = {i: make_app(seed=i) for i in (1, 2, 3)}
    _, m = _run(_fedavg(), apps, rounds=3)  # type: ignore[arg-type]
    assert _v(m, "fl_rounds_completed_total") == 3
    assert _v(m, "fl_round_duration_seconds_count") == 3
    assert _v(m, "fl_current_round") == 3 and _v(m, "fl_round_in_progress") == 0
    assert _v(m, "fl_run_active") == 0 and _v(m, "fl_run_end_timestamp_seconds") > 0
    for node in ("1", "2", "3"):
        assert _v(m, "fl_model_updates_total", client=node) == 3
        assert _v(m, "fl_client_training_accuracy", client=node) == pytest.approx(0.9)
        assert _v(m, "fl_client_evaluation_loss", client=node) == pytest.approx(0.4)
        assert _v(m, "fl_client_examples_total", phase="train", client=node) == 150
        assert _v(m, "fl_client_local_epochs", client=node) == 1
        assert _v(m, "fl_client_fit_duration_seconds", phase="train", client=node) > 0
        assert _v(m, "fl_client_update_norm", client=node) > 0
        assert _v(m, "fl_client_anomaly_score", client=node) < 3.5
    assert _v(m, "fl_training_accuracy") == pytest.approx(0.9)
    assert _v(m, "fl_evaluation_accuracy") == pytest.approx(0.8)
    assert _v(m, "fl_clients_selected", phase="train") == 3
    assert _v(m, "fl_nodes_connected") == 3
    assert _v(m, "fl_telemetry_received_total") == 18
    assert sum(_v(m, "fl_telemetry_rejected_total", reason=r) for r in
               ("not_a_record", "oversized", "unknown_key", "non_finite")) == 0
    array_bytes = sum(len(a.data) for a in INITIAL.values())
    assert _v(m, "fl_bytes_sent_total", phase="train") == 3 * 3 * array_bytes
    assert _v(m, "fl_bytes_received_total", phase="train", client="1") == 3 * array_bytes
    assert _v(m, "fl_run_info", run_id="4242", strategy="FedAvg", flwr_version="1.42.0",
              flmon_version="0.1.0") == 1


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [("extra-key", "inconsistent_metric_keys"), ("nan", "non_finite_metrics"),
     ("two-metric-records", "metric_records"), ("bad-shape", "malformed_arrays")],
)
def test_a_misbehaving_client_is_set_aside_and_the_run_goes_on(behaviour: str,
                                                               reason: str) -> None:
    apps = {1: make_app(seed=1), 2: make_app(seed=2), 3: make_app(behaviour, seed=3)}
    _, m = _run(_fedavg(), apps, rounds=2)  # type: ignore[arg-type]
    assert _v(m, "fl_rounds_completed_total") == 2
    assert _v(m, "fl_replies_quarantined_total", phase="train", reason=reason) == 2
    assert _v(m, "fl_model_updates_total", client="3") == 0
    assert _v(m, "fl_model_updates_total", client="1") == 2
    assert math.isfinite(_v(m, "fl_training_accuracy"))
    assert _v(m, "fl_security_events_total", kind="reply_quarantined") == 2


def test_without_the_wrapper_the_same_client_stops_the_run() -> None:
    """The reason for quarantine: plain FedAvg dies on one inconsistent reply."""
    from flwr.serverapp.exception import InconsistentMessageReplies

    apps = {1: make_app(seed=1), 2: make_app(seed=2), 3: make_app("extra-key", seed=3)}
    with pytest.raises(InconsistentMessageReplies):
        _fedavg().start(grid=InProcessGrid(apps), initial_arrays=INITIAL, num_rounds=1)


def test_failures_are_counted_by_error_code_and_missing_replies() -> None:
    apps = {1: make_app(seed=1), 2: make_app(seed=2), 3: make_app("raise"), 4: None}
    _, m = _run(_fedavg(), apps, rounds=2)  # type: ignore[arg-type]
    assert _v(m, "fl_client_failures_total", phase="train", client="3",
              error="client_app_raised_exception") == 2
    assert _v(m, "fl_client_failures_total", phase="train", client="4",
              error="node_unavailable") == 2
    assert _v(m, "fl_clients_failed", phase="train") == 2
    assert _v(m, "fl_clients_replied", phase="train") == 2
    assert _v(m, "fl_client_last_seen_timestamp_seconds", client="3") > 0
    assert _v(m, "fl_client_last_seen_timestamp_seconds", client="4") == 0


@pytest.mark.parametrize("behaviour", ["scaled", "sign-flip"])
def test_a_poisoned_update_and_only_it_crosses_the_anomaly_threshold(behaviour: str) -> None:
    apps: dict[int, ClientApp | None] = {i: make_app(seed=i) for i in range(1, 6)}
    apps[6] = make_app(behaviour, seed=6)
    _, m = _run(_fedavg(), apps, rounds=2)  # type: ignore[arg-type]
    assert _v(m, "fl_anomalous_updates_total", client="6") == 2
    for node in range(1, 6):
        assert _v(m, "fl_anomalous_updates_total", client=str(node)) == 0
    if behaviour == "sign-flip":
        assert _v(m, "fl_client_update_cosine_similarity", client="6") < 0


def test_hostile_telemetry_is_rejected_counted_and_never_becomes_a_label() -> None:
    hostile = {"v": 1, "duration_s": float("nan"), 'x"} 1\n': 3.0, "loss": "text",
               "accuracy": 7.0, "epochs": 2}
    apps = {1: make_app(seed=1), 2: make_app("hostile-telemetry", telemetry=hostile)}
    _, m = _run(_fedavg(), apps, rounds=1)  # type: ignore[arg-type]
    for reason in ("non_finite", "unknown_key", "non_numeric", "out_of_bounds"):
        assert _v(m, "fl_telemetry_rejected_total", reason=reason) == 2  # train + evaluate
    assert _v(m, "fl_client_local_epochs", client="2") == 2
    from prometheus_client import generate_latest

    text = generate_latest(m.registry).decode()
    assert "fl_injected" not in text and 'x\\"}' not in text


def test_oversized_telemetry_is_rejected_whole() -> None:
    huge = {f"k{i}": float(i) for i in range(10_000)}
    apps = {1: make_app(seed=1), 2: make_app("hostile-telemetry", telemetry=huge)}
    _, m = _run(_fedavg(), apps, rounds=1)  # type: ignore[arg-type]
    assert _v(m, "fl_telemetry_rejected_total", reason="oversized") == 2
    assert _v(m, "fl_rounds_completed_total") == 1


def test_wrapper_delegates_attributes_and_wraps_any_strategy() -> None:
    wrapped = instrument(FedProx(proximal_mu=0.1), metrics=FlmonMetrics())
    assert wrapped.proximal_mu == 0.1 and wrapped.strategy.__class__ is FedProx
    apps = {i: make_app(seed=i) for i in (1, 2, 3, 4)}
    _, m = _run(Krum(num_malicious_nodes=1, min_available_nodes=1, min_train_nodes=1,
                     min_evaluate_nodes=1), apps, rounds=1)  # type: ignore[arg-type]
    assert _v(m, "fl_rounds_completed_total") == 1
    with pytest.raises(TypeError, match="Strategy"):
        instrument(object())  # type: ignore[arg-type]


def test_dp_wrapper_epsilon_matches_the_accountant() -> None:
    from flwr.serverapp import NeighboringRelation, SamplingMethod
    from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

    accountant = RdpAccountant(PrivacyConfig(
        target_delta=1e-5, population_size=3,
        neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
        sampling_method=SamplingMethod.NO_AMPLIFICATION, max_epsilon=1000.0))
    dp = DifferentialPrivacyServerSideFixedClipping(
        _fedavg(), noise_multiplier=1.0, clipping_norm=1.0, num_sampled_clients=3,
        accountant=accountant)
    apps = {i: make_app(seed=i) for i in (1, 2, 3)}
    metrics = FlmonMetrics()
    wrapped = instrument(dp, metrics=metrics)
    seen: list[float] = []
    original = wrapped.aggregate_train

    def spy(server_round: int, replies: object) -> object:
        result = original(server_round, replies)  # type: ignore[arg-type]
        seen.append(_v(metrics, "fl_dp_epsilon_spent"))
        return result

    wrapped.aggregate_train = spy  # type: ignore[method-assign, assignment]
    wrapped.start(grid=InProcessGrid(apps), initial_arrays=INITIAL, num_rounds=3)  # type: ignore[arg-type]
    assert seen == sorted(seen) and seen[0] > 0 and len(set(seen)) == 3
    assert seen[-1] == pytest.approx(dp.privacy_spent().epsilon)  # type: ignore[union-attr]
    assert _v(metrics, "fl_dp_epsilon_budget") == 1000.0
    assert _v(metrics, "fl_dp_delta") == pytest.approx(1e-5)
    assert _v(metrics, "fl_dp_noise_multiplier") == 1.0
    assert _v(metrics, "fl_dp_clipping_norm") == 1.0


def test_centralized_evaluation_is_recorded() -> None:
    apps = {i: make_app(seed=i) for i in (1, 2)}
    metrics = FlmonMetrics()
    wrapped = instrument(_fedavg(), metrics=metrics)
    wrapped.start(grid=InProcessGrid(apps), initial_arrays=INITIAL, num_rounds=1,  # type: ignore[arg-type]
                  evaluate_fn=lambda rnd, arrays: MetricRecord({"accuracy": 0.5 + rnd / 10}))
    assert _v(metrics, "fl_centralized_accuracy") == pytest.approx(0.6)


def test_aggregation_errors_are_counted_and_still_raised() -> None:
    class Broken(FedAvg):
        def aggregate_train(self, server_round, replies):  # type: ignore[no-untyped-def]
            raise RuntimeError("aggregation bug")

    apps = {i: make_app(seed=i) for i in (1, 2)}
    metrics = FlmonMetrics()
    wrapped = instrument(Broken(min_available_nodes=1, min_train_nodes=1), metrics=metrics)
    with pytest.raises(RuntimeError, match="aggregation bug"):
        wrapped.start(grid=InProcessGrid(apps), initial_arrays=INITIAL, num_rounds=1)  # type: ignore[arg-type]
    assert _v(metrics, "fl_aggregation_failures_total", phase="train") == 1
    assert _v(metrics, "fl_run_failures_total", error="RuntimeError") == 1
    assert _v(metrics, "fl_run_active") == 0


def test_client_label_cap_folds_later_clients() -> None:
    apps = {i: make_app(seed=i) for i in range(1, 6)}
    _, m = _run(_fedavg(), apps, rounds=1, max_client_labels=2)  # type: ignore[arg-type]
    own = [n for n in map(str, range(1, 6))
           if m.registry.get_sample_value("fl_model_updates_total", {"client": n})]
    assert len(own) == 2
    assert _v(m, "fl_model_updates_total", client="_other") == 3
    assert _v(m, "fl_clients_tracked") == 2 and _v(m, "fl_clients_folded_total") == 3


def test_a_refused_dp_release_is_recorded_and_the_cut_round_not_completed() -> None:
    from flwr.serverapp import NeighboringRelation, SamplingMethod
    from flwr.serverapp.exception import PrivacyBudgetExhausted
    from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

    def accountant(max_epsilon: float | None) -> RdpAccountant:
        return RdpAccountant(PrivacyConfig(
            target_delta=1e-5, population_size=3,
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION, max_epsilon=max_epsilon))

    # epsilon after two releases, measured with an unbounded accountant
    probe = DifferentialPrivacyServerSideFixedClipping(
        _fedavg(), noise_multiplier=1.0, clipping_norm=1.0, num_sampled_clients=3,
        accountant=accountant(None))
    apps = {i: make_app(seed=i) for i in (1, 2, 3)}
    probe.start(grid=InProcessGrid(apps), initial_arrays=INITIAL, num_rounds=2)
    two_releases = probe.privacy_spent().epsilon  # type: ignore[union-attr]

    dp = DifferentialPrivacyServerSideFixedClipping(
        _fedavg(), noise_multiplier=1.0, clipping_norm=1.0, num_sampled_clients=3,
        accountant=accountant(two_releases * 1.01))
    metrics = FlmonMetrics()
    wrapped = instrument(dp, metrics=metrics)
    with pytest.raises(PrivacyBudgetExhausted):
        wrapped.start(grid=InProcessGrid(apps), initial_arrays=INITIAL, num_rounds=4)  # type: ignore[arg-type]
    assert _v(metrics, "fl_dp_budget_exhausted") == 1
    assert _v(metrics, "fl_dp_epsilon_spent") < _v(metrics, "fl_dp_epsilon_budget")
    assert _v(metrics, "fl_rounds_completed_total") == 2
    assert _v(metrics, "fl_round_in_progress") == 0
    assert _v(metrics, "fl_run_failures_total", error="PrivacyBudgetExhausted") == 1
    assert _v(metrics, "fl_security_events_total", kind="dp_budget_exhausted") == 1


def test_dp_budget_flag_starts_at_zero_with_a_dp_strategy_only() -> None:
    apps = {i: make_app(seed=i) for i in (1, 2)}
    _, plain = _run(_fedavg(), apps, rounds=1)  # type: ignore[arg-type]
    assert plain.registry.get_sample_value("fl_dp_budget_exhausted") is None
