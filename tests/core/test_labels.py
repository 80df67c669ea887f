"""Bounded client labels: the cap holds whatever the number of clients."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flmon.catalog import OTHER_CLIENTS
from flmon.flower.recorder import ServerRecorder
from flmon.labels import ClientLabeler
from flmon.metrics import FlmonMetrics


def test_first_clients_get_their_own_value_then_fold() -> None:
    labeler = ClientLabeler(max_labels=2)
    assert labeler.label(11) == ("11", True, False)
    assert labeler.label(12) == ("12", True, False)
    assert labeler.label(13) == (OTHER_CLIENTS, False, True)
    assert labeler.label(13) == (OTHER_CLIENTS, False, False)
    assert labeler.label(11).value == "11"
    assert (labeler.tracked, labeler.folded) == (2, 1)


def test_pseudonyms_are_stable_keyed_and_not_the_node_id() -> None:
    a = ClientLabeler(identity="pseudonym", pseudonym_key="k" * 16)
    b = ClientLabeler(identity="pseudonym", pseudonym_key="k" * 16)
    c = ClientLabeler(identity="pseudonym", pseudonym_key="z" * 16)
    value = a.label(987654321).value
    assert value == b.label(987654321).value != c.label(987654321).value
    assert "987654321" not in value and value.startswith("p-")


def test_identity_none_keeps_no_client_value() -> None:
    labeler = ClientLabeler(identity="none")
    assert labeler.label(5) == (OTHER_CLIENTS, False, True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_labels": -1}, ">= 0"), ({"identity": "email"}, "client_identity"),
     ({"identity": "pseudonym"}, "pseudonym_key"),
     ({"identity": "pseudonym", "pseudonym_key": "short"}, "16 bytes")],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClientLabeler(**kwargs)  # type: ignore[arg-type]


def _series(metrics: FlmonMetrics) -> int:
    text = generate_latest(metrics.registry).decode()
    return sum(len(f.samples) for f in text_string_to_metric_families(text))


def test_series_count_is_bounded_at_100000_clients() -> None:
    def run(clients: int) -> int:
        metrics = FlmonMetrics(sides=("server",))
        recorder = ServerRecorder(metrics, ClientLabeler(max_labels=10), anomaly_threshold=3.5)
        for node in range(clients):
            recorder.reply("train", node, None, 100)
            recorder.model_update(node)
            recorder.client_metrics("train", node, {"accuracy": 0.9, "loss": 0.1,
                                                    "num-examples": 5}, "num-examples")
        return _series(metrics)

    small, large = run(50), run(100_000)
    assert small == large
    metrics = FlmonMetrics(sides=("server",))
    recorder = ServerRecorder(metrics, ClientLabeler(max_labels=10), anomaly_threshold=3.5)
    for node in range(1000):
        recorder.model_update(node)
    other = metrics.counter("fl_model_updates_total").labels(client=OTHER_CLIENTS)
    assert other._value.get() == 990
    assert metrics.counter("fl_clients_folded_total")._value.get() == 990


def test_the_pseudonym_key_is_never_logged() -> None:
    from flmon.logs import redact

    ClientLabeler(identity="pseudonym", pseudonym_key="hospital-key-0123456789")
    assert "hospital-key-0123456789" not in redact("key is hospital-key-0123456789")
