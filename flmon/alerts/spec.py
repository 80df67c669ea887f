"""The shape of one alert declaration, and what its builders are given.

An :class:`Alert` holds everything about one alert: its default settings and their bounds,
the PromQL expression builder, the summary and description, the inhibitions it takes part
in, its ``promtool test rules`` cases and its Datadog monitor. The configuration schema,
the rules, the rule tests, the Datadog monitors, the AlertManager inhibitions and the
runbook anchors all read the one list in :mod:`flmon.alerts.declarations`.

Builders receive a :class:`Ctx` (the federation, the jobs, the alert's own settings) rather
than the whole configuration, so this module does not depend on :mod:`flmon.config`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from flmon import catalog
from flmon.urls import RUNBOOKS_URL

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")

Scope = Literal["in_progress", "run", "federation"]
"""How an alert follows a run's life.

``in_progress``
    About a run in progress: resolves as soon as the run ended (``fl_run_active == 0``).
``run``
    About a run, in progress or ended: resolves ``lifecycle.stale_after`` after it ended.
``federation``
    About the federation (the SuperLink, its nodes, privacy tests): no run lifecycle.
"""

_DURATION_UNITS_MS: tuple[tuple[str, int], ...] = (
    ("y", 31_536_000_000), ("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000),
    ("m", 60_000), ("s", 1000), ("ms", 1),
)
# Prometheus' own grammar (prometheus/common model.ParseDuration): units largest first,
# each at most once.
_DURATION_RE = re.compile(
    "^" + "".join(f"(?:([0-9]+){unit})?" for unit, _ in _DURATION_UNITS_MS) + "$")

MAX_DURATION_MS = (2**63 - 1) // 1_000_000
"""The longest duration Prometheus parses: its durations are Go ``time.Duration`` values
(int64 nanoseconds), and longer ones are refused with "duration out of range"."""


def _duration_text(ms: int) -> str:
    out = ""
    for unit, size in _DURATION_UNITS_MS:
        if ms >= size:
            out += f"{ms // size}{unit}"
            ms %= size
    return out or "0s"


MAX_DURATION = _duration_text(MAX_DURATION_MS)
""":data:`MAX_DURATION_MS` as Prometheus writes it (``292y24w3d23h47m16s854ms``)."""


def duration_seconds(value: str) -> float:
    """Return the length of a Prometheus duration such as ``5m`` or ``1h30m`` in seconds.

    Raises
    ------
    ValueError
        When Prometheus would refuse ``value``: not its grammar (units largest first, each
        once), or longer than :data:`MAX_DURATION`.
    """
    match = _DURATION_RE.fullmatch(value) if value else None
    if match is None:
        raise ValueError(f"{value!r} is not a Prometheus duration such as 30s, 5m or 1h30m "
                         "(units y, w, d, h, m, s, ms, largest first, each once)")
    ms = sum(int(n) * size for n, (_, size) in zip(match.groups(), _DURATION_UNITS_MS,
                                                   strict=True) if n)
    if ms > MAX_DURATION_MS:
        raise ValueError(f"{value!r} is longer than Prometheus can represent (at most "
                         f"{MAX_DURATION})")
    return ms / 1000


def dd_name(namespace: str, name: str, part: str = "") -> str:
    """The name the Agent's OpenMetrics check (and flmon's DogStatsD sink) gives catalog
    metric ``name``: counters lose ``_total`` and gain ``.count``, histograms come as
    ``.bucket``/``.sum``/``.count`` (``part``), gauges keep their name."""
    spec = catalog.get(name)
    if spec.type == "counter":
        return f"{namespace}.{name.removesuffix('_total')}.count"
    if spec.type == "histogram":
        return f"{namespace}.{name}.{part or 'count'}"
    return f"{namespace}.{name}"


def runbook_anchor(name: str) -> str:
    """Section anchor of alert ``name`` in ``docs/runbooks.md`` (the heading, lowercased)."""
    return name.lower()


def runbook_url(base: str, name: str) -> str:
    """The ``runbook_url`` of alert ``name``: the runbooks' ``base`` URL and its anchor."""
    return f"{base}#{runbook_anchor(name)}"


# --- what builders are given ---------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One scrape path: its Prometheus job and its first target."""

    job: str
    """``job`` label of the series (the pushed job for the Pushgateway)."""
    instance: str
    """``instance`` label of the series (the first target)."""
    scrape_job: str = ""
    """The scrape job itself, when it differs from ``job`` (the Pushgateway's own ``up``)."""


@dataclass(frozen=True)
class Ctx:
    """The federation, its scrape paths and one alert's settings."""

    federation: str
    live: Source | None
    pushgateway: Source | None
    watch: Source | None
    stale_after: str
    severity: Severity
    team: str
    for_: str
    threshold_value: float | None = None
    window_value: str | None = None
    runbook_base: str = RUNBOOKS_URL
    dd_namespace: str = "flmon"
    dd_live_endpoint: str | None = None
    """The live exporter's endpoint in the Agent's check (``None``: not collected by it)."""
    dd_watch_endpoints: tuple[str, ...] = ()
    """``flmon watch``'s endpoints in the Agent's check."""
    dd_pushgateway_endpoint: str | None = None
    """The Pushgateway's endpoint in the Agent's check (privacy-test figures only)."""

    # -- selectors -----------------------------------------------------------------

    @property
    def run_jobs(self) -> tuple[str, ...]:
        """``job`` values of the ServerApp's series (live exporter, then pushed)."""
        return tuple(s.job for s in (self.live, self.pushgateway) if s is not None)

    def sel(self, extra: str = "") -> str:
        """Matchers of the ServerApp's ``fl_*`` series of this federation, in braces."""
        jobs = self.run_jobs
        job = f'job="{jobs[0]}"' if len(jobs) == 1 else f'job=~"{"|".join(jobs)}"'
        return "{" + f'{job},federation="{self.federation}"' + (f",{extra}" if extra else "") + "}"

    def watch_sel(self, extra: str = "") -> str:
        """Matchers of the series of ``flmon watch`` of this federation, in braces."""
        job = self.watch.job if self.watch is not None else "flmon-watch"
        return "{" + f'job="{job}",federation="{self.federation}"' + (
            f",{extra}" if extra else "") + "}"

    def fed_sel(self, extra: str = "") -> str:
        """Matchers of this federation only (series of any job), in braces."""
        return "{" + f'federation="{self.federation}"' + (f",{extra}" if extra else "") + "}"

    # -- the alert's settings ------------------------------------------------------

    @property
    def threshold(self) -> float:
        """The alert's threshold (the schema requires one for alerts that declare one)."""
        if self.threshold_value is None:
            raise ValueError("this alert has no threshold")
        return self.threshold_value

    @property
    def window(self) -> str:
        """The alert's window (the schema requires one for windowed alerts)."""
        if self.window_value is None:
            raise ValueError("this alert has no window")
        return self.window_value

    @property
    def window_s(self) -> float:
        return duration_seconds(self.window)

    @property
    def stale_s(self) -> float:
        return duration_seconds(self.stale_after)

    # -- Datadog -------------------------------------------------------------------

    def dd(self, name: str, part: str = "") -> str:
        """The Datadog name of catalog metric ``name`` (``part``: a histogram's sum/count)."""
        return dd_name(self.dd_namespace, name, part)

    @property
    def dd_tags(self) -> str:
        return f"{{federation:{self.federation}}}"

    def dd_sel(self, *tags: str) -> str:
        """This federation's tags and ``tags``, in braces (``{federation:x,status:running}``)."""
        return "{" + ",".join((f"federation:{self.federation}", *tags)) + "}"

    def dd_health(self, endpoints: tuple[str, ...], for_: str) -> Monitor:
        """A service-check monitor on the check's ``openmetrics.health`` of ``endpoints``
        (one group each): CRITICAL after ``for_`` of failed scrapes (the Agent runs the
        check every 15 s)."""
        checks = max(2, math.ceil(duration_seconds(for_) / 15))
        fed = f'"federation:{self.federation}"'
        if len(endpoints) == 1:
            where = f'.over({fed},"endpoint:{endpoints[0]}")'
        else:  # any endpoint of the federation but the others'
            others = [e for e in (self.dd_live_endpoint, self.dd_pushgateway_endpoint,
                                *self.dd_watch_endpoints)
                      if e is not None and e not in endpoints]
            where = f".over({fed})" + "".join(f'.exclude("endpoint:{e}")' for e in others)
        return Monitor("service check",
                       f'"{self.dd_namespace}.openmetrics.health"{where}'
                       f'.by("endpoint").last({checks}).count_by_status()',
                       critical=checks, ok=1)


# --- promtool cases ------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One input series of a promtool case (values in promtool's expanding notation)."""

    name: str
    labels: Mapping[str, str]
    values: str


@dataclass(frozen=True)
class Expect:
    """One alert a promtool case expects, written as the operator reads it."""

    labels: Mapping[str, str]
    """Every label of the alert (``severity``, ``team`` and ``federation`` included)."""
    summary: str
    description: str


@dataclass(frozen=True)
class Case:
    """One promtool test: input series and, at steps, the alerts expected firing."""

    name: str
    series: tuple[Series, ...]
    checks: tuple[tuple[int, tuple[Expect, ...]], ...]


@dataclass(frozen=True)
class TestCtx:
    """What a case builder is given: the alert's context and the test's time grid."""

    ctx: Ctx
    step: int
    """Seconds between samples and evaluations."""

    def steps(self, duration: str | float) -> int:
        """``duration`` (a Prometheus duration or seconds) in steps, rounded up."""
        seconds = duration if isinstance(duration, float | int) else duration_seconds(duration)
        return int(-(-seconds // self.step))

    @property
    def long_ago(self) -> str:
        """A creation time (seconds) more than a window before the test starts: a day, or
        a window and a step when the window is longer."""
        window = self.ctx.window_s if self.ctx.window_value is not None else 0.0
        return str(-max(86400, math.ceil(window) + self.step))

    @property
    def for_steps(self) -> int:
        return self.steps(self.ctx.for_)

    @property
    def window_steps(self) -> int:
        return round(self.ctx.window_s / self.step)

    @property
    def paths(self) -> tuple[Source, ...]:
        """The ServerApp's scrape paths in use (a firing case feeds them all)."""
        return tuple(s for s in (self.ctx.pushgateway, self.ctx.live) if s is not None)

    def path_labels(self, path: Source, run_id: str = "7", **labels: str) -> dict[str, str]:
        return {"job": path.job, "instance": path.instance, "federation": self.ctx.federation,
                "run_id": run_id, **labels}

    def on_paths(self, name: str, values: str, run_id: str = "7",
                 live_values: str | None = None, **labels: str) -> list[Series]:
        """The same series as every path in use carries it (``live_values``: the live
        exporter's own values, when it stops earlier than the Pushgateway)."""
        return [Series(name, self.path_labels(p, run_id, **labels),
                       live_values if live_values is not None and p is self.ctx.live
                       else values)
                for p in self.paths]

    def run(self, n: int, run_id: str = "7", ended_at: int | None = None,
            killed_at: int | None = None) -> list[Series]:
        """A run started at t=0, active for ``n`` steps or until step ``ended_at``.

        The Pushgateway keeps the final push (``fl_run_active 0`` and the end time); the
        live exporter is gone with the ServerApp (its series turn stale). With the watch,
        its ``fl_run_running`` of the run is 1 while the SuperLink says the run is in
        progress.

        ``killed_at``: the ServerApp was killed at that step. It recorded no end: the
        Pushgateway keeps ``fl_run_active 1``, the live series turn stale, and the
        SuperLink marks the run failed (the watch's ``fl_run_running`` of it is gone).
        """
        out: list[Series] = []
        if self.ctx.watch is not None:
            # A run that ends records it before its ServerApp exits: the watch sees the
            # SuperLink mark it finished a poll later (so the end alone resolves the
            # alerts). A killed one records nothing: the SuperLink's word is the end.
            watch = self.ctx.watch
            labels = {"job": watch.job, "instance": watch.instance,
                      "federation": self.ctx.federation, "run_id": run_id}
            running = (f"1x{killed_at - 1} stale" if killed_at is not None
                       else f"1x{ended_at} stale" if ended_at is not None else f"1x{n}")
            out.append(Series("fl_run_running", labels, running))
        for p in self.paths:
            labels = self.path_labels(p, run_id)
            if killed_at is not None:
                alive = f"1x{killed_at - 1} stale" if p is self.ctx.live else f"1x{n}"
                out += [Series("fl_run_active", labels, alive),
                        Series("fl_run_start_timestamp_seconds", labels,
                               f"0x{killed_at - 1} stale" if p is self.ctx.live else f"0x{n}"),
                        Series("fl_run_end_timestamp_seconds", labels,
                               f"0x{killed_at - 1} stale" if p is self.ctx.live else f"0x{n}")]
                continue
            if ended_at is None:
                active, end = f"1x{n}", f"0x{n}"
            elif p is self.ctx.live:
                active = f"1x{ended_at - 1} stale"
                end = f"0x{ended_at - 1} stale"
            else:
                active = f"1x{ended_at - 1} 0x{n - ended_at}"
                end = f"0x{ended_at - 1} {ended_at * self.step}x{n - ended_at}"
            out += [Series("fl_run_active", labels, active),
                    Series("fl_run_start_timestamp_seconds", labels, f"0x{n}"),
                    Series("fl_run_end_timestamp_seconds", labels, end)]
        return out

    def labels(self, **labels: str) -> dict[str, str]:
        """An alert's full label set: the given labels, its federation, severity, team."""
        return {"federation": self.ctx.federation, "severity": self.ctx.severity,
                "team": self.ctx.team, **labels}


# --- the declaration -----------------------------------------------------------------


@dataclass(frozen=True)
class Monitor:
    """A Datadog monitor: its type, query and critical threshold.

    A ``composite`` monitor's query names its parts ``<alert>.<part>`` (``FLExporterDown.scrape
    && FLExporterDown.run``); each part is a monitor of its own, rendered next to it and
    linked by id when created (:func:`flmon.render.datadog.link_composite`).
    """

    type: str
    query: str
    critical: float
    ok: float | None = None
    """Service checks: consecutive OK runs to recover."""
    require_full_window: bool = False
    """Evaluate only once the whole window has data (a run younger than it stays quiet)."""
    parts: tuple[tuple[str, Monitor], ...] = ()


@dataclass(frozen=True)
class Inhibit:
    """While the declaring alert fires, AlertManager silences ``target`` for equal labels."""

    target: str
    equal: tuple[str, ...] = ("federation", "run_id")


@dataclass(frozen=True)
class Alert:
    """One alert, declared once.

    Parameters
    ----------
    name
        CamelCase with the ``FL`` prefix; the runbook anchor is the name, lowercased.
    severity, for_, team, threshold, window, enabled
        Defaults of ``alerts.<name>`` in ``flmon.yaml``.
    bounds
        ``(lower, upper)`` of the threshold; ``None`` when the alert takes no threshold.
    windowed
        Whether the alert takes (and requires) a window.
    scope
        How the alert follows a run's life (see :data:`Scope`).
    expr
        Builds the PromQL expression (before the lifecycle clause of its scope).
    description
        Builds the templated description (``{{ $value }}``, ``{{ $labels.x }}``).
    cases
        Builds the promtool cases, with literal expected labels and annotations.
    monitor
        Builds the Datadog monitor.
    needs
        Which scrape paths the alert reads (``run``: the ServerApp's, ``watch``).
    threshold_seconds
        Whether the threshold is a duration in seconds (its cases then span it, and the
        test's step is chosen for it too).
    """

    name: str
    severity: Severity
    for_: str
    team: str
    summary: str
    scope: Scope
    expr: Callable[[Ctx], str]
    description: Callable[[Ctx], str]
    cases: Callable[[TestCtx], list[Case]]
    monitor: Callable[[Ctx], Monitor | None]
    threshold: float | None = None
    bounds: tuple[float, float] | None = None
    window: str | None = None
    windowed: bool = False
    enabled: bool = True
    per_client: bool = False
    inhibits: tuple[Inhibit, ...] = ()
    needs: Literal["run", "watch", "any"] = "run"
    threshold_seconds: bool = False

    def __post_init__(self) -> None:
        if not re.fullmatch(r"FL[A-Z][A-Za-z]+", self.name):
            raise ValueError(f"{self.name}: alert names are CamelCase with the FL prefix")
        if (self.threshold is None) != (self.bounds is None):
            raise ValueError(f"{self.name}: a threshold default goes with its bounds")
        if self.windowed != (self.window is not None):
            raise ValueError(f"{self.name}: a windowed alert has a default window")

    @property
    def anchor(self) -> str:
        return runbook_anchor(self.name)

    def defaults(self) -> dict[str, Any]:
        """The ``alerts.<name>`` defaults, as ``flmon.yaml`` writes them."""
        out: dict[str, Any] = {"enabled": self.enabled, "severity": self.severity,
                               "for": self.for_, "team": self.team}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        if self.window is not None:
            out["window"] = self.window
        return out


@dataclass(frozen=True)
class Declarations:
    """The ordered list of alerts, looked up by name."""

    alerts: tuple[Alert, ...]
    by_name: dict[str, Alert] = field(init=False)

    def __post_init__(self) -> None:
        names = [a.name for a in self.alerts]
        if len(set(names)) != len(names):
            raise ValueError("alert names must be unique")
        object.__setattr__(self, "by_name", {a.name: a for a in self.alerts})
        for alert in self.alerts:
            for inhibit in alert.inhibits:
                if inhibit.target not in self.by_name:
                    raise ValueError(f"{alert.name} inhibits unknown alert {inhibit.target}")
