"""Fixtures of the sink tests: fresh counters, quick queue settings, a clean environment."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from flmon.metrics import FlmonMetrics
from flmon.sinks.base import QueueSettings

# Variables the datadog client reads on its own; they would add tags or move the target.
_DD_ENV = ("DD_AGENT_HOST", "DD_DOGSTATSD_PORT", "DD_DOGSTATSD_URL", "DD_DOGSTATSD_SOCKET",
           "DATADOG_TAGS", "DD_ENV", "DD_SERVICE", "DD_VERSION", "DD_ENTITY_ID",
           "DD_TELEMETRY_HOST", "DD_TELEMETRY_PORT", "DD_DOGSTATSD_DISABLE",
           "DD_EXTERNAL_ENV", "DD_ORIGIN_DETECTION_ENABLED")
_FLMON_ENV = ("FLMON_ES_URL", "FLMON_ES_API_KEY", "FLMON_ES_API_KEY_FILE", "FLMON_ES_USERNAME",
              "FLMON_ES_PASSWORD", "FLMON_ES_PASSWORD_FILE", "FLMON_SLACK_WEBHOOK_URL",
              "FLMON_SLACK_WEBHOOK_URL_FILE", "FLMON_DATADOG_ENABLED", "FLMON_FEDERATION")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*_DD_ENV, *_FLMON_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def metrics() -> FlmonMetrics:
    return FlmonMetrics(sides=("sink",))


@pytest.fixture
def quick() -> QueueSettings:
    """Short intervals and back-offs, so retries happen within a test's time."""
    return QueueSettings(queue_size=1000, batch_size=50, flush_interval=0.05, max_retries=3,
                         initial_backoff=0.05, max_backoff=0.2, close_timeout=5.0)


@pytest.fixture
def train_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("flmon.tests.training")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)

