"""``scrape.*.auth``: consistent settings only, and only file paths in the output."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from flmon.config import ConfigError, parse_config
from flmon.render.datadog import render_datadog
from flmon.render.prometheus import prometheus_yml


def _config(auth: dict[str, Any]) -> dict[str, Any]:
    return {
        "federation": {"name": "banks"},
        "scrape": {"live": {"auth": auth}},
        "slack": {"webhook_url_file": "/run/secrets/hook",
                  "channels": {"critical": "#c", "warning": "#w", "info": "#i"}},
    }


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"username": "prom"}, "username and password_file go together"),
        ({"password_file": "/p"}, "username and password_file go together"),
        ({"username": "prom", "password_file": "/p", "bearer_token_file": "/t"}, "not both"),
        ({"scheme": "https", "cert_file": "/c"}, "cert_file and key_file go together"),
        ({"ca_file": "/ca"}, "need scheme: https"),
        ({"scheme": "ftp"}, "scrape.live.auth.scheme"),
        ({"password": "inline"}, "scrape.live.auth.password"),
    ],
)
def test_inconsistent_auth_is_refused_naming_the_field(auth: dict[str, Any],
                                                       message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_config(auth))
    assert message in str(err.value)


def test_default_is_plain_http_and_adds_nothing() -> None:
    text = prometheus_yml(parse_config(_config({})))
    for key in ("scheme", "tls_config", "basic_auth", "authorization"):
        assert key not in text


def test_bearer_token_by_file_with_mutual_tls() -> None:
    text = prometheus_yml(parse_config(_config({
        "scheme": "https", "ca_file": "/etc/ca.pem", "cert_file": "/etc/c.pem",
        "key_file": "/etc/k.pem", "bearer_token_file": "/run/secrets/token"})))
    assert 'scheme: "https"' in text
    assert "tls_config: {ca_file: /etc/ca.pem, cert_file: /etc/c.pem, key_file: /etc/k.pem}" in text
    assert "authorization: {credentials_file: /run/secrets/token, type: Bearer}" in text


# -- the Datadog check of the same targets ---------------------------------------------
def _dd_instances(data: dict[str, Any]) -> list[dict[str, Any]]:
    conf = yaml.safe_load(render_datadog(parse_config(data))["datadog/conf.yaml"])
    return conf["instances"]  # type: ignore[no-any-return]


def test_the_datadog_check_gets_each_targets_tls_and_credentials_as_files() -> None:
    data = _config({"scheme": "https", "ca_file": "/etc/ca.pem", "cert_file": "/etc/c.pem",
                    "key_file": "/etc/k.pem", "username": "dd",
                    "password_file": "/run/secrets/pw"})
    data["scrape"]["watch"] = {"auth": {"bearer_token_file": "/run/secrets/token"}}
    live, pushgateway, watch = _dd_instances(data)
    assert live["openmetrics_endpoint"] == "https://127.0.0.1:9464/metrics"  # derived
    assert {k: v for k, v in live.items() if k.startswith(("tls_", "auth", "user", "pass"))
            } == {"tls_verify": True, "tls_ca_cert": "/etc/ca.pem", "tls_cert": "/etc/c.pem",
                  "tls_private_key": "/etc/k.pem", "auth_type": "basic", "username": "dd",
                  "password": "ENC[file@/run/secrets/pw]"}
    assert watch["openmetrics_endpoint"] == "http://127.0.0.1:9463/metrics"
    assert watch["auth_token"] == {
        "reader": {"type": "file", "path": "/run/secrets/token"},
        "writer": {"type": "header", "name": "Authorization", "value": "Bearer <TOKEN>"}}
    assert not {k for k in pushgateway if k.startswith(("tls_", "auth", "user", "pass"))}


def test_a_datadog_endpoint_of_the_other_scheme_is_refused_naming_it() -> None:
    data = _config({"scheme": "https", "ca_file": "/etc/ca.pem"})
    data["datadog"] = {"openmetrics_endpoint": "http://10.0.0.5:9464/metrics"}
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert dict(err.value.problems) == {"datadog.openmetrics_endpoint": (
        "must start with https://, as scrape.live.auth.scheme is https (the Agent's check of "
        "the live exporter takes the TLS and credentials of scrape.live.auth)")}
    data["datadog"]["openmetrics_endpoint"] = "https://10.0.0.5:9464/metrics"
    (live, *_) = _dd_instances(data)
    assert live["openmetrics_endpoint"] == "https://10.0.0.5:9464/metrics"
    data["datadog"] = {"openmetrics_endpoint": "http://10.0.0.5:9464/metrics",
                       "dogstatsd": True}  # no live instance: nothing to check
    assert parse_config(data).datadog.dogstatsd
