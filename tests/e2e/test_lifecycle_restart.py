"""Prometheus restarted with an empty TSDB after a run: nothing fires about history.

Real Pushgateway, Prometheus (rendered configuration and rules) and AlertManager. flmon's
own server recorder records a run whose clients dropped out and sent rejected telemetry,
with a low final accuracy, and pushes it as ``instrument()`` does. The first Prometheus
sees FLClientDropout and FLTelemetryRejected fire through AlertManager and resolve (the
run ended; the rejections are older than the window). Then Prometheus starts again on an
empty TSDB, as a replica or a restart without persistent storage does, while the
Pushgateway still serves the ended run's counters: only what is still true fires, the
ended run's low accuracy (it ended less than ``lifecycle.stale_after`` ago), and exactly
that is what AlertManager holds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from flmon.config import parse_config
from flmon.flower.recorder import ServerRecorder
from flmon.labels import ClientLabeler
from flmon.metrics import FlmonMetrics
from flmon.push import Pusher
from flmon.render import render, write
from flmon.stack.alertmanager import AlertManager
from flmon.stack.ports import free_ports
from flmon.stack.prometheus import Prometheus
from flmon.stack.pushgateway import Pushgateway
from flmon.telemetry import REJECT_REASONS
from tests.e2e.support import silent_alertmanager_config, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FED = "restart"
WINDOW = "10s"
HISTORY = {"FLClientDropout", "FLTelemetryRejected"}




def _config(pushgateway: int, alertmanager: int) -> dict[str, Any]:
    return {
        "federation": {"name": FED},
        "scrape": {"interval": "1s", "live": {"enabled": False},
                   "pushgateway": {"targets": [f"127.0.0.1:{pushgateway}"]},
                   "watch": {"enabled": False}},
        "lifecycle": {"stale_after": "10m"},
        "alerts": {"FLLowTrainingAccuracy": {"for": "0s"},
                   "FLModelAccuracyDropped": {"enabled": False},
                   "FLClientDropout": {"for": "0s", "threshold": 1, "window": WINDOW},
                   "FLTelemetryRejected": {"for": "0s", "threshold": 0, "window": WINDOW}},
        "prometheus": {"evaluation_interval": "1s"},
        "alertmanager": {"targets": [f"127.0.0.1:{alertmanager}"]},
        "slack": {"webhook_url_file": "/run/secrets/slack-webhook",
                  "channels": {"critical": "#c", "warning": "#w", "info": "#i"}},
    }


def _names(alerts: list[dict[str, Any]]) -> set[str]:
    return {a["labels"]["alertname"] for a in alerts}


def test_an_empty_tsdb_after_a_run_with_dropouts_fires_nothing_about_history(
        tmp_path: Path) -> None:
    am_port, = free_ports(1)
    metrics = FlmonMetrics(sides=("server", "sink"))
    recorder = ServerRecorder(metrics, ClientLabeler(50, "node_id", None), 0.5)
    with Pushgateway(workdir=tmp_path / "pg") as gateway:
        pg_port = int(gateway.address.rsplit(":", 1)[1])
        out = tmp_path / "render"
        write(render(parse_config(_config(pg_port, am_port))), out)
        am_config = silent_alertmanager_config(out)
        pusher = Pusher(gateway.address, metrics.registry, job="flmon",
                        grouping_key={"run_id": "31"})
        with AlertManager(am_config, workdir=tmp_path / "am", port=am_port) as am:

            def prometheus(name: str) -> Prometheus:
                return Prometheus(out / "prometheus/prometheus.yml",
                                  rules=[out / "rules/flmon-rules.yaml"],
                                  workdir=tmp_path / name)

            def active() -> set[str]:
                return _names(am.alerts(active=True))

            # The run, as the first Prometheus sees it: one node drops out, one sends
            # telemetry flmon rejects, the accuracy is low.
            with prometheus("prom-1") as prom:
                recorder.run_started(31, "FedAvg", "1.42", 3)
                recorder.round_started(1)
                for _ in range(2):
                    recorder.failure("train", 7, "no_reply")
                metrics.counter("fl_telemetry_rejected_total").labels(
                    reason=REJECT_REASONS[0]).inc(3)
                metrics.gauge("fl_training_accuracy").set(0.5)
                pusher.request()
                wait_until("the run's alerts in AlertManager",
                      lambda: HISTORY | {"FLLowTrainingAccuracy"} <= active() or None)
                recorder.round_completed(2.0)
                recorder.run_ended(None)
                pusher.request()
                wait_until("the ended run's pushed state", lambda: prom.query(
                    f'fl_run_active{{federation="{FED}",run_id="31"}} == 0'))
                # The run ended (FLClientDropout is about a run in progress) and the
                # rejections are older than the window: both resolve on their own.
                wait_until("the history to resolve", lambda: not (HISTORY & active()) or None)
                assert active() == {"FLLowTrainingAccuracy"}
            assert pusher.close()

            # A new Prometheus on an empty TSDB, the Pushgateway unchanged.
            with prometheus("prom-2") as prom:
                wait_until("the Pushgateway's series in the new TSDB", lambda: prom.query(
                    f'fl_telemetry_rejected_total{{federation="{FED}"}} > 0'))
                scraped_at = time.time()

                def evaluated_since_scrape() -> bool:
                    groups = prom.api("rules")["groups"]
                    return bool(groups) and all(
                        _seconds(g["lastEvaluation"]) > scraped_at + 2 for g in groups)

                # Every rule group evaluated the restored data (twice: 1 s apart)...
                wait_until("every rule group evaluated over the scraped data",
                      evaluated_since_scrape, 30)
                firing = prom.api("alerts")["alerts"]
                # ...and only what is still true fires: the ended run's low accuracy.
                assert {(a["labels"]["alertname"], a["state"]) for a in firing} == {
                    ("FLLowTrainingAccuracy", "firing")}
                assert [a["labels"]["run_id"] for a in firing] == ["31"]
                # AlertManager got it from the new Prometheus, and nothing else.
                held = wait_until("AlertManager to hold the new Prometheus' alert", lambda: [
                    a for a in am.alerts(active=True)
                    if _seconds(a["updatedAt"]) > scraped_at] or None)
                assert _names(held) == {"FLLowTrainingAccuracy"}
                assert active() == {"FLLowTrainingAccuracy"}


def _seconds(rfc3339: str) -> float:
    """Seconds since the epoch of Prometheus' and AlertManager's timestamps."""
    from datetime import datetime

    text = rfc3339.replace("Z", "+00:00")
    if "." in text:  # nanoseconds: Python takes at most microseconds
        head, rest = text.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6]}{zone}"
    return datetime.fromisoformat(text).timestamp()
