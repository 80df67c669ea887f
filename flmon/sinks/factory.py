"""Build the configured sinks from the environment or from keyword arguments.

>>> sinks = build_sinks(metrics=fm, mirror=fm)          # doctest: +SKIP
>>> sinks.attach_logging()                              # doctest: +SKIP
>>> with sinks.slack.track_run(run_id, rounds=10) as summary:   # doctest: +SKIP
...     ...
>>> sinks.close(timeout=5)                              # doctest: +SKIP

A sink is enabled by its keyword argument (a config object, or ``True`` for the
configuration read from the environment; ``False`` disables it) or, when the argument is
left out, by the environment:

================  ==================================================================
sink              enabled by
================  ==================================================================
Datadog           ``FLMON_DATADOG_ENABLED=1`` (address from ``FLMON_DATADOG_HOST``/
                  ``_PORT``/``_SOCKET`` or Datadog's ``DD_AGENT_HOST``...)
Elasticsearch     ``FLMON_ES_URL``
Slack             ``FLMON_SLACK_WEBHOOK_URL`` or ``FLMON_SLACK_WEBHOOK_URL_FILE``
================  ==================================================================
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from flmon.metrics import FlmonMetrics
from flmon.sinks.base import sink_metrics

if TYPE_CHECKING:
    from flmon.sinks.datadog import DatadogConfig, DatadogSink
    from flmon.sinks.elasticsearch import ElasticsearchConfig, ElasticsearchHandler
    from flmon.sinks.slack import SlackConfig, SlackNotifier

_TRUE = {"1", "true", "yes", "on"}


@dataclass
class Sinks:
    """The sinks built by :func:`build_sinks`; each is ``None`` when not enabled."""

    metrics: FlmonMetrics
    datadog: DatadogSink | None = None
    elasticsearch: ElasticsearchHandler | None = None
    slack: SlackNotifier | None = None

    def __bool__(self) -> bool:
        return any((self.datadog, self.elasticsearch, self.slack))

    def attach_logging(self, logger: logging.Logger | str = "") -> None:
        """Add the Elasticsearch handler (if enabled) to ``logger`` (the root by default)."""
        if self.elasticsearch is not None:
            target = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)
            target.addHandler(self.elasticsearch)

    def close(self, timeout: float = 5.0) -> bool:
        """Close every sink within one shared ``timeout``; ``True`` when all were clean."""
        deadline = time.monotonic() + timeout
        clean = True
        if self.datadog is not None:
            clean &= self.datadog.close(max(0.0, deadline - time.monotonic()))
        if self.slack is not None:
            clean &= self.slack.close(max(0.0, deadline - time.monotonic()))
        if self.elasticsearch is not None:
            handler = self.elasticsearch
            for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
                if isinstance(logger, logging.Logger) and handler in logger.handlers:
                    logger.removeHandler(handler)
            handler.close(max(0.0, deadline - time.monotonic()))
            clean &= handler.sink.close()  # already closed: returns the outcome
        return clean


def datadog_enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether the environment enables the Datadog sink (``FLMON_DATADOG_ENABLED``)."""
    env = os.environ if env is None else env
    return env.get("FLMON_DATADOG_ENABLED", "").lower() in _TRUE


def build_sinks(
    *,
    metrics: FlmonMetrics | CollectorRegistry | None = None,
    mirror: CollectorRegistry | FlmonMetrics | None = None,
    datadog: DatadogConfig | bool | None = None,
    elasticsearch: ElasticsearchConfig | bool | None = None,
    slack: SlackConfig | bool | None = None,
    env: Mapping[str, str] | None = None,
) -> Sinks:
    """Build the enabled sinks, sharing one set of ``fl_sink_*`` counters.

    Parameters
    ----------
    metrics
        Where the ``fl_sink_*`` counters live (a private registry when omitted).
    mirror
        The registry the Datadog sink mirrors (usually the same ``FlmonMetrics``).
    datadog, elasticsearch, slack
        A config to enable that sink with, ``True`` to enable it with the configuration
        read from ``env``, ``False`` to leave it off, ``None`` to decide from ``env``.
    env
        The environment (``os.environ`` when omitted).
    """
    env = os.environ if env is None else env
    shared = sink_metrics(metrics)
    sinks = Sinks(metrics=shared)

    if datadog is None:
        datadog = datadog_enabled(env)
    if datadog is not False:
        from flmon.sinks.datadog import DatadogConfig, DatadogSink

        dd_config = datadog if isinstance(datadog, DatadogConfig) else DatadogConfig.from_env(env)
        sinks.datadog = DatadogSink(dd_config, mirror=mirror, metrics=shared)

    if elasticsearch is None:
        elasticsearch = bool(env.get("FLMON_ES_URL"))
    if elasticsearch is not False:
        from flmon.sinks.elasticsearch import ElasticsearchConfig, ElasticsearchHandler

        es_config = (elasticsearch if isinstance(elasticsearch, ElasticsearchConfig)
                     else ElasticsearchConfig.from_env(env))
        sinks.elasticsearch = ElasticsearchHandler(es_config, shared, env=env)

    if slack is None:
        slack = bool(env.get("FLMON_SLACK_WEBHOOK_URL") or env.get("FLMON_SLACK_WEBHOOK_URL_FILE"))
    if slack is not False:
        from flmon.sinks.slack import SlackConfig, SlackNotifier

        slack_config = slack if isinstance(slack, SlackConfig) else SlackConfig.from_env(env)
        sinks.slack = SlackNotifier(slack_config, shared, env=env)
    return sinks
