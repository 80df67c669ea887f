"""PromQL helpers the alert declarations share."""

from __future__ import annotations

from flmon.alerts.spec import duration_seconds
from flmon.alerts.text import num


def dedupe(expr: str) -> str:
    """One series per label set, whichever path (job, instance) carried it."""
    return f"max without (job, instance) ({expr})"


def window_increase(metric: str, sel: str, window: str) -> str:
    """How much counter ``metric`` grew within ``window``.

    ``increase()`` counts what Prometheus saw within the window; it needs two samples, so
    the first increment of a labelled child (created at its first ``inc()``) would be
    lost. A series created within the window (``<name>_created``, the client library's
    creation time) started from 0 inside it: its value is its increase. After a Prometheus
    restart with an empty TSDB, an old counter has an old creation time and counts only
    what grows from then on.
    """
    created = metric.removesuffix("_total") + "_created"
    seconds = num(_seconds(window))
    return (f"({metric}{sel} and (time() - {created}{sel}) < {seconds})\n"
            f"or\n"
            f"increase({metric}{sel}[{window}])")


def _seconds(duration: str) -> float:
    return duration_seconds(duration)


def dd_window(duration: str, minimum: int = 300) -> str:
    """The smallest Datadog evaluation window of at least ``duration`` (and ``minimum`` s)."""
    windows = ((60, "1m"), (300, "5m"), (600, "10m"), (900, "15m"), (1800, "30m"),
               (3600, "1h"), (7200, "2h"), (14400, "4h"), (86400, "1d"), (172800, "2d"),
               (604800, "1w"))
    seconds = max(_seconds(duration), minimum)
    for size, text in windows:
        if size >= seconds:
            return text
    return windows[-1][1]


