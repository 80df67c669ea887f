"""flmon's routes next to kube-prometheus-stack, as an AlertmanagerConfig.

The Prometheus Operator merges an AlertmanagerConfig into the cluster's Alertmanager
configuration: it prefixes receiver names with ``<namespace>/<name>/``, adds a
``namespace="<namespace>"`` matcher to the object's top route and to its inhibition rules,
forces ``continue: true`` on that route and puts it first under the root route
(pkg/alertmanager/amcfg.go, ``AddAlertmanagerConfigs``). ``merge`` below does the same
to the chart's AlertmanagerConfig and kube-prometheus-stack's default configuration; the real
``amtool`` then checks the result and tests which receivers each alert reaches.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helmchart import by_kind, manifests, one, render

NAMESPACE = "fl"
VALUES: dict[str, Any] = {"alertmanager": {"mode": "alertmanagerConfig"},
                          "slack": {"existingSecret": "team-slack"}}
# kube-prometheus-stack's default Alertmanager configuration (values alertmanager.config).
CLUSTER_CONFIG: dict[str, Any] = {
    "global": {"resolve_timeout": "5m"},
    "inhibit_rules": [
        {"source_matchers": ["severity = critical"],
         "target_matchers": ["severity =~ warning|info"], "equal": ["namespace", "alertname"]},
        {"source_matchers": ["severity = warning"], "target_matchers": ["severity = info"],
         "equal": ["namespace", "alertname"]},
        {"source_matchers": ["alertname = InfoInhibitor"],
         "target_matchers": ["severity = info"], "equal": ["namespace"]},
    ],
    "route": {"group_by": ["namespace"], "group_wait": "30s", "group_interval": "5m",
              "repeat_interval": "12h", "receiver": "null",
              "routes": [{"receiver": "null", "matchers": ['alertname = "Watchdog"']}]},
    "receivers": [{"name": "null"}],
    "templates": ["/etc/alertmanager/config/*.tmpl"],
}


def _matcher(m: dict[str, str]) -> str:
    return f'{m["name"]}{m["matchType"]}"{m["value"]}"'


def _route(route: dict[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {"receiver": prefix + route["receiver"],
                           "matchers": [_matcher(m) for m in route.get("matchers", [])]}
    for key, name in (("groupBy", "group_by"), ("groupWait", "group_wait"),
                      ("groupInterval", "group_interval"),
                      ("repeatInterval", "repeat_interval"), ("continue", "continue")):
        if key in route:
            out[name] = route[key]
    if route.get("routes"):
        out["routes"] = [_route(r, prefix) for r in route["routes"]]
    return out


def merge(amc: dict[str, Any], webhook: str) -> dict[str, Any]:
    """The cluster's configuration with ``amc`` merged in, as the operator does it."""
    ns, name = amc["metadata"]["namespace"], amc["metadata"]["name"]
    prefix = f"{ns}/{name}/"
    top = _route(amc["spec"]["route"], prefix)
    top["matchers"].append(f'namespace="{ns}"')
    top["continue"] = True
    receivers = [{"name": prefix + r["name"], "slack_configs": [
        {"api_url": webhook, "channel": s["channel"], "send_resolved": s["sendResolved"],
         "title": s["title"], "text": s["text"], "color": s["color"]}
        for s in r.get("slackConfigs", [])]} for r in amc["spec"]["receivers"]]
    inhibit = [{"source_matchers": [*map(_matcher, i["sourceMatch"]), f'namespace="{ns}"'],
                "target_matchers": [*map(_matcher, i["targetMatch"]), f'namespace="{ns}"'],
                "equal": i["equal"]} for i in amc["spec"].get("inhibitRules", [])]
    merged = yaml.safe_load(yaml.safe_dump(CLUSTER_CONFIG))
    merged["route"]["routes"] = [top, *merged["route"]["routes"]]
    merged["receivers"] += receivers
    merged["inhibit_rules"] += inhibit
    return merged


@pytest.fixture(scope="module")
def merged_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    amtool = shutil.which("amtool")
    assert amtool, "amtool is not installed (Debian package prometheus-alertmanager)"
    amc = one(manifests(render(VALUES)), "AlertmanagerConfig", "flmon")
    directory = tmp_path_factory.mktemp("am")
    path = directory / "alertmanager.yaml"
    merged = merge(amc, "http://127.0.0.1:9/slack-webhook")
    merged["templates"] = [str(directory / "*.tmpl")]  # amtool parses flmon's templates too
    path.write_text(yaml.safe_dump(merged))
    (directory / "flmon-slack.tmpl").write_text(
        one(manifests(render(VALUES)), "ConfigMap", "flmon-alertmanager-templates")["data"][
            "flmon-slack.tmpl"])
    return path


def _routes(config: Path, **labels: str) -> list[str]:
    argv = ["amtool", "config", "routes", "test", f"--config.file={config}",
            *(f"{k}={v}" for k, v in labels.items())]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return sorted(result.stdout.strip().split(","))


def test_merged_configuration_passes_amtool(merged_config: Path) -> None:
    result = subprocess.run(["amtool", "check-config", str(merged_config)],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("labels", [
    {"alertname": "Watchdog", "namespace": "monitoring", "severity": "none"},
    {"alertname": "KubePodCrashLooping", "namespace": NAMESPACE, "severity": "warning"},
    {"alertname": "KubeCPUOvercommit", "severity": "critical"},
    # An FL alert of another namespace's federation is not this release's to page about.
    {"alertname": "FLModelAccuracyDropped", "namespace": "other", "severity": "critical"},
])
def test_cluster_alerts_keep_the_cluster_receivers(merged_config: Path,
                                                   labels: dict[str, str]) -> None:
    assert _routes(merged_config, **labels) == ["null"]


@pytest.mark.parametrize(("labels", "receivers"), [
    ({"alertname": "FLModelAccuracyDropped", "severity": "critical"}, ["slack-critical"]),
    ({"alertname": "FLRoundStalled", "severity": "warning"}, ["slack-warning"]),
    ({"alertname": "FLTelemetryRejected", "severity": "info"}, ["slack-info"]),
    ({"alertname": "FLClientUpdateAnomaly", "severity": "warning", "team": "security"},
     ["slack-team-security", "slack-warning"]),
])
def test_fl_alerts_of_this_namespace_reach_flmon_receivers(
    merged_config: Path, labels: dict[str, str], receivers: list[str],
) -> None:
    got = _routes(merged_config, namespace=NAMESPACE, federation="default", **labels)
    assert got == sorted([f"{NAMESPACE}/flmon/{r}" for r in receivers])


def test_alert_rules_carry_the_namespace_the_operator_routes_by() -> None:
    [rule_object] = by_kind(manifests(render(VALUES)), "PrometheusRule")
    alerts = [r for g in rule_object["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert alerts and all(r["labels"]["namespace"] == NAMESPACE for r in alerts)
    records = [r for g in rule_object["spec"]["groups"] for r in g["rules"] if "record" in r]
    assert all("namespace" not in (r.get("labels") or {}) for r in records)


def test_alertmanager_config_mode_ships_no_whole_configuration() -> None:
    objects = manifests(render(VALUES))
    assert "flmon-alertmanager" not in {s["metadata"]["name"] for s in by_kind(objects, "Secret")}
    amc = one(objects, "AlertmanagerConfig", "flmon")
    assert amc["spec"]["route"]["matchers"] == [
        {"name": "alertname", "matchType": "=~", "value": "FL.+"}]
    slack = amc["spec"]["receivers"][0]["slackConfigs"][0]
    assert slack["apiURL"] == {"name": "team-slack", "key": "webhook-url"}


def test_secret_mode_stays_the_default() -> None:
    objects = manifests(render())
    assert not by_kind(objects, "AlertmanagerConfig")
    one(objects, "Secret", "flmon-alertmanager")
