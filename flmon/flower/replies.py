"""The reply guard: checks on reply Messages before they reach the wrapped strategy.

Flower's message strategies raise ``InconsistentMessageReplies`` (which ends the
ServerApp) when one reply has a second MetricRecord or different metric keys, average a
NaN accuracy into a NaN aggregate, divide by a total weight of zero, and crash on arrays
of the wrong shape or dtype. One misbehaving or hostile client could so stop a whole
federation or hand it its model. :func:`triage` sets such replies aside, each with a
reason from :data:`QUARANTINE_REASONS`, and keeps the rest.

What a reply is judged against is settled from evidence one client cannot manufacture
(by :func:`flmon.flower.shapes.judge`, the same rule as the legacy guard's):

- the *metric shape* (key set, and per key a number or a list of a given length)
  established in an earlier round of the same phase: once there is one, a reply that
  differs is set aside whatever the count (a shape is established by a strict majority
  of at least :data:`MIN_ESTABLISHING_VOTES` agreeing replies);
- in a round without one, the shape a strict majority of the well-formed replies share,
  if at least 2 replies share it or no other node was asked (a lone reply whose peers
  failed or timed out settles nothing);
- otherwise nothing: when no shape has a strict majority (1 vs 1, 2 vs 2, three
  different sets...) the guard cannot tell honest from hostile, sets every reply aside
  as ``undecided_metric_keys`` and the round aggregates nothing (the global model stays
  as it was; the run goes on). It never breaks a tie by sort order.

Replies with more keys or longer lists than :class:`Limits` allows are ``oversized``
before any vote, so thousands of keys buy no votes. Weights must be numbers, finite,
positive and at most ``Limits.max_weight``; with three or more replies a weight above
``Limits.max_weight_ratio`` times the round's median weight is ``outlying_weight``, and
with two replies whose weights differ by more than that ratio neither is trusted
(``undecided_weights``); the weight rules are :mod:`.weights`, shared with the
legacy guard. Train arrays must have the keys, dtypes and shapes of the
global arrays sent, read from their bytes (see :mod:`.arrays`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flwr.app import ArrayRecord, Message

from flmon.flower import weights
from flmon.flower.arrays import ArrayFormatError, Layout, layout
from flmon.flower.shapes import MIN_ESTABLISHING_VOTES as MIN_ESTABLISHING_VOTES
from flmon.flower.shapes import SCALAR as SCALAR
from flmon.flower.shapes import MetricShape as MetricShape
from flmon.flower.shapes import judge
from flmon.flower.shapes import metric_shape as metric_shape

QUARANTINE_REASONS = (
    "array_records",
    "metric_records",
    "oversized_metrics",
    "non_finite_metrics",
    "invalid_weight",
    "inconsistent_metric_keys",
    "inconsistent_metric_types",
    "undecided_metric_keys",
    "outlying_weight",
    "undecided_weights",
    "inconsistent_array_keys",
    "malformed_arrays",
    "non_finite_arrays",
)
"""Every reason a reply can be set aside for (``fl_replies_quarantined_total{reason}``)."""

@dataclass(frozen=True)
class Limits:
    """Bounds on what one reply may hold.

    Attributes
    ----------
    max_metric_keys
        Keys per MetricRecord; a reply with more is ``oversized_metrics``.
    max_list_length
        Elements per list value; a longer list is ``oversized_metrics``.
    max_weight
        Largest accepted weight (``weighted_by_key`` value).
    max_weight_ratio
        Largest accepted ratio of a weight to the round's median weight (3 or more
        replies), or between the two weights of a round of two.
    """

    max_metric_keys: int = 256
    max_list_length: int = 4096
    max_weight: float = 1e12
    max_weight_ratio: float = 1000.0


@dataclass
class Triage:
    """Replies sorted for aggregation.

    Attributes
    ----------
    kept
        Replies to aggregate.
    errors
        Error replies (passed on: strategies log and skip them).
    quarantined
        Replies set aside, each with its reason.
    reference
        The metric shape that judges later rounds of the phase, or None (see
        :func:`triage`).
    """

    kept: list[Message] = field(default_factory=list)
    errors: list[Message] = field(default_factory=list)
    quarantined: list[tuple[Message, str]] = field(default_factory=list)
    reference: MetricShape | None = None


def _finite(value: Any) -> bool:
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def oversized(metrics: Mapping[str, Any], limits: Limits) -> bool:
    """Whether ``metrics`` has more keys, or a longer list, than ``limits`` allow."""
    if len(metrics) > limits.max_metric_keys:
        return True
    return any(isinstance(v, list) and len(v) > limits.max_list_length
               for v in metrics.values())


def weight_of(metrics: Mapping[str, Any], key: str, limits: Limits = Limits()) -> float | None:
    """The reply's weight under ``key`` if it is acceptable, else None.

    Acceptable: a number (not a bool, not a list), finite, > 0 and <= ``limits.max_weight``
    (:func:`flmon.flower.weights.accepted`, the rule the legacy guard applies too).
    """
    return weights.accepted(metrics.get(key), limits.max_weight)


def expected_layouts(arrays: ArrayRecord) -> dict[str, Layout | None]:
    """Layouts of the global arrays sent in a round, by key (the server's own: trusted).

    None for an array that is not a plain numeric ``.npy`` buffer (its key is still
    checked, its contents are not).
    """
    found: dict[str, Layout | None] = {}
    for key, array in arrays.items():
        try:
            found[key] = layout(array)
        except ArrayFormatError:
            found[key] = None
    return found


def _array_problem(arrays: ArrayRecord, expected: Mapping[str, Layout | None]) -> str | None:
    if list(arrays.keys()) != list(expected):
        return "inconsistent_array_keys"
    for key, array in arrays.items():
        want = expected[key]
        if want is None:
            continue
        try:
            got = layout(array)
        except ArrayFormatError:
            return "malformed_arrays"
        if got.dtype != want.dtype or got.shape != want.shape:
            return "malformed_arrays"
    return None


def triage(
    replies: Iterable[Message],
    is_train: bool,
    *,
    global_arrays: ArrayRecord | None = None,
    weighted_by_key: str | None = None,
    reference: MetricShape | None = None,
    selected: int | None = None,
    limits: Limits = Limits(),
) -> Triage:
    """Split one phase's replies into kept, error and quarantined ones.

    A pure function of its arguments: it reads the Messages and changes none of them.

    Parameters
    ----------
    replies
        The round's replies for one phase (train or evaluate).
    is_train
        Train replies must also carry exactly one ArrayRecord, matching ``global_arrays``.
    global_arrays
        The global ArrayRecord sent in this round (train): the keys, dtypes and shapes
        replies must have. None skips the array checks.
    weighted_by_key
        The strategy's weighting key (FedAvg's ``weighted_by_key``); its value must be an
        acceptable weight (see :func:`weight_of`). None skips the weight checks.
    reference
        The metric shape established in an earlier round of this phase (the first
        :attr:`Triage.reference` that was not None), or None.
    selected
        How many nodes the phase was sent to (None: unknown). Without a ``reference``, a
        shape shared by a single reply settles the round only if no other node was asked
        (or every other reply was set aside on its own merits): a lone reply whose peers
        failed or timed out is not a majority.
    limits
        Bounds on keys, list lengths and weights.

    Returns
    -------
    Triage
        ``kept`` preserves the order of ``replies``; ``reference`` is the shape that
        judges later rounds: ``reference`` itself when given, else the round's majority
        shape if it was backed by enough replies, else None.
    """
    result = Triage()
    expected = expected_layouts(global_arrays) if (
        is_train and global_arrays is not None) else None
    candidates: list[tuple[Message, MetricShape, float | None]] = []
    for msg in replies:
        if msg.has_error():
            result.errors.append(msg)
            continue
        reason, shape, weight = _check(msg, is_train, expected, weighted_by_key, limits)
        if reason is not None:
            result.quarantined.append((msg, reason))
        else:
            candidates.append((msg, shape, weight))
    if not candidates:
        return result
    verdict = judge([shape for _, shape, _ in candidates], reference, selected,
                    len(result.quarantined))
    agreed: list[tuple[Message, float | None]] = []
    for (msg, _, weight), reason in zip(candidates, verdict.reasons, strict=True):
        if reason is None:
            agreed.append((msg, weight))
        else:
            result.quarantined.append((msg, reason))
    result.reference = verdict.reference
    if weighted_by_key is None:
        result.kept = [msg for msg, _ in agreed]
        return result
    problems = weights.judge([w for _, w in agreed if w is not None], limits.max_weight_ratio)
    for (msg, _), problem in zip(agreed, problems, strict=True):
        if problem is None:
            result.kept.append(msg)
        else:
            result.quarantined.append((msg, problem))
    return result


def _check(
    msg: Message,
    is_train: bool,
    expected: Mapping[str, Layout | None] | None,
    weighted_by_key: str | None,
    limits: Limits,
) -> tuple[str | None, MetricShape, float | None]:
    """One reply on its own: (reason or None, its metric shape, its weight)."""
    content = msg.content
    empty: MetricShape = frozenset()
    if is_train and len(content.array_records) != 1:
        return "array_records", empty, None
    if len(content.metric_records) != 1:
        return "metric_records", empty, None
    metrics = next(iter(content.metric_records.values()))
    if oversized(metrics, limits):
        return "oversized_metrics", empty, None
    if not all(_finite(v) for v in metrics.values()):
        return "non_finite_metrics", empty, None
    weight = None
    if weighted_by_key is not None:
        weight = weight_of(metrics, weighted_by_key, limits)
        if weight is None:
            return "invalid_weight", empty, None
    if expected is not None:
        problem = _array_problem(next(iter(content.array_records.values())), expected)
        if problem is not None:
            return problem, empty, None
    return None, metric_shape(metrics), weight
