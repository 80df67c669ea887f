"""DogStatsD sink against a UDP (and a Unix datagram) socket on loopback."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sinkfakes import UdpReceiver, count

from flmon.metrics import FlmonMetrics
from flmon.sinks.base import QueueSettings
from flmon.sinks.datadog import DatadogConfig, DatadogSink


@pytest.fixture
def udp() -> Iterator[UdpReceiver]:
    receiver = UdpReceiver()
    yield receiver
    receiver.close()


def make(udp: UdpReceiver, quick: QueueSettings, metrics: FlmonMetrics,
         mirror: FlmonMetrics | None = None, **config: object) -> DatadogSink:
    settings = dict(host="127.0.0.1", port=udp.port, origin_detection=False,
                    mirror_interval=3600.0, queue=quick)
    settings.update(config)
    return DatadogSink(DatadogConfig(**settings), mirror=mirror,  # type: ignore[arg-type]
                       metrics=metrics)


def test_a_short_run_sends_exactly_these_lines(
        udp: UdpReceiver, quick: QueueSettings, metrics: FlmonMetrics) -> None:
    local = FlmonMetrics(sides=("client",))
    sink = make(udp, quick, metrics, mirror=local, federation="hospitals",
                constant_tags=("env:test",))
    sink.set_context(run="42")
    for rnd in (1, 2):
        sink.set_context(round=rnd)
        for step in range(2):
            loss = 1.0 / (rnd * 2 + step)
            local.counter("fl_local_steps_total").inc()
            local.gauge("fl_local_training_loss").set(loss)
            sink.record("fl_local_training_loss", loss)
        local.counter("fl_local_epochs_total").inc()
        local.gauge("fl_local_training_accuracy").set(0.5 + rnd / 10)
        sink.collect()
    assert sink.close(5.0)
    ctx1 = "federation:hospitals,run_id:42,round:1,env:test"
    ctx2 = "federation:hospitals,run_id:42,round:2,env:test"
    assert udp.wait_for(14) == [
        f"flmon.fl_local_training_loss:0.5|g|#{ctx1}",
        f"flmon.fl_local_training_loss:0.3333333333333333|g|#{ctx1}",
        f"flmon.fl_local_epochs.count:1|c|#{ctx1}",
        f"flmon.fl_local_steps.count:2|c|#{ctx1}",
        f"flmon.fl_local_training_loss:0.3333333333333333|g|#{ctx1}",
        f"flmon.fl_local_training_accuracy:0.6|g|#{ctx1}",
        f"flmon.fl_local_training_loss:0.25|g|#{ctx2}",
        f"flmon.fl_local_training_loss:0.2|g|#{ctx2}",
        f"flmon.fl_local_epochs.count:1|c|#{ctx2}",
        f"flmon.fl_local_steps.count:2|c|#{ctx2}",
        f"flmon.fl_local_training_loss:0.2|g|#{ctx2}",
        f"flmon.fl_local_training_accuracy:0.7|g|#{ctx2}",
        # the collection at close: counters did not move, gauges are sent again
        f"flmon.fl_local_training_loss:0.2|g|#{ctx2}",
        f"flmon.fl_local_training_accuracy:0.7|g|#{ctx2}",
    ]
    assert count(metrics, "fl_sink_sent_total", "datadog") == 14
    assert count(metrics, "fl_sink_dropped_total", "datadog") == 0


def test_server_registry_gives_run_round_and_bounded_client_tags(
        udp: UdpReceiver, quick: QueueSettings, metrics: FlmonMetrics) -> None:
    server = FlmonMetrics(sides=("server",))
    server.gauge("fl_run_info").labels(run_id="r-7", strategy="FedAvg", flwr_version="1.42",
                                       flmon_version="0.1.0").set(1)
    server.gauge("fl_current_round").set(3)
    server.counter("fl_model_updates_total").labels(client="n1").inc(2)
    server.counter("fl_client_failures_total").labels(
        phase="train", client="_other", error="node_unavailable").inc()
    server.histogram("fl_round_duration_seconds").observe(4.0)
    sink = make(udp, quick, metrics, mirror=server, namespace="fl", round_tag=True)
    sink.collect()
    assert sink.flush(5.0)
    lines = udp.wait_for(1)
    sink.close(2.0)
    ctx = "run_id:r-7,round:3"
    assert "fl.fl_current_round:3|g|#" + ctx in lines
    assert f"fl.fl_model_updates.count:2|c|#client:n1,{ctx}" in lines
    assert (f"fl.fl_client_failures.count:1|c|#phase:train,client:_other,"
            f"error:node_unavailable,{ctx}") in lines
    # its own run_id label wins over the context's: the tag appears once
    assert ("fl.fl_run_info:1|g|#run_id:r-7,strategy:FedAvg,flwr_version:1.42,"
            "flmon_version:0.1.0,round:3") in lines
    # histogram: cumulative buckets (upper_bound tag), count and sum, as the Agent's
    # OpenMetrics check names them
    assert f"fl.fl_round_duration_seconds.bucket:0|c|#upper_bound:2.5,{ctx}" not in lines
    assert f"fl.fl_round_duration_seconds.bucket:1|c|#upper_bound:5.0,{ctx}" in lines
    assert f"fl.fl_round_duration_seconds.bucket:1|c|#upper_bound:inf,{ctx}" in lines
    assert f"fl.fl_round_duration_seconds.count:1|c|#{ctx}" in lines
    assert f"fl.fl_round_duration_seconds.sum:4|c|#{ctx}" in lines
    assert not any("_created" in line or "_total" in line for line in lines)


def test_counters_are_sent_as_deltas(
        udp: UdpReceiver, quick: QueueSettings, metrics: FlmonMetrics) -> None:
    local = FlmonMetrics(sides=("client",))
    sink = make(udp, quick, metrics, mirror=local)
    steps = local.counter("fl_local_steps_total")
    steps.inc(5)
    sink.collect()
    sink.collect()  # nothing moved
    steps.inc(2)
    sink.collect()
    sink.close(2.0)
    sent = [line for line in udp.wait_for(3) if "fl_local_steps" in line]
    assert sent == ["flmon.fl_local_steps.count:5|c", "flmon.fl_local_steps.count:2|c"]


def test_client_tags_are_capped(udp: UdpReceiver, quick: QueueSettings,
                                metrics: FlmonMetrics) -> None:
    sink = make(udp, quick, metrics, max_client_tags=2, round_tag=False)
    for client in ("a", "b", "c", "d", "a"):
        sink.record("fl_client_training_loss", 0.5, client=client)
    sink.record("fl_model_updates_total", 1, client="e")
    sink.record("fl_round_duration_seconds", 1.5)
    sink.close(2.0)
    assert udp.wait_for(7) == [
        "flmon.fl_client_training_loss:0.5|g|#client:a",
        "flmon.fl_client_training_loss:0.5|g|#client:b",
        "flmon.fl_client_training_loss:0.5|g|#client:_other",
        "flmon.fl_client_training_loss:0.5|g|#client:_other",
        "flmon.fl_client_training_loss:0.5|g|#client:a",
        "flmon.fl_model_updates.count:1|c|#client:_other",
        "flmon.fl_round_duration_seconds:1.5|d",
    ]


def test_unknown_metric_or_label_is_refused(udp: UdpReceiver, quick: QueueSettings,
                                            metrics: FlmonMetrics) -> None:
    sink = make(udp, quick, metrics)
    with pytest.raises(KeyError):
        sink.record("fl_no_such_metric", 1)
    with pytest.raises(ValueError, match="label"):
        sink.record("fl_training_loss", 1, client="a")
    sink.close(1.0)


def test_unix_socket_transport(tmp_path: Path, quick: QueueSettings,
                               metrics: FlmonMetrics) -> None:
    path = tmp_path / "dsd.socket"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    receiver.settimeout(2.0)
    try:
        sink = DatadogSink(DatadogConfig(socket_path=f"unix://{path}", origin_detection=False,
                                         round_tag=False, queue=quick), metrics=metrics)
        sink.record("fl_training_accuracy", 0.9)
        assert sink.close(2.0)
        assert receiver.recv(8192) == b"flmon.fl_training_accuracy:0.9|g\n"
    finally:
        receiver.close()


def test_agent_port_closed_counts_errors_and_never_raises(
        quick: QueueSettings, metrics: FlmonMetrics) -> None:
    udp = UdpReceiver()
    port = udp.port
    udp.close()  # nothing listens: the kernel answers port unreachable
    sink = DatadogSink(DatadogConfig(host="127.0.0.1", port=port, origin_detection=False,
                                     queue=quick), metrics=metrics)
    for _ in range(50):
        sink.record("fl_training_loss", 0.1)
        sink.flush(1.0)
    sink.close(2.0)
    assert count(metrics, "fl_sink_errors_total", "datadog") > 0
    assert (count(metrics, "fl_sink_sent_total", "datadog")
            + count(metrics, "fl_sink_dropped_total", "datadog")) == 50


def test_config_from_env() -> None:
    cfg = DatadogConfig.from_env({
        "DD_AGENT_HOST": "127.0.0.1", "FLMON_DATADOG_PORT": "18125",
        "FLMON_DATADOG_TAGS": "env:prod, team:ml", "FLMON_FEDERATION": "banks",
        "FLMON_DATADOG_ROUND_TAG": "0", "FLMON_DATADOG_NAMESPACE": "acme",
    })
    assert (cfg.host, cfg.port, cfg.namespace) == ("127.0.0.1", 18125, "acme")
    assert cfg.constant_tags == ("env:prod", "team:ml")
    assert cfg.federation == "banks" and cfg.round_tag is False
    with pytest.raises(ValueError):
        DatadogConfig(port=0)


def test_the_worker_collects_every_mirror_interval(
        udp: UdpReceiver, quick: QueueSettings, metrics: FlmonMetrics) -> None:
    local = FlmonMetrics(sides=("client",))
    sink = make(udp, quick, metrics, mirror=local, mirror_interval=0.1, round_tag=False)
    local.counter("fl_local_epochs_total").inc()
    lines = udp.wait_for(1, timeout=5.0)
    assert "flmon.fl_local_epochs.count:1|c" in lines
    local.counter("fl_local_epochs_total").inc(3)
    deadline = time.monotonic() + 5.0
    while "flmon.fl_local_epochs.count:3|c" not in udp.lines() and time.monotonic() < deadline:
        time.sleep(0.02)
    sink.close(2.0)
    epochs = [line for line in udp.lines() if "fl_local_epochs" in line]
    assert epochs == ["flmon.fl_local_epochs.count:1|c", "flmon.fl_local_epochs.count:3|c"]


def test_non_finite_values_are_dropped_and_counted(
        udp: UdpReceiver, quick: QueueSettings, metrics: FlmonMetrics) -> None:
    sink = make(udp, quick, metrics, round_tag=False)
    assert sink.record("fl_training_loss", float("nan")) is False
    assert sink.record("fl_training_loss", float("inf")) is False
    assert sink.record("fl_training_loss", 0.25) is True
    sink.close(2.0)
    assert udp.wait_for(1) == ["flmon.fl_training_loss:0.25|g"]
    assert count(metrics, "fl_sink_dropped_total", "datadog") == 2
