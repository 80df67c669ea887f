"""The banks reference app with the sinks a user turns on by environment: its ServerApp
ships ECS logs to Elasticsearch, its figures to DogStatsD and the run's start and end to
Slack, here into the loopback receivers (real Flower SuperLink and SuperNodes)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flmon.reference import app_dir
from flmon.stack.flower import FlowerFederation
from tests.fakes.loopback import FakeElasticsearch, FakeSlack, UdpReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_the_fraud_app_ships_its_logs_figures_and_run_notices(tmp_path: Path) -> None:
    es, slack, udp = FakeElasticsearch(), FakeSlack(), UdpReceiver()
    env = {
        "FLMON_ES_URL": es.url, "FLMON_ES_INDEX": "flmon-logs-banks",
        "FLMON_DATADOG_ENABLED": "1", "FLMON_DATADOG_HOST": "127.0.0.1",
        "FLMON_DATADOG_PORT": str(udp.port), "FLMON_FEDERATION": "banks",
        "FLMON_SLACK_WEBHOOK_URL": slack.webhook_url(),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    try:
        with FlowerFederation(3, workdir=tmp_path / "flower", env=env) as fed:
            result = fed.run(app_dir("fraud"), {"num-server-rounds": 1, "local-epochs": 1,
                                                "min-nodes": 3})
        assert result.returncode == 0, result.output[-3000:]

        # ECS records of the ServerApp and of flmon, in the configured data stream.
        _until(lambda: any("final global model" in d.get("message", "")
                           for d in es.indexed.values()))
        docs = list(es.indexed.values())
        assert all(a["create"]["_index"] == "flmon-logs-banks"
                   for r in es.requests for a in r.actions)
        final = next(d for d in docs if "final global model" in d.get("message", ""))
        assert final["log.level"] == "info" and "@timestamp" in final
        assert final["log.logger"] == "fraud"

        # The run's fl_* series, mirrored to DogStatsD with the federation tag.
        _until(lambda: any(line.startswith("flmon.fl_rounds_completed.count:1|c")
                           for line in udp.lines()))
        rounds = [line for line in udp.lines() if line.startswith("flmon.fl_rounds_completed.")]
        assert all("federation:banks" in line for line in rounds)
        # One sender per series: the run's one round is counted once, not once per sender.
        # The ServerApp has ended (its sinks flushed); a sentinel sent now arrives after
        # anything it sent.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sentinel:
            sentinel.sendto(b"sentinel.done:1|c", ("127.0.0.1", udp.port))
        _until(lambda: "sentinel.done:1|c" in udp.lines())
        completed = [line for line in udp.lines()
                     if line.startswith("flmon.fl_rounds_completed.count:")]
        assert sum(float(line.split(":", 1)[1].split("|", 1)[0]) for line in completed) == 1

        # Slack: the run started, then finished.
        _until(lambda: len(slack.posts) >= 2)
        texts = [str(p.payload) for p in slack.posts]
        assert all(str(p.payload).count("banks") for p in slack.posts), texts
        assert "started" in texts[0].lower() and "finished" in texts[-1].lower(), texts
    finally:
        es.close()
        slack.close()
        udp.close()
