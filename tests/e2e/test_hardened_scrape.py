"""A real Prometheus, configured by ``flmon render``, scrapes a hardened flmon exporter.

The exporter serves HTTPS with basic auth from an exporter-toolkit web config; the
rendered ``prometheus.yml`` carries the matching ``scheme``, ``tls_config`` and
``basic_auth`` (with a password *file*). Prometheus must see the target up and read
``fl_*`` series; with a wrong password file the target must be down.
"""

from __future__ import annotations

from pathlib import Path

import bcrypt
import pytest
import yaml

from flmon.config import parse_config
from flmon.exporter import start_exporter
from flmon.metrics import FlmonMetrics
from flmon.render.prometheus import prometheus_yml
from flmon.stack.ports import free_port
from flmon.stack.prometheus import Prometheus
from tests.core.certs import self_signed

pytestmark = pytest.mark.e2e


def _rendered_config(tmp_path: Path, port: int, password_file: Path, ca: Path) -> dict:  # type: ignore[type-arg]
    cfg = parse_config({
        "federation": {"name": "hospitals"},
        "scrape": {
            "live": {"targets": [f"127.0.0.1:{port}"], "auth": {
                "scheme": "https", "ca_file": str(ca), "username": "prometheus",
                "password_file": str(password_file)}},
            "pushgateway": {"enabled": False},
            "watch": {"enabled": False},  # only the exporter under test
        },
        "slack": {"webhook_url_file": str(tmp_path / "hook"),
                  "channels": {"critical": "#c", "warning": "#w", "info": "#i"}},
    })
    config = yaml.safe_load(prometheus_yml(cfg))
    config.pop("alerting", None)
    return config  # type: ignore[no-any-return]


@pytest.mark.parametrize("password", ["right-password-1", "wrong-password-2"])
def test_prometheus_scrapes_the_hardened_exporter_only_with_the_right_secret(
    tmp_path: Path, password: str,
) -> None:
    cert, key = self_signed(tmp_path)
    hashed = bcrypt.hashpw(b"right-password-1", bcrypt.gensalt(rounds=4)).decode()
    web_config = tmp_path / "web.yml"
    web_config.write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": str(cert), "key_file": str(key)},
        "basic_auth_users": {"prometheus": hashed},
    }))
    password_file = tmp_path / "scrape-password"
    password_file.write_text(password)
    metrics = FlmonMetrics(sides=("server",))
    metrics.counter("fl_rounds_completed_total").inc(4)
    port = free_port()
    config = _rendered_config(tmp_path, port, password_file, cert)
    job = config["scrape_configs"][0]
    assert job["scheme"] == "https" and job["basic_auth"]["password_file"] == str(password_file)
    assert password not in yaml.safe_dump(config)
    with start_exporter(port, registry=metrics.registry, web_config=str(web_config)), \
            Prometheus(config, scrape_interval="1s", evaluation_interval="1s",
                       workdir=tmp_path / "prometheus") as prometheus:
        prometheus.wait_for(lambda: prometheus.targets() and prometheus.targets()[0]
                            ["lastScrape"] != "0001-01-01T00:00:00Z", 30, "a scrape")
        target = prometheus.wait_for(
            lambda: next((t for t in prometheus.targets() if t["health"] != "unknown"), None),
            30, "a scrape result")
        if password == "right-password-1":
            assert target["health"] == "up", target
            value = prometheus.wait_for(lambda: prometheus.query_value(
                'fl_rounds_completed_total{job="flmon-exporter",federation="hospitals"}'),
                30, "fl_* series")
            assert value == 4
        else:
            assert target["health"] == "down", target
            assert "401" in target["lastError"], target
