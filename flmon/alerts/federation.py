"""Alerts on the federation's parts: scrape targets, the SuperLink, its nodes, runs.

See :mod:`flmon.alerts.declarations` for the conventions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from flmon.alerts.cases import blank, const, until
from flmon.alerts.exprs import dd_window
from flmon.alerts.spec import Alert, Case, Ctx, Expect, Inhibit, Monitor, Series, TestCtx
from flmon.alerts.text import (
    count,
)

# --- the federation: scrape targets, SuperLink, nodes, runs --------------------------

EXPORTER_SUMMARY = "Prometheus cannot scrape flmon's metrics."


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


def _exporter_monitor(ctx: Ctx) -> Monitor | None:
    """The live exporter's scrape fails while the watch sees a run in progress.

    The exporter lives in the ServerApp process: between runs the check's
    ``openmetrics.health`` of its endpoint is CRITICAL, as expected, so that service check
    alone is no alert. Without the watch in the check nothing in Datadog says a run is in
    progress, so the live exporter is left out (and when the check does not collect it:
    DogStatsD carries the ServerApp's series). The Pushgateway is collected for the
    privacy-test figures: its scrape failing is an outage at any time.
    """
    name = EXPORTER_DOWN_NAME
    parts: list[tuple[str, Monitor]] = []
    terms: list[str] = []
    if ctx.dd_live_endpoint is not None and ctx.dd_watch_endpoints:
        running = Monitor("query alert", f"min(last_{dd_window(ctx.for_)}):"
                          f"sum:{ctx.dd('fl_runs')}{ctx.dd_sel('status:running')} > 0", 0.0)
        parts += [("scrape", ctx.dd_health((ctx.dd_live_endpoint,), ctx.for_)),
                  ("run", running)]
        terms.append(f"{name}.scrape && {name}.run")
    if ctx.dd_pushgateway_endpoint is not None:  # always up, between runs too
        parts.append(("pushgateway", ctx.dd_health((ctx.dd_pushgateway_endpoint,), ctx.for_)))
        terms.append(f"{name}.pushgateway")
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0][1]
    query = terms[0] if len(terms) == 1 else " || ".join(
        f"({term})" if "&&" in term else term for term in terms)
    return Monitor("composite", query, 1.0, parts=tuple(parts))


EXPORTER_DOWN_NAME = "FLExporterDown"

EXPORTER_DOWN = Alert(
    name=EXPORTER_DOWN_NAME, severity="critical", for_="5m", team="platform",
    scope="federation", summary=EXPORTER_SUMMARY, expr=_exporter_down_expr,
    description=lambda ctx: (
        f"Prometheus cannot scrape {{{{ $labels.job }}}}{{{{ with $labels.instance }}}} "
        f"({{{{ . }}}}){{{{ end }}}} of federation {ctx.federation}: alerts and dashboards of "
        f"this federation are blind."),
    cases=_exporter_cases, monitor=lambda ctx: _exporter_monitor(ctx),
)

SUPERLINK_SUMMARY = "The SuperLink does not answer."


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


def _superlink_monitor(ctx: Ctx) -> Monitor:
    """The watch reports the SuperLink down, or the check cannot scrape the watch."""
    answer = Monitor("query alert", f"max(last_{dd_window(ctx.for_, 60)}):"
                     f"max:{ctx.dd('fl_superlink_up')}{ctx.dd_tags} < 1", 1.0)
    if not ctx.dd_watch_endpoints:
        return answer
    return Monitor("composite", "FLSuperLinkDown.answer || FLSuperLinkDown.scrape", 1.0,
                   parts=(("answer", answer),
                          ("scrape", ctx.dd_health(ctx.dd_watch_endpoints, ctx.for_))))


SUPERLINK_DOWN = Alert(
    name="FLSuperLinkDown", severity="critical", for_="1m", team="platform",
    scope="federation", summary=SUPERLINK_SUMMARY, needs="watch",
    expr=_superlink_expr,
    description=lambda ctx: _superlink_text(ctx.federation,
                                            ctx.watch.job if ctx.watch else "flmon-watch",
                                            watch_down=None),
    cases=_superlink_cases,
    monitor=lambda ctx: _superlink_monitor(ctx),
    inhibits=tuple(Inhibit(name, ("federation",)) for name in (
        "FLNodeOffline", "FLClientDropout", "FLNoModelUpdates", "FLRoundStalled")),
)

NODE_SUMMARY = "A SuperNode is offline."


def _node_text(fed: str, client: str) -> str:
    return (f"SuperNode {client} of federation {fed} is offline: the SuperLink missed its "
            f"heartbeats. It takes no part in rounds until it is back (or is unregistered).")


def _node_expr(ctx: Ctx) -> str:
    # An offline node id whose place a later registration took (a SuperNode restarted
    # without authentication comes back under a new id; the old id stays offline for
    # ever) is history once stale_after has passed since its last heartbeat. A node that
    # died and was not replaced keeps firing.
    sel = ctx.watch_sel()
    by = "max by (federation, client)"
    return (f"{by} (fl_supernode_online{sel}) == 0 unless on (federation, client) "
            f"({by} (fl_supernode_replaced{sel}) == 1 and on (federation, client) "
            f"{by} (fl_supernode_heartbeat_age_seconds{sel}) > {ctx.stale_s:g})")


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
        *_replaced_cases(tc, node, exp),
    ]


def _replaced_cases(tc: TestCtx, node: Callable[[str, str], Series], exp: Expect,
                    ) -> list[Case]:
    """An old node id after an unauthenticated restart: stops stale_after after its last
    heartbeat; a dead node nobody replaced does not."""
    fire_at = tc.for_steps + 3
    stale = math.ceil(tc.ctx.stale_s / tc.step)  # steps from the last heartbeat
    n = max(stale, fire_at) + 4
    step = tc.step
    # The last heartbeat at t=0: the age grows by one step per step.
    offline = f"1 {const(0, n - 1)}"
    age = f"0+{step}x{n}"
    # Still firing just before stale_after, resolved just after (when stale_after is
    # shorter than `for`, it never fires).
    ends = (((fire_at, (exp,)), (stale - 1, (exp,)), (stale + 1, ()))
            if stale - 1 > fire_at else ((max(fire_at, stale + 1), ()),))
    return [
        Case("site-b came back under a new id: its old id stops stale_after after its "
             "last heartbeat",
             (node("site-b", offline), node_series(tc, "fl_supernode_replaced", "site-b",
                                                    f"_ {const(1, n - 1)}"),
              node_series(tc, "fl_supernode_heartbeat_age_seconds", "site-b", age)),
             ends),
        Case("site-b died and nothing replaced it: it keeps firing past stale_after",
             (node("site-b", offline), node_series(tc, "fl_supernode_replaced", "site-b",
                                                    f"_ {const(0, n - 1)}"),
              node_series(tc, "fl_supernode_heartbeat_age_seconds", "site-b", age)),
             ((max(fire_at, stale + 1), (exp,)),)),
        _forgotten_case(tc, node, exp),
    ]


def _forgotten_case(tc: TestCtx, node: Callable[[str, str], Series], exp: Expect) -> Case:
    """site-b died; the SuperLink went down, then came back with in-memory state and no
    longer lists site-b: the watch keeps exporting its last state while the SuperLink is
    down, then reports it offline and replaced (its place is gone) until stale_after after
    its last heartbeat."""
    fire_at = tc.for_steps + 3
    stale = math.ceil(tc.ctx.stale_s / tc.step)
    n = max(stale, fire_at + 6) + 4
    down, back = fire_at + 1, fire_at + 4  # the SuperLink down, back (empty)
    assert tc.ctx.watch is not None
    superlink = Series("fl_superlink_up",
                       {"job": tc.ctx.watch.job, "instance": tc.ctx.watch.instance,
                        "federation": tc.ctx.federation},
                       f"{const(1, down - 1)} {const(0, back - down - 1)} {const(1, n - back)}")
    if stale - 1 > back + 1:
        checks: tuple[tuple[int, tuple[Expect, ...]], ...] = (
            (fire_at, (exp,)), (down + 1, (exp,)), (back + 1, (exp,)), (stale - 1, (exp,)),
            (stale + 1, ()))
    else:
        checks = ((max(back, stale) + 2, ()),)
    return Case(
        "site-b died, the SuperLink went down and came back with in-memory state that no "
        "longer lists site-b: offline until stale_after after its last heartbeat",
        (superlink, node("site-b", f"1 {const(0, n - 1)}"),
         node_series(tc, "fl_supernode_replaced", "site-b",
                     f"_ {const(0, back - 2)} {const(1, n - back)}"),
         node_series(tc, "fl_supernode_heartbeat_age_seconds", "site-b",
                     f"0+{tc.step}x{down - 1} {const((down - 1) * tc.step, back - down - 1)} "
                     f"{back * tc.step}+{tc.step}x{n - back}")),
        checks)


def node_series(tc: TestCtx, name: str, client: str, values: str) -> Series:
    """A per-node series of the watch."""
    watch = tc.ctx.watch
    assert watch is not None
    return Series(name, {"job": watch.job, "instance": watch.instance,
                         "federation": tc.ctx.federation, "client": client}, values)


NODE_OFFLINE = Alert(
    name="FLNodeOffline", severity="warning", for_="1m", team="platform", scope="federation",
    per_client=True, summary=NODE_SUMMARY, needs="watch",
    expr=_node_expr,
    description=lambda ctx: _node_text(ctx.federation, "{{ $labels.client }}"),
    cases=_node_cases,
    monitor=lambda ctx: Monitor(
        "query alert", f"max(last_{dd_window(ctx.for_, 60)}):min:{ctx.dd('fl_supernode_online')}"
        f"{ctx.dd_tags} by {{client}} < 1", 1.0),
)

RUN_FAILED_SUMMARY = "A run failed."


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
    # The failure is in the window for w - 1 steps (w, ranges closed at both ends): a
    # `for` at least as long as the window never lets the alert fire.
    if tc.for_steps <= w - 3:
        failure = Case("a run failed", (finished("failed", failed),
                                        finished("completed", const(5, n))),
                       ((fail_at - 1, ()), (fire_at, (exp,)), (fail_at + w + 1, ())))
    elif tc.for_steps >= w:
        failure = Case("a run failed, but `for` is not shorter than the window: no alert",
                       (finished("failed", failed), finished("completed", const(5, n))),
                       ((fail_at - 1, ()), (fail_at + w, ()), (fire_at, ())))
    else:  # fires for one step at most, depending on the range's ends: not asserted
        failure = Case("a run failed, `for` about the window: quiet before the failure",
                       (finished("failed", failed), finished("completed", const(5, n))),
                       ((fail_at - 1, ()),))
    return [
        failure,
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
        "query alert", f"sum(last_{dd_window(ctx.window)}):"
        f"sum:{ctx.dd('fl_runs_finished_total')}{{federation:{ctx.federation},result:failed}}"
        f".as_count() > 0", 0.0),
)

