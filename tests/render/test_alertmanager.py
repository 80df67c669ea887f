"""alertmanager.yml and slack.tmpl: amtool, routes per severity and team (the real delivery
is tests/e2e/test_alertmanager_delivery.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, am_config, run_tool


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
    config = am_config(out, tmp_path)
    result = run_tool(amtool, "check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 templates" in result.stdout and "SUCCESS" in result.stdout


def test_amtool_refuses_a_missing_template(amtool: str, tmp_path: Path) -> None:
    out = tmp_path / "am"
    shutil.copytree(REPO / "alertmanager", out / "alertmanager")
    config = am_config(out, tmp_path)
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
    config = am_config(out, tmp_path)
    assert _routes(amtool, config, "alertname=FLClientDropout", "federation=default",
                   *labels) == receivers


def test_receiver_channels_follow_the_config() -> None:
    doc = yaml.safe_load((REPO / "alertmanager/alertmanager.yml").read_text(encoding="utf-8"))
    channels = {r["name"]: r["slack_configs"][0]["channel"] for r in doc["receivers"]}
    assert channels == {"slack-critical": "#fl-critical", "slack-warning": "#fl-alerts",
                        "slack-info": "#fl-info", "slack-team-security": "#fl-security"}
    pairs = [(i["source_matchers"], i["target_matchers"]) for i in doc["inhibit_rules"]]
    assert (['alertname="FLModelAccuracyDropped"'], ['alertname="FLLowTrainingAccuracy"']) in pairs
    assert (['severity="critical"'], ['severity="warning"']) not in pairs  # could never match
    rules = {(i["source_matchers"][0], i["target_matchers"][0]): i["equal"]
             for i in doc["inhibit_rules"]}
    assert rules[('alertname="FLModelAccuracyDropped"', 'alertname="FLLowTrainingAccuracy"')] == [
        "federation", "run_id"]
    assert rules[('alertname="FLSuperLinkDown"', 'alertname="FLNodeOffline"')] == ["federation"]
