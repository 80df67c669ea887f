"""The rendered prometheus.yml and rules in a real Prometheus, scraping a real Pushgateway."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from flmon.stack.ports import free_port
from tests.render.conftest import minimal_data, require_tool, with_changes


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


def _wait_ready(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{what} did not start")
            time.sleep(0.2)


@contextmanager
def _process(args: list[str], ready: str, what: str) -> Iterator[None]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(ready, proc, what)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.mark.e2e
def test_pushed_metrics_fire_alerts_with_the_federation_label(
        tmp_path: Path, render_dir: Callable[[dict[str, Any]], Path]) -> None:
    prometheus = require_tool("prometheus")
    pushgateway = require_tool("prometheus-pushgateway")
    pg_port, prom_port = free_port(), free_port()
    # bound but not listening: nothing else can take the port while the test runs
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    fast = {"for": "0m"}
    out = render_dir(with_changes(
        minimal_data(),
        federation__name="e2e",
        scrape__interval="1s",
        scrape__live__targets=[f"127.0.0.1:{dead_port}"],
        scrape__pushgateway__targets=[f"127.0.0.1:{pg_port}"],
        scrape__watch__enabled=True, scrape__watch__targets=[f"127.0.0.1:{dead_port}"],
        prometheus__evaluation_interval="1s",
        alertmanager__targets=[f"127.0.0.1:{dead_port}"],
        alerts__FLLowTrainingAccuracy=fast, alerts__FLModelAccuracyDropped=fast,
    ))
    # In memory only: Debian's default persistence file is shared by every Pushgateway
    # started without the flag, so another run's groups would leak in.
    with _process([pushgateway, f"--web.listen-address=127.0.0.1:{pg_port}",
                   "--persistence.file="],
                  f"http://127.0.0.1:{pg_port}/-/ready", "Pushgateway"):
        # A counter created now (its _created time says so): its first increment counts.
        body = ("# TYPE fl_training_accuracy gauge\nfl_training_accuracy 0.5\n"
                "# TYPE fl_telemetry_rejected_total counter\n"
                'fl_telemetry_rejected_total{reason="unknown_key"} 1\n'
                "# TYPE fl_telemetry_rejected_created gauge\n"
                f'fl_telemetry_rejected_created{{reason="unknown_key"}} {time.time()}\n')
        push = urllib.request.Request(
            f"http://127.0.0.1:{pg_port}/metrics/job/flmon/run_id/12",
                                      data=body.encode(), method="PUT")
        urllib.request.urlopen(push, timeout=5).close()
        base = f"http://127.0.0.1:{prom_port}"
        with _process([prometheus, f"--config.file={out / 'prometheus/prometheus.yml'}",
                       f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                       f"--web.listen-address=127.0.0.1:{prom_port}"],
                      f"{base}/-/ready", "Prometheus"):
            wanted = {"FLLowTrainingAccuracy", "FLModelAccuracyDropped", "FLTelemetryRejected"}
            firing: dict[str, dict[str, str]] = {}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not wanted <= set(firing):
                alerts = _get(f"{base}/api/v1/alerts")["data"]["alerts"]
                firing = {a["labels"]["alertname"]: a for a in alerts
                          if a["state"] == "firing"}
                time.sleep(0.5)
            assert wanted <= set(firing), firing
            up = _get(f"{base}/api/v1/query?query=up")["data"]["result"]
    dead.close()
    dropped = firing["FLModelAccuracyDropped"]
    assert dropped["labels"]["federation"] == "e2e"
    assert dropped["labels"]["run_id"] == "12"  # the run's grouping key
    assert "job" not in dropped["labels"]  # one alert whichever path carried the value
    assert dropped["labels"]["severity"] == "critical"
    assert dropped["annotations"]["description"].startswith(
        "Aggregated training accuracy of run 12 of federation e2e dropped to 50%")
    assert firing["FLTelemetryRejected"]["labels"]["reason"] == "unknown_key"
    jobs = {(s["metric"]["job"], s["metric"]["federation"]) for s in up}
    assert jobs == {("flmon-exporter", "e2e"), ("flmon-pushgateway", "e2e"),
                    ("flmon-watch", "e2e")}
    # the live exporter is down, but no run is active: no FLExporterDown
    assert "FLExporterDown" not in firing
