"""``promtool test rules`` cases for every enabled alert, generated from the configuration.

Each alert gets one file with at least one firing case (asserting its labels and its
expanded annotations) and one non-firing case. Input values are derived from the
configured thresholds, windows and ``for`` durations, so the tests follow the config; a
rules file rendered from a different config fails them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from flmon.config import FlmonConfig, duration_seconds
from flmon.render.rules import AlertRule, alert_rules, seconds_text

Series = tuple[str, dict[str, str], str]
"""(metric name, labels, promtool values notation)."""

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

# --- a small expander for the Go-template forms the annotations use ------------------


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


_VALUE_FORMS: dict[str, Callable[[float], str]] = {
    "{{ $value | humanizePercentage }}": humanize_percentage,
    "{{ $value | humanizeDuration }}": humanize_duration,
    '{{ $value | printf "%.0f" }}': lambda v: go_float(v, "%.0f"),
    '{{ $value | printf "%.2f" }}': lambda v: go_float(v, "%.2f"),
}
_WITH_RE = re.compile(r"\{\{ with \$labels\.([a-z_]+) \}\}(.*?)\{\{ \. \}\}(.*?)\{\{ end \}\}")
_LABEL_RE = re.compile(r"\{\{ \$labels\.([a-z_]+) \}\}")


def expand(template: str, labels: Mapping[str, str], value: float) -> str:
    """Expand an annotation the way Prometheus will, for the forms flmon writes."""
    text = template
    for form, fn in _VALUE_FORMS.items():
        if form in text:
            text = text.replace(form, fn(value))
    text = _WITH_RE.sub(
        lambda m: (m.group(2) + labels[m.group(1)] + m.group(3)) if labels.get(m.group(1))
        else "", text)
    text = _LABEL_RE.sub(lambda m: labels.get(m.group(1), ""), text)
    if "{{" in text:
        raise ValueError(f"annotation form not understood by the test generator: {template}")
    return text


# --- test cases ------------------------------------------------------------------------


def _series(name: str, labels: Mapping[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _const(value: float | str, steps: int) -> str:
    if value == "NaN":  # promtool's expanding notation does not take NaN
        return " ".join(["NaN"] * (steps + 1))
    return f"{value}x{steps}"


def _blank(steps: int) -> str:
    """``steps`` missing samples (the series does not exist yet)."""
    return " ".join(["_"] * steps)


def _fmt(value: float) -> str:
    return "NaN" if math.isnan(value) else f"{value:g}"


class _Builder:
    """Builds the test file of one alert."""

    def __init__(self, cfg: FlmonConfig, rule: AlertRule) -> None:
        self.cfg = cfg
        self.rule = rule
        window = cfg.alerts.get(rule.alert).window
        self.step = pick_step(rule.for_, window)
        self.for_steps = math.ceil(duration_seconds(rule.for_) / self.step)
        self.window_steps = round(duration_seconds(window) / self.step) if window else 0
        pg = cfg.scrape.pushgateway
        if pg.enabled:
            self.job, self.instance = pg.pushed_job, pg.targets[0]
        else:
            self.job, self.instance = cfg.scrape.live.job, cfg.scrape.live.targets[0]
        self.fed = cfg.federation.name
        self.tests: list[dict[str, Any]] = []

    @property
    def base(self) -> dict[str, str]:
        return {"job": self.job, "instance": self.instance, "federation": self.fed}

    def expected(self, labels: Mapping[str, str], value: float) -> dict[str, Any]:
        all_labels = {**labels, **self.rule.labels}
        annotations = {k: expand(v, all_labels, value) for k, v in self.rule.annotations.items()}
        return {"exp_labels": dict(sorted(all_labels.items())),
                "exp_annotations": annotations}

    def case(self, comment: str, series: list[dict[str, str]],
             checks: list[tuple[int, list[dict[str, Any]]]]) -> None:
        self.tests.append({
            "name": f"{self.rule.alert}: {comment}",
            "interval": seconds_text(self.step),
            "input_series": series,
            "alert_rule_test": [
                {"eval_time": seconds_text(k * self.step), "alertname": self.rule.alert,
                 "exp_alerts": alerts}
                for k, alerts in checks
            ],
        })


def _accuracy(b: _Builder, threshold: float) -> None:
    fire_at = b.for_steps + 2
    n = fire_at + 5
    key = {**b.base}
    low_value = round(max(0.0, threshold - 0.05), 4)
    if threshold > 0:
        pending: list[tuple[int, list[dict[str, Any]]]] = [(0, [])] if b.for_steps > 0 else []
        b.case(f"accuracy {_fmt(low_value)} is below {_fmt(threshold)}",
               [_series("fl_training_accuracy", key, _const(_fmt(low_value), n))],
               [*pending, (fire_at, [b.expected(key, low_value)])])
    ok_value = round(min(1.0, threshold + 0.05), 4)
    b.case(f"accuracy {_fmt(ok_value)} is fine",
           [_series("fl_training_accuracy", key, _const(_fmt(ok_value), n))],
           [(fire_at, [])])
    b.case("a NaN aggregate does not pass silently",
           [_series("fl_training_accuracy", key, _const("NaN", n))],
           [(fire_at, [b.expected(key, math.nan)])])


def _low_accuracy(b: _Builder) -> None:
    value = b.cfg.alerts.FLLowTrainingAccuracy.threshold
    assert value is not None
    _accuracy(b, value)


def _accuracy_dropped(b: _Builder) -> None:
    value = b.cfg.alerts.FLModelAccuracyDropped.threshold
    assert value is not None
    _accuracy(b, value)


def _no_model_updates(b: _Builder) -> None:
    window_s = duration_seconds(b.cfg.alerts.FLNoModelUpdates.window or "0s")
    quiet_at = math.floor(window_s / b.step)  # time() - start == window: not yet
    fire_at = quiet_at + 1 + b.for_steps + 1
    n = fire_at + 5
    key = {"federation": b.fed, "job": b.job}
    run = [_series("fl_run_active", b.base, _const(1, n)),
           _series("fl_run_start_timestamp_seconds", b.base, _const(0, n))]
    b.case("a run is active and no client sent an update",
           run, [(quiet_at, []), (fire_at, [b.expected(key, 1)])])
    b.case("updates keep coming",
           [*run, _series("fl_model_updates_total", {**b.base, "client": "site-a"},
                          f"0+1x{n}")],
           [(fire_at, [])])
    b.case("no run is active",
           [_series("fl_run_active", b.base, _const(0, n)),
            _series("fl_run_start_timestamp_seconds", b.base, _const(0, n))],
           [(fire_at, [])])


def _client_dropout(b: _Builder) -> None:
    settings = b.cfg.alerts.FLClientDropout
    assert settings.threshold is not None and settings.window is not None
    window_steps = b.window_steps
    per_step = max(1, math.ceil(settings.threshold / window_steps))
    fire_at = window_steps + b.for_steps + 1
    n = fire_at + 5
    failing = {**b.base, "phase": "train", "client": "site-a", "error": "node_unavailable"}
    healthy = {**b.base, "phase": "train", "client": "site-b", "error": "node_unavailable"}
    b.case("site-a fails every round, site-b failed once long ago",
           [_series("fl_client_failures_total", failing, f"0+{per_step}x{n}"),
            _series("fl_client_failures_total", healthy, f"0 1x{n}")],
           [(fire_at, [b.expected({"federation": b.fed, "job": b.job, "client": "site-a"},
                                  per_step * window_steps)])])
    b.case("no client fails",
           [_series("fl_client_failures_total", healthy, _const(2, n))],
           [(fire_at, [])])
    # A client's failure counter appears at its first failure (value 1, no earlier sample):
    # increase() alone would miss that failure.
    start, count = 2, math.ceil(settings.threshold)
    new_at = start + count + b.for_steps + 1
    if new_at - window_steps < start:
        ramp = " ".join(str(v) for v in range(1, count + 1))
        values = f"{_blank(start)} {ramp} {count}x{new_at + 5 - start - count}"
        b.case(f"a new client fails {count} times right after joining",
               [_series("fl_client_failures_total", {**failing, "client": "site-c"}, values)],
               [(start + count - 2, []),
                (new_at, [b.expected({"federation": b.fed, "job": b.job, "client": "site-c"},
                                     count)])])


def _round_stalled(b: _Builder) -> None:
    threshold = b.cfg.alerts.FLRoundStalled.threshold
    assert threshold is not None
    first = math.floor(threshold / b.step) + 1
    fire_at = first + b.for_steps + 1
    n = fire_at + 5
    start = _series("fl_round_start_timestamp_seconds", b.base, _const(0, n))
    b.case("a round started at t=0 and is still in progress",
           [start, _series("fl_round_in_progress", b.base, _const(1, n))],
           [(first - 1, []), (fire_at, [b.expected(b.base, fire_at * b.step)])])
    b.case("the round finished", [start, _series("fl_round_in_progress", b.base, _const(0, n))],
           [(fire_at, [])])


def _update_anomaly(b: _Builder) -> None:
    settings = b.cfg.alerts.FLClientUpdateAnomaly
    assert settings.threshold is not None
    t = settings.threshold
    fire_at = b.for_steps + 3
    n = fire_at + 5
    high, low = round(t + 1.5, 4), round(max(0.0, t - 1.0), 4)

    def client(name: str) -> dict[str, str]:
        return {**b.base, "client": name}

    def key(name: str) -> dict[str, str]:
        return {"federation": b.fed, "job": b.job, "client": name}

    series = [_series("fl_client_anomaly_score", client("site-a"), _const(_fmt(low), n)),
              _series("fl_client_anomaly_score", client("site-b"), _const(_fmt(high), n)),
              _series("fl_anomalous_updates_total", client("site-a"), _const(0, n))]
    expected = [b.expected(key("site-b"), high)]
    # site-c's update was flagged at step 2; the flag counts while it is in the window.
    if fire_at < 2 + b.window_steps:
        series += [_series("fl_client_anomaly_score", client("site-c"), _const(_fmt(low), n)),
                   _series("fl_anomalous_updates_total", client("site-c"), f"0 0 1x{n}")]
        expected.append(b.expected(key("site-c"), low))
    b.case("site-b's update scores above the threshold, site-c was flagged by the server",
           series, [(fire_at, expected)])
    b.case("every update is ordinary",
           [_series("fl_client_anomaly_score", client("site-a"), _const(_fmt(low), n)),
            _series("fl_anomalous_updates_total", client("site-a"), _const(0, n))],
           [(fire_at, [])])


def _dp_series(b: _Builder, spent: float | str, budget: float, n: int) -> list[dict[str, str]]:
    spent_text = spent if isinstance(spent, str) else _fmt(spent)
    return [_series("fl_dp_epsilon_spent", b.base, _const(spent_text, n)),
            _series("fl_dp_epsilon_budget", b.base, _const(_fmt(budget), n))]


_BUDGET = 8.0  # a power of two: spent / budget is exact in floating point


def _budget_nearly(b: _Builder) -> None:
    t = b.cfg.alerts.FLPrivacyBudgetNearlyExhausted.threshold
    assert t is not None
    fire_at = b.for_steps + 2
    n = fire_at + 5
    key = {"federation": b.fed, "job": b.job}
    ratio = (t + 1.0) / 2.0
    b.case(f"{_fmt(ratio * 100)}% of the budget is spent",
           _dp_series(b, ratio * _BUDGET, _BUDGET, n),
           [(fire_at, [b.expected(key, ratio)])])
    if t > 0:
        b.case(f"{_fmt(t * 50)}% of the budget is spent",
               _dp_series(b, t / 2.0 * _BUDGET, _BUDGET, n), [(fire_at, [])])
    b.case("the budget is unbounded (0)", _dp_series(b, 100.0, 0.0, n), [(fire_at, [])])


def _budget_exhausted(b: _Builder) -> None:
    fire_at = b.for_steps + 2
    n = fire_at + 5
    key = {"federation": b.fed, "job": b.job}
    b.case("spent exceeds the budget", _dp_series(b, 10.0, _BUDGET, n),
           [(fire_at, [b.expected(key, 10.0 / _BUDGET)])])
    b.case("spent is NaN (the accountant broke): fail safe",
           _dp_series(b, "NaN", _BUDGET, n), [(fire_at, [b.expected(key, math.nan)])])
    b.case("the accountant refused the release that would pass the budget",
           [*_dp_series(b, 7.5, _BUDGET, n),
            _series("fl_dp_budget_exhausted", b.base, _const("1", n))],
           [(fire_at, [b.expected(key, 1.0)])])
    b.case("half the budget is spent", [*_dp_series(b, 4.0, _BUDGET, n),
                                        _series("fl_dp_budget_exhausted", b.base, _const("0", n))],
           [(fire_at, [])])
    b.case("the budget is unbounded (0)", _dp_series(b, 100.0, 0.0, n), [(fire_at, [])])


def _telemetry_rejected(b: _Builder) -> None:
    settings = b.cfg.alerts.FLTelemetryRejected
    assert settings.threshold is not None and settings.window is not None
    window_steps = b.window_steps
    per_step = math.floor(settings.threshold / window_steps) + 1
    fire_at = window_steps + b.for_steps + 1
    n = fire_at + 5
    labels = {**b.base, "reason": "non_finite"}
    b.case("a client keeps sending non-finite telemetry",
           [_series("fl_telemetry_rejected_total", labels, f"0+{per_step}x{n}")],
           [(fire_at, [b.expected({"federation": b.fed, "job": b.job, "reason": "non_finite"},
                                  per_step * window_steps)])])
    b.case("nothing rejected lately",
           [_series("fl_telemetry_rejected_total", labels, _const(5, n))], [(fire_at, [])])
    # The counter of a reason appears with its first rejection: that one counts too.
    start = 2
    first = math.floor(settings.threshold) + 1
    new_at = start + b.for_steps + 1
    if new_at - window_steps < start:
        fresh = {**b.base, "reason": "unknown_key"}
        b.case("the first rejections of a new reason",
               [_series("fl_telemetry_rejected_total", fresh,
                        f"{_blank(start)} {_const(first, new_at + 5 - start)}")],
               [(start - 1, []),
                (new_at, [b.expected({"federation": b.fed, "job": b.job,
                                      "reason": "unknown_key"}, first)])])


def _exporter_down(b: _Builder) -> None:
    fire_at = b.for_steps + 2
    n = fire_at + 5
    fed = b.fed
    live, pg = b.cfg.scrape.live, b.cfg.scrape.pushgateway

    def up(job: str, target: str, value: int) -> dict[str, str]:
        return _series("up", {"job": job, "instance": target, "federation": fed},
                       _const(value, n))

    def key(job: str, target: str | None) -> dict[str, str]:
        labels = {"job": job, "federation": fed}
        if target is not None:
            labels["instance"] = target
        return labels

    pg_ok = [up(pg.job, pg.targets[0], 1)] if pg.enabled else []
    if pg.enabled:
        b.case("the Pushgateway is down", [up(pg.job, pg.targets[0], 0)],
               [(fire_at, [b.expected(key(pg.job, pg.targets[0]), 0)])])
        b.case("the Pushgateway is not scraped at all", [],
               [(fire_at, [b.expected(key(pg.job, None), 1)])])
    if live.enabled:
        active = ([_series("fl_run_active",
                           {"job": pg.pushed_job, "instance": pg.targets[0], "federation": fed},
                           _const(1, n))] if pg.enabled else [])
        b.case("the live exporter is down during a run",
               [*pg_ok, *active, up(live.job, live.targets[0], 0)],
               [(fire_at, [b.expected(key(live.job, live.targets[0]), 0)])])
        if pg.enabled:
            idle = [_series("fl_run_active",
                            {"job": pg.pushed_job, "instance": pg.targets[0], "federation": fed},
                            _const(0, n))]
            b.case("the live exporter is gone between runs (expected)",
                   [*pg_ok, *idle, up(live.job, live.targets[0], 0)], [(fire_at, [])])
    targets = [*pg_ok, *([up(live.job, live.targets[0], 1)] if live.enabled else [])]
    b.case("every target is up", targets, [(fire_at, [])])


_CASES: dict[str, Callable[[_Builder], None]] = {
    "FLLowTrainingAccuracy": _low_accuracy,
    "FLModelAccuracyDropped": _accuracy_dropped,
    "FLNoModelUpdates": _no_model_updates,
    "FLClientDropout": _client_dropout,
    "FLRoundStalled": _round_stalled,
    "FLClientUpdateAnomaly": _update_anomaly,
    "FLPrivacyBudgetNearlyExhausted": _budget_nearly,
    "FLPrivacyBudgetExhausted": _budget_exhausted,
    "FLTelemetryRejected": _telemetry_rejected,
    "FLExporterDown": _exporter_down,
}


def rule_tests(cfg: FlmonConfig, rules_path: str = "../flmon-rules.yaml") -> dict[str, Any]:
    """Return ``{alert name: promtool test document}`` for every enabled alert."""
    out: dict[str, Any] = {}
    for rule in alert_rules(cfg):
        builder = _Builder(cfg, rule)
        _CASES[rule.alert](builder)
        out[rule.alert] = {
            "rule_files": [rules_path],
            "evaluation_interval": seconds_text(builder.step),
            "tests": builder.tests,
        }
    return out
