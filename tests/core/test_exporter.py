"""The exporter: /metrics and /healthz over HTTP and HTTPS, from an explicit registry."""

from __future__ import annotations

import base64
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from flmon.exporter import start_exporter
from flmon.metrics import FlmonMetrics
from tests.core.certs import self_signed


def _get(url: str, context: ssl.SSLContext | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_serves_the_given_registry_and_not_the_global_one() -> None:
    metrics = FlmonMetrics(sides=("server",))
    metrics.counter("fl_rounds_completed_total").inc(3)
    marker = Counter("flmon_test_global_marker", "x", registry=REGISTRY)
    try:
        with start_exporter(0, registry=metrics.registry) as exporter:
            status, body = _get(exporter.url)
    finally:
        REGISTRY.unregister(marker)
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(body)}
    assert families["fl_rounds_completed"].samples[0].value == 3
    assert "flmon_test_global_marker" not in body


def test_healthz_index_and_404() -> None:
    healthy = {"ok": True}
    with start_exporter(0, registry=CollectorRegistry(),
                        health=lambda: healthy["ok"]) as exporter:
        base = exporter.url.removesuffix("/metrics")
        assert _get(base + "/healthz") == (200, "ok\n")
        healthy["ok"] = False
        assert _get(base + "/healthz")[0] == 503
        assert _get(base + "/")[0] == 200
        assert _get(base + "/nope")[0] == 404


def test_closing_frees_the_port() -> None:
    exporter = start_exporter(0, registry=CollectorRegistry())
    port = exporter.port
    exporter.close()
    again = start_exporter(port, registry=CollectorRegistry())
    again.close()


def test_tls_serves_https_and_refuses_plain_http(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    registry = CollectorRegistry()
    Counter("fl_tls_probe", "x", registry=registry).inc()
    with start_exporter(0, registry=registry, certfile=str(cert), keyfile=str(key)) as exp:
        assert exp.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))
        status, body = _get(exp.url, context=context)
        assert status == 200 and "fl_tls_probe_total 1.0" in body
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(exp.url.replace("https", "http"), timeout=5)


def test_tls_needs_both_files(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    with pytest.raises(ValueError, match="both certfile and keyfile"):
        start_exporter(0, registry=CollectorRegistry(), certfile=str(cert))


def test_authenticator_guards_metrics_but_not_healthz() -> None:
    good = "Basic " + base64.b64encode(b"prom:pw").decode()

    def authenticate(environ: dict[str, Any]) -> bool:
        return bool(environ.get("HTTP_AUTHORIZATION") == good)

    with start_exporter(0, registry=CollectorRegistry(), authenticate=authenticate) as exp:
        assert _get(exp.url)[0] == 401
        assert _get(exp.url, headers={"Authorization": "Basic bad"})[0] == 401
        assert _get(exp.url, headers={"Authorization": good})[0] == 200
        assert _get(exp.url.replace("/metrics", "/healthz"))[0] == 200
