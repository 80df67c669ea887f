"""Where alerts go: Slack channels per severity and team, and AlertManager's routing."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from flmon.alerts.spec import SEVERITIES, Severity
from flmon.config.strings import (
    URL_LIKE_RE,
    Channel,
    Duration,
    EnvName,
    FilePath,
    Identifier,
    StrictModel,
    Target,
)


class Team(StrictModel):
    """A team's own Slack channel: alerts labelled ``team: <name>`` also go there."""

    channel: Channel
    severities: list[Severity] = Field(default_factory=lambda: list(SEVERITIES), min_length=1)


class SeverityChannels(StrictModel):
    """Slack channel per severity."""

    critical: Channel
    warning: Channel
    info: Channel


class Slack(StrictModel):
    """Slack notifications. The webhook URL is a secret: give a file or an env var name."""

    webhook_url_file: FilePath | None = None
    """File holding the webhook URL (AlertManager's ``api_url_file``)."""
    webhook_url_env: EnvName | None = None
    """Environment variable holding the webhook URL (for flmon's own Slack sink)."""
    channels: SeverityChannels
    teams: dict[Identifier, Team] = Field(default_factory=dict)

    webhook_url: Any = Field(default=None, exclude=True)
    """Refused: present only to explain why."""

    @field_validator("webhook_url")
    @classmethod
    def _refuse_inline_url(cls, value: Any) -> None:
        if value is not None:
            raise ValueError(
                "a webhook URL written in flmon.yaml is refused, because it is a secret and "
                "this file is committed and rendered; put the URL in a file and set "
                "webhook_url_file, or in an environment variable and set webhook_url_env")
        return None

    @field_validator("webhook_url_file", "webhook_url_env", mode="before")
    @classmethod
    def _refuse_url_as_source(cls, value: Any) -> Any:
        if isinstance(value, str) and (URL_LIKE_RE.match(value) or "hooks." in value):
            raise ValueError(
                "looks like a URL; the webhook URL itself is a secret and is refused here: "
                "give the path of a file holding it (webhook_url_file) or the name of an "
                "environment variable (webhook_url_env)")
        return value

    @model_validator(mode="after")
    def _one_secret_source(self) -> Slack:
        if self.webhook_url_file is None and self.webhook_url_env is None:
            raise ValueError("set webhook_url_file (AlertManager reads the webhook only from a "
                             "file) or webhook_url_env")
        return self


class AlertmanagerSettings(StrictModel):
    """AlertManager routing and the address Prometheus sends alerts to."""

    targets: list[Target] = Field(default_factory=lambda: ["127.0.0.1:9093"], min_length=1)
    group_wait: Duration = "30s"
    group_interval: Duration = "5m"
    repeat_interval: Duration = "4h"
    resolve_timeout: Duration = "5m"
