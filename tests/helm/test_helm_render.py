"""Lint and render the chart with the real Helm SDK; validate every object it renders."""

from __future__ import annotations

import re
from typing import Any

import helm_python
import kubernetes_validate
import pytest
from helmchart import (
    CHART,
    CI_VALUES,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    by_kind,
    containers,
    manifests,
    notes,
    render,
)

# Kinds served by the Prometheus Operator's CRDs, which kubernetes-validate has no schema for.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"),
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
CORE_KINDS = {"ConfigMap", "Secret", "Service", "Deployment", "StatefulSet", "Job",
              "NetworkPolicy"}


def test_ci_value_sets_exist_per_feature() -> None:
    names = {p.name for p in CI_VALUES}
    for feature in ("default", "datadog", "filebeat", "no-reference-deployment",
                    "slack-created-secret"):
        assert f"{feature}-values.yaml" in names, f"ci/{feature}-values.yaml is missing"


def test_lint_passes(case: tuple[str, dict[str, Any]]) -> None:
    _, values = case
    report = helm_python.lint(CHART, values, strict=True, namespace=NAMESPACE,
                              kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [], report["errors"]
    assert problems == [], problems
    assert report["total_charts_linted"] == 1


def test_lint_reports_a_broken_value() -> None:
    # The linter is live: the same call reports a schema violation.
    report = helm_python.lint(CHART, {"federation": {"supernodes": -1}}, strict=True)
    assert any("/federation/supernodes" in e for e in report["errors"]), report


def test_render_yields_only_kubernetes_objects(case: tuple[str, dict[str, Any]]) -> None:
    _, values = case
    objects = manifests(render(values))
    assert objects, "nothing rendered"
    for obj in objects:
        assert set(obj) >= {"apiVersion", "kind", "metadata"}, obj
        meta = obj["metadata"]
        assert DNS_SUBDOMAIN.match(meta["name"]), meta["name"]
        if obj["kind"] in {"Service", "Deployment", "StatefulSet"}:
            assert DNS_LABEL.match(meta["name"]), meta["name"]
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert meta.get("namespace"), f"{obj['kind']} {meta['name']} has no namespace"
    keys = [(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), "two objects share kind, namespace and name"


def test_every_core_object_validates_against_kubernetes_schemas(
    case: tuple[str, dict[str, Any]],
) -> None:
    _, values = case
    checked = 0
    for obj in manifests(render(values)):
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue
        assert obj["kind"] in CORE_KINDS, f"unexpected kind {obj['kind']}"
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        checked += 1
    assert checked > 0


def test_kubernetes_validate_rejects_a_broken_object() -> None:
    # The validator is live: a misspelt field in a rendered Deployment fails it.
    [deployment, *_] = by_kind(manifests(render()), "Deployment")
    deployment["spec"]["replicaz"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


def _check_prometheus_rule(obj: dict[str, Any]) -> None:
    groups = obj["spec"]["groups"]
    assert isinstance(groups, list) and groups
    for group in groups:
        assert set(group) <= {"name", "interval", "rules", "limit", "partial_response_strategy"}
        assert isinstance(group["name"], str) and group["name"]
        assert isinstance(group["rules"], list) and group["rules"]
        for rule in group["rules"]:
            assert ("alert" in rule) != ("record" in rule), rule
            assert isinstance(rule["expr"], (str, int, float)), rule
            assert set(rule) <= {"alert", "record", "expr", "for", "keep_firing_for",
                                 "labels", "annotations"}, rule
            for key in ("labels", "annotations"):
                assert all(isinstance(v, str) for v in (rule.get(key) or {}).values()), rule


def _check_service_monitor(obj: dict[str, Any]) -> None:
    spec = obj["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel",
                         "targetLabels", "podTargetLabels", "sampleLimit"}
    assert spec["selector"]["matchLabels"]
    assert spec["endpoints"]
    for endpoint in spec["endpoints"]:
        assert isinstance(endpoint["port"], str) and endpoint["port"]
        assert endpoint["path"].startswith("/")
        assert re.fullmatch(r"[0-9]+(ms|s|m|h)", endpoint["interval"])
        for relabel in endpoint.get("relabelings", []):
            assert relabel["action"] in {"replace", "keep", "drop", "labelmap", "labeldrop",
                                         "labelkeep", "hashmod"}
            assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", relabel["targetLabel"])


def test_custom_resources_have_the_operator_shape(case: tuple[str, dict[str, Any]]) -> None:
    _, values = case
    for obj in manifests(render(values)):
        api_kind = (obj["apiVersion"], obj["kind"])
        if api_kind not in CRD_KINDS:
            continue
        assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}, set(obj)
        assert set(obj["metadata"]) <= {"name", "namespace", "labels", "annotations"}
        if obj["kind"] == "PrometheusRule":
            _check_prometheus_rule(obj)
        elif obj["kind"] == "ServiceMonitor":
            _check_service_monitor(obj)
        # AlertmanagerConfig: checked against the operator's model (test_helm_operator_models)


def test_services_select_the_pods_and_ports_they_name(case: tuple[str, dict[str, Any]]) -> None:
    _, values = case
    objects = manifests(render(values))
    workloads = by_kind(objects, "Deployment") + by_kind(objects, "StatefulSet")
    for service in by_kind(objects, "Service"):
        selector = service["spec"]["selector"]
        matched = [w for w in workloads
                   if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matched) == 1, f"Service {service['metadata']['name']} matches {len(matched)}"
        port_names = {p["name"] for c in containers(matched[0]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, (service["metadata"]["name"], port)
    for workload in workloads:
        assert (workload["spec"]["selector"]["matchLabels"].items()
                <= workload["spec"]["template"]["metadata"]["labels"].items())


def test_service_monitors_select_a_service_and_its_port(case: tuple[str, dict[str, Any]]) -> None:
    _, values = case
    objects = manifests(render(values))
    services = by_kind(objects, "Service")
    for monitor in by_kind(objects, "ServiceMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"]
        matched = [s for s in services if wanted.items() <= s["metadata"]["labels"].items()]
        assert len(matched) == 1, monitor["metadata"]["name"]
        assert monitor["spec"]["namespaceSelector"]["matchNames"] == [
            matched[0]["metadata"]["namespace"]]
        ports = {p["name"] for p in matched[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in ports


def test_release_name_and_namespace_flow_into_names() -> None:
    objects = manifests(render(name="fed-a", namespace="ml"))
    names = {o["metadata"]["name"] for o in objects}
    assert {"fed-a-flmon-superlink", "fed-a-flmon-supernode", "fed-a-flmon-pushgateway"} <= names
    assert {o["metadata"]["namespace"] for o in objects} == {"ml"}


def test_notes_render_for_every_case(case: tuple[str, dict[str, Any]]) -> None:
    _, values = case
    text = notes(render(values))
    assert "flmon" in text
    assert "{{" not in text and "<no value>" not in text
