"""The ``flmon.yaml`` schema and its loader.

``flmon render`` reads one ``flmon.yaml`` per federation. Every string that ends up in a
generated file is checked against a narrow pattern (:mod:`flmon.config.strings`), so that no
value can carry template syntax (``{{``, ``[[``, ``{%``), quotes or newlines into Prometheus,
AlertManager, Helm or Datadog templates. Unknown keys are refused everywhere
(``extra="forbid"``).

:func:`load_config` returns a :class:`FlmonConfig` or raises one :class:`ConfigError`
listing every problem with its field path.

One module per concern:

- :mod:`flmon.config.strings`: the constrained string types and the strict base model;
- :mod:`flmon.config.scrape`: the federation, the scrape sources and the run lifecycle;
- :mod:`flmon.config.alerts`: the per-alert settings (one field per declared alert);
- :mod:`flmon.config.notify`: Slack channels and AlertManager routing;
- :mod:`flmon.config.outputs`: the Prometheus, Grafana, Datadog and Elasticsearch files;
- :mod:`flmon.config.schema`: :class:`FlmonConfig`, the whole file;
- :mod:`flmon.config.loader`: :func:`load_config`, :func:`parse_config`, :class:`ConfigError`.
"""

from __future__ import annotations

from flmon.alerts.spec import SEVERITIES, Severity, duration_seconds
from flmon.config.alerts import ALERT_NAMES, Alerts, AlertSettings
from flmon.config.loader import ConfigError, load_config, parse_config
from flmon.config.notify import AlertmanagerSettings, SeverityChannels, Slack, Team
from flmon.config.outputs import Datadog, Elasticsearch, Grafana, PrometheusSettings
from flmon.config.schema import FlmonConfig
from flmon.config.scrape import (
    Federation,
    Lifecycle,
    LiveScrape,
    PushgatewayScrape,
    Scrape,
    ScrapeAuth,
    WatchScrape,
)
from flmon.config.strings import (
    AbsoluteUrl,
    Channel,
    DatadogNamespace,
    DatadogTag,
    DatasourceName,
    Duration,
    EnvName,
    FederationName,
    FilePath,
    Identifier,
    IndexPattern,
    JobName,
    StrictModel,
    Target,
    Url,
)

__all__ = [
    "ALERT_NAMES", "SEVERITIES", "AbsoluteUrl", "AlertSettings", "AlertmanagerSettings",
    "Alerts", "Channel", "ConfigError", "Datadog", "DatadogNamespace", "DatadogTag",
    "DatasourceName", "Duration", "Elasticsearch", "EnvName", "Federation", "FederationName",
    "FilePath", "FlmonConfig", "Grafana", "Identifier", "IndexPattern", "JobName", "Lifecycle",
    "LiveScrape", "PrometheusSettings", "PushgatewayScrape", "Scrape", "ScrapeAuth", "Severity",
    "SeverityChannels", "Slack", "StrictModel", "Target", "Team", "Url", "WatchScrape",
    "duration_seconds", "load_config", "parse_config",
]
