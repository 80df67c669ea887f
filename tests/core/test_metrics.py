"""Collectors built from the catalog."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from flmon import catalog
from flmon.metrics import FlmonMetrics


def _lines(metrics: FlmonMetrics, name: str) -> list[str]:
    text = generate_latest(metrics.registry).decode()
    return [line for line in text.splitlines() if line.split("{")[0].split(" ")[0] == name]


def test_unset_unlabelled_gauges_are_absent_not_zero() -> None:
    """Before round 1, fl_training_accuracy must not read 0 (an accuracy alert would fire)."""
    metrics = FlmonMetrics()
    assert _lines(metrics, "fl_training_accuracy") == []
    assert _lines(metrics, "fl_dp_epsilon_spent") == []
    metrics.gauge("fl_training_accuracy").set(0.0)
    assert _lines(metrics, "fl_training_accuracy") == ["fl_training_accuracy 0.0"]
    metrics.gauge("fl_current_round").inc()
    assert _lines(metrics, "fl_current_round") == ["fl_current_round 1.0"]


def test_counters_read_zero_from_the_start() -> None:
    metrics = FlmonMetrics()
    assert _lines(metrics, "fl_rounds_completed_total") == ["fl_rounds_completed_total 0.0"]


def test_every_catalog_metric_is_created_with_its_type_and_labels() -> None:
    metrics = FlmonMetrics()
    # The watch's series come from its own collector (tests/watch/test_collector.py).
    for spec in (s for s in catalog.CATALOG if s.side != "watch"):
        getter = {"counter": metrics.counter, "gauge": metrics.gauge,
                  "histogram": metrics.histogram, "info": metrics.gauge}[spec.type]
        metric = getter(spec.name)
        assert tuple(metric._labelnames) == spec.labels, spec.name


def test_wrong_type_and_unknown_names_are_refused() -> None:
    metrics = FlmonMetrics(sides=("server",))
    with pytest.raises(TypeError, match="not a counter"):
        metrics.counter("fl_training_accuracy")
    with pytest.raises(KeyError, match="not in the flmon catalog"):
        metrics.gauge("fl_unknown")
    with pytest.raises(KeyError, match="was not created"):
        metrics.counter("fl_local_epochs_total")
