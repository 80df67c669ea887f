"""``promtool test rules`` files: every enabled alert's declared cases, for this config.

The cases come from the alert's declaration (:attr:`flmon.alerts.spec.Alert.cases`): input
series written on the configured jobs and targets, and the alerts expected at given steps
with literal labels and annotations (the configured thresholds and windows written in). A
rules file rendered from a different configuration, or a rule that no longer says what
its declaration's cases state, fails them.
"""

from __future__ import annotations

import math
from typing import Any

from flmon.alerts.spec import Alert, Case, Expect, TestCtx, duration_seconds, runbook_url
from flmon.alerts.text import seconds_text
from flmon.config import FlmonConfig
from flmon.render.rules import alert_ctx, enabled_alerts, group_names

_STEPS = (60, 30, 20, 15, 10, 5, 2, 1)

MAX_STEPS = 64
"""Most steps the longest duration of a case takes: promtool evaluates every rule at
every step and a case's samples are per step, so this bounds both, whatever the
durations' size (a ``for`` of years is as quick to test as one of minutes)."""


def _divisors(n: int) -> list[int]:
    """The divisors of ``n`` (> 0), ascending."""
    small, large = [], []
    d = 1
    while d * d <= n:
        if n % d == 0:
            small.append(d)
            if d * d != n:
                large.append(n // d)
        d += 1
    return small + large[::-1]


def _whole(seconds: float) -> int | None:
    """``seconds`` as a positive whole number of seconds, else ``None``."""
    return int(seconds) if seconds > 0 and seconds == int(seconds) else None


def pick_step(for_: str, window: str | None, spans: tuple[float, ...] = ()) -> int:
    """Seconds between samples and evaluations of an alert's test.

    Up to one minute, the largest step that divides the alert's ``for`` and window and
    gives at least four samples per window. When the longest duration the cases cover
    (``for``, window, ``spans``: ``stale_after``, a threshold in seconds) would then take
    more than :data:`MAX_STEPS` steps, the smallest step that brings it within them: it
    divides the window (at least four samples in it) and, where possible, ``for``.
    A window shorter than ``4 / MAX_STEPS`` of the longest duration caps the step at a
    quarter of the window: the steps then grow with that ratio, not with the durations.
    """
    f = duration_seconds(for_)
    w = duration_seconds(window) if window else None
    legacy = 1
    for step in _STEPS:
        if all(d % step == 0 for d in (f, *(() if w is None else (w,)))) and (
                w is None or w / step >= 4):
            legacy = step
            break
    longest = max(f, w or 0.0, *spans)
    if longest <= legacy * MAX_STEPS:
        return legacy
    low = math.ceil(longest / MAX_STEPS)
    whole_for = _whole(f)
    if w is None:
        fits = [d for d in _divisors(whole_for) if d >= low] if whole_for else []
        return fits[0] if fits else low
    whole_window = _whole(w)
    if whole_window is None:
        return legacy
    steps = [d for d in _divisors(whole_window) if whole_window / d >= 4]
    bounded = [d for d in steps if d >= low]
    exact = [d for d in bounded if whole_for is None or whole_for % d == 0]
    return (exact or bounded or steps[-1:] or [legacy])[0]


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _expected(alert: Alert, base: str, expect: Expect) -> dict[str, Any]:
    return {"exp_labels": dict(sorted(expect.labels.items())),
            "exp_annotations": {"summary": expect.summary,
                                "description": expect.description,
                                "runbook_url": runbook_url(base, alert.name)}}


def _test(alert: Alert, base: str, step: int, case: Case) -> dict[str, Any]:
    return {
        "name": f"{alert.name}: {case.name}",
        "interval": seconds_text(step),
        "input_series": [_series(s.name, dict(s.labels), s.values) for s in case.series],
        "alert_rule_test": [
            {"eval_time": seconds_text(k * step) if k else "0s", "alertname": alert.name,
             "exp_alerts": [_expected(alert, base, e) for e in expects]}
            for k, expects in case.checks
        ],
    }


def rule_tests(cfg: FlmonConfig, rules_path: str = "../flmon-rules.yaml") -> dict[str, Any]:
    """Return ``{alert name: promtool test document}`` for every enabled alert."""
    out: dict[str, Any] = {}
    for alert in enabled_alerts(cfg):
        ctx = alert_ctx(cfg, alert)
        spans = (ctx.stale_s, *((ctx.threshold,) if alert.threshold_seconds else ()))
        step = pick_step(ctx.for_, ctx.window_value, spans)
        cases = alert.cases(TestCtx(ctx, step))
        out[alert.name] = {
            "rule_files": [rules_path],
            "evaluation_interval": seconds_text(step),
            # Without an order promtool evaluates the groups in Go map order, so an alert
            # reading a recorded series would lag one step now and then.
            "group_eval_order": list(group_names(cfg)),
            "tests": [_test(alert, ctx.runbook_base, step, c) for c in cases],
        }
    return out
