"""Differential-privacy figures read from Flower's DP strategy wrappers.

Flower's DP wrappers (``DifferentialPrivacyServerSideFixedClipping`` and kin) hold the
wrapped strategy in ``.strategy``, their ``noise_multiplier`` and ``clipping_norm``, and,
when built with one, an ``accountant`` whose ``get_privacy_spent()`` gives epsilon and
delta. flmon looks for them anywhere in the chain of wrapped strategies, without
importing Flower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

_MAX_DEPTH = 16


@dataclass(frozen=True)
class DpFigures:
    """What flmon exports about a DP strategy (None: not known)."""

    epsilon: float | None
    delta: float | None
    budget: float | None
    noise_multiplier: float | None
    clipping_norm: float | None


def find_dp_strategy(strategy: Any) -> Any | None:
    """The first strategy in the ``.strategy`` chain that looks like a DP wrapper."""
    current = strategy
    for _ in range(_MAX_DEPTH):
        if current is None:
            return None
        attrs = vars(current) if hasattr(current, "__dict__") else {}
        if "noise_multiplier" in attrs and "clipping_norm" in attrs:
            return current
        current = attrs.get("strategy")
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def read_dp(strategy: Any) -> DpFigures | None:
    """Read the DP figures of the chain, or None when there is no DP wrapper."""
    dp = find_dp_strategy(strategy)
    if dp is None:
        return None
    epsilon = delta = budget = None
    accountant = getattr(dp, "accountant", None)
    if accountant is not None:
        spent = accountant.get_privacy_spent()
        epsilon = _number(getattr(spent, "epsilon", None))
        delta = _number(getattr(spent, "delta", None))
        config = getattr(accountant, "config", None)
        budget = _number(getattr(config, "max_epsilon", None))
        if delta is None:
            delta = _number(getattr(config, "target_delta", None))
    return DpFigures(
        epsilon=epsilon,
        delta=delta,
        budget=budget,
        noise_multiplier=_number(getattr(dp, "noise_multiplier", None)),
        clipping_norm=_number(getattr(dp, "clipping_norm", None)),
    )
