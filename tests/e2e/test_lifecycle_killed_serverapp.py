"""The ServerApp killed mid-run, through a real AlertManager.

flower-superlink, 2 flower-supernode processes, ``flmon watch`` (deleting ended runs'
Pushgateway groups after a short ``--stale-after``), a Pushgateway, Prometheus with the
rendered rules and AlertManager. The test app (tests/apps/tinyfl) serves ``/metrics`` live
and pushes; once its first round is recorded, its ServerApp process gets SIGKILL: no final
push, the Pushgateway keeps ``fl_run_active`` 1. As the declarations define it:

- the live branch of FLExporterDown fires (a run in progress, its exporter gone) and
  resolves once the SuperLink has marked the run finished;
- FLRunFailed fires (the run ended with the failed sub-status);
- nothing about the killed run fires for ever: once the watch has deleted its group,
  AlertManager holds FLRunFailed only (it lasts its window), and nothing else.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from flmon.config import parse_config
from flmon.render import render, write
from flmon.stack.alertmanager import AlertManager
from flmon.stack.flower import FlowerFederation, RunResult
from flmon.stack.ports import free_ports
from flmon.stack.prometheus import Prometheus
from flmon.stack.pushgateway import Pushgateway
from flmon.stack.watch import WatchProcess
from tests.e2e.support import silent_alertmanager_config, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APP = Path(__file__).resolve().parents[1] / "apps" / "tinyfl"
FED = "killed"
STALE_AFTER = "20s"




def _descendants(root: int) -> list[int]:
    """Pids below ``root`` in the process tree (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out: list[int] = []
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, pp in parents.items() if pp == pid]
        out += children
        frontier += children
    return out


def _serverapp_pid(superlink: int) -> int | None:
    for pid in _descendants(superlink):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(Path(a.decode(errors="replace")).name == "flwr-serverapp" for a in argv[:2]):
            return pid
    return None


def _config(live: int, pushgateway: int, watch: int, alertmanager: int) -> dict[str, Any]:
    return {
        "federation": {"name": FED},
        "scrape": {"interval": "1s",
                   "live": {"targets": [f"127.0.0.1:{live}"]},
                   "pushgateway": {"targets": [f"127.0.0.1:{pushgateway}"]},
                   "watch": {"enabled": True, "targets": [f"127.0.0.1:{watch}"]}},
        "lifecycle": {"stale_after": STALE_AFTER},
        "alerts": {"FLExporterDown": {"for": "5s"}, "FLRunFailed": {"for": "0s"},
                   # the tiny model's accuracy is no concern here
                   "FLLowTrainingAccuracy": {"threshold": 0.0},
                   "FLModelAccuracyDropped": {"threshold": 0.0}},
        "prometheus": {"evaluation_interval": "1s"},
        "alertmanager": {"targets": [f"127.0.0.1:{alertmanager}"]},
        "slack": {"webhook_url_file": "/run/secrets/slack-webhook",
                  "channels": {"critical": "#c", "warning": "#w", "info": "#i"}},
    }


def test_a_serverapp_killed_mid_run_fires_exporter_down_then_run_failed_and_nothing_for_ever(
        tmp_path: Path) -> None:
    live_port, watch_port, am_port = free_ports(3)
    with Pushgateway(workdir=tmp_path / "pg") as gateway, FlowerFederation(
            2, workdir=tmp_path / "flower") as fed:
        pg_port = int(gateway.address.rsplit(":", 1)[1])
        out = tmp_path / "render"
        write(render(parse_config(_config(live_port, pg_port, watch_port, am_port))), out)
        am_config = silent_alertmanager_config(out)
        watch = WatchProcess(fed.address, tmp_path / "watch.log",
                             ["--interval", "1s", "--pushgateway", gateway.address,
                              "--stale-after", STALE_AFTER], port=watch_port)
        with watch, AlertManager(am_config, workdir=tmp_path / "am", port=am_port) as am, \
                Prometheus(out / "prometheus/prometheus.yml",
                           rules=[out / "rules/flmon-rules.yaml"],
                           workdir=tmp_path / "prom") as prom:

            def active() -> set[str]:
                return {a["labels"]["alertname"] for a in am.alerts(active=True)}

            result: list[RunResult] = []
            runner = threading.Thread(target=lambda: result.append(fed.run(
                APP, {"num-server-rounds": 30, "exporter-port": live_port,
                      "pushgateway": gateway.address}, timeout=400)), daemon=True)
            runner.start()
            sel = f'federation="{FED}"'
            wait_until("the first round on the live path", lambda: prom.query(
                f'fl_rounds_completed_total{{job="flmon-exporter",{sel}}} >= 1'), 240)
            assert prom.query(f'fl_run_active{{job="flmon",{sel}}} == 1')  # pushed too
            assert active() == set()  # a healthy run in progress
            assert fed.superlink is not None and fed.superlink.pid is not None
            pid = _serverapp_pid(fed.superlink.pid)
            assert pid is not None, "no flwr-serverapp process under the SuperLink"
            run_id = prom.query(f'fl_run_active{{job="flmon",{sel}}}')[0]["metric"]["run_id"]
            os.kill(pid, signal.SIGKILL)

            # The exporter is gone while the run is in progress: the live branch.
            wait_until("FLExporterDown", lambda: "FLExporterDown" in active() or None)
            down = am.alerts(active=True, alertname="FLExporterDown")
            assert [a["labels"].get("job") for a in down] == ["flmon-exporter"]
            # The SuperLink marks the run failed: FLExporterDown resolves, FLRunFailed fires.
            wait_until("FLRunFailed", lambda: "FLRunFailed" in active() or None, 240)
            wait_until("FLExporterDown to resolve", lambda: "FLExporterDown" not in active()
                  or None, 60)
            # stale_after after the end the watch deletes the killed run's group: nothing
            # of the run is left to fire on.
            wait_until("the killed run's group to be deleted", lambda: not prom.query(
                f'fl_run_active{{job="flmon",{sel},run_id="{run_id}"}}') or None, 120)
            ruled = {a["labels"]["alertname"] for a in prom.api("alerts")["alerts"]}
            assert ruled == {"FLRunFailed"}, ruled
            assert active() == {"FLRunFailed"}
            # `flwr run --stream` ends with the run (its exit status is 0 even so: the run's
            # failure is the SuperLink's, and the watch's FLRunFailed says it).
            runner.join(timeout=120)
            assert result, "flwr run did not return after the run failed"
