"""The anomaly threshold is inclusive: a score equal to it counts, one just below does not."""

from __future__ import annotations

import math

import pytest
from flwr.serverapp.strategy import FedAvg

from flmon.flower import instrument
from flmon.flower.recorder import ServerRecorder
from flmon.labels import ClientLabeler
from flmon.metrics import FlmonMetrics
from flmon.security.updates import UpdateStats


def _v(metrics: FlmonMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.mark.parametrize("threshold", [3.5, 1.0, 10.0])
def test_a_score_equal_to_the_threshold_is_anomalous(threshold: float) -> None:
    metrics = FlmonMetrics(sides=("server", "sink"))
    recorder = ServerRecorder(metrics, ClientLabeler(), threshold)
    just_below = math.nextafter(threshold, 0.0)
    anomalous = recorder.update_stats({
        1: UpdateStats(norm=9.0, cosine=0.9, norm_score=threshold, cosine_score=0.0),
        2: UpdateStats(norm=1.0, cosine=0.9, norm_score=just_below, cosine_score=just_below),
        3: UpdateStats(norm=1.0, cosine=-0.9, norm_score=0.0, cosine_score=threshold),
        4: UpdateStats(norm=1.0, cosine=1.0, norm_score=0.0, cosine_score=0.0),
    }, median_norm=1.0)
    assert anomalous == [1, 3]
    assert _v(metrics, "fl_anomalous_updates_total", client="1") == 1
    assert _v(metrics, "fl_anomalous_updates_total", client="2") == 0
    assert _v(metrics, "fl_anomalous_updates_total", client="3") == 1
    assert _v(metrics, "fl_security_events_total", kind="anomalous_update") == 2
    assert _v(metrics, "fl_client_anomaly_score", client="2") == just_below
    assert _v(metrics, "fl_update_norm_median") == 1.0


def test_the_strategy_passes_its_threshold_to_the_recorder() -> None:
    wrapped = instrument(FedAvg(), metrics=FlmonMetrics(), anomaly_threshold=2.25)
    assert wrapped.recorder.anomaly_threshold == 2.25
    assert instrument(FedAvg(), metrics=FlmonMetrics()).recorder.anomaly_threshold == 3.5


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_a_threshold_that_is_not_a_positive_number_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="anomaly_threshold"):
        instrument(FedAvg(), metrics=FlmonMetrics(), anomaly_threshold=bad)
