"""Helpers of the sink tests: the loopback endpoints, and counter values."""

from __future__ import annotations

from typing import Any

from tests.fakes.loopback import (
    CHANNEL_NOT_FOUND,
    OK,
    RATE_LIMITED,
    SERVER_ERROR,
    BlackHole,
    FakeElasticsearch,
    FakeSlack,
    SlackAnswer,
    SlowHttpServer,
    SlowUnixReader,
    UdpReceiver,
    closed_port,
)

__all__ = [
    "CHANNEL_NOT_FOUND", "OK", "RATE_LIMITED", "SERVER_ERROR", "BlackHole",
    "FakeElasticsearch", "FakeSlack", "SlackAnswer", "SlowHttpServer", "SlowUnixReader",
    "UdpReceiver",
    "closed_port", "count",
]


def count(metrics: Any, name: str, sink: str) -> float:
    """Current value of the counter ``name{sink=...}`` in a ``FlmonMetrics``."""
    sample = metrics.registry.get_sample_value(name, {"sink": sink})
    return 0.0 if sample is None else float(sample)
