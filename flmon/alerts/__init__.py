"""flmon's alerts: one declaration per alert, listed in :mod:`flmon.alerts.declarations`.

The declarations live by area: :mod:`~flmon.alerts.quality`, :mod:`~flmon.alerts.progress`,
:mod:`~flmon.alerts.security`, :mod:`~flmon.alerts.federation`; their shape is
:class:`~flmon.alerts.spec.Alert`.

The configuration schema (defaults, bounds, windows), the Prometheus rules and their
promtool tests, the Datadog monitors, the AlertManager inhibitions and the runbook anchors
are all built from :data:`ALERTS`. Adding an alert is adding one :class:`Alert` to that
list and one section to ``docs/runbooks.md``.
"""

from __future__ import annotations

from flmon.alerts.declarations import ALERTS
from flmon.alerts.spec import (
    SEVERITIES,
    Alert,
    Case,
    Ctx,
    Declarations,
    Expect,
    Inhibit,
    Monitor,
    Series,
    Severity,
    Source,
    TestCtx,
    duration_seconds,
    runbook_anchor,
    runbook_url,
)

DECLARATIONS = Declarations(ALERTS)
BY_NAME: dict[str, Alert] = DECLARATIONS.by_name
ALERT_NAMES: tuple[str, ...] = tuple(a.name for a in ALERTS)
"""Every alert flmon renders, in the order of the rules file."""


def get(name: str) -> Alert:
    """The declaration of alert ``name``; ``KeyError`` naming it when unknown."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no alert {name!r} is declared") from None


__all__ = [
    "ALERTS", "ALERT_NAMES", "BY_NAME", "SEVERITIES", "Alert", "Case", "Ctx", "Expect",
    "Inhibit", "Monitor", "Series", "Severity", "Source", "TestCtx", "duration_seconds",
    "get", "runbook_anchor", "runbook_url",
]
