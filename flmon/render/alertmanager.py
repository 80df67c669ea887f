"""AlertManager configuration and Slack templates.

Receivers: one Slack receiver per severity, plus one per team (alerts labelled
``team: <name>`` reach their team's channel too, for the severities the team chose). The
webhook URL is never written: every receiver reads it from ``api_url_file``.
"""

from __future__ import annotations

from typing import Any

from flmon.config import SEVERITIES, FlmonConfig
from flmon.render.grafana import dashboard_uid
from flmon.render.rules import INHIBITIONS
from flmon.render.templating import dump_yaml, render_template

DEFAULT_WEBHOOK_FILE = "/etc/alertmanager/secrets/slack-webhook-url"
"""``api_url_file`` when flmon.yaml names only an environment variable."""


def severity_receiver(severity: str) -> str:
    """Receiver name of a severity."""
    return f"slack-{severity}"


def team_receiver(team: str) -> str:
    """Receiver name of a team."""
    return f"slack-team-{team}"


def _slack_config(cfg: FlmonConfig, channel: str) -> dict[str, Any]:
    return {
        "api_url_file": cfg.slack.webhook_url_file or DEFAULT_WEBHOOK_FILE,
        "channel": channel,
        "send_resolved": True,
        "title": '{{ template "flmon.slack.title" . }}',
        "title_link": '{{ template "flmon.slack.titlelink" . }}',
        "text": '{{ template "flmon.slack.text" . }}',
        "color": '{{ template "flmon.slack.color" . }}',
    }


def alertmanager_config(cfg: FlmonConfig) -> dict[str, Any]:
    """The ``alertmanager.yml`` document."""
    am = cfg.alertmanager
    channels = cfg.slack.channels
    receivers: list[dict[str, Any]] = [
        {"name": severity_receiver(sev),
         "slack_configs": [_slack_config(cfg, getattr(channels, sev))]}
        for sev in SEVERITIES
    ]
    routes: list[dict[str, Any]] = []
    for team, settings in sorted(cfg.slack.teams.items()):
        receivers.append({"name": team_receiver(team),
                          "slack_configs": [_slack_config(cfg, settings.channel)]})
        severities = [s for s in SEVERITIES if s in settings.severities]
        sev_matcher = (f'severity="{severities[0]}"' if len(severities) == 1
                       else f'severity=~"{"|".join(severities)}"')
        routes.append({"receiver": team_receiver(team),
                       "matchers": [f'team="{team}"', sev_matcher],
                       "continue": True})
    routes += [{"receiver": severity_receiver(sev), "matchers": [f'severity="{sev}"']}
               for sev in SEVERITIES]
    inhibit: list[dict[str, Any]] = [
        {"source_matchers": [f'alertname="{src}"'],
         "target_matchers": [f'alertname="{dst}"'],
         "equal": list(equal)}
        for src, dst, equal in INHIBITIONS
    ]
    return {
        "global": {"resolve_timeout": am.resolve_timeout},
        "templates": ["slack.tmpl"],
        "route": {
            "receiver": severity_receiver("warning"),
            "group_by": ["federation", "alertname"],
            "group_wait": am.group_wait,
            "group_interval": am.group_interval,
            "repeat_interval": am.repeat_interval,
            "routes": routes,
        },
        "inhibit_rules": inhibit,
        "receivers": receivers,
    }


def render_alertmanager(cfg: FlmonConfig) -> dict[str, str]:
    """``{relative path: text}`` of the AlertManager outputs."""
    return {
        "alertmanager/alertmanager.yml": dump_yaml(alertmanager_config(cfg)),
        "alertmanager/slack.tmpl": render_template(
            "alertmanager/slack.tmpl", federation=cfg.federation.name,
            grafana_url=cfg.grafana.url.rstrip("/"),
            overview_uid=dashboard_uid(cfg, "overview")),
    }
