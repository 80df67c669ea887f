"""Positive signals from a real AlertManager, for "this must not be delivered" checks.

Waiting a fixed time and seeing nothing proves nothing on a slow machine. Instead a test
waits until AlertManager itself reports the alert as suppressed (its API lists who
inhibits it), then sends a sentinel alert that nothing inhibits and waits for *its*
notification: AlertManager had flushed the earlier alerts' groups before it flushed the
sentinel's, so a notification of the suppressed alert would have come first.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from typing import Any

SENTINEL = "FLTestSentinel"


def am_alerts(base_url: str, alertname: str) -> list[dict[str, Any]]:
    """``/api/v2/alerts`` for one alert name (active, silenced and inhibited ones)."""
    query = urllib.parse.urlencode({"filter": f'alertname="{alertname}"'})
    with urllib.request.urlopen(f"{base_url}/api/v2/alerts?{query}", timeout=5) as resp:
        alerts: list[dict[str, Any]] = json.loads(resp.read())
    return alerts


def wait_inhibited(base_url: str, alertname: str, timeout: float = 30.0) -> list[str]:
    """Wait until AlertManager lists ``alertname`` as suppressed by an inhibition.

    Returns the fingerprints of the alerts inhibiting it.
    """
    deadline = time.monotonic() + timeout
    while True:
        alerts = am_alerts(base_url, alertname)
        by = [f for a in alerts for f in (a.get("status", {}).get("inhibitedBy") or [])]
        if alerts and all(a.get("status", {}).get("state") == "suppressed" for a in alerts) \
                and by:
            return by
        if time.monotonic() >= deadline:
            raise TimeoutError(f"AlertManager does not report {alertname} as inhibited: "
                               f"{alerts}")
        time.sleep(0.2)


def sentinel(federation: str, severity: str = "info", team: str = "platform",
             **extra: str) -> dict[str, Any]:
    """An alert that no inhibition names, to be posted after the ones under test."""
    labels = {"alertname": SENTINEL, "severity": severity, "team": team,
              "federation": federation, "job": "flmon", **extra}
    return {"labels": labels, "annotations": {
        "summary": "sentinel", "description": f"sentinel of federation {federation}",
        "runbook_url": "docs/runbooks.md"}}


def is_sentinel(title: str) -> bool:
    return f"] {SENTINEL} (" in title
