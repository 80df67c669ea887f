"""Alerts on the global model's quality: FLLowTrainingAccuracy, FLModelAccuracyDropped.

See :mod:`flmon.alerts.declarations` for the conventions.
"""

from __future__ import annotations

import math

from flmon.alerts.cases import const, fmt, stale_checks, until
from flmon.alerts.exprs import dd_window, dedupe
from flmon.alerts.spec import Alert, Case, Ctx, Expect, Inhibit, Monitor, TestCtx
from flmon.alerts.text import (
    humanize_percentage,
    num,
    percent,
)

# --- model quality -------------------------------------------------------------------


def _accuracy_expr(ctx: Ctx) -> str:
    acc = f"fl_training_accuracy{ctx.sel()}"
    return dedupe(f"{acc} < {num(ctx.threshold)}\nor\n{acc} != {acc}\nor\n{acc} > 1")


LOW_SUMMARY = "Training accuracy is low."
DROP_SUMMARY = "Model accuracy dropped."


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
        ((fire_at, (expect(value),)), *stale_checks(tc, ended, (expect(value),)))))
    return cases


def _low_cases(tc: TestCtx) -> list[Case]:
    return _accuracy_cases(tc, LOW_SUMMARY, low=True)


def _drop_cases(tc: TestCtx) -> list[Case]:
    return _accuracy_cases(tc, DROP_SUMMARY, low=False)


def _accuracy_monitor(ctx: Ctx) -> Monitor:
    """Accuracy below the line, or not a valid ratio, for the whole ``for`` window.

    The check drops NaN samples, so the accuracy alone would be silence exactly when the
    rule fires on NaN. ``fl_training_accuracy_valid`` (0 for NaN, inf, out of 0..1) says
    it: the formula is the accuracy while it is valid and -1 while it is not, so both
    fall below any threshold in 0..1.
    """
    by = f"{ctx.dd_tags} by {{run_id}}"
    acc = f"default_zero(max:{ctx.dd('fl_training_accuracy')}{by})"
    valid = f"max:{ctx.dd('fl_training_accuracy_valid')}{by}"
    return Monitor("query alert",
                   f"max(last_{dd_window(ctx.for_)}):{acc} * {valid} + {valid} - 1 < "
                   f"{num(ctx.threshold)}", ctx.threshold)


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

