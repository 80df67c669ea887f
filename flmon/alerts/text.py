"""Numbers as alerts write them, and as Prometheus' template functions print them.

The rules write static numbers with :func:`percent`, :func:`num` and
:func:`seconds_text`; the promtool cases write the values Prometheus will print with
:func:`humanize_percentage`, :func:`humanize_duration` and :func:`go_float` (the same
output as Prometheus' ``humanizePercentage``, ``humanizeDuration`` and ``printf``).
"""

from __future__ import annotations

import math


def num(value: float) -> str:
    """A threshold as PromQL and messages write it (``3``, ``0.85``, ``25.5``)."""
    return f"{value:g}"


def percent(value: float) -> str:
    """``0.85`` -> ``85%`` (as Prometheus' humanizePercentage writes round values)."""
    return f"{value * 100:.4g}%"


def seconds_text(value: float) -> str:
    """A duration in seconds as a Prometheus duration string (``1800`` -> ``30m``)."""
    v = int(value)
    if v != value or v <= 0:
        return f"{value:g}s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if v % size == 0:
            return f"{v // size}{unit}"
    return f"{v}s"


def go_float(value: float, spec: str) -> str:
    """Format like Go's ``fmt.Sprintf`` for the verbs the annotations use."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return spec % value


def humanize_percentage(value: float) -> str:
    """Prometheus ``humanizePercentage``."""
    if math.isnan(value):
        return "NaN%"
    return go_float(value * 100, "%.4g") + "%"


def humanize_duration(value: float) -> str:
    """Prometheus ``humanizeDuration`` (for values of at least one second)."""
    if math.isnan(value) or math.isinf(value):
        return go_float(value, "%.4g")
    if abs(value) < 1:
        raise ValueError("sub-second durations are not used in flmon's rules")
    sign = "-" if value < 0 else ""
    total = int(abs(value))
    seconds, minutes = total % 60, (total // 60) % 60
    hours, days = (total // 3600) % 24, total // 86400
    if days:
        return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
    if hours:
        return f"{sign}{hours}h {minutes}m {seconds}s"
    if minutes:
        return f"{sign}{minutes}m {seconds}s"
    return f"{sign}{go_float(abs(value), '%.4g')}s"


def count(value: float) -> str:
    """``printf "%.0f"``."""
    return go_float(value, "%.0f")


def two(value: float) -> str:
    """``printf "%.2f"``."""
    return go_float(value, "%.2f")
