"""The chart's AlertManager Secret, loaded into a real AlertManager, pages Slack.

The Secrets are laid out as the Prometheus Operator mounts them (the webhook Secret under
the secrets directory, the config Secret's keys in the config directory), with those two
directories moved under a temporary one; the webhook points at a Slack-compatible receiver on
loopback.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from flmon.stack.alertmanager import AlertManager
from flmon.stack.slack_receiver import SlackReceiver
from tests.helm.helmchart import manifests, one, render, secret_data

MOUNTED_SECRETS = "/etc/alertmanager/secrets"

pytestmark = pytest.mark.e2e


def _alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    return {
        "labels": {"alertname": name, "severity": severity, "federation": "default",
                   "job": "flmon", **labels},
        "annotations": {"summary": f"{name} test", "description": f"{name} fired in a test"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=5)).isoformat(),
    }


def test_rendered_secret_routes_a_critical_alert_to_slack(tmp_path: Path) -> None:
    assert shutil.which("prometheus-alertmanager"), "prometheus-alertmanager is not installed"
    with SlackReceiver() as slack:
        objects = manifests(render({"slack": {"create": True, "webhookUrl": slack.url}}))
        webhook = secret_data(one(objects, "Secret", "flmon-slack"))
        config_secret = secret_data(one(objects, "Secret", "flmon-alertmanager"))
        # "Mount" the webhook Secret where the config expects it, under tmp_path.
        config = yaml.safe_load(config_secret["alertmanager.yaml"])
        secrets_dir = tmp_path / "secrets"
        for receiver in config["receivers"]:
            for slack_config in receiver.get("slack_configs", []):
                mounted = Path(slack_config["api_url_file"])
                local = secrets_dir / mounted.relative_to(MOUNTED_SECRETS)
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_text(webhook[mounted.name])
                slack_config["api_url_file"] = str(local)
        template = tmp_path / "slack.tmpl"
        template.write_text(config_secret["slack.tmpl"])
        # Timing only: notify within a second instead of the production group_wait.
        config["route"]["group_wait"] = "1s"
        for route in config["route"].get("routes", []):
            route["group_wait"] = "1s"
        with AlertManager(config, templates=[template], workdir=tmp_path / "am") as am:
            am.post_alerts([_alert("FLModelAccuracyDropped", "critical")])
            message = slack.wait_for(lambda m: m.channel == "#fl-critical", timeout=30)
    assert "FLModelAccuracyDropped" in message.all_text()
    assert message.path == "/services/flmon/demo/webhook"
