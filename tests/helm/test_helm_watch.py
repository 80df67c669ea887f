"""The chart's flmon watch: Deployment, Service and ServiceMonitor, rendered by Helm."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest
from kubernetes_validate import validate

from tests.helm.helmchart import KUBE_VERSION, NAMESPACE, by_kind, manifests, one, render


def _watch(values: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    objects = manifests(render(values))
    deployment = one(objects, "Deployment", "flmon-watch")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, container["args"]


def test_the_watch_polls_the_charts_superlink_and_cleans_its_pushgateway() -> None:
    deployment, args = _watch()
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["flmon", "watch"]
    assert f"--superlink=flmon-superlink.{NAMESPACE}.svc:9093" in args
    # The chart's SuperLink serves TLS: the watch trusts the CA of its certificate Secret.
    assert "--root-certificates=/etc/flmon/superlink-ca/ca.crt" in args
    assert "--insecure" not in args
    spec = deployment["spec"]["template"]["spec"]
    assert {"name": "superlink-ca", "secret": {"secretName": "flmon-superlink-tls", "items": [
        {"key": "ca.crt", "path": "ca.crt"}]}} in spec["volumes"]
    _, insecure_args = _watch({"federation": {
        "tls": {"enabled": False}, "supernodeAuth": {"enabled": False}}})
    assert "--insecure" in insecure_args
    assert "--addr=0.0.0.0" in args and "--port=9463" in args
    assert f"--pushgateway=flmon-pushgateway.{NAMESPACE}.svc:9091" in args
    assert "--stale-after=30m" in args and "--interval=5s" in args
    assert deployment["spec"]["replicas"] == 1
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_service_and_service_monitor_scrape_the_watch_as_job_flmon_watch() -> None:
    objects = manifests(render({"federation": {"name": "default"}}))
    service = one(objects, "Service", "flmon-watch")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9463, "targetPort": "metrics", "protocol": "TCP"}]
    deployment = one(objects, "Deployment", "flmon-watch")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    monitor = one(objects, "ServiceMonitor", "flmon-watch")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"][
        "labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    relabel = {r["targetLabel"]: r["replacement"] for r in endpoint["relabelings"]}
    assert relabel == {"job": "flmon-watch", "federation": "default"}
    assert endpoint.get("honorLabels") is not True


def test_watch_values_reach_the_arguments() -> None:
    _, args = _watch({"watch": {"port": 9500, "interval": "10s", "timeout": "2s",
                                "staleAfter": "2h", "clientIdentity": "none",
                                "maxClientLabels": 7, "extraArgs": ["--log-level=DEBUG"],
                                "rootCertificatesSecret": "superlink-ca"}})
    assert {"--port=9500", "--interval=10s", "--timeout=2s", "--stale-after=2h",
            "--client-identity=none", "--max-client-labels=7", "--log-level=DEBUG",
            "--root-certificates=/etc/flmon/superlink-ca/ca.crt"} <= set(args)
    assert "--insecure" not in args


def test_a_tls_superlinks_ca_is_mounted_from_its_secret() -> None:
    deployment, _ = _watch({"watch": {"rootCertificatesSecret": "superlink-ca"}})
    spec = deployment["spec"]["template"]["spec"]
    assert spec["volumes"][0] == {"name": "superlink-ca", "secret": {
        "secretName": "superlink-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
    assert spec["containers"][0]["volumeMounts"][0] == {
        "name": "superlink-ca", "mountPath": "/etc/flmon/superlink-ca", "readOnly": True}


def test_the_watch_reads_the_pushgateway_password_from_a_file() -> None:
    deployment, _ = _watch({})
    spec = deployment["spec"]["template"]["spec"]
    [container] = spec["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["FLMON_PUSHGATEWAY_USERNAME"]["valueFrom"]["secretKeyRef"] == {
        "name": "flmon-pushgateway-auth", "key": "username"}
    assert env["FLMON_PUSHGATEWAY_PASSWORD_FILE"]["value"] == "/etc/flmon/pushgateway/password"
    assert {"name": "pushgateway-auth", "mountPath": "/etc/flmon/pushgateway",
            "readOnly": True} in container["volumeMounts"]
    assert {"name": "pushgateway-auth", "secret": {
        "secretName": "flmon-pushgateway-auth",
        "items": [{"key": "password", "path": "password"}]}} in spec["volumes"]


def test_a_federation_elsewhere_needs_its_superlink_address() -> None:
    with pytest.raises(helm_python.HelmRenderError, match=r"watch\.superlink"):
        render({"federation": {"enabled": False}})
    _, args = _watch({"federation": {"enabled": False},
                      "watch": {"superlink": "superlink.other.svc:9093"}})
    assert "--superlink=superlink.other.svc:9093" in args


def test_the_watch_can_be_switched_off() -> None:
    objects = manifests(render({"watch": {"enabled": False}}))
    assert not [o for o in objects if o["metadata"]["name"] == "flmon-watch"]
    kept = manifests(render({"serviceMonitor": {"watch": {"enabled": False}}}))
    assert not [m for m in by_kind(kept, "ServiceMonitor")
                if m["metadata"]["name"] == "flmon-watch"]
    assert one(kept, "Deployment", "flmon-watch")


@pytest.mark.parametrize("values", [{"watch": {"interval": "often"}},
                                    {"watch": {"clientIdentity": "hostname"}},
                                    {"watch": {"superlink": "no port"}},
                                    {"watch": {"port": 0}}])
def test_bad_watch_values_are_refused_by_the_schema(values: dict[str, Any]) -> None:
    with pytest.raises(helm_python.HelmValuesError, match="/watch/"):
        render(values)


def test_watch_objects_are_valid_kubernetes() -> None:
    objects = manifests(render())
    for kind in ("Deployment", "Service"):
        validate(one(objects, kind, "flmon-watch"), KUBE_VERSION, strict=True)


def test_notes_name_the_watch_and_its_superlink() -> None:
    from tests.helm.helmchart import notes

    text = notes(render())
    assert f"flmon watch flmon-watch:9463 polling the SuperLink flmon-superlink.{NAMESPACE}" \
        in text
    assert "flmon watch" not in notes(render({"watch": {"enabled": False}}))
