"""``scrape.*.auth``: consistent settings only, and only file paths in the output."""

from __future__ import annotations

from typing import Any

import pytest

from flmon.config import ConfigError, parse_config
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
