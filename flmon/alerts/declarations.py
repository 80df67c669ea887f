"""Every alert flmon renders, each declared once (see :class:`flmon.alerts.spec.Alert`).

Conventions of the expressions:

- The ServerApp's series reach Prometheus by two paths (the live exporter and the
  Pushgateway) with the same labels but ``job`` and ``instance``. Every expression drops
  those two before it compares or sums (``max without (job, instance)``, or a ``by`` list
  without them), so one problem is one alert per federation and run (and client), and a
  value is counted once, whichever paths are in use.
- Counters count what Prometheus saw within the window (``increase``), plus the whole
  value of a series *created* within the window (its ``_created`` time says so), so the
  first failure of a client is not lost, and a Prometheus restart with an empty TSDB does
  not count history again.
- The lifecycle clause of an alert's scope is added by :mod:`flmon.render.rules`.

The promtool cases state, in the operator's words, what must fire: literal labels and
annotations, with the configured numbers written in.
"""

from __future__ import annotations

from flmon.alerts.exprs import dedupe, window_increase
from flmon.alerts.federation import EXPORTER_DOWN, NODE_OFFLINE, RUN_FAILED, SUPERLINK_DOWN
from flmon.alerts.progress import CLIENT_DROPOUT, NO_MODEL_UPDATES, ROUND_STALLED
from flmon.alerts.quality import ACCURACY_DROPPED, LOW_ACCURACY
from flmon.alerts.security import (
    BUDGET_EXHAUSTED,
    BUDGET_NEARLY,
    DP_BUDGET_RATIO,
    PRIVACY_LEAKAGE,
    TELEMETRY_REJECTED,
    UPDATE_ANOMALY,
)
from flmon.alerts.spec import Alert

__all__ = ["ALERTS", "DP_BUDGET_RATIO", "dedupe", "window_increase"]

ALERTS: tuple[Alert, ...] = (
    LOW_ACCURACY,
    ACCURACY_DROPPED,
    NO_MODEL_UPDATES,
    CLIENT_DROPOUT,
    ROUND_STALLED,
    UPDATE_ANOMALY,
    BUDGET_NEARLY,
    BUDGET_EXHAUSTED,
    TELEMETRY_REJECTED,
    EXPORTER_DOWN,
    SUPERLINK_DOWN,
    NODE_OFFLINE,
    RUN_FAILED,
    PRIVACY_LEAKAGE,
)
"""Every alert flmon renders, in the order of the rules file."""
