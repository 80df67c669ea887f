"""Local DP: clients' reported epsilon reaches fl_client_dp_epsilon on the server."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import LocalDpMod
from flwr.serverapp.strategy import FedAvg

from flmon.flower import LocalDpEpsilon, TelemetryMod, instrument, report_dp_epsilon
from flmon.flower.localdp import STATE_KEY
from flmon.metrics import FlmonMetrics
from flmon.training import LocalRecorder
from tests.core.ingrid import InProcessGrid

INITIAL = ArrayRecord([np.zeros(6), np.zeros(1)])


def _fedavg() -> FedAvg:
    return FedAvg(min_available_nodes=1, min_train_nodes=1, min_evaluate_nodes=1)


def _app(recorder: LocalRecorder, extra_mods: list[object], report: float | None = None,
         seed: int = 0) -> ClientApp:
    app = ClientApp(mods=[TelemetryMod(recorder=recorder), *extra_mods])  # type: ignore[list-item]
    rng = np.random.default_rng(seed)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        arrays = [a + 0.1 + 0.01 * rng.normal(size=a.shape)
                  for a in msg.content["arrays"].to_numpy_ndarrays()]
        if report is not None:
            server_round = int(msg.content["config"]["server-round"])
            report_dp_epsilon(report * server_round, recorder)
        content = RecordDict({"arrays": ArrayRecord(arrays),
                              "metrics": MetricRecord({"loss": 0.1, "num-examples": 10})})
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return Message(content=RecordDict({"metrics": MetricRecord(
            {"loss": 0.1, "num-examples": 10})}), reply_to=msg)

    return app


def _epsilon(metrics: FlmonMetrics, client: str) -> float | None:
    return metrics.registry.get_sample_value("fl_client_dp_epsilon", {"client": client})


def test_local_dp_mod_epsilon_is_composed_over_rounds_and_forwarded() -> None:
    recorders = {i: LocalRecorder() for i in (1, 2, 3)}
    mods = {i: LocalDpMod(clipping_norm=1.0, sensitivity=1.0, epsilon=0.25 * i, delta=1e-5)
            for i in (1, 2)}
    apps: dict[int, ClientApp | None] = {
        1: _app(recorders[1], [LocalDpEpsilon(mods[1], recorders[1])], seed=1),
        2: _app(recorders[2], [LocalDpEpsilon(mods[2], recorders[2])], seed=2),
        3: _app(recorders[3], [], seed=3),  # no local DP
    }
    metrics = FlmonMetrics()
    grid = InProcessGrid(apps)
    seen: list[tuple[float | None, float | None]] = []
    strategy = instrument(_fedavg(), metrics=metrics)
    original = strategy.aggregate_train

    def spy(server_round: int, replies: object) -> object:
        result = original(server_round, replies)  # type: ignore[arg-type]
        seen.append((_epsilon(metrics, "1"), _epsilon(metrics, "2")))
        return result

    strategy.aggregate_train = spy  # type: ignore[method-assign, assignment]
    strategy.start(grid=grid, initial_arrays=INITIAL, num_rounds=3)
    assert seen == [(pytest.approx(0.25 * r), pytest.approx(0.5 * r)) for r in (1, 2, 3)]
    assert _epsilon(metrics, "3") is None
    wrapper = LocalDpEpsilon(mods[1])
    assert wrapper.spent(grid.contexts[1]) == pytest.approx(0.75)
    assert STATE_KEY in grid.contexts[1].state and STATE_KEY not in grid.contexts[3].state
    rejected = sum(metrics.registry.get_sample_value(
        "fl_telemetry_rejected_total", {"reason": r}) or 0 for r in
        ("out_of_bounds", "non_finite", "unknown_key", "non_numeric"))
    assert rejected == 0


def test_report_dp_epsilon_from_the_training_function() -> None:
    recorder = LocalRecorder()
    apps: dict[int, ClientApp | None] = {1: _app(recorder, [], report=1.5, seed=1),
                                         2: _app(LocalRecorder(), [], seed=2)}
    metrics = FlmonMetrics()
    instrument(_fedavg(), metrics=metrics).start(
        grid=InProcessGrid(apps), initial_arrays=INITIAL, num_rounds=2)
    assert _epsilon(metrics, "1") == pytest.approx(3.0)
    assert _epsilon(metrics, "2") is None


def test_invalid_epsilons_are_refused_on_the_client() -> None:
    recorder = LocalRecorder()
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="epsilon"):
            report_dp_epsilon(bad, recorder)
    report_dp_epsilon(2.0, recorder)
    report_dp_epsilon(2.5, recorder)  # replaces, does not add up
    assert recorder.take() == {"dp_epsilon": 2.5}
    with pytest.raises(ValueError, match="epsilon"):
        LocalDpEpsilon(object())
