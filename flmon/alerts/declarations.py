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

import math

from flmon.alerts.spec import (
    Alert,
    Case,
    Ctx,
    Expect,
    Inhibit,
    Monitor,
    Series,
    TestCtx,
    duration_seconds,
)
from flmon.alerts.text import (
    count,
    humanize_duration,
    humanize_percentage,
    num,
    percent,
    seconds_text,
    two,
)

# --- expression helpers --------------------------------------------------------------


def dedupe(expr: str) -> str:
    """One series per label set, whichever path (job, instance) carried it."""
    return f"max without (job, instance) ({expr})"


def window_increase(metric: str, sel: str, window: str) -> str:
    """How much counter ``metric`` grew within ``window``.

    ``increase()`` counts what Prometheus saw within the window; it needs two samples, so
    the first increment of a labelled child (created at its first ``inc()``) would be
    lost. A series created within the window (``<name>_created``, the client library's
    creation time) started from 0 inside it: its value is its increase. After a Prometheus
    restart with an empty TSDB, an old counter has an old creation time and counts only
    what grows from then on.
    """
    created = metric.removesuffix("_total") + "_created"
    seconds = num(_seconds(window))
    return (f"({metric}{sel} and (time() - {created}{sel}) < {seconds})\n"
            f"or\n"
            f"increase({metric}{sel}[{window}])")


def _seconds(duration: str) -> float:
    return duration_seconds(duration)


def _dd_window(duration: str, minimum: int = 300) -> str:
    windows = ((60, "1m"), (300, "5m"), (600, "10m"), (900, "15m"), (1800, "30m"),
               (3600, "1h"), (7200, "2h"), (14400, "4h"), (86400, "1d"), (172800, "2d"),
               (604800, "1w"))
    seconds = max(_seconds(duration), minimum)
    for size, text in windows:
        if size >= seconds:
            return text
    return windows[-1][1]


# --- promtool value notation ---------------------------------------------------------


def const(value: float | str, steps: int) -> str:
    """``value`` at steps 0..``steps``."""
    if value == "NaN" or (isinstance(value, float) and math.isnan(value)):
        return " ".join(["NaN"] * (steps + 1))  # promtool's expanding notation lacks NaN
    return f"{value}x{steps}"


def blank(steps: int) -> str:
    """``steps`` missing samples (the series does not exist yet)."""
    return " ".join(["_"] * steps)


def until(value: float | str, last: int) -> str:
    """``value`` at steps 0..``last``, then stale (the exporter went away)."""
    return f"{const(value, last)} stale"


def fmt(value: float) -> str:
    return "NaN" if math.isnan(value) else f"{value:g}"


LONG_AGO = "-86400"
"""A creation time a day before the test starts."""


def _stale_checks(tc: TestCtx, ended_at: int, firing: tuple[Expect, ...],
                  ) -> tuple[tuple[int, tuple[Expect, ...]], ...]:
    """Still firing just before ``stale_after`` has passed since the end, resolved after.

    Without a Pushgateway the values go with the ServerApp: resolved at the end (one
    evaluation later: alerts that read a recording rule see it one evaluation late).
    """
    if tc.ctx.pushgateway is None:
        return ((ended_at + 1, ()),)
    stale = tc.ctx.stale_s / tc.step
    return ((ended_at + max(0, math.floor(stale) - 1), firing),
            (ended_at + math.ceil(stale) + 1, ()))


# --- model quality -------------------------------------------------------------------


def _accuracy_expr(ctx: Ctx) -> str:
    acc = f"fl_training_accuracy{ctx.sel()}"
    return dedupe(f"{acc} < {num(ctx.threshold)}\nor\n{acc} != {acc}\nor\n{acc} > 1")


LOW_SUMMARY = "Training accuracy is low"
DROP_SUMMARY = "Model accuracy dropped"


def _low_text(fed: str, threshold: float, value: str, run_id: str = "7") -> str:
    return (f"Aggregated training accuracy of run {run_id} of federation {fed} is {value}, "
            f"below the {percent(threshold)} line or not a valid ratio (NaN).")


def _drop_text(fed: str, threshold: float, value: str, run_id: str = "7") -> str:
    return (f"Aggregated training accuracy of run {run_id} of federation {fed} dropped to "
            f"{value}, below the critical {percent(threshold)} line or not a valid ratio "
            f"(NaN): the global model is not fit for use.")


def _accuracy_cases(tc: TestCtx, summary: str, *, low: bool) -> list[Case]:
    ctx = tc.ctx
    t, fed = ctx.threshold, ctx.federation
    words = _low_text if low else _drop_text
    fire_at = tc.for_steps + 2
    n = fire_at + 5
    bad = round(max(0.0, t - 0.05), 4)
    ok = round(min(1.0, t + 0.05), 4)

    def expect(value: float) -> Expect:
        return Expect(tc.labels(run_id="7"), summary,
                      words(fed, t, humanize_percentage(value)))

    cases: list[Case] = []
    pending: tuple[tuple[int, tuple[Expect, ...]], ...] = (
        ((0, ()),) if tc.for_steps > 0 else ())
    if t > 0:
        cases.append(Case(
            f"accuracy {fmt(bad)} is below {fmt(t)}, on every path in use: one alert",
            (*tc.run(n), *tc.on_paths("fl_training_accuracy", const(fmt(bad), n))),
            (*pending, (fire_at, (expect(bad),)))))
    if t > 0:
        cases.append(Case(
            "two runs at once: only the run whose accuracy is low fires",
            (*tc.run(n), *tc.run(n, run_id="8"),
             *tc.on_paths("fl_training_accuracy", const(fmt(bad), n)),
             *tc.on_paths("fl_training_accuracy", const(fmt(ok), n), run_id="8")),
            ((fire_at, (expect(bad),)),)))
    cases.append(Case(
        f"accuracy {fmt(ok)} is fine",
        (*tc.run(n), *tc.on_paths("fl_training_accuracy", const(fmt(ok), n))),
        ((fire_at, ()),)))
    cases.append(Case(
        "a NaN aggregate does not pass silently",
        (*tc.run(n), *tc.on_paths("fl_training_accuracy", const("NaN", n))),
        ((fire_at, (expect(math.nan),)),)))
    # The run ends after the alert fired: the Pushgateway keeps the last value, the live
    # exporter is gone. The alert stays until stale_after has passed since the end.
    ended = fire_at + 1
    n_end = ended + math.ceil(ctx.stale_s / tc.step) + 3
    value = bad if t > 0 else math.nan
    series = const(fmt(value), n_end)
    cases.append(Case(
        "the run ended: the alert resolves stale_after later",
        (*tc.run(n_end, ended_at=ended),
         *tc.on_paths("fl_training_accuracy", series,
                      live_values=until(fmt(value), ended - 1))),
        ((fire_at, (expect(value),)), *_stale_checks(tc, ended, (expect(value),)))))
    return cases


def _low_cases(tc: TestCtx) -> list[Case]:
    return _accuracy_cases(tc, LOW_SUMMARY, low=True)


def _drop_cases(tc: TestCtx) -> list[Case]:
    return _accuracy_cases(tc, DROP_SUMMARY, low=False)


def _accuracy_monitor(ctx: Ctx) -> Monitor:
    return Monitor("query alert",
                   f"max(last_{_dd_window(ctx.for_)}):max:{ctx.dd('fl_training_accuracy')}"
                   f"{ctx.dd_tags} < {num(ctx.threshold)}", ctx.threshold)


LOW_ACCURACY = Alert(
    name="FLLowTrainingAccuracy", severity="warning", for_="5m", team="ml",
    threshold=0.85, bounds=(0.0, 1.0), scope="run", summary=LOW_SUMMARY,
    expr=_accuracy_expr,
    description=lambda ctx: _low_text(ctx.federation, ctx.threshold,
                                      "{{ $value | humanizePercentage }}",
                                      "{{ $labels.run_id }}"),
    cases=_low_cases, monitor=_accuracy_monitor,
)

ACCURACY_DROPPED = Alert(
    name="FLModelAccuracyDropped", severity="critical", for_="5m", team="ml",
    threshold=0.80, bounds=(0.0, 1.0), scope="run", summary=DROP_SUMMARY,
    expr=_accuracy_expr,
    description=lambda ctx: _drop_text(ctx.federation, ctx.threshold,
                                       "{{ $value | humanizePercentage }}",
                                       "{{ $labels.run_id }}"),
    cases=_drop_cases, monitor=_accuracy_monitor,
    inhibits=(Inhibit("FLLowTrainingAccuracy"),),
)

# --- progress of a run ---------------------------------------------------------------

NO_UPDATES_SUMMARY = "No model updates while a run is in progress"


def _no_updates_expr(ctx: Ctx) -> str:
    s = ctx.sel()
    updates = dedupe(window_increase("fl_model_updates_total", s, ctx.window))
    return (f"min by (federation, run_id) (fl_run_active{s} offset {ctx.window}) == 1\n"
            f"unless on (federation, run_id)\n"
            f"(sum by (federation, run_id) ({updates}) > 0)")


def _no_updates_text(fed: str, window: str, run_id: str = "7") -> str:
    return (f"Run {run_id} of federation {fed} is in progress but received no model update "
            f"from any client in the last {window}.")


def _no_updates_cases(tc: TestCtx) -> list[Case]:
    ctx = tc.ctx
    w = tc.window_steps
    fire_at = w + tc.for_steps + 1
    n = fire_at + 5
    exp = Expect(tc.labels(run_id="7"), NO_UPDATES_SUMMARY,
                 _no_updates_text(ctx.federation, ctx.window))
    cases = [
        Case("a run in progress for longer than the window, and no client sent an update",
             tuple(tc.run(n)), ((w - 1, ()), (fire_at, (exp,)))),
        Case("updates keep coming",
             (*tc.run(n), *tc.on_paths("fl_model_updates_total", f"0+1x{n}", client="site-a"),
              *tc.on_paths("fl_model_updates_created", const(0, n), client="site-a")),
             ((fire_at, ()),)),
    ]
    # Prometheus starts with an empty TSDB in the middle of a long run: it has not watched
    # the run for a whole window, so it cannot say that no update came in it.
    start = 3
    run = [Series(s.name, s.labels, f"{blank(start)} {s.values}") for s in tc.run(n)]
    cases.append(Case(
        "Prometheus restarted with an empty TSDB during a run: no alert before it has "
        "watched a whole window",
        (*run, *[Series(s.name, s.labels, f"{blank(start)} {const(40, n)}")
                 for s in tc.on_paths("fl_model_updates_total", "", client="site-a")],
         *tc.on_paths("fl_model_updates_created", const(LONG_AGO, n + start), client="site-a")),
        ((start + tc.for_steps + 1, ()), (start + w - 1, ()))))
    ended = fire_at + 1
    cases.append(Case(
        "the run ended: the alert resolves at once",
        tuple(tc.run(n, ended_at=ended)), ((fire_at, (exp,)), (ended, ()))))
    return cases


NO_MODEL_UPDATES = Alert(
    name="FLNoModelUpdates", severity="warning", for_="5m", team="ml", window="30m",
    windowed=True, scope="in_progress", summary=NO_UPDATES_SUMMARY,
    expr=_no_updates_expr,
    description=lambda ctx: _no_updates_text(ctx.federation, ctx.window,
                                             "{{ $labels.run_id }}"),
    cases=_no_updates_cases,
    monitor=lambda ctx: Monitor(
        "query alert", f"sum(last_{_dd_window(ctx.window)}):"
        f"sum:{ctx.dd('fl_model_updates_total')}{ctx.dd_tags}.as_count() < 1", 1.0),
)

DROPOUT_SUMMARY = "A client keeps failing"


def _dropout_expr(ctx: Ctx) -> str:
    inc = dedupe(window_increase("fl_client_failures_total", ctx.sel(), ctx.window))
    return f"sum by (federation, run_id, client) ({inc}) >= {num(ctx.threshold)}"


def _dropout_text(fed: str, window: str, threshold: float, client: str, value: str,
                  run_id: str = "7") -> str:
    return (f"Client {client} of federation {fed} failed {value} times in the last {window} "
            f"(run {run_id}, threshold {num(threshold)}): unreachable node, timeout or "
            f"ClientApp error.")


def _dropout_cases(tc: TestCtx) -> list[Case]:
    ctx = tc.ctx
    t, w = ctx.threshold, tc.window_steps
    per_step = max(1, math.ceil(t / w))
    fire_at = w + tc.for_steps + 1
    n = fire_at + 5

    def exp(client: str, value: float) -> Expect:
        return Expect(tc.labels(run_id="7", client=client), DROPOUT_SUMMARY,
                      _dropout_text(ctx.federation, ctx.window, t, client, count(value)))

    def failures(values: str, client: str, created: str = "0") -> list[Series]:
        return [*tc.on_paths("fl_client_failures_total", values, phase="train", client=client,
                             error="node_unavailable"),
                *tc.on_paths("fl_client_failures_created", const(created, n + 10),
                             phase="train", client=client, error="node_unavailable")]

    cases = [
        Case("site-a fails every round (on every path in use: one alert), site-b failed "
             "once long ago",
             (*tc.run(n), *failures(f"0+{per_step}x{n}", "site-a"),
              *failures(f"0 1x{n}", "site-b")),
             ((fire_at, (exp("site-a", per_step * w),)),)),
        Case("no client fails", (*tc.run(n), *failures(const(2, n), "site-b")),
             ((fire_at, ()),)),
    ]
    # A client's failure counter appears with its first failure (value 1, no earlier
    # sample): increase() alone would miss that failure; its creation time does not.
    start, k = 2, math.ceil(t)
    new_at = start + k + tc.for_steps + 1
    if new_at - w < start:
        ramp = " ".join(str(v) for v in range(1, k + 1))
        values = f"{blank(start)} {ramp} {k}x{new_at + 5 - start - k}"
        cases.append(Case(
            f"a new client fails {k} times right after joining",
            (*tc.run(new_at + 5), *failures(values, "site-c", created=str(start * tc.step))),
            ((start + k - 2, ()), (new_at, (exp("site-c", k),)))))
    # After a Prometheus restart with an empty TSDB, the Pushgateway still holds old
    # failures: they happened before the window and are not counted.
    cases.append(Case(
        "Prometheus restarted with an empty TSDB: old failures do not fire",
        (*tc.run(n), *failures(const(max(9, k * 3), n), "site-d", created=LONG_AGO)),
        ((tc.for_steps + 2, ()), (fire_at, ()))))
    ended = fire_at + 1
    cases.append(Case(
        "the run ended: the alert resolves at once",
        (*tc.run(n + 2, ended_at=ended), *failures(f"0+{per_step}x{n + 2}", "site-a")),
        ((fire_at, (exp("site-a", per_step * w),)), (ended, ()))))
    return cases


CLIENT_DROPOUT = Alert(
    name="FLClientDropout", severity="warning", for_="5m", team="platform",
    threshold=3, bounds=(1.0, 1e6), window="30m", windowed=True, scope="in_progress",
    per_client=True, summary=DROPOUT_SUMMARY, expr=_dropout_expr,
    description=lambda ctx: _dropout_text(ctx.federation, ctx.window, ctx.threshold,
                                          "{{ $labels.client }}",
                                          '{{ $value | printf "%.0f" }}',
                                          "{{ $labels.run_id }}"),
    cases=_dropout_cases,
    monitor=lambda ctx: Monitor(
        "query alert", f"sum(last_{_dd_window(ctx.window)}):"
        f"sum:{ctx.dd('fl_client_failures_total')}{ctx.dd_tags} by {{client}}.as_count() >= "
        f"{num(ctx.threshold)}", ctx.threshold),
)

STALLED_SUMMARY = "A round is stalled"


def _stalled_expr(ctx: Ctx) -> str:
    s = ctx.sel()
    return dedupe(f"(time() - fl_round_start_timestamp_seconds{s}) > {num(ctx.threshold)}\n"
                  f"and\nfl_round_in_progress{s} == 1")


def _stalled_text(fed: str, threshold: float, value: str, run_id: str = "7") -> str:
    return (f"A round of run {run_id} of federation {fed} has been in progress for {value}, "
            f"longer than {seconds_text(threshold)}.")


def _stalled_cases(tc: TestCtx) -> list[Case]:
    ctx = tc.ctx
    first = math.floor(ctx.threshold / tc.step) + 1
    fire_at = first + tc.for_steps + 1
    n = fire_at + 5

    def exp(at: int) -> Expect:
        return Expect(tc.labels(run_id="7"), STALLED_SUMMARY,
                      _stalled_text(ctx.federation, ctx.threshold, humanize_duration(at * tc.step)))

    start = tc.on_paths("fl_round_start_timestamp_seconds", const(0, n))
    ended = fire_at + 1
    return [
        Case("a round started at t=0 and is still in progress (on every path in use: one "
             "alert)", (*tc.run(n), *start, *tc.on_paths("fl_round_in_progress", const(1, n))),
             ((first - 1, ()), (fire_at, (exp(fire_at),)))),
        Case("the round finished",
             (*tc.run(n), *start, *tc.on_paths("fl_round_in_progress", const(0, n))),
             ((fire_at, ()),)),
        Case("the run ended with the round in progress: the alert resolves at once",
             (*tc.run(n, ended_at=ended), *start,
              *tc.on_paths("fl_round_in_progress", const(1, n),
                           live_values=until(1, ended - 1))),
             ((fire_at, (exp(fire_at),)), (ended, ()))),
    ]


ROUND_STALLED = Alert(
    name="FLRoundStalled", severity="warning", for_="1m", team="platform",
    threshold=1800, bounds=(1.0, 1e7), scope="in_progress", summary=STALLED_SUMMARY,
    expr=_stalled_expr,
    description=lambda ctx: _stalled_text(ctx.federation, ctx.threshold,
                                          "{{ $value | humanizeDuration }}",
                                          "{{ $labels.run_id }}"),
    cases=_stalled_cases,
    monitor=lambda ctx: Monitor(
        "query alert", f"min(last_{_dd_window(f'{int(ctx.threshold)}s')}):"
        f"min:{ctx.dd('fl_round_in_progress')}{ctx.dd_tags} >= 1", 1.0),
)

# --- security and privacy ------------------------------------------------------------

ANOMALY_SUMMARY = "A client sent an anomalous model update"


def _anomaly_expr(ctx: Ctx) -> str:
    s = ctx.sel()
    by = "max by (federation, run_id, client)"
    flagged = dedupe(window_increase("fl_anomalous_updates_total", s, ctx.window))
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
                *tc.on_paths("fl_anomalous_updates_created", const(LONG_AGO, n), client=client)]

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
         *_stale_checks(tc, ended, (exp("site-b", high),)))))
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


NEARLY_SUMMARY = "Privacy budget nearly exhausted"
EXHAUSTED_SUMMARY = "Privacy budget exhausted"


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
                       *_stale_checks(tc, ended, (exp(10.0 / _BUDGET),)))))
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

REJECTED_SUMMARY = "Client telemetry was rejected"


def _rejected_expr(ctx: Ctx) -> str:
    inc = dedupe(window_increase("fl_telemetry_rejected_total", ctx.sel(), ctx.window))
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
             tuple(rejected(const(math.floor(t) + 50, n), "oversized", created=LONG_AGO)),
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
        "query alert", f"sum(last_{_dd_window(ctx.window)}):"
        f"sum:{ctx.dd('fl_telemetry_rejected_total')}{ctx.dd_tags} by {{reason}}.as_count() > "
        f"{num(ctx.threshold)}", ctx.threshold),
)

LEAKAGE_SUMMARY = "A membership-inference attack succeeds on the model updates"


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

# --- the federation: scrape targets, SuperLink, nodes, runs --------------------------

EXPORTER_SUMMARY = "flmon metrics cannot be scraped"


def _exporter_down_expr(ctx: Ctx) -> str:
    fed = ctx.federation
    live, pg, watch = ctx.live, ctx.pushgateway, ctx.watch
    parts: list[str] = []
    if pg is not None:
        up_pg = f'up{{job="{pg.scrape_job}",federation="{fed}"}}'
        parts += [f"{up_pg} == 0", f"absent({up_pg})"]
    if live is not None:
        up_live = f'up{{job="{live.job}",federation="{fed}"}}'
        # Between runs the ServerApp (and its exporter) is gone: only a run in progress
        # makes a missing live exporter an outage.
        conditions: list[str] = []
        if pg is not None:
            conditions.append(f'max by (federation) (fl_run_active{{job="{pg.job}",'
                              f'federation="{fed}"}}) == 1')
        if watch is not None:
            running = ctx.watch_sel('status="running"')
            conditions.append(f"sum by (federation) (fl_runs{running}) > 0")
        if conditions:
            parts.append(f"({up_live} == 0"
                         + "".join(f" and on (federation) ({c})" for c in conditions) + ")")
        else:
            parts += [f"{up_live} == 0", f"absent({up_live})"]
    return "\nor\n".join(parts)


def _exporter_text(fed: str, job: str, instance: str | None) -> str:
    where = f"{job} ({instance})" if instance else job
    return (f"Prometheus cannot scrape {where} of federation {fed}: alerts and dashboards of "
            f"this federation are blind.")


def _exporter_cases(tc: TestCtx) -> list[Case]:
    ctx = tc.ctx
    fire_at = tc.for_steps + 2
    n = fire_at + 5
    fed = ctx.federation
    live, pg, watch = ctx.live, ctx.pushgateway, ctx.watch

    def up(job: str, target: str, value: int) -> Series:
        return Series("up", {"job": job, "instance": target, "federation": fed},
                      const(value, n))

    def exp(job: str, target: str | None) -> Expect:
        labels = {"job": job} if target is None else {"job": job, "instance": target}
        return Expect(tc.labels(**labels), EXPORTER_SUMMARY, _exporter_text(fed, job, target))

    def active(value: int) -> list[Series]:
        if pg is None:
            return []
        return [Series("fl_run_active", {"job": pg.job, "instance": pg.instance,
                                         "federation": fed, "run_id": "7"}, const(value, n))]

    def running(value: int) -> list[Series]:
        if watch is None:
            return []
        return [Series("fl_runs", {"job": watch.job, "instance": watch.instance,
                                   "federation": fed, "status": "running"}, const(value, n))]

    pg_ok = [up(pg.scrape_job, pg.instance, 1)] if pg is not None else []
    cases: list[Case] = []
    if pg is not None:
        cases += [
            Case("the Pushgateway is down", (up(pg.scrape_job, pg.instance, 0),),
                 ((fire_at, (exp(pg.scrape_job, pg.instance),)),)),
            Case("the Pushgateway is not scraped at all", (),
                 ((fire_at, (exp(pg.scrape_job, None),)),)),
        ]
    if live is not None:
        cases.append(Case("the live exporter is down during a run",
                          (*pg_ok, *active(1), *running(1), up(live.job, live.instance, 0)),
                          ((fire_at, (exp(live.job, live.instance),)),)))
        if pg is not None or watch is not None:
            cases.append(Case("the live exporter is gone between runs (expected)",
                              (*pg_ok, *active(0), *running(0),
                               up(live.job, live.instance, 0)), ((fire_at, ()),)))
    targets = [*pg_ok, *([up(live.job, live.instance, 1)] if live is not None else [])]
    cases.append(Case("every target is up", tuple(targets), ((fire_at, ()),)))
    return cases


EXPORTER_DOWN = Alert(
    name="FLExporterDown", severity="critical", for_="5m", team="platform",
    scope="federation", summary=EXPORTER_SUMMARY, expr=_exporter_down_expr,
    description=lambda ctx: (
        f"Prometheus cannot scrape {{{{ $labels.job }}}}{{{{ with $labels.instance }}}} "
        f"({{{{ . }}}}){{{{ end }}}} of federation {ctx.federation}: alerts and dashboards of "
        f"this federation are blind."),
    cases=_exporter_cases,
    monitor=lambda ctx: Monitor(
        "service check", f'"openmetrics.health".over("federation:{ctx.federation}")'
        f'.by("endpoint").last(2).count_by_status()', 1.0),
)

SUPERLINK_SUMMARY = "The SuperLink does not answer"


def _superlink_expr(ctx: Ctx) -> str:
    ws = ctx.watch_sel()
    # value 0: the SuperLink does not answer; value 1: the watch itself is not scraped
    return (f"max by (federation) (fl_superlink_up{ws}) == 0\n"
            f"or\n"
            f"(max by (federation) (up{ws}) == 0) + 1\n"
            f"or\n"
            f"max by (federation) (absent(up{ws}))")


def _superlink_text(fed: str, job: str, watch_down: bool | None) -> str:
    superlink = (f"The SuperLink of federation {fed} does not answer flmon watch's Control API "
                 f"polls")
    watch = f"Prometheus cannot scrape flmon watch (job {job}) of federation {fed}"
    rest = ": runs and nodes of this federation are not seen, and no run can start."
    if watch_down is None:  # the rule's template: the value tells which
        return f"{{{{ if eq $value 0.0 }}}}{superlink}{{{{ else }}}}{watch}{{{{ end }}}}{rest}"
    return (watch if watch_down else superlink) + rest


def _superlink_cases(tc: TestCtx) -> list[Case]:
    ctx = tc.ctx
    assert ctx.watch is not None
    fire_at = tc.for_steps + 2
    n = fire_at + 5
    labels = {"job": ctx.watch.job, "instance": ctx.watch.instance,
              "federation": ctx.federation}
    exp = Expect(tc.labels(), SUPERLINK_SUMMARY,
                 _superlink_text(ctx.federation, ctx.watch.job, watch_down=False))
    watch_down = Expect(tc.labels(), SUPERLINK_SUMMARY,
                        _superlink_text(ctx.federation, ctx.watch.job, watch_down=True))

    def watch(up: int | None, superlink: int | None, last: int = n) -> list[Series]:
        out = []
        if up is not None:
            out.append(Series("up", labels, const(up, last)))
        if superlink is not None:
            out.append(Series("fl_superlink_up", labels, const(superlink, last)))
        return out

    back = fire_at + 2
    return [
        Case("the watch reports the SuperLink down",
             tuple(watch(1, 0)), ((0, ()) if tc.for_steps else (0, (exp,)),
                                  (fire_at, (exp,)))),
        Case("the watch itself cannot be scraped (its series are gone)",
             (Series("up", labels, const(0, n)),
              Series("fl_superlink_up", labels, until(1, 1))), ((fire_at, (watch_down,)),)),
        Case("the watch is not scraped at all", (), ((fire_at, (watch_down,)),)),
        Case("the SuperLink answers", tuple(watch(1, 1)), ((fire_at, ()),)),
        Case("the SuperLink is back: resolved",
             (Series("up", labels, const(1, n)),
              Series("fl_superlink_up", labels, f"{const(0, back - 1)} {const(1, n - back)}")),
             ((fire_at, (exp,)), (back, ()))),
    ]


SUPERLINK_DOWN = Alert(
    name="FLSuperLinkDown", severity="critical", for_="1m", team="platform",
    scope="federation", summary=SUPERLINK_SUMMARY, needs="watch",
    expr=_superlink_expr,
    description=lambda ctx: _superlink_text(ctx.federation,
                                            ctx.watch.job if ctx.watch else "flmon-watch",
                                            watch_down=None),
    cases=_superlink_cases,
    monitor=lambda ctx: Monitor(
        "query alert", f"max(last_{_dd_window(ctx.for_)}):max:{ctx.dd('fl_superlink_up')}"
        f"{ctx.dd_tags} < 1", 1.0),
    inhibits=tuple(Inhibit(name, ("federation",)) for name in (
        "FLNodeOffline", "FLClientDropout", "FLNoModelUpdates", "FLRoundStalled")),
)

NODE_SUMMARY = "A SuperNode is offline"


def _node_text(fed: str, client: str) -> str:
    return (f"SuperNode {client} of federation {fed} is offline: the SuperLink missed its "
            f"heartbeats. It takes no part in rounds until it is back (or is unregistered).")


def _node_cases(tc: TestCtx) -> list[Case]:
    ctx = tc.ctx
    assert ctx.watch is not None  # rendered only with scrape.watch enabled
    fire_at = tc.for_steps + 3
    n = fire_at + 6

    watch = ctx.watch

    def node(client: str, values: str) -> Series:
        return Series("fl_supernode_online",
                      {"job": watch.job, "instance": watch.instance,
                       "federation": ctx.federation, "client": client}, values)

    exp = Expect(tc.labels(client="site-b"), NODE_SUMMARY, _node_text(ctx.federation, "site-b"))
    back = fire_at + 2
    return [
        Case("site-b went offline (no run in progress: between runs too)",
             (node("site-a", const(1, n)), node("site-b", f"1 {const(0, n - 1)}")),
             ((fire_at, (exp,)),)),
        Case("every node is online", (node("site-a", const(1, n)), node("site-b", const(1, n))),
             ((fire_at, ()),)),
        Case("site-b is back online: resolved",
             (node("site-b", f"1 {const(0, back - 2)} {const(1, n - back)}"),),
             ((fire_at, (exp,)), (back, ()))),
        Case("site-b was unregistered (its series is gone): resolved",
             (node("site-b", f"1 {const(0, back - 2)} stale"),),
             ((fire_at, (exp,)), (back, ()))),
    ]


NODE_OFFLINE = Alert(
    name="FLNodeOffline", severity="warning", for_="1m", team="platform", scope="federation",
    per_client=True, summary=NODE_SUMMARY, needs="watch",
    expr=lambda ctx: f"max by (federation, client) (fl_supernode_online{ctx.watch_sel()}) == 0",
    description=lambda ctx: _node_text(ctx.federation, "{{ $labels.client }}"),
    cases=_node_cases,
    monitor=lambda ctx: Monitor(
        "query alert", f"max(last_{_dd_window(ctx.for_)}):min:{ctx.dd('fl_supernode_online')}"
        f"{ctx.dd_tags} by {{client}} < 1", 1.0),
)

RUN_FAILED_SUMMARY = "A run failed"


def _run_failed_expr(ctx: Ctx) -> str:
    failed = ctx.watch_sel('result="failed"')
    return f"max by (federation) (increase(fl_runs_finished_total{failed}[{ctx.window}])) > 0"


def _run_failed_text(fed: str, window: str, value: str) -> str:
    return (f"{value} run(s) of federation {fed} ended with the failed sub-status in the last "
            f"{window}: see `flwr ls` and the ServerApp's logs.")


def _run_failed_cases(tc: TestCtx) -> list[Case]:
    ctx = tc.ctx
    assert ctx.watch is not None
    w = tc.window_steps
    fail_at = w + 2
    fire_at = fail_at + tc.for_steps + 1
    n = fail_at + w + 4

    watch = ctx.watch

    def finished(result: str, values: str) -> Series:
        return Series("fl_runs_finished_total",
                      {"job": watch.job, "instance": watch.instance,
                       "federation": ctx.federation, "result": result}, values)

    exp = Expect(tc.labels(), RUN_FAILED_SUMMARY,
                 _run_failed_text(ctx.federation, ctx.window, count(1)))
    failed = f"{const(2, fail_at - 1)} {const(3, n - fail_at)}"
    return [
        Case("a run failed", (finished("failed", failed), finished("completed", const(5, n))),
             ((fail_at - 1, ()), (fire_at, (exp,)), (fail_at + w + 1, ()))),
        Case("runs complete", (finished("failed", const(2, n)),
                               finished("completed", f"5+1x{n}")), ((fire_at, ()),)),
        Case("a restarted watch starts at the runs already finished: no alert",
             (finished("failed", f"{const(2, 3)} {blank(3)} {const(2, n - 7)}"),),
             ((8, ()), (fire_at, ()))),
        Case("Prometheus restarted with an empty TSDB: old failures do not fire",
             (finished("failed", f"{blank(3)} {const(4, n - 3)}"),),
             ((4, ()), (fire_at, ()))),
    ]


RUN_FAILED = Alert(
    name="FLRunFailed", severity="warning", for_="0m", team="platform", window="15m",
    windowed=True, scope="federation", summary=RUN_FAILED_SUMMARY, needs="watch",
    expr=lambda ctx: _run_failed_expr(ctx),
    description=lambda ctx: _run_failed_text(ctx.federation, ctx.window,
                                             '{{ $value | printf "%.0f" }}'),
    cases=_run_failed_cases,
    monitor=lambda ctx: Monitor(
        "query alert", f"sum(last_{_dd_window(ctx.window)}):"
        f"sum:{ctx.dd('fl_runs_finished_total')}{{federation:{ctx.federation},result:failed}}"
        f".as_count() > 0", 0.0),
)

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
