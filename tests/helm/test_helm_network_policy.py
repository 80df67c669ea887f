"""NetworkPolicies: who may reach the Pushgateway and the metrics ports."""

from __future__ import annotations

from typing import Any

import pytest
from helmchart import CASE_IDS, CASES, by_kind, manifests, one, render

PROMETHEUS_PEER = {"namespaceSelector": {},
                   "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}


def _pods(objects: list[dict[str, Any]], selector: dict[str, str]) -> list[dict[str, Any]]:
    pods = []
    for obj in objects:
        if obj["kind"] in {"Deployment", "StatefulSet", "Job"}:
            labels = obj["spec"]["template"]["metadata"]["labels"]
            if all(labels.get(k) == v for k, v in selector.items()):
                pods.append(obj["spec"]["template"]["spec"])
    return pods


def _rules_by_port(policy: dict[str, Any]) -> dict[str, list[Any]]:
    """Port name -> the `from` peers admitted to it (None: from anywhere)."""
    out: dict[str, list[Any]] = {}
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            out.setdefault(port["port"], []).append(rule.get("from"))
    return out


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_every_policy_selects_pods_and_names_their_ports(case: tuple[str, dict[str, Any]]) -> None:
    _, values = case
    objects = manifests(render(values))
    for policy in by_kind(objects, "NetworkPolicy"):
        pods = _pods(objects, policy["spec"]["podSelector"]["matchLabels"])
        assert pods, f"{policy['metadata']['name']} selects no pod"
        for pod in pods:
            names = {p["name"] for c in pod["containers"] for p in c.get("ports", [])}
            assert set(_rules_by_port(policy)) <= names, policy["metadata"]["name"]


def test_only_the_superlink_and_prometheus_reach_the_pushgateway() -> None:
    objects = manifests(render())
    policy = one(objects, "NetworkPolicy", "flmon-pushgateway")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [peers] = _rules_by_port(policy)["http"]
    superlink_labels, watch_labels = (
        one(objects, "Deployment", name)["spec"]["selector"]["matchLabels"]
        for name in ("flmon-superlink", "flmon-watch"))
    # The ServerApp pushes from the SuperLink pod; flmon watch deletes ended runs' groups.
    assert peers == [PROMETHEUS_PEER, {"podSelector": {"matchLabels": superlink_labels}},
                     {"podSelector": {"matchLabels": watch_labels}}]
    without_watch = manifests(render({"watch": {"enabled": False}}))
    [peers] = _rules_by_port(one(without_watch, "NetworkPolicy", "flmon-pushgateway"))["http"]
    assert peers == [PROMETHEUS_PEER, {"podSelector": {"matchLabels": superlink_labels}}]


def test_only_prometheus_scrapes_the_watch() -> None:
    policy = one(manifests(render()), "NetworkPolicy", "flmon-watch")
    assert _rules_by_port(policy)["metrics"] == [[PROMETHEUS_PEER]]


def test_the_metrics_port_admits_only_prometheus_and_the_flower_port_stays_open() -> None:
    policy = one(manifests(render()), "NetworkPolicy", "flmon-superlink")
    ports = _rules_by_port(policy)
    assert ports["metrics"] == [[PROMETHEUS_PEER]]
    assert ports["superlink"] == [None]  # SuperNodes connect from wherever they run


def test_prometheus_selector_and_extra_peers_follow_values() -> None:
    extra = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "fl-apps"}}}
    objects = manifests(render({"networkPolicy": {
        "prometheus": {"namespaceSelector": {"matchLabels": {"name": "monitoring"}},
                       "podSelector": {"matchLabels": {"app": "prom"}}},
        "extraPushgatewayFrom": [extra]}}))
    [peers] = _rules_by_port(one(objects, "NetworkPolicy", "flmon-pushgateway"))["http"]
    assert peers[0] == {"namespaceSelector": {"matchLabels": {"name": "monitoring"}},
                        "podSelector": {"matchLabels": {"app": "prom"}}}
    assert peers[-1] == extra


def test_network_policies_can_be_switched_off() -> None:
    assert not by_kind(manifests(render({"networkPolicy": {"enabled": False}})),
                       "NetworkPolicy")


# The label the official Datadog Helm chart gives its node Agent pods
# (DataDog/helm-charts, charts/datadog/templates/daemonset.yaml), in its namespace.
DATADOG_AGENT_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "datadog"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/component": "agent"}}}


def _metrics_peers(objects: list[dict[str, Any]], name: str) -> list[Any]:
    [peers] = _rules_by_port(one(objects, "NetworkPolicy", name))["metrics"]
    return peers  # type: ignore[no-any-return]


def test_the_datadog_agent_reaches_the_metrics_ports_only_with_datadog() -> None:
    plain = manifests(render())
    assert _metrics_peers(plain, "flmon-superlink") == [PROMETHEUS_PEER]
    assert _metrics_peers(plain, "flmon-watch") == [PROMETHEUS_PEER]
    objects = manifests(render({"datadog": {"enabled": True}}))
    for name in ("flmon-superlink", "flmon-watch"):
        assert _metrics_peers(objects, name) == [PROMETHEUS_PEER, DATADOG_AGENT_PEER], name
    [pushgateway] = _rules_by_port(one(objects, "NetworkPolicy", "flmon-pushgateway"))["http"]
    assert DATADOG_AGENT_PEER not in pushgateway  # its series are not the check's
    # DogStatsD leaves the ServerApp: nothing comes in, so only the watch admits the Agent.
    dogstatsd = manifests(render({"datadog": {"enabled": True, "dogstatsd": True}}))
    assert _metrics_peers(dogstatsd, "flmon-superlink") == [PROMETHEUS_PEER]
    assert _metrics_peers(dogstatsd, "flmon-watch") == [PROMETHEUS_PEER, DATADOG_AGENT_PEER]


def test_the_datadog_agent_peer_follows_values() -> None:
    peer = {"namespaceSelector": {"matchLabels": {"team": "observability"}},
            "podSelector": {"matchLabels": {"app": "datadog-agent"}}}
    objects = manifests(render({"datadog": {"enabled": True},
                                "networkPolicy": {"datadogAgent": peer}}))
    assert _metrics_peers(objects, "flmon-watch") == [PROMETHEUS_PEER, peer]
