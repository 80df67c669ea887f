"""Each stack component starts on loopback, answers, and stops without leaving processes."""

from __future__ import annotations

import json
import signal
import sys
import urllib.parse
from pathlib import Path

import pytest

from flmon.stack import http
from flmon.stack.alertmanager import AlertManager
from flmon.stack.ports import free_port, free_ports
from flmon.stack.process import ManagedProcess, ProcessError
from flmon.stack.prometheus import Prometheus
from flmon.stack.pushgateway import Pushgateway
from flmon.stack.slack_receiver import SlackReceiver


def test_free_ports_are_distinct_and_loopback_only() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    with pytest.raises(ValueError):
        free_port("0.0.0.0")
    with pytest.raises(ValueError):
        http.get_text("http://192.0.2.1:9090/-/ready")


def test_managed_process_kills_what_ignores_sigterm(tmp_path: Path, no_orphans: list[int]) -> None:
    script = "import signal, subprocess, sys, time\n" \
             "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" \
             "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n" \
             "print(child.pid, flush=True)\n" \
             "time.sleep(60)\n"
    proc = ManagedProcess("stubborn", [sys.executable, "-c", script], tmp_path / "p.log").start()
    assert proc.pid is not None
    no_orphans.append(proc.pid)
    proc.wait_until(lambda: bool((tmp_path / "p.log").read_text().strip()), 10, "printing")
    no_orphans.append(int((tmp_path / "p.log").read_text().split()[0]))
    code = proc.stop(timeout=1.0)
    assert code == -signal.SIGKILL  # SIGTERM was ignored: stop() escalated
    assert not proc.running


def test_managed_process_reports_early_exit(tmp_path: Path) -> None:
    proc = ManagedProcess("fails", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"],
                          tmp_path / "f.log").start()
    with pytest.raises(ProcessError, match="boom"):
        proc.wait_until(lambda: False, 10)
    assert proc.returncode == 3


def test_pushgateway_accepts_pushes_and_stops(no_orphans: list[int]) -> None:
    with Pushgateway() as pg:
        assert pg.process.pid is not None
        no_orphans.append(pg.process.pid)
        pg.push_text("flmon", "fl_rounds_completed_total 3\n", federation="hospitals")
        text = pg.metrics_text()
        assert 'fl_rounds_completed_total{federation="hospitals",instance="",job="flmon"} 3' in text
        pg.wipe()
        assert "fl_rounds_completed_total" not in pg.metrics_text()
    assert not pg.process.running


def test_prometheus_scrapes_evaluates_rules_and_stops(tmp_path: Path,
                                                       no_orphans: list[int]) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "demo-rules.yaml").write_text(
        "groups:\n- name: t\n  interval: 1s\n  rules:\n"
        "  - record: job:up:sum\n    expr: sum by (job) (up)\n")
    # A PrometheusRule object in the same directory is not a rule file: it must be skipped.
    (rules / "object.yaml").write_text("kind: PrometheusRule\ngroups: []\n")
    with Pushgateway() as pg:
        pg.push_text("flmon", "fl_current_round 2\n")
        config = {"scrape_configs": [{
            "job_name": "pushgateway", "honor_labels": True,
            "static_configs": [{"targets": [pg.address], "labels": {"federation": "t"}}],
        }]}
        with Prometheus(config, rules=[rules], scrape_interval="1s",
                        evaluation_interval="1s") as prom:
            assert prom.process.pid is not None
            no_orphans.append(prom.process.pid)
            assert [p.name for p in prom.rule_files] == ["demo-rules.yaml"]
            prom.wait_targets_up(30)
            value = prom.wait_for(
                lambda: prom.query_value('fl_current_round{job="flmon",federation="t"}'), 30)
            assert value == 2.0
            prom.wait_for(lambda: prom.query('job:up:sum{job="pushgateway"}'), 30, "rule")
            assert prom.rules()[0]["rules"][0]["name"] == "job:up:sum"
    assert not prom.process.running


def test_alertmanager_sends_slack_wire_format_and_stops(no_orphans: list[int]) -> None:
    with SlackReceiver() as slack:
        config = {
            "route": {"receiver": "slack", "group_by": ["alertname"], "group_wait": "1s",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "slack", "slack_configs": [{
                "api_url": slack.url, "channel": "#fl-test", "send_resolved": True,
                "title": "{{ .Status }} {{ .CommonLabels.alertname }}",
                "text": "client {{ .CommonLabels.client }}"}]}],
        }
        with AlertManager(config) as am:
            assert am.process.pid is not None
            no_orphans.append(am.process.pid)
            am.post_alerts([{"labels": {"alertname": "FLTest", "client": "42"}}])
            got = slack.wait_for(lambda m: "firing FLTest" in m.all_text(), 30)
            assert got.channel == "#fl-test"
            assert got.attachments[0]["text"] == "client 42"
            assert got.username == "Alertmanager"
            assert [a["labels"]["alertname"] for a in am.alerts()] == ["FLTest"]
    assert not am.process.running


def test_slack_receiver_speaks_the_webhook_wire_format() -> None:
    with SlackReceiver() as slack:
        status, body = http.post_json(slack.url, {"channel": "#a", "text": "hello"})
        assert (status, body) == (200, b"ok")
        form = urllib.parse.urlencode({"payload": json.dumps({"text": "form"})}).encode()
        status, body = http.request(
            "POST", slack.url, body=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert (status, body) == (200, b"ok")
        status, body = http.request("POST", slack.url, body=b"not json",
                                    headers={"Content-Type": "application/json"})
        assert (status, body) == (400, b"invalid_payload")
        assert [m.text for m in slack.messages()] == ["hello", "form"]
        assert slack.messages()[0].channel == "#a"
        assert slack.rejected == 1
        with pytest.raises(TimeoutError, match="2 received"):
            slack.wait_for(lambda m: m.text == "never", 0.5)
    with pytest.raises(http.HTTPError):
        http.post_json(slack.url, {"text": "after stop"}, timeout=1)
