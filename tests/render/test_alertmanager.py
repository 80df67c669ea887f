"""alertmanager.yml and slack.tmpl: amtool, routes per severity and team, a real delivery."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flmon.stack.ports import free_port
from flmon.stack.slack_receiver import SlackReceiver
from tests.e2e.amsignals import is_sentinel, sentinel, wait_inhibited

from .conftest import REPO, example_data, require_tool, run_tool, with_changes


def _am_config(out: Path, tmp_path: Path, url: str = "http://127.0.0.1:9/hook") -> Path:
    """The rendered alertmanager.yml, its api_url_file pointed at a file that exists."""
    hook = tmp_path / "slack-webhook-url"
    hook.write_text(url + "\n", encoding="utf-8")
    text = (out / "alertmanager/alertmanager.yml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    files = {c["api_url_file"] for r in doc["receivers"] for c in r["slack_configs"]}
    assert files == {"/etc/alertmanager/secrets/slack-webhook-url"}
    path = out / "alertmanager/alertmanager-test.yml"
    path.write_text(text.replace("/etc/alertmanager/secrets/slack-webhook-url", str(hook)),
                    encoding="utf-8")
    return path


def test_no_webhook_url_anywhere_in_the_output() -> None:
    text = (REPO / "alertmanager/alertmanager.yml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    assert "hooks.slack.com" not in text and "api_url:" not in text
    for receiver in doc["receivers"]:
        for slack in receiver["slack_configs"]:
            assert slack["send_resolved"] is True
            assert slack["api_url_file"].startswith("/")
            assert slack["channel"].startswith("#")
    assert doc["route"]["group_by"] == ["federation", "alertname"]


def test_amtool_check_config(amtool: str, tmp_path: Path) -> None:
    out = tmp_path / "am"
    shutil.copytree(REPO / "alertmanager", out / "alertmanager")
    config = _am_config(out, tmp_path)
    result = run_tool(amtool, "check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 templates" in result.stdout and "SUCCESS" in result.stdout


def test_amtool_refuses_a_missing_template(amtool: str, tmp_path: Path) -> None:
    out = tmp_path / "am"
    shutil.copytree(REPO / "alertmanager", out / "alertmanager")
    config = _am_config(out, tmp_path)
    (out / "alertmanager/slack.tmpl").write_text('{{ define "flmon.slack.title" }}{{ end',
                                                 encoding="utf-8")
    result = run_tool(amtool, "check-config", str(config))
    assert result.returncode != 0


def _routes(amtool: str, config: Path, *labels: str) -> list[str]:
    result = run_tool(amtool, "config", "routes", "test", f"--config.file={config}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().split(",")


@pytest.mark.parametrize(("labels", "receivers"), [
    (("severity=critical", "team=ml"), ["slack-critical"]),
    (("severity=warning", "team=ml"), ["slack-warning"]),
    (("severity=info", "team=platform"), ["slack-info"]),
    (("severity=critical", "team=security"), ["slack-team-security", "slack-critical"]),
    (("severity=warning", "team=security"), ["slack-team-security", "slack-warning"]),
    (("severity=info", "team=security"), ["slack-info"]),
])
def test_each_severity_reaches_its_receiver(amtool: str, tmp_path: Path,
                                            labels: tuple[str, ...],
                                            receivers: list[str]) -> None:
    out = tmp_path / "am"
    shutil.copytree(REPO / "alertmanager", out / "alertmanager")
    config = _am_config(out, tmp_path)
    assert _routes(amtool, config, "alertname=FLClientDropout", "federation=default",
                   *labels) == receivers


def test_receiver_channels_follow_the_config() -> None:
    doc = yaml.safe_load((REPO / "alertmanager/alertmanager.yml").read_text(encoding="utf-8"))
    channels = {r["name"]: r["slack_configs"][0]["channel"] for r in doc["receivers"]}
    assert channels == {"slack-critical": "#fl-critical", "slack-warning": "#fl-alerts",
                        "slack-info": "#fl-info", "slack-team-security": "#fl-security"}
    pairs = [(i["source_matchers"], i["target_matchers"]) for i in doc["inhibit_rules"]]
    assert (['alertname="FLModelAccuracyDropped"'], ['alertname="FLLowTrainingAccuracy"']) in pairs
    assert (['severity="critical"'], ['severity="warning"']) in pairs
    rules = {(i["source_matchers"][0], i["target_matchers"][0]): i["equal"]
             for i in doc["inhibit_rules"]}
    assert rules[('alertname="FLModelAccuracyDropped"', 'alertname="FLLowTrainingAccuracy"')] == [
        "federation", "run_id"]
    assert rules[('alertname="FLSuperLinkDown"', 'alertname="FLNodeOffline"')] == ["federation"]


# --- a real AlertManager delivering to a loopback Slack receiver ----------------------


@pytest.fixture()
def slack() -> Iterator[SlackReceiver]:
    with SlackReceiver() as receiver:
        yield receiver


@pytest.mark.e2e
def test_alertmanager_delivers_readable_slack_messages(
        tmp_path: Path, slack: SlackReceiver,
        render_dir: Callable[[dict[str, Any]], Path]) -> None:
    binary = require_tool("prometheus-alertmanager")
    url = slack.url
    out = render_dir(with_changes(example_data(), alertmanager__group_wait="1s",
                                  alertmanager__group_interval="1s"))
    config = _am_config(out, tmp_path, url)
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("AlertManager did not start")
                time.sleep(0.2)

        def alert(name: str, severity: str, team: str, client: str = "") -> dict[str, Any]:
            labels = {"alertname": name, "severity": severity, "team": team,
                      "federation": "default", "job": "flmon"}
            if client:
                labels["client"] = client
            return {"labels": labels, "annotations": {
                "summary": f"{name} summary", "description": f"{name} in federation default",
                "runbook_url": f"docs/runbooks.md#{name.lower()}"}}

        alerts = [alert("FLModelAccuracyDropped", "critical", "ml"),
                  alert("FLLowTrainingAccuracy", "warning", "ml"),
                  alert("FLClientUpdateAnomaly", "warning", "security", client="site-b"),
                  alert("FLSuperLinkDown", "critical", "platform"),
                  alert("FLNodeOffline", "warning", "platform", client="site-c")]
        request = urllib.request.Request(f"{base}/api/v2/alerts",
                                         data=json.dumps(alerts).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=5).close()
        # AlertManager reports the warnings as inhibited; then a sentinel posted after them
        # arrives: had an inhibited alert been sent, it would have arrived before.
        assert wait_inhibited(base, "FLLowTrainingAccuracy")
        assert wait_inhibited(base, "FLNodeOffline")
        request = urllib.request.Request(
            f"{base}/api/v2/alerts", data=json.dumps([sentinel("default")]).encode(),
            method="POST", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=5).close()
        slack.wait_for(lambda m: is_sentinel(m.payload["attachments"][0]["title"]), 30)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    payloads = [m.payload for m in slack.messages()
                if not is_sentinel(m.payload["attachments"][0]["title"])]
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for p in payloads:
        by_channel.setdefault(p["channel"], []).append(p)
    assert sorted(by_channel) == ["#fl-alerts", "#fl-critical", "#fl-security"], payloads
    critical = next(p["attachments"][0] for p in by_channel["#fl-critical"]
                    if "FLModelAccuracyDropped" in p["attachments"][0]["title"])
    assert critical["title"] == (
        "[FIRING:1] FLModelAccuracyDropped (critical) in federation default")
    assert critical["color"] == "danger"
    assert "FLModelAccuracyDropped in federation default" in critical["text"]
    assert "docs/runbooks.md#flmodelaccuracydropped" in critical["text"]
    assert "*Severity:* critical" in critical["text"]
    anomaly = [a for p in payloads for a in p["attachments"]
               if "FLClientUpdateAnomaly" in a["title"]]
    assert len(anomaly) == 2  # the security team's channel and the warning channel
    assert "client `site-b`" in anomaly[0]["text"] and "*Client:* site-b" in anomaly[0]["text"]
    # FLModelAccuracyDropped (critical) inhibits FLLowTrainingAccuracy (warning)
    assert not [p for p in payloads if "FLLowTrainingAccuracy" in p["attachments"][0]["title"]]
    # FLSuperLinkDown inhibits FLNodeOffline of the same federation: one page, the cause
    assert [p for p in by_channel["#fl-critical"]
            if "FLSuperLinkDown" in p["attachments"][0]["title"]]
    assert not [p for p in payloads if "FLNodeOffline" in p["attachments"][0]["title"]]
