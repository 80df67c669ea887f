"""What InstrumentedStrategy promises the run, whatever recording or clients do.

- Recording never breaks the strategy: a recorder that raises everywhere leaves the
  run's result exactly as it is with a working recorder.
- A client that never replies is counted (``error="no_reply"``), per phase.
- ``quarantine=False`` sets nothing aside, and error replies are still failures.
- Replies that would end the run are set aside in the evaluate phase too.
- Sampled update statistics estimate the full norm (``sqrt(total / sampled)``).
- Anomaly scores need at least 3 updates in a round.

Driven through Flower's own ``Strategy.start`` loop over the in-process grid.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import numpy as np
import pytest
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAvg

from flmon.flower import InstrumentedStrategy, instrument
from flmon.metrics import FlmonMetrics
from tests.core.clientapps import make_app
from tests.core.ingrid import InProcessGrid

INITIAL = ArrayRecord([np.zeros((4, 3)), np.zeros(3)])
TOTAL = 15  # parameters in INITIAL


def _fedavg() -> FedAvg:
    return FedAvg(min_available_nodes=1, min_train_nodes=1, min_evaluate_nodes=1)


def _v(metrics: FlmonMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def shift_app(delta: float, evaluate: dict[str, float] | None = None,
              train: str = "ok") -> ClientApp:
    """A ClientApp that adds ``delta`` to every parameter and reports ``evaluate``.

    ``train``: ``ok``, ``no-arrays`` (a reply with metrics only) or ``renamed`` (the
    arrays come back under other keys).
    """
    app = ClientApp()
    metrics_out = evaluate if evaluate is not None else {
        "loss": 0.5, "accuracy": 0.75, "num-examples": 10}

    @app.train()
    def _train(msg: Message, context: Context) -> Message:
        sent = msg.content["arrays"]
        arrays = [a + delta for a in sent.to_numpy_ndarrays()]
        record = ArrayRecord(arrays)
        if train == "renamed":
            record = ArrayRecord({f"w{i}": v for i, v in enumerate(record.values())})
        metrics = MetricRecord({"loss": 0.25, "accuracy": 0.5, "num-examples": 10})
        content = RecordDict({"metrics": metrics})
        if train != "no-arrays":
            content["arrays"] = record
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def _evaluate(msg: Message, context: Context) -> Message:
        content = RecordDict({"metrics": MetricRecord(metrics_out)})  # type: ignore[arg-type]
        if "second" in metrics_out:
            content["more"] = MetricRecord({"x": 1.0})
        return Message(content=content, reply_to=msg)

    return app


def _run(apps: dict[int, ClientApp | None], rounds: int = 2, grid: InProcessGrid | None = None,
         **options: object) -> tuple[InstrumentedStrategy, FlmonMetrics, object]:
    metrics = FlmonMetrics(sides=("server", "sink"))
    wrapped = instrument(_fedavg(), metrics=metrics, **options)
    result = wrapped.start(grid=grid or InProcessGrid(apps), initial_arrays=INITIAL,
                           num_rounds=rounds)
    return wrapped, metrics, result


# -- recording never breaks the strategy ----------------------------------------------
class _RecorderBugError(RuntimeError):
    pass


def _raise(*_args: object, **_kwargs: object) -> None:
    raise _RecorderBugError("recorder bug")


def test_a_recorder_that_raises_everywhere_leaves_the_run_unchanged(
        caplog: pytest.LogCaptureFixture) -> None:
    def apps() -> dict[int, ClientApp | None]:
        return {1: make_app(seed=1), 2: make_app(seed=2), 3: make_app("nan", seed=3),
                4: make_app("raise"), 5: None}

    _, _, reference = _run(apps(), rounds=2)

    metrics = FlmonMetrics(sides=("server", "sink"))
    wrapped = instrument(_fedavg(), metrics=metrics)
    broken = [name for name in dir(wrapped.recorder)
              if not name.startswith("_") and callable(getattr(wrapped.recorder, name))]
    assert {"reply", "telemetry", "failure", "quarantined", "update_stats",
            "round_completed", "run_started", "run_ended"} <= set(broken)
    for name in broken:
        setattr(wrapped.recorder, name, _raise)
    with caplog.at_level(logging.WARNING, logger="flmon.flower"):
        result = wrapped.start(grid=InProcessGrid(apps()), initial_arrays=INITIAL,
                               num_rounds=2)

    ref_arrays = reference.arrays.to_numpy_ndarrays()  # type: ignore[attr-defined]
    got_arrays = result.arrays.to_numpy_ndarrays()
    assert len(got_arrays) == len(ref_arrays) == 2
    for got, want in zip(got_arrays, ref_arrays, strict=True):
        np.testing.assert_array_equal(got, want)
    assert np.all(np.isfinite(got_arrays[0])) and np.any(got_arrays[0] != 0)
    assert dict(result.train_metrics_clientapp) == dict(
        reference.train_metrics_clientapp)  # type: ignore[attr-defined]
    assert dict(result.evaluate_metrics_clientapp) == dict(
        reference.evaluate_metrics_clientapp)  # type: ignore[attr-defined]
    failures = [r for r in caplog.records if r.getMessage().startswith("flmon could not record")]
    assert failures and all(r.exc_info and r.exc_info[0] is _RecorderBugError for r in failures)
    # nothing was recorded, but the run went through both rounds
    assert _v(metrics, "fl_rounds_completed_total") == 0
    assert sorted(result.train_metrics_clientapp) == [1, 2]


# -- clients that never reply -------------------------------------------------------
class _DroppingGrid(InProcessGrid):
    """Delivers every message, but the replies of ``silent`` nodes never come back."""

    def __init__(self, apps: dict[int, ClientApp | None], silent: set[int]) -> None:
        super().__init__(apps)
        self.silent = silent

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        replies = super().send_and_receive(messages, timeout=timeout)
        return [r for r in replies if r.metadata.src_node_id not in self.silent]


def test_a_client_whose_replies_never_arrive_is_counted_as_no_reply() -> None:
    apps: dict[int, ClientApp | None] = {n: make_app(seed=n) for n in (1, 2, 3, 4)}
    _, m, _ = _run(apps, rounds=2, grid=_DroppingGrid(apps, silent={3}))
    for phase in ("train", "evaluate"):
        assert _v(m, "fl_client_failures_total", phase=phase, client="3",
                  error="no_reply") == 2
        assert _v(m, "fl_clients_failed", phase=phase) == 1
        assert _v(m, "fl_clients_replied", phase=phase) == 3
        for node in ("1", "2", "4"):
            assert _v(m, "fl_client_failures_total", phase=phase, client=node,
                      error="no_reply") == 0
    assert _v(m, "fl_model_updates_total", client="3") == 0
    assert _v(m, "fl_model_updates_total", client="1") == 2
    assert _v(m, "fl_rounds_completed_total") == 2


# -- quarantine=False ----------------------------------------------------------------
def test_without_quarantine_nothing_is_set_aside_and_errors_stay_failures() -> None:
    apps: dict[int, ClientApp | None] = {
        1: shift_app(0.1), 2: shift_app(0.2), 3: shift_app(0.3),
        4: shift_app(0.1, evaluate={"loss": 0.5, "accuracy": math.nan, "num-examples": 10}),
        5: make_app("raise")}
    wrapped, m, result = _run(apps, rounds=1, quarantine=False)
    assert wrapped.quarantine is False
    total_quarantined = sum(
        value for metric in m.registry.collect() if metric.name == "fl_replies_quarantined"
        for sample in metric.samples if sample.name == "fl_replies_quarantined_total"
        for value in [sample.value])
    assert total_quarantined == 0
    # the raising client fails in train only; its evaluate reply is fine
    assert _v(m, "fl_clients_replied", phase="train") == 4
    assert _v(m, "fl_clients_failed", phase="train") == 1
    assert _v(m, "fl_clients_replied", phase="evaluate") == 5
    assert _v(m, "fl_clients_failed", phase="evaluate") == 0
    # the NaN accuracy went into the aggregate: nothing was set aside
    assert math.isnan(_v(m, "fl_evaluation_accuracy"))
    assert _v(m, "fl_client_failures_total", phase="train", client="5",
              error="client_app_raised_exception") == 1
    assert _v(m, "fl_model_updates_total", client="5") == 0
    for node in ("1", "2", "3", "4"):
        assert _v(m, "fl_model_updates_total", client=node) == 1
    # FedAvg got the four updates: the mean shift of 0.1, 0.2, 0.3 and 0.1
    np.testing.assert_allclose(result.arrays.to_numpy_ndarrays()[1],  # type: ignore[attr-defined]
                               np.full(3, 0.175))


def test_with_quarantine_the_same_nan_evaluate_reply_is_set_aside() -> None:
    apps: dict[int, ClientApp | None] = {
        1: shift_app(0.1), 2: shift_app(0.2), 3: shift_app(0.3),
        4: shift_app(0.1, evaluate={"loss": 0.5, "accuracy": math.nan, "num-examples": 10}),
        5: make_app("raise")}
    _, m, _ = _run(apps, rounds=1)
    assert _v(m, "fl_replies_quarantined_total", phase="evaluate",
              reason="non_finite_metrics") == 1
    assert _v(m, "fl_clients_replied", phase="evaluate") == 4
    assert _v(m, "fl_clients_failed", phase="evaluate") == 1
    # three replies of 0.75 (10 examples each) and node 5's 0.8 (20 examples)
    assert _v(m, "fl_evaluation_accuracy") == pytest.approx((3 * 7.5 + 16) / 50)


# -- evaluate-phase triage ----------------------------------------------------------
@pytest.mark.parametrize(
    ("evaluate", "reason"),
    [({"loss": 0.5, "accuracy": math.nan, "num-examples": 10}, "non_finite_metrics"),
     ({"loss": 0.5, "accuracy": math.inf, "num-examples": 10}, "non_finite_metrics"),
     ({"loss": 0.5, "accuracy": 0.75, "num-examples": 10, "second": 1.0}, "metric_records"),
     ({"loss": 0.5, "acc": 0.75, "num-examples": 10}, "inconsistent_metric_keys")],
)
def test_evaluate_replies_that_would_end_the_run_are_set_aside(evaluate: dict[str, float],
                                                               reason: str) -> None:
    apps: dict[int, ClientApp | None] = {1: shift_app(0.1), 2: shift_app(0.2),
                                         3: shift_app(0.3), 4: shift_app(0.1, evaluate)}
    _, m, result = _run(apps, rounds=2)
    assert _v(m, "fl_replies_quarantined_total", phase="evaluate", reason=reason) == 2
    assert _v(m, "fl_replies_quarantined_total", phase="train", reason=reason) == 0
    assert _v(m, "fl_clients_replied", phase="evaluate") == 3
    assert _v(m, "fl_evaluation_accuracy") == pytest.approx(0.75)
    assert _v(m, "fl_rounds_completed_total") == 2
    assert dict(result.evaluate_metrics_clientapp[2]) == {  # type: ignore[attr-defined]
        "loss": pytest.approx(0.5), "accuracy": pytest.approx(0.75)}


@pytest.mark.parametrize(("train", "reason"), [("no-arrays", "array_records"),
                                               ("renamed", "inconsistent_array_keys")])
def test_train_replies_without_the_sent_arrays_are_set_aside(train: str, reason: str) -> None:
    apps: dict[int, ClientApp | None] = {1: shift_app(0.1), 2: shift_app(0.2),
                                         3: shift_app(0.3), 4: shift_app(5.0, train=train)}
    _, m, result = _run(apps, rounds=2)
    assert _v(m, "fl_replies_quarantined_total", phase="train", reason=reason) == 2
    assert _v(m, "fl_model_updates_total", client="4") == 0
    assert _v(m, "fl_rounds_completed_total") == 2
    # the aggregate is the mean of the three others, shifted twice
    np.testing.assert_allclose(result.arrays.to_numpy_ndarrays()[1],  # type: ignore[attr-defined]
                               np.full(3, 0.4))


# -- sampled update statistics ------------------------------------------------------
@pytest.mark.parametrize("sample", [None, 5, 14])
def test_sampled_norms_estimate_the_full_norm(sample: int | None) -> None:
    # Every parameter moves by the same delta, so any sample estimates the norm exactly.
    deltas = {1: 0.1, 2: 0.2, 3: 0.4}
    apps: dict[int, ClientApp | None] = {n: shift_app(d) for n, d in deltas.items()}
    _, m, _ = _run(apps, rounds=1, update_sample_size=sample)
    for node, delta in deltas.items():
        assert _v(m, "fl_client_update_norm", client=str(node)) == pytest.approx(
            delta * math.sqrt(TOTAL), rel=1e-9)
        assert _v(m, "fl_client_update_cosine_similarity", client=str(node)) == pytest.approx(1)
    assert _v(m, "fl_update_norm_median") == pytest.approx(0.2 * math.sqrt(TOTAL), rel=1e-9)


def test_a_sample_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="update_sample_size"):
        instrument(_fedavg(), metrics=FlmonMetrics(), update_sample_size=0)


# -- the 3-client minimum -------------------------------------------------------------
def test_two_updates_get_no_anomaly_score_three_do() -> None:
    two: dict[int, ClientApp | None] = {1: shift_app(0.1), 2: shift_app(10.0)}
    _, m, _ = _run(two, rounds=1)
    assert _v(m, "fl_client_anomaly_score", client="2") == 0
    assert _v(m, "fl_anomalous_updates_total", client="2") == 0
    assert _v(m, "fl_client_update_norm", client="2") == pytest.approx(10 * math.sqrt(TOTAL))

    three: dict[int, ClientApp | None] = {1: shift_app(0.1), 2: shift_app(10.0),
                                          3: shift_app(0.1)}
    _, m, _ = _run(three, rounds=1)
    # median norm a = 0.1 * sqrt(15), MAD floored at 0.3 a: 0.6745 * 99 a / (0.3 a)
    assert _v(m, "fl_client_anomaly_score", client="2") == pytest.approx(0.6745 * 99 / 0.3)
    assert _v(m, "fl_anomalous_updates_total", client="2") == 1
    assert _v(m, "fl_anomalous_updates_total", client="1") == 0
    assert _v(m, "fl_security_events_total", kind="anomalous_update") == 1
