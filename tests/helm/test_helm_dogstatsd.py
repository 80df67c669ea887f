"""The chart's DogStatsD option, end to end: the environment the chart gives the SuperLink
container (which its ServerApp subprocesses inherit) makes an instrumented run send its
series by the real ``datadog`` client to a loopback DogStatsD receiver, with the names and
tags the rendered monitors read."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
import yaml
from flwr.app import ArrayRecord
from flwr.serverapp.strategy import FedAvg
from helmchart import CHART, manifests, one, render

from flmon.flower import instrument
from flmon.metrics import FlmonMetrics
from tests.core.clientapps import make_app
from tests.core.ingrid import InProcessGrid
from tests.fakes.loopback import UdpReceiver

NODE_IP = "127.0.0.1"  # what status.hostIP resolves to, here


def _superlink_env(values: dict[str, Any]) -> dict[str, str]:
    objects = manifests(render(values))
    container = one(objects, "Deployment", "flmon-superlink")["spec"]["template"]["spec"][
        "containers"][0]
    env: dict[str, str] = {}
    for entry in container["env"]:  # what the DogStatsD sink reads (not the Pushgateway's)
        if not entry["name"].startswith(("FLMON_DATADOG_", "DD_", "FLMON_FEDERATION")):
            continue
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.hostIP":
            env[entry["name"]] = NODE_IP
    return env


def _run(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    for name in [n for n in ("FLMON_DATADOG_ENABLED", "DD_AGENT_HOST", "FLMON_DATADOG_HOST")
                 if n not in env]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    strategy = FedAvg(min_available_nodes=1, min_train_nodes=1, min_evaluate_nodes=1)
    wrapped = instrument(strategy, metrics=FlmonMetrics(sides=("server", "sink")))
    wrapped.start(grid=InProcessGrid({1: make_app(seed=1), 2: make_app(seed=2)}),
                  initial_arrays=ArrayRecord([np.zeros((4, 3)), np.zeros(3)]), num_rounds=1)
    return wrapped


def _sink_counts(wrapped: Any) -> dict[str, float]:
    """The DogStatsD sink's own counters (what it sent, dropped, failed on)."""
    registry = wrapped.metrics.registry
    return {name: registry.get_sample_value(name, {"sink": "datadog"}) or 0.0
            for name in ("fl_sink_sent_total", "fl_sink_dropped_total", "fl_sink_errors_total")}


def test_the_charts_dogstatsd_env_makes_the_serverapp_send_its_series(
        monkeypatch: pytest.MonkeyPatch) -> None:
    values = yaml.safe_load((CHART / "ci" / "datadog-dogstatsd-values.yaml").read_text())
    values["prometheusRule"] = {"enabled": False}
    values["federation"] = {"name": "banks"}
    env = _superlink_env(values)
    assert env["FLMON_DATADOG_ENABLED"] == "1"
    udp = UdpReceiver()
    try:
        # The chart leaves the port at the Agent's DogStatsD default (8125, a host port):
        # only that differs on this machine.
        wrapped = _run(monkeypatch, {**env, "DD_DOGSTATSD_PORT": str(udp.port)})
        assert wrapped.datadog is not None and wrapped.datadog.closed
        # close() returns its first outcome again: everything queued was handed to the
        # socket before its deadline (the run's last collection included).
        assert wrapped.datadog.close() is True
        # Every datagram the sink handed to the socket, read by the receiver's thread
        # (which may lag behind the sender: reading at once would miss the last ones).
        sent = _sink_counts(wrapped)["fl_sink_sent_total"]
        assert sent > 0
        deadline = time.monotonic() + 30
        while len(udp.datagrams) < sent:
            assert time.monotonic() < deadline, (len(udp.datagrams), _sink_counts(wrapped))
            time.sleep(0.02)
        lines = udp.lines()
    finally:
        udp.close()
    by_name = {line.split(":", 1)[0]: line for line in lines}
    names = ("flmon.fl_rounds_completed.count", "flmon.fl_model_updates.count",
             "flmon.fl_training_accuracy", "flmon.fl_training_accuracy_valid",
             "flmon.fl_round_in_progress")
    assert set(names) <= set(by_name), sorted(by_name)
    # The last collection, when the run had ended, says so.
    assert by_name["flmon.fl_run_active"].startswith("flmon.fl_run_active:0|g|"), by_name
    for name in names:
        tags = by_name[name].split("|#", 1)[1].split(",")
        assert {"federation:banks", "run_id:4242", "env:ci"} <= set(tags), by_name[name]
    assert "flmon.fl_rounds_completed.count:1|c|" in by_name["flmon.fl_rounds_completed.count"]


def test_without_the_option_the_serverapp_sends_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    values = yaml.safe_load((CHART / "ci" / "datadog-values.yaml").read_text())
    values["prometheusRule"] = {"enabled": False}
    env = _superlink_env(values)
    assert "FLMON_DATADOG_ENABLED" not in env
    assert _run(monkeypatch, env).datadog is None
