"""What a report shows, independent of how it was queried or how it is drawn.

Label values stay raw here (they may come from a hostile client); the HTML renderer
escapes every string it writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Line:
    """One drawn series: its legend text and ``(unix time, value)`` points."""

    legend: str
    points: tuple[tuple[float, float], ...]

    @property
    def last(self) -> float | None:
        return self.points[-1][1] if self.points else None

    @property
    def peak(self) -> float | None:
        return max(v for _, v in self.points) if self.points else None


@dataclass(frozen=True)
class Chart:
    """A time-series panel: lines, reference lines (alert thresholds), unit."""

    title: str
    unit: str
    description: str
    lines: tuple[Line, ...]
    references: tuple[tuple[str, float], ...] = ()
    max: float | None = None

    @property
    def empty(self) -> bool:
        return not any(line.points for line in self.lines)


@dataclass(frozen=True)
class Stat:
    """A stat panel: per query, its legend and the last value seen (``None``: no data)."""

    title: str
    unit: str
    description: str
    values: tuple[tuple[str, float | None], ...]

    @property
    def empty(self) -> bool:
        return all(v is None for _, v in self.values)


@dataclass(frozen=True)
class Section:
    """One dashboard's worth of stats and charts."""

    title: str
    stats: tuple[Stat, ...]
    charts: tuple[Chart, ...]


@dataclass(frozen=True)
class AlertSpan:
    """One alert (a label set) firing from ``start`` to ``end``.

    ``resolved`` is false when it was still firing at the end of the window.
    """

    alertname: str
    severity: str
    labels: dict[str, str]
    start: float
    end: float
    resolved: bool
    summary: str = ""

    @property
    def subject(self) -> str:
        """The alert's distinguishing labels beyond name, severity and federation."""
        skip = {"alertname", "alertstate", "severity", "federation", "team", "job",
                "instance", "__name__"}
        return ", ".join(f"{k}={v}" for k, v in sorted(self.labels.items()) if k not in skip)


@dataclass(frozen=True)
class ActiveAlert:
    """An alert as AlertManager holds it at report time."""

    alertname: str
    severity: str
    state: str
    """``active``, ``suppressed`` or ``unprocessed``."""
    labels: dict[str, str]
    starts_at: str
    receivers: tuple[str, ...]
    summary: str


@dataclass(frozen=True)
class RunIdentity:
    """The run the report is about (``None``: not reported by the series)."""

    federation: str
    run_id: str | None
    strategy: str | None
    flwr_version: str | None
    flmon_version: str | None
    start: float | None
    end: float | None
    result: str
    rounds_completed: int | None
    rounds_planned: int | None


@dataclass(frozen=True)
class RoundRow:
    """One round: when it started and ended, and the aggregates recorded for it."""

    number: int
    start: float
    end: float | None
    training_accuracy: float | None
    evaluation_accuracy: float | None
    centralized_accuracy: float | None


@dataclass(frozen=True)
class Report:
    """Everything the page shows."""

    identity: RunIdentity
    window: tuple[float, float]
    step: float
    sections: tuple[Section, ...]
    alerts: tuple[AlertSpan, ...]
    active_alerts: tuple[ActiveAlert, ...] | None
    """What AlertManager held at report time; ``None`` when it was not asked."""
    findings: tuple[str, ...]
    prometheus_url: str
    generated_at: float
    notes: tuple[str, ...] = field(default_factory=tuple)
    rounds: tuple[RoundRow, ...] = ()
    """Rounds as the "Current round" panel's series shows them, with accuracy at their end."""
