"""The chart's Pushgateway credentials, loaded into a real Pushgateway.

The Secret the chart creates holds the web config the Pushgateway container reads and the
password the ServerApp reads from a mounted file. Laid out as the pods mount them, a real
Pushgateway started with that web config refuses anonymous pushes, scrapes and deletes, and
takes flmon's Pusher with the credentials the SuperLink pod's environment names.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge

from flmon.push import Pusher
from flmon.stack.pushgateway import Pushgateway
from tests.helm.helmchart import by_kind, manifests, one, render, secret_data

pytestmark = pytest.mark.e2e


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _mounted(pod: dict[str, Any], container: dict[str, Any], root: Path,
             objects: list[dict[str, Any]]) -> dict[str, Path]:
    """Write each Secret volume of ``container`` under ``root`` as kubelet would mount it."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    where: dict[str, Path] = {}
    for mount in container.get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if secret is None:
            continue
        made = [o for o in by_kind(objects, "Secret")
                if o["metadata"]["name"] == secret["secretName"]]
        if not made:  # a Secret the chart does not create (cert-manager's TLS Secret)
            continue
        data = secret_data(made[0])
        directory = root / mount["mountPath"].lstrip("/")
        directory.mkdir(parents=True, exist_ok=True)
        for item in secret.get("items") or [{"key": k, "path": k} for k in data]:
            (directory / item["path"]).write_text(data[item["key"]])
        where[mount["mountPath"]] = directory
    return where


def _status(url: str, method: str = "GET", auth: str | None = None) -> int:
    request = urllib.request.Request(url, method=method,
                                     headers={"Authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_chart_credentials_lock_the_pushgateway_to_flmon(tmp_path: Path) -> None:
    objects = manifests(render({"pushgateway": {"auth": {"password": "chart-pw-0123456789"}}}))
    [gateway_deployment] = [d for d in by_kind(objects, "Deployment")
                            if d["metadata"]["name"] == "flmon-pushgateway"]
    gw_pod = gateway_deployment["spec"]["template"]["spec"]
    [gw_container] = gw_pod["containers"]
    gw_files = _mounted(gw_pod, gw_container, tmp_path / "pushgateway", objects)
    [flag] = [a for a in gw_container["args"] if a.startswith("--web.config.file=")]
    web_config = Path(flag.split("=", 1)[1])
    local_web_config = gw_files[str(web_config.parent)] / web_config.name

    superlink = one(objects, "Deployment", "flmon-superlink")
    sl_pod = superlink["spec"]["template"]["spec"]
    [sl_container] = sl_pod["containers"]
    sl_files = _mounted(sl_pod, sl_container, tmp_path / "superlink", objects)
    env = _env(sl_container)
    user_ref = env["FLMON_PUSHGATEWAY_USERNAME"]["valueFrom"]["secretKeyRef"]
    username = secret_data(one(objects, "Secret", user_ref["name"]))[user_ref["key"]]
    password_path = Path(env["FLMON_PUSHGATEWAY_PASSWORD_FILE"]["value"])
    password = (sl_files[str(password_path.parent)] / password_path.name).read_text().strip()
    assert username == "flmon" and password == "chart-pw-0123456789"

    registry = CollectorRegistry()
    Gauge("fl_current_round", "round", registry=registry).set(3)
    with Pushgateway(web_config=local_web_config) as gateway:
        anonymous = Pusher(gateway.address, registry, job="flmon")
        assert anonymous.close(timeout=5) is True
        assert anonymous.pushes == 0 and anonymous.errors == 1
        group = f"{gateway.url}/metrics/job/flmon"
        assert _status(f"{gateway.url}/metrics") == 401
        assert _status(group, method="DELETE") == 401
        wrong = "Basic " + base64.b64encode(b"flmon:guessed-password").decode()
        assert _status(f"{gateway.url}/metrics", auth=wrong) == 401

        pusher = Pusher(gateway.address, registry, job="flmon", username=username,
                        password=password)
        assert pusher.close(timeout=5) is True
        assert pusher.pushes == 1 and pusher.errors == 0
        good = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        request = urllib.request.Request(f"{gateway.url}/metrics",
                                         headers={"Authorization": good})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert 'fl_current_round{instance="",job="flmon"} 3' in response.read().decode()


def test_generated_password_is_long_and_random() -> None:
    first = secret_data(one(manifests(render({"fullnameOverride": "a"})), "Secret",
                            "a-pushgateway-auth"))
    second = secret_data(one(manifests(render({"fullnameOverride": "b"})), "Secret",
                             "b-pushgateway-auth"))
    assert len(first["password"]) == 32 and first["password"] != second["password"]
    assert first["password"] not in first["web-config.yml"]
    assert "$2a$" in first["web-config.yml"] or "$2y$" in first["web-config.yml"]


def test_auth_off_leaves_the_pushgateway_open_and_says_nothing_of_credentials() -> None:
    objects = manifests(render({"pushgateway": {"auth": {"enabled": False}}}))
    assert "flmon-pushgateway-auth" not in {s["metadata"]["name"]
                                            for s in by_kind(objects, "Secret")}
    env = _env(one(objects, "Deployment", "flmon-superlink")["spec"]["template"]["spec"]
               ["containers"][0])
    assert "FLMON_PUSHGATEWAY_USERNAME" not in env
    monitor = one(objects, "ServiceMonitor", "flmon-pushgateway")
    assert "basicAuth" not in monitor["spec"]["endpoints"][0]


def test_service_monitor_scrapes_with_the_chart_credentials() -> None:
    objects = manifests(render())
    monitor = one(objects, "ServiceMonitor", "flmon-pushgateway")
    auth = monitor["spec"]["endpoints"][0]["basicAuth"]
    assert auth == {"username": {"name": "flmon-pushgateway-auth", "key": "username"},
                    "password": {"name": "flmon-pushgateway-auth", "key": "password"}}
