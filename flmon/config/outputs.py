"""Settings of the rendered Prometheus, Grafana, Datadog and Elasticsearch files."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from flmon.config.strings import (
    AbsoluteUrl,
    DatadogNamespace,
    DatadogTag,
    DatasourceName,
    Duration,
    FilePath,
    Identifier,
    IndexPattern,
    StrictModel,
    Url,
    matching,
)
from flmon.ports import LIVE_PORT
from flmon.urls import RUNBOOKS_URL


class PrometheusSettings(StrictModel):
    """The rendered ``prometheus.yml`` and links from alerts."""

    evaluation_interval: Duration = "15s"
    rule_files: list[FilePath] = Field(
        default_factory=lambda: ["../rules/flmon-rules.yaml"], min_length=1)
    """Rule files, relative to ``prometheus.yml``."""
    runbook_url: AbsoluteUrl = RUNBOOKS_URL
    """Base of every alert's ``runbook_url`` (``#<alert name, lowercased>`` is appended): an
    absolute URL, so the link works where the alert is read (Slack, Datadog, a phone).
    Defaults to the project's published runbooks."""
    rule_labels: dict[Identifier, Identifier] = Field(
        default_factory=lambda: {"release": "kube-prometheus-stack"})
    """Labels of the ``PrometheusRule`` object (a Prometheus Operator selects rules by them)."""


class Grafana(StrictModel):
    """Grafana dashboards."""

    datasource: DatasourceName = "Prometheus"
    url: AbsoluteUrl = "http://127.0.0.1:3000"
    """Base URL for dashboard links in Slack messages (absolute: Slack opens it)."""
    refresh: Duration = "30s"


class Datadog(StrictModel):
    """Datadog Agent OpenMetrics check, monitors and dashboard."""

    namespace: DatadogNamespace = "flmon"
    tags: list[DatadogTag] = Field(default_factory=list)
    openmetrics_endpoint: Url = f"http://127.0.0.1:{LIVE_PORT}/metrics"
    notify: list[Annotated[str, matching(re.compile(r"^@[a-z0-9][a-z0-9._#-]{0,99}$"),
                                         "a Datadog @-handle")]] = Field(default_factory=list)
    """Handles added to every monitor message (``@slack-fl-alerts``...)."""
    dogstatsd: bool = False
    """The ServerApp sends its series by DogStatsD (``FLMON_DATADOG_ENABLED=1``) instead of
    the Agent's check scraping the live exporter: the check then collects only the watch,
    so no series reaches Datadog twice."""


class Elasticsearch(StrictModel):
    """Elasticsearch index template, ILM policy and Kibana data view."""

    index_pattern: IndexPattern = "flmon-logs-*"
    rollover_max_age: Duration = "7d"
    rollover_max_primary_shard_size_gb: int = Field(default=50, ge=1, le=1000)
    delete_after: Duration = "30d"
    shards: int = Field(default=1, ge=1, le=64)
    replicas: int = Field(default=1, ge=0, le=16)
