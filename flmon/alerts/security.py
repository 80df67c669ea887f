"""Security and privacy alerts: update anomalies, the DP budget, rejected telemetry,
membership-inference leakage.

See :mod:`flmon.alerts.declarations` for the conventions.
"""

from __future__ import annotations

import math

from flmon.alerts import exprs
from flmon.alerts.cases import blank, const, fmt, stale_checks, until
from flmon.alerts.exprs import dd_window, dedupe
from flmon.alerts.spec import Alert, Case, Ctx, Expect, Inhibit, Monitor, Series, TestCtx
from flmon.alerts.text import (
    count,
    humanize_percentage,
    num,
    percent,
    two,
)

# --- security and privacy ------------------------------------------------------------

ANOMALY_SUMMARY = "A client sent an anomalous model update."


def _anomaly_expr(ctx: Ctx) -> str:
    s = ctx.sel()
    by = "max by (federation, run_id, client)"
    flagged = dedupe(exprs.window_increase("fl_anomalous_updates_total", s, ctx.window))
    return (f"{by} (fl_client_anomaly_score{s}) > {num(ctx.threshold)}\n"
            f"or\n"
            f"{by} (fl_client_anomaly_score{s})\n"
            f"and on (federation, run_id, client)\n"
            f"(sum by (federation, run_id, client) ({flagged}) > 0)")


def _anomaly_text(fed: str, threshold: float, window: str, client: str, value: str,
                  run_id: str = "7") -> str:
    return (f"Client {client} of federation {fed} sent a model update with anomaly score "
            f"{value} (threshold {num(threshold)}, or flagged by the server in the last "
            f"{window}; run {run_id}): possible poisoning or a broken client.")


def _anomaly_cases(tc: TestCtx) -> list[Case]:
    ctx = tc.ctx
    t = ctx.threshold
    fire_at = tc.for_steps + 3
    n = fire_at + 5
    high, low = round(t + 1.5, 4), round(max(0.0, t - 1.0), 4)

    def exp(client: str, value: float) -> Expect:
        return Expect(tc.labels(run_id="7", client=client), ANOMALY_SUMMARY,
                      _anomaly_text(ctx.federation, t, ctx.window, client, two(value)))

    def score(client: str, value: float, last: int = n, live_last: int | None = None,
              ) -> list[Series]:
        return tc.on_paths("fl_client_anomaly_score", const(fmt(value), last), client=client,
                           live_values=None if live_last is None
                           else until(fmt(value), live_last))

    def flagged(client: str, values: str) -> list[Series]:
        return [*tc.on_paths("fl_anomalous_updates_total", values, client=client),
                *tc.on_paths("fl_anomalous_updates_created", const(tc.long_ago, n),
                             client=client)]

    series = [*score("site-a", low), *score("site-b", high), *flagged("site-a", const(0, n))]
    expected = [exp("site-b", high)]
    # site-c's update was flagged at step 2; the flag counts while it is in the window.
    if fire_at < 2 + tc.window_steps:
        series += [*score("site-c", low), *flagged("site-c", f"0 0 1x{n}")]
        expected.append(exp("site-c", low))
    cases = [
        Case("site-b's update scores above the threshold, site-c was flagged by the server "
             "(on every path in use: one alert each)", tuple(series),
             ((fire_at, tuple(expected)),)),
        Case("every update is ordinary",
             (*score("site-a", low), *flagged("site-a", const(0, n))), ((fire_at, ()),)),
    ]
    ended = fire_at + 1
    n_end = ended + math.ceil(ctx.stale_s / tc.step) + 3
    cases.append(Case(
        "the run ended: the alert resolves stale_after later",
        (*tc.run(n_end, ended_at=ended), *score("site-b", high, n_end, ended - 1)),
        ((fire_at, (exp("site-b", high),)),
         *stale_checks(tc, ended, (exp("site-b", high),)))))
    return cases


UPDATE_ANOMALY = Alert(
    name="FLClientUpdateAnomaly", severity="warning", for_="0m", team="security",
    threshold=3.5, bounds=(0.0, 1e6), window="30m", windowed=True, scope="run",
    per_client=True, summary=ANOMALY_SUMMARY, expr=_anomaly_expr,
    description=lambda ctx: _anomaly_text(ctx.federation, ctx.threshold, ctx.window,
                                          "{{ $labels.client }}",
                                          '{{ $value | printf "%.2f" }}',
                                          "{{ $labels.run_id }}"),
    cases=_anomaly_cases,
    monitor=lambda ctx: Monitor(
        "query alert", f"max(last_5m):max:{ctx.dd('fl_client_anomaly_score')}{ctx.dd_tags} "
        f"by {{client}} > {num(ctx.threshold)}", ctx.threshold),
)

DP_BUDGET_RATIO = "federation:fl_dp_epsilon_budget_used:ratio"
"""Recording rule: share of the epsilon budget spent, per federation and run."""

_BUDGET = 8.0  # a power of two: spent / budget is exact in floating point


def _dp(ctx: Ctx) -> str:
    return f'{DP_BUDGET_RATIO}{{federation="{ctx.federation}"}}'


def _dp_series(tc: TestCtx, spent: float | str, budget: float, n: int) -> list[Series]:
    spent_text = spent if isinstance(spent, str) else fmt(spent)
    return [*tc.on_paths("fl_dp_epsilon_spent", const(spent_text, n)),
            *tc.on_paths("fl_dp_epsilon_budget", const(fmt(budget), n))]


NEARLY_SUMMARY = "Privacy budget nearly exhausted."
EXHAUSTED_SUMMARY = "Privacy budget exhausted."


def _nearly_text(fed: str, threshold: float, value: str, run_id: str = "7") -> str:
    return (f"Run {run_id} of federation {fed} has spent {value} of its differential-privacy "
            f"epsilon budget (warning at {percent(threshold)}).")


def _exhausted_text(fed: str, value: str, run_id: str = "7") -> str:
    return (f"Run {run_id} of federation {fed} has spent {value} of its differential-privacy "
            f"epsilon budget: further rounds break the privacy guarantee.")


def _nearly_cases(tc: TestCtx) -> list[Case]:
    ctx = tc.ctx
    t = ctx.threshold
    fire_at = tc.for_steps + 2
    n = fire_at + 5
    ratio = (t + 1.0) / 2.0

    def exp(value: float) -> Expect:
        return Expect(tc.labels(run_id="7"), NEARLY_SUMMARY,
                      _nearly_text(ctx.federation, t, humanize_percentage(value)))

    cases = [Case(f"{fmt(ratio * 100)}% of the budget is spent (on every path in use: one "
                  "alert)", tuple(_dp_series(tc, ratio * _BUDGET, _BUDGET, n)),
                  ((fire_at, (exp(ratio),)),))]
    if t > 0:
        cases.append(Case(f"{fmt(t * 50)}% of the budget is spent",
                          tuple(_dp_series(tc, t / 2.0 * _BUDGET, _BUDGET, n)),
                          ((fire_at, ()),)))
    cases.append(Case("the budget is unbounded (0)", tuple(_dp_series(tc, 100.0, 0.0, n)),
                      ((fire_at, ()),)))
    return cases


def _exhausted_cases(tc: TestCtx) -> list[Case]:
    ctx = tc.ctx
    fire_at = tc.for_steps + 2
    n = fire_at + 5

    def exp(value: float) -> Expect:
        return Expect(tc.labels(run_id="7"), EXHAUSTED_SUMMARY,
                      _exhausted_text(ctx.federation, humanize_percentage(value)))

    refused = tc.on_paths("fl_dp_budget_exhausted", const(1, n))
    cases = [
        Case("spent exceeds the budget", tuple(_dp_series(tc, 10.0, _BUDGET, n)),
             ((fire_at, (exp(10.0 / _BUDGET),)),)),
        Case("spent is NaN (the accountant broke): fail safe",
             tuple(_dp_series(tc, "NaN", _BUDGET, n)), ((fire_at, (exp(math.nan),)),)),
        Case("the accountant refused the release that would pass the budget",
             (*_dp_series(tc, 7.5, _BUDGET, n), *refused), ((fire_at, (exp(1.0),)),)),
        Case("half the budget is spent",
             (*_dp_series(tc, 4.0, _BUDGET, n),
              *tc.on_paths("fl_dp_budget_exhausted", const(0, n))), ((fire_at, ()),)),
        Case("the budget is unbounded (0)", tuple(_dp_series(tc, 100.0, 0.0, n)),
             ((fire_at, ()),)),
    ]
    ended = fire_at + 1
    n_end = ended + math.ceil(ctx.stale_s / tc.step) + 3
    spent = [*tc.on_paths("fl_dp_epsilon_spent", const(10, n_end),
                          live_values=until(10, ended - 1)),
             *tc.on_paths("fl_dp_epsilon_budget", const(fmt(_BUDGET), n_end),
                          live_values=until(fmt(_BUDGET), ended - 1))]
    cases.append(Case("the run ended: the alert resolves stale_after later",
                      (*tc.run(n_end, ended_at=ended), *spent),
                      ((fire_at, (exp(10.0 / _BUDGET),)),
                       *stale_checks(tc, ended, (exp(10.0 / _BUDGET),)))))
    return cases


def _dp_monitor(ctx: Ctx, threshold: float) -> Monitor:
    f = ctx.dd_tags
    ratio = f"max:{ctx.dd('fl_dp_epsilon_spent')}{f} / max:{ctx.dd('fl_dp_epsilon_budget')}{f}"
    return Monitor("query alert", f"max(last_5m):{ratio} >= {num(threshold)}", threshold)


BUDGET_NEARLY = Alert(
    name="FLPrivacyBudgetNearlyExhausted", severity="warning", for_="0m", team="security",
    threshold=0.8, bounds=(0.0, 1.0), scope="run", summary=NEARLY_SUMMARY,
    expr=lambda ctx: f"{_dp(ctx)} >= {num(ctx.threshold)}",
    description=lambda ctx: _nearly_text(ctx.federation, ctx.threshold,
                                         "{{ $value | humanizePercentage }}",
                                         "{{ $labels.run_id }}"),
    cases=_nearly_cases, monitor=lambda ctx: _dp_monitor(ctx, ctx.threshold),
)

BUDGET_EXHAUSTED = Alert(
    name="FLPrivacyBudgetExhausted", severity="critical", for_="0m", team="security",
    scope="run", summary=EXHAUSTED_SUMMARY,
    expr=lambda ctx: (f"{_dp(ctx)} >= 1\nor\n{_dp(ctx)} != {_dp(ctx)}\nor\n"
                      f"max by (federation, run_id) (fl_dp_budget_exhausted{ctx.sel()}) == 1"),
    description=lambda ctx: _exhausted_text(ctx.federation, "{{ $value | humanizePercentage }}",
                                            "{{ $labels.run_id }}"),
    cases=_exhausted_cases, monitor=lambda ctx: _dp_monitor(ctx, 1.0),
    inhibits=(Inhibit("FLPrivacyBudgetNearlyExhausted"),),
)

REJECTED_SUMMARY = "Client telemetry was rejected."


def _rejected_expr(ctx: Ctx) -> str:
    inc = dedupe(exprs.window_increase("fl_telemetry_rejected_total", ctx.sel(), ctx.window))
    return f"sum by (federation, run_id, reason) ({inc}) > {num(ctx.threshold)}"


def _rejected_text(fed: str, window: str, value: str, reason: str, run_id: str = "7") -> str:
    return (f"Federation {fed} rejected {value} client telemetry records or fields in the "
            f"last {window} (run {run_id}, reason {reason}).")


def _rejected_cases(tc: TestCtx) -> list[Case]:
    ctx = tc.ctx
    t, w = ctx.threshold, tc.window_steps
    per_step = math.floor(t / w) + 1
    fire_at = w + tc.for_steps + 1
    n = fire_at + 5

    def exp(reason: str, value: float) -> Expect:
        return Expect(tc.labels(run_id="7", reason=reason), REJECTED_SUMMARY,
                      _rejected_text(ctx.federation, ctx.window, count(value), reason))

    def rejected(values: str, reason: str, created: str = "0") -> list[Series]:
        return [*tc.on_paths("fl_telemetry_rejected_total", values, reason=reason),
                *tc.on_paths("fl_telemetry_rejected_created", const(created, n + 10),
                             reason=reason)]

    cases = [
        Case("a client keeps sending non-finite telemetry (on every path in use: one alert)",
             tuple(rejected(f"0+{per_step}x{n}", "non_finite")),
             ((fire_at, (exp("non_finite", per_step * w),)),)),
        Case("nothing rejected lately", tuple(rejected(const(5, n), "non_finite")),
             ((fire_at, ()),)),
        Case("Prometheus restarted with an empty TSDB: old rejections do not fire",
             tuple(rejected(const(math.floor(t) + 50, n), "oversized", created=tc.long_ago)),
             ((1, ()), (tc.for_steps + 2, ()), (fire_at, ()))),
    ]
    # The counter of a reason appears with its first rejection: that one counts too.
    start = 2
    first = math.floor(t) + 1
    new_at = start + tc.for_steps + 1
    if new_at - w < start:
        cases.append(Case(
            "the first rejections of a new reason",
            tuple(rejected(f"{blank(start)} {const(first, new_at + 5 - start)}", "unknown_key",
                           created=str(start * tc.step))),
            ((start - 1, ()), (new_at, (exp("unknown_key", first),)))))
    return cases


TELEMETRY_REJECTED = Alert(
    name="FLTelemetryRejected", severity="warning", for_="0m", team="security",
    threshold=0, bounds=(0.0, 1e9), window="15m", windowed=True, scope="run",
    summary=REJECTED_SUMMARY, expr=_rejected_expr,
    description=lambda ctx: _rejected_text(ctx.federation, ctx.window,
                                           '{{ $value | printf "%.0f" }}',
                                           "{{ $labels.reason }}", "{{ $labels.run_id }}"),
    cases=_rejected_cases,
    monitor=lambda ctx: Monitor(
        "query alert", f"sum(last_{dd_window(ctx.window)}):"
        f"sum:{ctx.dd('fl_telemetry_rejected_total')}{ctx.dd_tags} by {{reason}}.as_count() > "
        f"{num(ctx.threshold)}", ctx.threshold),
)

LEAKAGE_SUMMARY = "A membership-inference attack succeeds on the model updates."


def _leakage_text(fed: str, threshold: float, attack: str, dp: str, value: str) -> str:
    return (f"The {attack} membership-inference attack reaches ROC AUC {value} on the model "
            f"updates of federation {fed} (DP {dp}; alert above {num(threshold)}, 0.5 is "
            f"chance): the updates reveal which records a client trained on.")


def _leakage_cases(tc: TestCtx) -> list[Case]:
    ctx = tc.ctx
    t = ctx.threshold
    fire_at = tc.for_steps + 2
    n = fire_at + 5
    high = round(min(1.0, t + 0.2), 4)
    low = round(max(0.5, t - 0.05), 4)

    def auc(value: float, dp: str) -> list[Series]:
        return [Series("fl_privacy_attack_auc",
                       {"job": p.job, "instance": p.instance, "federation": ctx.federation,
                        "attack": "gradient_alignment", "dp": dp}, const(fmt(value), n))
                for p in tc.paths]

    exp = Expect(tc.labels(attack="gradient_alignment", dp="off"), LEAKAGE_SUMMARY,
                 _leakage_text(ctx.federation, t, "gradient_alignment", "off", two(high)))
    cases = [Case(f"without DP the attack reaches AUC {fmt(high)}, with DP {fmt(low)}",
                  (*auc(high, "off"), *auc(low, "on")), ((fire_at, (exp,)),))]
    if low <= t:
        cases.append(Case(f"the attack is near chance (AUC {fmt(low)})",
                          (*auc(low, "off"), *auc(low, "on")), ((fire_at, ()),)))
    return cases


PRIVACY_LEAKAGE = Alert(
    name="FLPrivacyLeakage", severity="warning", for_="0m", team="security",
    threshold=0.6, bounds=(0.5, 1.0), scope="federation", summary=LEAKAGE_SUMMARY,
    expr=lambda ctx: (f"max by (federation, attack, dp) (fl_privacy_attack_auc{ctx.fed_sel()})"
                      f" > {num(ctx.threshold)}"),
    description=lambda ctx: _leakage_text(ctx.federation, ctx.threshold,
                                          "{{ $labels.attack }}", "{{ $labels.dp }}",
                                          '{{ $value | printf "%.2f" }}'),
    cases=_leakage_cases, needs="any",
    monitor=lambda ctx: Monitor(
        "query alert", f"max(last_5m):max:{ctx.dd('fl_privacy_attack_auc')}{ctx.dd_tags} "
        f"by {{attack,dp}} > {num(ctx.threshold)}", ctx.threshold),
)

