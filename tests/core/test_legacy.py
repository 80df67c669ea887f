"""InstrumentedLegacyStrategy around real legacy Flower strategies, driven by Flower's own
legacy loops (``start_grid``, the ``server_fn`` path, and ``DefaultWorkflow``) with real
legacy ClientApps (``NumPyClient`` via ``client_fn``) in-process."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest
from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common import Metrics, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import LegacyContext, ServerConfig
from flwr.server.compat.app import start_grid
from flwr.server.strategy import (
    DifferentialPrivacyServerSideFixedClipping,
    FedAdam,
    FedAvg,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    Krum,
    Strategy,
)
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

from flmon.flower import InstrumentedLegacyStrategy, instrument, legacy_telemetry
from flmon.metrics import FlmonMetrics
from tests.core.ingrid import InProcessGrid
from tests.core.legacy_clients import LegacyClient, initial, make_legacy_app

SEEN_METRICS: list[dict[str, Any]] = []


def _average(metrics: list[tuple[int, Metrics]]) -> Metrics:
    """A fit_metrics_aggregation_fn as Flower's examples write it: indexes its keys."""
    SEEN_METRICS.extend(dict(m) for _, m in metrics)
    total = sum(n for n, _ in metrics)
    return {"accuracy": sum(n * float(m["accuracy"]) for n, m in metrics) / total}


def _fedavg(**kwargs: Any) -> FedAvg:
    return FedAvg(min_available_clients=1, min_fit_clients=1, min_evaluate_clients=1,
                  fit_metrics_aggregation_fn=_average,
                  evaluate_metrics_aggregation_fn=_average, **kwargs)


def _apps(behaviours: list[str], clients: list[LegacyClient] | None = None,
          telemetry: bool = True) -> dict[int, ClientApp | None]:
    return {100 + i: make_legacy_app(b, seed=i, telemetry=telemetry, clients=clients)
            for i, b in enumerate(behaviours)}


def _run(strategy: Strategy, behaviours: list[str], rounds: int = 2,
         clients: list[LegacyClient] | None = None, **options: Any
         ) -> tuple[InstrumentedLegacyStrategy, FlmonMetrics]:
    metrics = FlmonMetrics(sides=("server", "sink"))
    wrapped = instrument(strategy, metrics=metrics, num_rounds=rounds, **options)
    assert isinstance(wrapped, InstrumentedLegacyStrategy)
    start_grid(grid=InProcessGrid(_apps(behaviours, clients)),
               config=ServerConfig(num_rounds=rounds), strategy=wrapped)
    return wrapped, metrics


def _v(metrics: FlmonMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_legacy_federation_records_rounds_updates_failures_and_telemetry() -> None:
    clients: list[LegacyClient] = []
    _, m = _run(_fedavg(), ["honest", "honest", "honest", "raise"], clients=clients)
    assert _v(m, "fl_rounds_completed_total") == 2
    assert _v(m, "fl_run_active") == 0 and _v(m, "fl_run_end_timestamp_seconds") > 0
    for node in ("100", "101", "102"):
        assert _v(m, "fl_model_updates_total", client=node) == 2
        assert _v(m, "fl_client_local_epochs", client=node) == 2
    assert _v(m, "fl_model_updates_total", client="103") == 0
    # Flower's server_fn path hands failures over without their error code.
    assert _v(m, "fl_client_failures_total", phase="train", client="103", error="unknown") == 2
    assert _v(m, "fl_clients_selected", phase="train") == 4
    assert _v(m, "fl_clients_replied", phase="train") == 3
    assert _v(m, "fl_clients_failed", phase="train") == 1
    # (3 train + 4 evaluate replies) x 2 rounds: one accepted telemetry record each.
    assert _v(m, "fl_telemetry_received_total") == 14
    assert _v(m, "fl_training_accuracy") == pytest.approx(0.9)
    assert _v(m, "fl_evaluation_loss") == pytest.approx(0.4)
    assert _v(m, "fl_client_update_norm", client="100") > 0
    assert _v(m, "fl_update_indicators_available") == 1
    assert _v(m, "fl_run_info", run_id="4242", strategy="FedAvg",
              flwr_version=_flwr(), flmon_version=_flmon()) == 1
    # The client code never sees flmon's request, and aggregation never sees telemetry.
    assert all(legacy_telemetry.REQUEST_KEY not in c for cl in clients for c in cl.configs)
    assert SEEN_METRICS and not any(k.startswith(legacy_telemetry.PREFIX)
                                    for seen in SEEN_METRICS for k in seen)


def _flwr() -> str:
    from importlib.metadata import version
    return version("flwr")


def _flmon() -> str:
    import flmon
    return flmon.__version__


def test_uninstrumented_legacy_server_gets_the_apps_metrics_unchanged() -> None:
    SEEN_METRICS.clear()
    clients: list[LegacyClient] = []
    start_grid(grid=InProcessGrid(_apps(["honest", "honest"], clients)),
               config=ServerConfig(num_rounds=1), strategy=_fedavg())
    # fit metrics as the clients wrote them, evaluate metrics likewise: nothing added
    assert SEEN_METRICS and all(set(seen) in ({"loss", "accuracy"}, {"accuracy"})
                                for seen in SEEN_METRICS)
    assert all(set(c) == set() for cl in clients for c in cl.configs)


@pytest.mark.parametrize(("behaviour", "reason"), [
    ("nan", "non_finite_metrics"),
    ("zero-examples", "invalid_weight"),
    ("bad-shape", "malformed_arrays"),
    ("bad-dtype", "malformed_arrays"),
    ("inf-array", "malformed_arrays"),
    ("extra-key", "inconsistent_metric_keys"),
])
def test_a_misbehaving_legacy_client_is_set_aside_and_the_run_goes_on(behaviour: str,
                                                                      reason: str) -> None:
    _, m = _run(_fedavg(), ["honest", "honest", "honest", behaviour])
    assert _v(m, "fl_rounds_completed_total") == 2
    assert _v(m, "fl_replies_quarantined_total", phase="train", reason=reason) == 2
    assert _v(m, "fl_model_updates_total", client="103") == 0
    assert _v(m, "fl_security_events_total", kind="reply_quarantined") == 2
    assert math.isfinite(_v(m, "fl_training_accuracy"))


@pytest.mark.parametrize("behaviour", ["nan", "bad-shape", "inf-array"])
def test_without_the_wrapper_the_same_legacy_client_breaks_the_aggregate(behaviour: str
                                                                          ) -> None:
    strategy = _fedavg()
    params = ndarrays_to_parameters(initial())
    results = _direct_results(["honest", "honest", behaviour], params)
    try:
        params, agg = strategy.aggregate_fit(1, results, [])
    except (ValueError, KeyError):
        return  # the aggregation raised: the round (and the run) would end
    assert params is not None
    finite = math.isfinite(float(agg["accuracy"])) and all(
        np.all(np.isfinite(a)) for a in parameters_to_ndarrays(params))
    assert not finite


def _direct_results(behaviours: list[str], params: Any) -> list[Any]:
    from flwr.common import Code, FitRes, Status

    out = []
    for i, b in enumerate(behaviours):
        client = LegacyClient(b, i, _recorder())
        arrays, n, metrics = client.fit(initial(), {})
        res = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays), n, metrics)
        out.append((_Proxy(str(i)), res))
    return out


def _recorder() -> Any:
    from flmon.training import LocalRecorder
    return LocalRecorder()


class _Proxy:
    def __init__(self, cid: str) -> None:
        self.cid = cid
        self.node_id = int(cid)


def test_a_nan_evaluation_loss_is_set_aside() -> None:
    _, m = _run(_fedavg(), ["honest", "honest", "nan-loss"])
    assert _v(m, "fl_replies_quarantined_total", phase="evaluate",
              reason="non_finite_metrics") == 2
    assert _v(m, "fl_evaluation_loss") == pytest.approx(0.4)


@pytest.mark.parametrize("behaviour", ["scaled", "sign-flip"])
def test_a_poisoned_legacy_update_and_only_it_is_anomalous(behaviour: str) -> None:
    _, m = _run(_fedavg(), ["honest"] * 4 + [behaviour])
    assert _v(m, "fl_anomalous_updates_total", client="104") == 2
    assert all(_v(m, "fl_anomalous_updates_total", client=str(n)) == 0
               for n in range(100, 104))


def test_forged_telemetry_keys_are_rejected_and_never_aggregated() -> None:
    SEEN_METRICS.clear()
    m = FlmonMetrics(sides=("server", "sink"))
    apps = _apps(["honest", "honest"])
    apps[102] = make_legacy_app("forged-telemetry", telemetry=False)  # writes them itself
    start_grid(grid=InProcessGrid(apps), config=ServerConfig(num_rounds=2),
               strategy=instrument(_fedavg(), metrics=m, num_rounds=2))
    for reason in ("out_of_bounds", "non_numeric", "unknown_key"):
        assert _v(m, "fl_telemetry_rejected_total", reason=reason) == 2
    assert _v(m, "fl_rounds_completed_total") == 2
    assert SEEN_METRICS and not any(k.startswith("flmon.") for seen in SEEN_METRICS
                                    for k in seen)
    assert _v(m, "fl_model_updates_total", client="102") == 2


@pytest.mark.parametrize("factory", [
    lambda: FedProx(proximal_mu=0.1, min_available_clients=1, min_fit_clients=1),
    lambda: FedMedian(min_available_clients=1, min_fit_clients=1),
    lambda: FedTrimmedAvg(min_available_clients=1, min_fit_clients=1),
    lambda: Krum(num_malicious_clients=0, min_available_clients=1, min_fit_clients=1),
    lambda: FedAdam(initial_parameters=ndarrays_to_parameters(initial()),
                    min_available_clients=1, min_fit_clients=1),
], ids=["FedProx", "FedMedian", "FedTrimmedAvg", "Krum", "FedAdam"])
def test_any_legacy_strategy_is_wrapped_and_delegated(factory: Any) -> None:
    base = factory()
    wrapped, m = _run(base, ["honest", "honest", "honest"], rounds=1)
    assert wrapped.strategy is base
    assert wrapped.min_fit_clients == base.min_fit_clients  # attributes delegate
    assert _v(m, "fl_rounds_completed_total") == 1
    assert sum(_v(m, "fl_model_updates_total", client=str(n)) for n in range(100, 103)) == 3


def test_legacy_dp_wrapper_figures_are_exported() -> None:
    dp = DifferentialPrivacyServerSideFixedClipping(
        _fedavg(), noise_multiplier=0.5, clipping_norm=2.0, num_sampled_clients=3)
    _, m = _run(dp, ["honest"] * 3)
    assert _v(m, "fl_dp_noise_multiplier") == 0.5
    assert _v(m, "fl_dp_clipping_norm") == 2.0
    assert _v(m, "fl_dp_budget_exhausted") == 0


def test_instrument_refuses_what_is_not_a_strategy() -> None:
    with pytest.raises(TypeError, match=r"flwr\.server\.strategy\.Strategy"):
        instrument(object())  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="num_rounds"):
        instrument(_fedavg(), num_rounds=0)


class _CopyingGrid(InProcessGrid):
    """Delivers a copy of each message, as the wire does: SecAgg+ mutates what it gets."""

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        return super().send_and_receive([copy.deepcopy(m) for m in messages],
                                        timeout=timeout)


def _workflow_run(strategy: InstrumentedLegacyStrategy, apps: dict[int, ClientApp | None],
                  rounds: int, workflow: DefaultWorkflow) -> None:
    context = Context(run_id=4242, node_id=0, node_config={}, state=RecordDict(),
                      run_config={})
    workflow(_CopyingGrid(apps), LegacyContext(context, ServerConfig(num_rounds=rounds),
                                                strategy))


def test_default_workflow_keeps_error_codes_of_failed_clients() -> None:
    m = FlmonMetrics(sides=("server", "sink"))
    wrapped = instrument(_fedavg(), metrics=m, num_rounds=2)
    _workflow_run(wrapped, _apps(["honest", "honest", "raise"]), 2, DefaultWorkflow())
    assert _v(m, "fl_client_failures_total", phase="train", client="102",
              error="client_app_raised_exception") == 2
    assert _v(m, "fl_rounds_completed_total") == 2


def _secagg_apps(count: int) -> dict[int, ClientApp | None]:
    apps: dict[int, ClientApp | None] = {}
    for i in range(count):
        apps[100 + i] = make_legacy_app("honest", seed=i, secagg=True)
    return apps


def test_secure_aggregation_says_update_indicators_are_unavailable(
        caplog: pytest.LogCaptureFixture) -> None:
    m = FlmonMetrics(sides=("server", "sink"))
    wrapped = instrument(_fedavg(), metrics=m, num_rounds=2)
    workflow = DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(num_shares=3,
                                                               reconstruction_threshold=2))
    with caplog.at_level(logging.WARNING, logger="flmon.flower"):
        _workflow_run(wrapped, _secagg_apps(3), 2, workflow)
    assert _v(m, "fl_rounds_completed_total") == 2
    assert _v(m, "fl_update_indicators_available") == 0
    assert "update indicators are unavailable" in caplog.text
    for node in ("100", "101", "102"):
        assert _v(m, "fl_model_updates_total", client=node) == 2
        assert m.registry.get_sample_value("fl_client_update_norm", {"client": node}) is None
    assert _v(m, "fl_telemetry_received_total") >= 6  # train telemetry survives SecAgg+


def test_a_halted_secure_aggregation_is_an_aggregation_failure() -> None:
    m = FlmonMetrics(sides=("server", "sink"))
    wrapped = instrument(_fedavg(), metrics=m, num_rounds=1, secure_aggregation=True)
    apps = _secagg_apps(3)
    # fails in the collect-masked-vectors stage
    apps[102] = make_legacy_app("raise", secagg=True)
    # Every share needed: one client lost after the setup halts the protocol.
    workflow = DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(num_shares=1.0,
                                                               reconstruction_threshold=1.0))
    _workflow_run(wrapped, apps, 1, workflow)
    assert _v(m, "fl_aggregation_failures_total", phase="train") == 1
    assert _v(m, "fl_clients_failed", phase="train") == 3
    assert _v(m, "fl_update_indicators_available") == 0
    assert _v(m, "fl_rounds_completed_total") == 1


def test_without_num_rounds_close_ends_the_run() -> None:
    m = FlmonMetrics(sides=("server", "sink"))
    wrapped = instrument(_fedavg(), metrics=m)
    start_grid(grid=InProcessGrid(_apps(["honest", "honest"])),
               config=ServerConfig(num_rounds=1), strategy=wrapped)
    assert _v(m, "fl_run_active") == 1
    wrapped.close()
    wrapped.close()
    assert _v(m, "fl_run_active") == 0
    assert _v(m, "fl_rounds_completed_total") == 1



def test_the_legacy_wrapper_sends_by_dogstatsd_when_the_environment_says_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes.loopback import UdpReceiver

    udp = UdpReceiver()
    try:
        for name, value in {"FLMON_DATADOG_ENABLED": "1", "FLMON_DATADOG_HOST": "127.0.0.1",
                            "FLMON_DATADOG_PORT": str(udp.port),
                            "FLMON_FEDERATION": "banks"}.items():
            monkeypatch.setenv(name, value)
        wrapped, _ = _run(_fedavg(), ["honest", "honest"], rounds=1)
        assert wrapped.datadog is not None and wrapped.datadog.closed  # with the run
        deadline = time.monotonic() + 10
        while not (completed := [line for line in udp.lines()
                                 if line.startswith("flmon.fl_rounds_completed.count:1|c|")]):
            assert time.monotonic() < deadline, udp.lines()
            time.sleep(0.02)
    finally:
        udp.close()
    assert "federation:banks" in completed[0] and "run_id:4242" in completed[0]

@pytest.fixture
def restore_current_run() -> Iterable[None]:
    from flmon.runlabel import current_run, set_current_run

    before = current_run()
    yield
    set_current_run(before)


def test_a_legacy_run_is_the_current_run_and_its_own_pushgateway_group(
        restore_current_run: None) -> None:
    from flmon.runlabel import current_run, set_current_run

    set_current_run(None)
    # Nothing listens on port 1: pushes fail (counted), the grouping key is what counts.
    wrapped, m = _run(_fedavg(), ["honest", "honest"], rounds=1,
                      pushgateway="http://127.0.0.1:1")
    assert current_run() == "4242"  # what the live exporter labels run_id with
    assert wrapped.pusher is not None
    assert wrapped.pusher.grouping_key == {"run_id": "4242"}
    assert _v(m, "fl_run_info", run_id="4242", strategy="FedAvg",
              flwr_version=_flwr(), flmon_version=_flmon()) == 1


def test_a_run_id_known_only_after_the_start_relabels_the_run_and_its_group(
        restore_current_run: None) -> None:
    from flwr.server.client_manager import SimpleClientManager

    from flmon.runlabel import current_run, set_current_run

    set_current_run(None)
    m = FlmonMetrics(sides=("server", "sink"))
    wrapped = instrument(_fedavg(initial_parameters=ndarrays_to_parameters(initial())),
                         metrics=m, num_rounds=1, pushgateway="http://127.0.0.1:1")
    assert isinstance(wrapped, InstrumentedLegacyStrategy)
    manager = SimpleClientManager()
    wrapped.initialize_parameters(manager)  # no node yet: the run id is not known
    assert current_run() == "unknown" and "run_id" not in wrapped.pusher.grouping_key
    assert wrapped.pusher.pushes == wrapped.pusher.errors == 0  # nothing pushed yet
    assert _v(m, "fl_run_info", run_id="unknown", strategy="FedAvg",
              flwr_version=_flwr(), flmon_version=_flmon()) == 1
    proxy = _Proxy("7")
    proxy.run_id = 99  # type: ignore[attr-defined]
    manager.register(proxy)  # type: ignore[arg-type]
    wrapped.configure_fit(1, ndarrays_to_parameters(initial()), manager)
    assert current_run() == "99" and wrapped.pusher.grouping_key == {"run_id": "99"}
    assert _v(m, "fl_run_info", run_id="99", strategy="FedAvg",
              flwr_version=_flwr(), flmon_version=_flmon()) == 1
    assert _v(m, "fl_run_info", run_id="unknown", strategy="FedAvg",
              flwr_version=_flwr(), flmon_version=_flmon()) == 0
    wrapped.close()


def test_an_explicit_run_id_wins_and_a_bad_one_is_refused(restore_current_run: None) -> None:
    from flmon.runlabel import current_run

    wrapped, _ = _run(_fedavg(), ["honest"], rounds=1, run_id=7)
    assert current_run() == "7" and wrapped.run_id == 7
    for bad in (-1, True, "7"):
        with pytest.raises(ValueError, match="run_id"):
            instrument(_fedavg(), run_id=bad)
