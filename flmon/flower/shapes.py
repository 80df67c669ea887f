"""The metric shape a phase's replies are judged against: one rule for both reply guards.

The Message API guard (:func:`flmon.flower.replies.triage`) and the legacy guard
(:func:`flmon.flower.legacy_guard.check`) both hand :func:`judge` the shapes of the
replies that passed the checks on their own merits; :func:`judge` decides which shape
the round is judged against and what each reply's verdict is:

- the shape established in an earlier round of the same phase, whatever the count;
- without one, the shape a strict majority of the replies share, if at least
  :data:`MIN_ESTABLISHING_VOTES` replies share it or no other node was asked (a lone
  reply whose peers failed or timed out settles nothing);
- otherwise nothing: every reply is ``undecided_metric_keys`` and the round aggregates
  nothing. A tie (1 vs 1, 2 vs 2, three different sets...) is never broken by sort
  order, key count or anything else a client chooses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SCALAR = -1
"""Kind of a number value in a :data:`MetricShape` (a list has its length instead)."""
MIN_ESTABLISHING_VOTES = 2
"""Agreeing replies needed before a round's shape judges later rounds: the lone reply
of a one-node round is aggregated, but does not set the rule."""

MetricShape = frozenset[tuple[str, int]]
"""A metrics mapping's keys, each with :data:`SCALAR` or the length of its list."""

SHAPE_REASONS: tuple[str, ...] = (
    "inconsistent_metric_keys",
    "inconsistent_metric_types",
    "undecided_metric_keys",
)
"""The reasons :func:`judge` gives (``fl_replies_quarantined_total{reason}``)."""


def metric_shape(metrics: Mapping[str, Any]) -> MetricShape:
    """Keys of ``metrics``, each with :data:`SCALAR` or its list's length."""
    return frozenset((key, len(v) if isinstance(v, list) else SCALAR)
                     for key, v in metrics.items())


def _keys(shape: MetricShape) -> frozenset[str]:
    return frozenset(key for key, _ in shape)


@dataclass(frozen=True)
class Verdict:
    """What :func:`judge` decided for one round of one phase.

    Attributes
    ----------
    settled
        The shape the round was judged against, or None when it could not be settled.
    reference
        The shape that judges later rounds of the phase (``settled`` when it was given
        as history or backed by enough replies), or None.
    reasons
        Per shape given, in order: None (kept) or the reason it is set aside.
    """

    settled: MetricShape | None
    reference: MetricShape | None
    reasons: tuple[str | None, ...]


def _settle(shapes: Sequence[MetricShape], reference: MetricShape | None, electorate: int
            ) -> tuple[MetricShape | None, bool]:
    if reference is not None:
        return reference, True
    if not shapes:
        return None, False
    shape, count = Counter(shapes).most_common(1)[0]
    if 2 * count <= len(shapes):
        return None, False
    if count < MIN_ESTABLISHING_VOTES and electorate > count:
        return None, False  # a lone reply while other nodes were asked
    return shape, count >= MIN_ESTABLISHING_VOTES


def judge(shapes: Sequence[MetricShape], reference: MetricShape | None,
          selected: int | None = None, set_aside: int = 0) -> Verdict:
    """Settle the round's metric shape and give each reply its verdict.

    Parameters
    ----------
    shapes
        The metric shapes of the replies that passed the checks on their own merits.
    reference
        The shape established in an earlier round of this phase, or None.
    selected
        How many nodes the phase was sent to (None: unknown). Without a ``reference``,
        a shape shared by a single reply settles the round only if no other node was
        asked (or every other reply was set aside on its own merits).
    set_aside
        Replies of the round already set aside on their own merits (oversized,
        non-finite...): they cannot force a tie, nor count as nodes that were asked.
    """
    electorate = len(shapes) if selected is None else selected - set_aside
    settled, establishes = _settle(shapes, reference, electorate)
    reasons: list[str | None] = []
    for shape in shapes:
        if settled is None:
            reasons.append("undecided_metric_keys")
        elif shape == settled:
            reasons.append(None)
        elif _keys(shape) == _keys(settled):
            reasons.append("inconsistent_metric_types")
        else:
            reasons.append("inconsistent_metric_keys")
    return Verdict(settled, settled if establishes else None, tuple(reasons))
