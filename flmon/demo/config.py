"""The demo's ``flmon.yaml``: the shipped alerts with timings fit for a five-minute demo.

Production keeps the defaults of ``examples/flmon.yaml`` (``for: 5m``, 15 s scrapes,
30 m windows). Here Prometheus scrapes and evaluates every second, alerts fire after
seconds instead of minutes, and AlertManager sends (and resolves) within seconds, so a
fault injected in round 2 is in Slack before round 3 ends. Every target is on loopback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from flmon.demo.scenarios import ANOMALY_THRESHOLD

PUSHED_JOB = "flmon"
LIVE_JOB = "flmon-exporter"
PUSHGATEWAY_JOB = "flmon-pushgateway"
WATCH_JOB = "flmon-watch"

CHANNELS = {"critical": "#fl-critical", "warning": "#fl-alerts", "info": "#fl-info"}
SECURITY_CHANNEL = "#fl-security"

DEMO_ALERTS: dict[str, dict[str, Any]] = {
    "FLLowTrainingAccuracy": {"for": "5s", "threshold": 0.85},
    "FLModelAccuracyDropped": {"for": "5s", "threshold": 0.80},
    "FLNoModelUpdates": {"for": "10s", "window": "2m"},
    "FLClientDropout": {"for": "0s", "threshold": 1, "window": "1m"},
    # A healthy round takes 20-45 s here (train and evaluate, mostly waiting; the first
    # round also installs the app on every SuperNode).
    "FLRoundStalled": {"for": "0s", "threshold": 60},
    "FLClientUpdateAnomaly": {"for": "0s", "threshold": ANOMALY_THRESHOLD, "window": "30s"},
    "FLPrivacyBudgetNearlyExhausted": {"for": "0s", "threshold": 0.8},
    "FLPrivacyBudgetExhausted": {"for": "0s"},
    "FLTelemetryRejected": {"for": "0s", "threshold": 0, "window": "1m"},
    "FLExporterDown": {"for": "30s"},
    # Flower marks a killed SuperNode offline only after missed heartbeats (50-55 s here);
    # the alert then fires within seconds. FLSuperLinkDown keeps its minute: Prometheus
    # starts before the SuperLink and flmon watch, which take up to ~40 s here.
    "FLNodeOffline": {"for": "5s"},
}


def demo_config(
    federation: str,
    *,
    live_target: str,
    pushgateway_target: str,
    alertmanager_target: str,
    webhook_url_file: Path,
    alert_overrides: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The demo's ``flmon.yaml`` as a mapping (validated later by ``flmon.config``).

    ``alert_overrides`` replaces settings of single alerts (tests shorten windows).
    """
    for target in (live_target, pushgateway_target, alertmanager_target):
        if not target.startswith("127.0.0.1:"):
            raise ValueError(f"demo targets are loopback only, got {target!r}")
    return {
        "version": 1,
        "federation": {"name": federation},
        "scrape": {
            "interval": "1s",
            "live": {"enabled": True, "job": LIVE_JOB, "targets": [live_target]},
            "pushgateway": {
                "enabled": True,
                "job": PUSHGATEWAY_JOB,
                "pushed_job": PUSHED_JOB,
                "targets": [pushgateway_target],
            },
            # No watch unless the demo runs one (with_watch): no page about a missing watch.
            "watch": {"enabled": False},
        },
        "alerts": {
            name: {**values, **(alert_overrides or {}).get(name, {})}
            for name, values in DEMO_ALERTS.items()
        },
        "slack": {
            "webhook_url_file": str(webhook_url_file),
            "channels": dict(CHANNELS),
            "teams": {
                "security": {"channel": SECURITY_CHANNEL, "severities": ["critical", "warning"]}
            },
        },
        "alertmanager": {
            "targets": [alertmanager_target],
            "group_wait": "1s",
            "group_interval": "2s",
            "repeat_interval": "1h",
            "resolve_timeout": "5m",
        },
        "prometheus": {"evaluation_interval": "1s"},
    }


def with_watch(config: dict[str, Any], watch_target: str) -> dict[str, Any]:
    """``config`` with ``scrape.watch`` pointing at the demo's ``flmon watch``."""
    if not watch_target.startswith("127.0.0.1:"):
        raise ValueError(f"demo targets are loopback only, got {watch_target!r}")
    scrape = {**config["scrape"],
              "watch": {"enabled": True, "job": WATCH_JOB, "targets": [watch_target]}}
    return {**config, "scrape": scrape}


def write_config(config: dict[str, Any], path: Path) -> Path:
    """Write ``config`` as YAML with a header saying what it is."""
    header = (
        "# flmon.yaml of `flmon demo`: the shipped alerts with demo timings (seconds, not\n"
        "# minutes). Written by the demo; production settings are in examples/flmon.yaml.\n"
    )
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return path
