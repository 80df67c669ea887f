"""The whole ``flmon.yaml``: one field per section."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

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

    @property
    def datadog_live_endpoint(self) -> str:
        """The live exporter's URL in the Agent's check: ``datadog.openmetrics_endpoint``
        when given, else the first ``scrape.live.targets`` with ``scrape.live.auth.scheme``
        (``http://127.0.0.1:9464/metrics`` by default)."""
        live = self.scrape.live
        if "openmetrics_endpoint" in self.datadog.model_fields_set or not live.enabled:
            return self.datadog.openmetrics_endpoint
        return live.auth.metrics_url(live.targets[0])

    @model_validator(mode="after")
    def _datadog_reaches_the_live_exporter(self) -> FlmonConfig:
        # The Agent's check on the live exporter takes scrape.live.auth (the TLS and
        # credentials Prometheus uses there): an endpoint of the other scheme never answers.
        scheme = self.scrape.live.auth.scheme
        if (self.scrape.live.enabled and not self.datadog.dogstatsd
                and not self.datadog_live_endpoint.startswith(f"{scheme}://")):
            raise ValueError(
                f"datadog.openmetrics_endpoint: must start with {scheme}://, as "
                f"scrape.live.auth.scheme is {scheme} (the Agent's check of the live exporter "
                "takes the TLS and credentials of scrape.live.auth)")
        return self
