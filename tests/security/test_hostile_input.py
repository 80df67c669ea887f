"""Hostile telemetry, metric keys and label values: rejected, counted, bounded.

What a client controls reaches the server as a reply Message: its telemetry
ConfigRecord, its MetricRecord keys and values, its error reason, and (through the
SuperLink) how many node ids show up. None of it may create a metric name or a label
value, break the exposition format, or grow the server's memory without bound.
"""

from __future__ import annotations

import shutil
import subprocess
import tracemalloc
from collections.abc import Mapping

import numpy as np
import pytest
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAvg
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flmon.flower import instrument
from flmon.flower.recorder import ServerRecorder
from flmon.labels import ClientLabeler
from flmon.metrics import FlmonMetrics
from tests.core.clientapps import make_app
from tests.core.ingrid import InProcessGrid

CONTROL = "\x00\x07\x1b[2J\r\n# TYPE fl_injected counter\nfl_injected 1\n\u202e"
MEGABYTE = "A" * 1_000_000
INITIAL = ArrayRecord([np.zeros((4, 3)), np.zeros(3)])
MEMORY_BOUND_BYTES = 16 * 1024 * 1024


def _rejected(metrics: FlmonMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("fl_telemetry_rejected_total",
                                              {"reason": reason})
    return 0.0 if value is None else value


def _recorder(max_labels: int = 50) -> tuple[ServerRecorder, FlmonMetrics]:
    metrics = FlmonMetrics(sides=("server", "sink"))
    return ServerRecorder(metrics, ClientLabeler(max_labels), 3.5), metrics


def _promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by make setup (Debian package prometheus)"
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, check=False, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def _series(text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {(s.name, tuple(sorted(s.labels.items())))
            for f in text_string_to_metric_families(text) for s in f.samples}


HOSTILE_RECORDS: list[tuple[str, object, str]] = [
    ("control characters in a key", ConfigRecord({"v": 1, CONTROL: 1.0}), "unknown_key"),
    ("control characters as a value", ConfigRecord({"v": 1, "loss": CONTROL}), "non_numeric"),
    ("1 MB key", ConfigRecord({"v": 1, MEGABYTE: 1.0}), "unknown_key"),
    ("1 MB value", ConfigRecord({"v": 1, "loss": MEGABYTE}), "non_numeric"),
    ("100,000 keys", ConfigRecord({f"k{i}": float(i) for i in range(100_000)}), "oversized"),
    ("bytes value", ConfigRecord({"v": 1, "loss": MEGABYTE.encode()}), "non_numeric"),
    ("list value", ConfigRecord({"v": 1, "loss": [1.0] * 10_000}), "non_numeric"),
    ("version as text", ConfigRecord({"v": "1" + CONTROL}), "bad_version"),
    ("version as bool", ConfigRecord({"v": True, "loss": 0.1}), "bad_version"),
    ("NaN", ConfigRecord({"v": 1, "duration_s": float("nan")}), "non_finite"),
    ("huge number", ConfigRecord({"v": 1, "rss_bytes": 10**18}), "out_of_bounds"),
    ("negative epsilon", ConfigRecord({"v": 1, "dp_epsilon": -1.0}), "out_of_bounds"),
    ("a string, not a record", MEGABYTE, "not_a_record"),
    ("a list, not a record", [("v", 1)] * 1000, "not_a_record"),
    ("None", None, "not_a_record"),
]


@pytest.mark.parametrize(("what", "record", "reason"), HOSTILE_RECORDS,
                         ids=[h[0] for h in HOSTILE_RECORDS])
def test_each_hostile_record_is_rejected_with_its_reason(
        what: str, record: object, reason: str) -> None:
    recorder, metrics = _recorder()
    recorder.telemetry("train", 7, ConfigRecord({"v": 1, "duration_s": 1.5}))
    before = _series(generate_latest(metrics.registry).decode())
    recorder.telemetry("train", 7, record)
    assert _rejected(metrics, reason) == 1, what
    others = sum(_rejected(metrics, r) for r in
                 ("not_a_record", "oversized", "bad_version", "unknown_key", "non_numeric",
                  "non_finite", "out_of_bounds") if r != reason)
    assert others == 0, what
    # the client's last good figure stands; nothing new appeared
    assert metrics.registry.get_sample_value(
        "fl_client_fit_duration_seconds", {"phase": "train", "client": "7"}) == 1.5
    text = generate_latest(metrics.registry).decode()
    assert _series(text) == before
    assert "fl_injected" not in text and "\x1b" not in text and MEGABYTE not in text


def test_exposition_stays_valid_after_every_hostile_record() -> None:
    recorder, metrics = _recorder()
    for node, (_, record, _) in enumerate(HOSTILE_RECORDS):
        recorder.telemetry("train", node, record)
        recorder.telemetry("evaluate", node, record)
    recorder.telemetry("train", 1, ConfigRecord({"v": 1, "epochs": 2, CONTROL: 1.0}))
    text = generate_latest(metrics.registry).decode()
    assert metrics.registry.get_sample_value("fl_client_local_epochs", {"client": "1"}) == 2
    assert sum(_rejected(metrics, r) for r in ("unknown_key", "oversized", "non_numeric")) >= 10
    _promtool_check(text)
    assert len(text) < 200_000


def test_memory_stays_bounded_over_100000_hostile_records_from_100000_clients() -> None:
    recorder, metrics = _recorder(max_labels=50)
    records = [h[1] for h in HOSTILE_RECORDS] + [
        ConfigRecord({"v": 1, CONTROL: 1.0, "epochs": 1, "errors": 1})]  # partly accepted
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for i in range(100_000):
            recorder.telemetry("train", 10**15 + i, records[i % len(records)])
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND_BYTES, f"peak {peak / 2**20:.1f} MiB"
    assert current < MEMORY_BOUND_BYTES
    total = sum(_rejected(metrics, r) for r in
                ("not_a_record", "oversized", "bad_version", "unknown_key", "non_numeric",
                 "non_finite", "out_of_bounds"))
    assert total >= 100_000
    text = generate_latest(metrics.registry).decode()
    clients = {s.labels["client"] for f in text_string_to_metric_families(text)
               for s in f.samples if "client" in s.labels}
    assert len(clients) <= 51 and "_other" in clients
    assert metrics.registry.get_sample_value("fl_clients_tracked") == 50
    assert (metrics.registry.get_sample_value("fl_clients_folded_total") or 0) > 10_000
    assert metrics.registry.get_sample_value("fl_client_errors_total",
                                             {"client": "_other"}) > 6_000
    _promtool_check(text)


def _hostile_metrics_app(kind: str) -> ClientApp:
    """A ClientApp whose train reply carries hostile metric keys or values."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        arrays = [a + 0.1 for a in msg.content["arrays"].to_numpy_ndarrays()]
        metrics: dict[str, float | int] = {"loss": 0.3, "accuracy": 0.9, "num-examples": 50}
        if kind == "control-key":
            metrics[CONTROL] = 1.0
        elif kind == "megabyte-key":
            metrics[MEGABYTE] = 1.0
        elif kind == "many-keys":
            metrics.update({f"m{i}": float(i) for i in range(100_000)})
        elif kind == "inf":
            metrics["loss"] = float("inf")
        content = RecordDict({"arrays": ArrayRecord(arrays), "metrics": MetricRecord(metrics)})
        if kind == "error-reason":
            return Message(Error(code=0, reason=CONTROL + MEGABYTE), reply_to=msg)
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return Message(content=RecordDict({"metrics": MetricRecord(
            {"loss": 0.4, "accuracy": 0.8, "num-examples": 20})}), reply_to=msg)

    return app


def test_a_federation_with_hostile_clients_keeps_a_valid_bounded_exposition() -> None:
    hostile_telemetry: Mapping[str, object] = {"v": 1, CONTROL: 1.0, MEGABYTE: 2.0,
                                               "loss": CONTROL}
    apps: dict[int, ClientApp | None] = {i: make_app(seed=i) for i in (1, 2, 3)}
    for node, kind in enumerate(("control-key", "megabyte-key", "many-keys", "inf",
                                 "error-reason"), start=10):
        apps[node] = _hostile_metrics_app(kind)
    apps[20] = make_app("hostile-telemetry", seed=20, telemetry=dict(hostile_telemetry))
    apps[21] = make_app("hostile-telemetry", seed=21,
                        telemetry={f"k{i}": 1.0 for i in range(100_000)})
    metrics = FlmonMetrics(sides=("server", "sink"))
    strategy = instrument(FedAvg(min_available_nodes=1, min_train_nodes=1,
                                 min_evaluate_nodes=1), metrics=metrics)
    strategy.start(grid=InProcessGrid(apps), initial_arrays=INITIAL, num_rounds=2)
    value = metrics.registry.get_sample_value
    assert value("fl_rounds_completed_total", {}) == 2
    # the control-character and megabyte keys differ from the majority; 100,000 keys are
    # oversized before any vote
    assert value("fl_replies_quarantined_total",
                 {"phase": "train", "reason": "inconsistent_metric_keys"}) == 2 * 2
    assert value("fl_replies_quarantined_total",
                 {"phase": "train", "reason": "oversized_metrics"}) == 2
    assert value("fl_replies_quarantined_total",
                 {"phase": "train", "reason": "non_finite_metrics"}) == 2
    assert value("fl_client_failures_total",
                 {"phase": "train", "client": "14", "error": "unknown"}) == 2
    assert _rejected(metrics, "oversized") == 2 * 2  # train and evaluate, 2 rounds
    assert _rejected(metrics, "unknown_key") == 2 * 2 * 2
    assert _rejected(metrics, "non_numeric") == 2 * 2
    for node in ("1", "2", "3", "20", "21"):
        assert value("fl_model_updates_total", {"client": node}) == 2
    text = generate_latest(metrics.registry).decode()
    assert "fl_injected" not in text and "\x1b" not in text and "AAAAAAAA" not in text
    assert "m99999" not in text and "k99999" not in text
    _promtool_check(text)
    assert len(text) < 200_000


def test_pseudonymous_labels_are_fixed_format_and_bounded_for_any_node_id() -> None:
    import re

    key = "k" * 32
    labeler = ClientLabeler(50, "pseudonym", key)
    extremes = [0, 1, 2**63 - 1, 2**64 - 1, 2**64, 10**30]
    values = {labeler.label(node).value for node in extremes}
    assert all(re.fullmatch(r"p-[0-9a-f]{12}", v) for v in values) and len(values) == 6
    for node in range(100_000):
        labeler.label(10**12 + node)
    assert labeler.tracked == 50
    assert labeler.label(10**12 + 99_999).value == "_other"
    # stable for a key, different under another key, never the node id itself
    again = ClientLabeler(50, "pseudonym", key).label(2**63 - 1).value
    other = ClientLabeler(50, "pseudonym", "o" * 32).label(2**63 - 1).value
    assert again == labeler.label(2**63 - 1).value != other
    assert str(2**63 - 1) not in again
    with pytest.raises(ValueError, match="16 bytes"):
        ClientLabeler(50, "pseudonym", "short")
