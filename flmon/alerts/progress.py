"""Alerts on a run's progress: FLNoModelUpdates, FLClientDropout, FLRoundStalled.

See :mod:`flmon.alerts.declarations` for the conventions.
"""

from __future__ import annotations

import math

from flmon.alerts import exprs
from flmon.alerts.cases import blank, const, until
from flmon.alerts.exprs import dd_window, dedupe
from flmon.alerts.spec import Alert, Case, Ctx, Expect, Monitor, Series, TestCtx
from flmon.alerts.text import (
    count,
    humanize_duration,
    num,
    seconds_text,
)

# --- progress of a run ---------------------------------------------------------------

KILLED = ("the ServerApp was killed: its series still say the run is active, the SuperLink "
          "marked it failed (the watch's fl_run_running is gone): the alert resolves at once")

NO_UPDATES_SUMMARY = "No model updates while a run is in progress."


def _no_updates_expr(ctx: Ctx) -> str:
    s = ctx.sel()
    updates = dedupe(exprs.window_increase("fl_model_updates_total", s, ctx.window))
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
         *tc.on_paths("fl_model_updates_created", const(tc.long_ago, n + start), client="site-a")),
        ((start + tc.for_steps + 1, ()), (start + w - 1, ()))))
    ended = fire_at + 1
    cases.append(Case(
        "the run ended: the alert resolves at once",
        tuple(tc.run(n, ended_at=ended)), ((fire_at, (exp,)), (ended, ()))))
    if ctx.watch is not None:
        cases.append(Case(
            KILLED, tuple(tc.run(n, killed_at=ended)), ((fire_at, (exp,)), (ended, ()))))
    return cases


def _no_updates_monitor(ctx: Ctx) -> Monitor:
    """The run was active at every point of the whole window and no update came.

    Per point: 1 while the run is active, minus the updates counted in that interval;
    the minimum over the window is 1 only when the run was active throughout and nothing
    came. A run younger than the window is not judged (``require_full_window``); between
    runs the live exporter is gone and there is no data.
    """
    by = f"{ctx.dd_tags} by {{run_id}}"
    return Monitor("query alert", f"min(last_{dd_window(ctx.window)}):"
                   f"max:{ctx.dd('fl_run_active')}{by} - "
                   f"default_zero(sum:{ctx.dd('fl_model_updates_total')}{by}) >= 1", 1.0,
                   require_full_window=True)


NO_MODEL_UPDATES = Alert(
    name="FLNoModelUpdates", severity="warning", for_="5m", team="ml", window="30m",
    windowed=True, scope="in_progress", summary=NO_UPDATES_SUMMARY,
    expr=_no_updates_expr,
    description=lambda ctx: _no_updates_text(ctx.federation, ctx.window,
                                             "{{ $labels.run_id }}"),
    cases=_no_updates_cases,
    monitor=lambda ctx: _no_updates_monitor(ctx),
)

DROPOUT_SUMMARY = "A client keeps failing."


def _dropout_expr(ctx: Ctx) -> str:
    inc = dedupe(exprs.window_increase("fl_client_failures_total", ctx.sel(), ctx.window))
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
        ramp = f"1+1x{k - 1}"  # 1, 2, .., k
        values = f"{blank(start)} {ramp} {k}x{new_at + 5 - start - k}"
        cases.append(Case(
            f"a new client fails {k} times right after joining",
            (*tc.run(new_at + 5), *failures(values, "site-c", created=str(start * tc.step))),
            ((start + k - 2, ()), (new_at, (exp("site-c", k),)))))
    # After a Prometheus restart with an empty TSDB, the Pushgateway still holds old
    # failures: they happened before the window and are not counted.
    cases.append(Case(
        "Prometheus restarted with an empty TSDB: old failures do not fire",
        (*tc.run(n), *failures(const(max(9, k * 3), n), "site-d", created=tc.long_ago)),
        ((tc.for_steps + 2, ()), (fire_at, ()))))
    ended = fire_at + 1
    cases.append(Case(
        "the run ended: the alert resolves at once",
        (*tc.run(n + 2, ended_at=ended), *failures(f"0+{per_step}x{n + 2}", "site-a")),
        ((fire_at, (exp("site-a", per_step * w),)), (ended, ()))))
    if ctx.watch is not None:
        cases.append(Case(
            KILLED,
            (*tc.run(n + 2, killed_at=ended), *failures(f"0+{per_step}x{n + 2}", "site-a")),
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
        "query alert", f"sum(last_{dd_window(ctx.window)}):"
        f"sum:{ctx.dd('fl_client_failures_total')}{ctx.dd_tags} by {{client}}.as_count() >= "
        f"{num(ctx.threshold)}", ctx.threshold),
)

STALLED_SUMMARY = "A round is stalled."


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
    killed = ([Case(KILLED, (*tc.run(n, killed_at=ended), *start,
                             *tc.on_paths("fl_round_in_progress", const(1, n),
                                          live_values=until(1, ended - 1))),
                    ((fire_at, (exp(fire_at),)), (ended, ())))]
              if ctx.watch is not None else [])
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
        *killed,
    ]


def _stalled_monitor(ctx: Ctx) -> Monitor:
    """A round in progress at every point of the window and no round completed in it.

    ``fl_round_in_progress`` alone stays 1 across back-to-back rounds of a healthy run
    (the check rarely samples the instant between two rounds): the rounds completed in
    each interval are subtracted, so a completed round anywhere in the window keeps the
    minimum below 1. The window is the threshold (rounded up to a Datadog window).
    """
    by = f"{ctx.dd_tags} by {{run_id}}"
    return Monitor("query alert", f"min(last_{dd_window(f'{int(ctx.threshold)}s')}):"
                   f"max:{ctx.dd('fl_round_in_progress')}{by} - "
                   f"default_zero(sum:{ctx.dd('fl_rounds_completed_total')}{by}) >= 1", 1.0,
                   require_full_window=True)


ROUND_STALLED = Alert(
    name="FLRoundStalled", severity="warning", for_="1m", team="platform",
    threshold=1800, bounds=(1.0, 1e7), threshold_seconds=True, scope="in_progress",
    summary=STALLED_SUMMARY,
    expr=_stalled_expr,
    description=lambda ctx: _stalled_text(ctx.federation, ctx.threshold,
                                          "{{ $value | humanizeDuration }}",
                                          "{{ $labels.run_id }}"),
    cases=_stalled_cases,
    monitor=lambda ctx: _stalled_monitor(ctx),
)

