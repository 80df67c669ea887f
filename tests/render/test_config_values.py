"""Values derived from flmon.yaml: durations, enabled alerts, scrape authentication."""

from __future__ import annotations

import pytest

from flmon.config import ALERT_NAMES, ScrapeAuth, duration_seconds, parse_config

from .conftest import minimal_data, with_changes


@pytest.mark.parametrize(("text", "seconds"), [
    ("250ms", 0.25), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("2d", 172_800.0),
    ("1w", 604_800.0), ("1y", 31_536_000.0), ("0m", 0.0), ("1m30s500ms", 90.5)])
def test_durations_in_seconds(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 m", "m5", "1.5h", "-1m", "5M"])
def test_what_is_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a Prometheus duration"):
        duration_seconds(text)


def test_enabled_alerts_are_listed_in_rules_file_order() -> None:
    cfg = parse_config(minimal_data())
    assert cfg.alerts.enabled() == ALERT_NAMES
    cfg = parse_config(with_changes(minimal_data(), alerts__FLRoundStalled={"enabled": False},
                                    alerts__FLExporterDown={"enabled": False}))
    assert cfg.alerts.enabled() == tuple(n for n in ALERT_NAMES
                                         if n not in ("FLRoundStalled", "FLExporterDown"))


def test_basic_auth_scrape_fields() -> None:
    auth = ScrapeAuth(username="prometheus", password_file="/run/secrets/scrape-password")
    assert auth.scrape_fields() == {"basic_auth": {
        "username": "prometheus", "password_file": "/run/secrets/scrape-password"}}


def test_mutual_tls_and_token_scrape_fields() -> None:
    auth = ScrapeAuth(scheme="https", ca_file="/etc/ca.pem", cert_file="/etc/c.pem",
                      key_file="/etc/k.pem", bearer_token_file="/run/secrets/token")
    assert auth.scrape_fields() == {
        "scheme": "https",
        "tls_config": {"ca_file": "/etc/ca.pem", "cert_file": "/etc/c.pem",
                       "key_file": "/etc/k.pem"},
        "authorization": {"type": "Bearer", "credentials_file": "/run/secrets/token"},
    }
    assert ScrapeAuth().scrape_fields() == {}
    assert ScrapeAuth(scheme="https").scrape_fields() == {"scheme": "https"}
