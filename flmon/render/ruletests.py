"""``promtool test rules`` files: every enabled alert's declared cases, for this config.

The cases come from the alert's declaration (:attr:`flmon.alerts.spec.Alert.cases`): input
series written on the configured jobs and targets, and the alerts expected at given steps
with literal labels and annotations (the configured thresholds and windows written in). A
rules file rendered from a different configuration, or a rule that no longer says what
its declaration's cases state, fails them.
"""

from __future__ import annotations

from typing import Any

from flmon.alerts.spec import Alert, Case, Expect, TestCtx, duration_seconds, runbook_url
from flmon.alerts.text import seconds_text
from flmon.config import FlmonConfig
from flmon.render.rules import alert_ctx, enabled_alerts

_STEPS = (60, 30, 20, 15, 10, 5, 2, 1)


def pick_step(for_: str, window: str | None) -> int:
    """Seconds between samples of an alert's test: the largest step that divides its
    ``for`` and window and gives at least four samples per window."""
    durations = [duration_seconds(for_)] + ([duration_seconds(window)] if window else [])
    for step in _STEPS:
        if all(d % step == 0 for d in durations) and (
                window is None or duration_seconds(window) / step >= 4):
            return step
    return 1


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
        step = pick_step(ctx.for_, ctx.window_value)
        cases = alert.cases(TestCtx(ctx, step))
        out[alert.name] = {
            "rule_files": [rules_path],
            "evaluation_interval": seconds_text(step),
            "tests": [_test(alert, ctx.runbook_base, step, c) for c in cases],
        }
    return out
