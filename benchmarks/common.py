"""Timing helpers and the environment record shared by the benchmarks."""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CLOCK = time.process_time
"""Micro-benchmarks count this process's CPU time, not wall time: the machine is shared,
and CPU time is what instrumentation costs the training process."""


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and (relative) interquartile range of a sample."""
    if not values:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    ordered = sorted(values)
    out = {"median": median(ordered), "min": ordered[0], "max": ordered[-1],
           "n": len(ordered)}
    if len(ordered) >= 4:
        q = statistics.quantiles(ordered, n=4)
        out["iqr"] = q[2] - q[0]
    return out


def calibrate(stmt: Callable[[], object] | str, globals_: Mapping[str, Any] | None = None,
              target_s: float = 0.05) -> int:
    """Loop count so that one repetition of ``stmt`` lasts about ``target_s``."""
    timer = timeit.Timer(stmt, timer=CLOCK, globals=dict(globals_ or {}))
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= target_s / 5 or number >= 10_000_000:
            return max(1, int(number * target_s / max(elapsed, 1e-9)))
        number *= 10


def compare(cases: Mapping[str, str], globals_: Mapping[str, Any], repeat: int,
            target_s: float = 0.05) -> dict[str, list[float]]:
    """Per-call nanoseconds of each statement, repetitions interleaved.

    Each statement runs ``number`` times per repetition (``timeit`` style, calibrated
    per case, CPU time: see :data:`CLOCK`); the order of the cases rotates between
    repetitions so that drift on a busy machine spreads over all of them. Returns one
    list of ns/call per case.
    """
    g = dict(globals_)
    timers = {name: timeit.Timer(stmt, timer=CLOCK, globals=g) for name, stmt in cases.items()}
    numbers = {name: calibrate(stmt, g, target_s) for name, stmt in cases.items()}
    for name, timer in timers.items():  # warm-up
        timer.timeit(max(1, numbers[name] // 10))
    out: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for rep in range(repeat):
        k = rep % len(names)
        for name in names[k:] + names[:k]:
            elapsed = timers[name].timeit(numbers[name])
            out[name].append(elapsed / numbers[name] * 1e9)
    return out


def ratios(samples: Mapping[str, list[float]], numerator: str, denominator: str) -> list[float]:
    """Per-repetition ratios of two interleaved samples."""
    return [a / b for a, b in zip(samples[numerator], samples[denominator], strict=True)
            if b > 0]


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """What the figures were measured on."""
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "flwr": _version("flwr"),
        "prometheus_client": _version("prometheus_client"),
        "opentelemetry_sdk": _version("opentelemetry-sdk"),
        "locust": _version("locust"),
        "keras": _version("keras"),
        "tensorflow": _version("tensorflow-cpu") if _version("tensorflow-cpu") != "not installed"
        else _version("tensorflow"),
        "flmon": _version("flmon"),
        "load_average_at_start": load,
    }


def finite_positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def loopback_url(url: str) -> str:
    """``url`` itself if it points at the loopback interface; ``ValueError`` otherwise."""
    if urlsplit(url).hostname not in _LOOPBACK_HOSTS:
        raise ValueError(f"benchmarks only target loopback, not {url!r}")
    return url
