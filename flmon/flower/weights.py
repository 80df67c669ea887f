"""The weight rules: one implementation for both reply guards.

A reply's weight (the Message API's ``weighted_by_key`` value, the legacy
``FitRes.num_examples``/``EvaluateRes.num_examples``) is the client's own claim, and
FedAvg-style strategies multiply its update by it. The Message API guard
(:func:`flmon.flower.replies.triage`) and the legacy guard
(:func:`flmon.flower.legacy_guard.check`) both ask :func:`accepted` about each reply's
weight and :func:`judge` about the weights of the replies they would keep:

- a weight must be a number (not a bool, not a list), finite, > 0 and at most
  ``max_weight`` (``invalid_weight``);
- with three or more replies, a weight above ``max_ratio`` times the round's median
  weight is ``outlying_weight`` (the median is the honest majority's: one client cannot
  move it);
- with two replies whose weights are more than ``max_ratio`` apart, which one lies
  cannot be told: both are ``undecided_weights``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

WEIGHT_REASONS: tuple[str, ...] = ("invalid_weight", "outlying_weight", "undecided_weights")
"""The reasons the weight rules give (``fl_replies_quarantined_total{reason}``)."""


def accepted(value: Any, max_weight: float) -> float | None:
    """``value`` as a weight if it is acceptable, else None.

    Acceptable: an int or float (not a bool), finite, > 0 and <= ``max_weight``.
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        weight = float(value)
    except OverflowError:  # an int beyond float range
        return None
    if not math.isfinite(weight) or weight <= 0 or weight > max_weight:
        return None
    return weight


def judge(weights: Sequence[float], max_ratio: float) -> list[str | None]:
    """Per weight (all :func:`accepted`): None (kept), ``outlying_weight`` or
    ``undecided_weights``."""
    n = len(weights)
    if n == 2:
        low, high = sorted(weights)
        undecided = high > max_ratio * low
        return ["undecided_weights" if undecided else None] * 2
    if n < 3:
        return [None] * n
    ordered = sorted(weights)
    middle = n // 2
    median = ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return ["outlying_weight" if w > max_ratio * median else None for w in weights]
