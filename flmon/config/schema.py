"""The whole ``flmon.yaml``: one field per section."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flmon.config.alerts import Alerts
from flmon.config.notify import AlertmanagerSettings, Slack
from flmon.config.outputs import Datadog, Elasticsearch, Grafana, PrometheusSettings
from flmon.config.scrape import Federation, Lifecycle, Scrape
from flmon.config.strings import StrictModel


class FlmonConfig(StrictModel):
    """The whole ``flmon.yaml``."""

    version: Literal[1] = 1
    federation: Federation
    scrape: Scrape = Field(default_factory=Scrape)
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    alerts: Alerts = Field(default_factory=Alerts)
    slack: Slack
    alertmanager: AlertmanagerSettings = Field(default_factory=AlertmanagerSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    grafana: Grafana = Field(default_factory=Grafana)
    datadog: Datadog = Field(default_factory=Datadog)
    elasticsearch: Elasticsearch = Field(default_factory=Elasticsearch)
