"""The rendered alertmanager.yml and slack.tmpl in a real AlertManager, delivering to a
loopback Slack receiver: routes per severity and team, inhibitions, readable messages."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flmon.stack.ports import free_port
from flmon.stack.slack_receiver import SlackReceiver
from tests.e2e.amsignals import is_sentinel, sentinel, wait_inhibited
from tests.render.conftest import am_config, example_data, render_into, require_tool, with_changes

# --- a real AlertManager delivering to a loopback Slack receiver ----------------------


@pytest.fixture()
def slack() -> Iterator[SlackReceiver]:
    with SlackReceiver() as receiver:
        yield receiver


@pytest.mark.e2e
def test_alertmanager_delivers_readable_slack_messages(
        tmp_path: Path, slack: SlackReceiver) -> None:
    binary = require_tool("prometheus-alertmanager")
    url = slack.url
    out = tmp_path / "render"
    render_into(out, with_changes(example_data(), alertmanager__group_wait="1s",
                                  alertmanager__group_interval="1s"))
    config = am_config(out, tmp_path, url)
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
                "runbook_url": f"https://runbooks.example.org/fl.md#{name.lower()}"}}

        alerts = [alert("FLModelAccuracyDropped", "critical", "ml"),
                  alert("FLLowTrainingAccuracy", "warning", "ml"),
                  alert("FLClientUpdateAnomaly", "warning", "security", client="site-b"),
                  alert("FLSuperLinkDown", "critical", "platform"),
                  alert("FLNodeOffline", "warning", "platform", client="site-c")]
        request = urllib.request.Request(f"{base}/api/v2/alerts",
                                         data=json.dumps(alerts).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=5).close()
        # AlertManager reports the warnings as inhibited. Each aggregation group flushes on
        # its own timer, so every expected message is awaited before the sentinel is posted;
        # the sentinel, arriving after them, shows that nothing else was on its way.
        assert wait_inhibited(base, "FLLowTrainingAccuracy")
        assert wait_inhibited(base, "FLNodeOffline")
        for channel, name in (("#fl-critical", "FLModelAccuracyDropped"),
                              ("#fl-critical", "FLSuperLinkDown"),
                              ("#fl-security", "FLClientUpdateAnomaly"),
                              ("#fl-alerts", "FLClientUpdateAnomaly")):
            slack.wait_for(lambda m, c=channel, n=name: m.channel == c
                           and f"] {n} (" in m.payload["attachments"][0]["title"], 30)
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
    assert ("<https://runbooks.example.org/fl.md#flmodelaccuracydropped|what to do>"
            in critical["text"])
    assert critical["title_link"] == "https://runbooks.example.org/fl.md#flmodelaccuracydropped"
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
