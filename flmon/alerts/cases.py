"""promtool value notation and checks the alert declarations' cases share."""

from __future__ import annotations

import math

from flmon.alerts.spec import Expect, TestCtx

# --- promtool value notation ---------------------------------------------------------


def const(value: float | str, steps: int) -> str:
    """``value`` at steps 0..``steps``."""
    if value == "NaN" or (isinstance(value, float) and math.isnan(value)):
        return f"NaN+0x{steps}"  # promtool refuses NaNx<n>; NaN plus 0 per step is NaN
    return f"{value}x{steps}"


def blank(steps: int) -> str:
    """``steps`` missing samples (the series does not exist yet)."""
    return " ".join(["_"] * steps)


def until(value: float | str, last: int) -> str:
    """``value`` at steps 0..``last``, then stale (the exporter went away)."""
    return f"{const(value, last)} stale"


def fmt(value: float) -> str:
    return "NaN" if math.isnan(value) else f"{value:g}"


def stale_checks(tc: TestCtx, ended_at: int, firing: tuple[Expect, ...],
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


