"""Run identity: run_id on every series of the live exporter and in the Pushgateway group."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest
from flwr.app import ArrayRecord
from flwr.serverapp.strategy import FedAvg
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flmon import registry, runlabel
from flmon.exporter import start_exporter
from flmon.flower import instrument
from flmon.metrics import FlmonMetrics
from flmon.stack.pushgateway import Pushgateway
from tests.core.clientapps import make_app
from tests.core.ingrid import InProcessGrid


@pytest.fixture(autouse=True)
def _no_current_run() -> Iterator[None]:
    runlabel.set_current_run(None)
    yield
    runlabel.set_current_run(None)


def _labels(text: str, name: str) -> list[dict[str, str]]:
    return [s.labels for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == name]


def test_every_sample_gets_the_current_run_and_run_info_keeps_its_own() -> None:
    source = CollectorRegistry()
    Counter("fl_demo", "demo", ["client"], registry=source).labels(client="7").inc()
    served = runlabel.run_labelled(source)
    assert runlabel.run_labelled(source) is served  # one view per source registry
    text = generate_latest(served).decode()
    assert _labels(text, "fl_demo_total") == [{"client": "7", "run_id": "unknown"}]
    runlabel.set_current_run(17)
    text = generate_latest(served).decode()
    assert _labels(text, "fl_demo_total") == [{"client": "7", "run_id": "17"}]
    own = CollectorRegistry()
    FlmonMetrics(own, sides=("server",)).gauge("fl_run_info").labels(
        run_id="5", strategy="FedAvg", flwr_version="1.42", flmon_version="0").set(1)
    text = generate_latest(runlabel.run_labelled(own)).decode()
    assert [lab["run_id"] for lab in _labels(text, "fl_run_info")] == ["5"]


def test_the_default_exporter_serves_the_runs_id_set_by_start() -> None:
    apps = {i: make_app(seed=i) for i in (1, 2)}
    strategy = instrument(FedAvg(min_available_nodes=1, min_train_nodes=1,
                                 min_evaluate_nodes=1))
    assert strategy.metrics is registry.server_metrics()
    strategy.start(grid=InProcessGrid(apps), initial_arrays=ArrayRecord([np.zeros(3)]),
                   num_rounds=1)
    with start_exporter(0) as exporter:
        text = urllib.request.urlopen(exporter.url, timeout=5).read().decode()
    families = list(text_string_to_metric_families(text))
    samples = [s for f in families for s in f.samples if s.name.startswith("fl_")]
    assert samples
    assert {s.labels.get("run_id") for s in samples} == {"4242"}  # InProcessGrid's run


def test_the_pushgateway_group_is_keyed_by_run_id() -> None:
    apps = {i: make_app(seed=i) for i in (1, 2)}
    metrics = FlmonMetrics(sides=("server", "sink"))
    with Pushgateway() as gateway:
        strategy = instrument(FedAvg(min_available_nodes=1, min_train_nodes=1,
                                     min_evaluate_nodes=1), metrics=metrics,
                              pushgateway=gateway.address, grouping_key={"federation": "f"})
        strategy.start(grid=InProcessGrid(apps), initial_arrays=ArrayRecord([np.zeros(3)]),
                       num_rounds=1)
        text = gateway.metrics_text()
    rounds = _labels(text, "fl_rounds_completed_total")
    assert rounds == [{"federation": "f", "instance": "", "job": "flmon", "run_id": "4242"}]


def test_a_taken_port_is_skipped_when_port_tries_allows_it() -> None:
    with start_exporter(0, registry=CollectorRegistry()) as first:
        with start_exporter(first.port, registry=CollectorRegistry(), port_tries=5) as second:
            assert first.port < second.port <= first.port + 4
            assert urllib.request.urlopen(
                second.url.replace("/metrics", "/healthz"), timeout=5).status == 200
        with pytest.raises(OSError):
            start_exporter(first.port, registry=CollectorRegistry())
    with pytest.raises(ValueError, match="port_tries"):
        start_exporter(0, registry=CollectorRegistry(), port_tries=0)
