"""Checks on legacy results (``FitRes``/``EvaluateRes``) before the wrapped strategy.

A legacy strategy gets ``(ClientProxy, FitRes)`` pairs that Flower has already
converted from the reply Messages. What can stop or poison a legacy run is not the
same as on the Message API: a NaN metric or loss averages into a NaN aggregate, a
``num_examples`` of 0 or less (or NaN) breaks or skews the weighted average, arrays of
the wrong number, shape or dtype, or with non-finite values, make ``aggregate`` raise
or spread NaN, and a client whose metric keys differ from the others' makes a
``fit_metrics_aggregation_fn`` that indexes ``m["accuracy"]`` raise. :func:`check`
sets such results aside, with a reason, and keeps the rest. Results with more metric
keys than :class:`flmon.flower.replies.Limits` allows are ``oversized_metrics`` before
any other check, as on the Message API, so thousands of keys buy no votes.

The metric key set a round is judged against is settled by the same rule as on the
Message API (:func:`flmon.flower.shapes.judge`): the one established in an earlier
round of the phase, else a strict majority backed by at least two results; anything
else (1 vs 1, 2 vs 2, a plurality, a lone result whose peers failed) sets every result
aside as ``undecided_metric_keys``, and the round aggregates nothing.

``num_examples`` is the result's weight, and the client's own claim: it is judged by
the Message API guard's weight rules (:mod:`flmon.flower.weights`). A NaN or infinite
``num_examples`` is ``non_finite_metrics`` (as a NaN weight is on the Message API); one
that is not a number (a bool...), 0 or less, or above ``Limits.max_weight`` (1e12) is
``invalid_weight``; among the results the key-set rule keeps, with three or more a
``num_examples`` above ``Limits.max_weight_ratio`` (1000) times the round's median is
``outlying_weight``, and with two more than that ratio apart both are
``undecided_weights`` (which one lies cannot be told; the round aggregates nothing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.common import EvaluateRes, FitRes, parameters_to_ndarrays
from flwr.server.client_proxy import ClientProxy
from numpy.typing import NDArray

from flmon.flower import weights
from flmon.flower.replies import Limits, oversized
from flmon.flower.shapes import SHAPE_REASONS, MetricShape, judge, metric_shape
from flmon.flower.weights import WEIGHT_REASONS

LEGACY_REASONS: tuple[str, ...] = (
    "oversized_metrics",
    "non_finite_metrics",
    "malformed_arrays",
    *SHAPE_REASONS,
    *WEIGHT_REASONS,
)
"""Reasons (``fl_replies_quarantined_total{reason}``) used on the legacy path."""

Arrays = list[NDArray[Any]]
DEFAULT_LIMITS = Limits()
"""The Message API guard's default bounds on metric keys, list lengths and weights."""


@dataclass
class Checked:
    """Results sorted for aggregation.

    Attributes
    ----------
    kept
        Results to aggregate, in their order.
    arrays
        The decoded arrays of kept train results, by node id (absent under secure
        aggregation).
    quarantined
        Results set aside, each with its reason.
    weights
        The accepted ``num_examples`` of kept results, by node id.
    reference
        The metric shape that judges later rounds of the phase, or None (as
        :attr:`flmon.flower.replies.Triage.reference`).
    """

    kept: list[tuple[ClientProxy, Any]] = field(default_factory=list)
    arrays: dict[int, Arrays] = field(default_factory=dict)
    quarantined: list[tuple[ClientProxy, str]] = field(default_factory=list)
    weights: dict[int, float] = field(default_factory=dict)
    reference: MetricShape | None = None


def node_id(proxy: ClientProxy) -> int:
    """The Flower node id of a proxy (``GridClientProxy.node_id``; ``cid`` otherwise)."""
    value = getattr(proxy, "node_id", None)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(proxy.cid)
    except (TypeError, ValueError):
        return 0


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _array_problem(arrays: Arrays, reference: Sequence[NDArray[Any]]) -> bool:
    if len(arrays) != len(reference):
        return True
    for mine, ref in zip(arrays, reference, strict=True):
        if mine.shape != ref.shape or mine.dtype != ref.dtype:
            return True
        if mine.dtype.kind in "fc" and not np.all(np.isfinite(mine)):
            return True
    return False


def check(
    results: Sequence[tuple[ClientProxy, FitRes | EvaluateRes]],
    metrics: Mapping[int, Mapping[str, Any]],
    global_arrays: Sequence[NDArray[Any]] | None = None,
    secure: bool = False,
    *,
    reference: MetricShape | None = None,
    selected: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Checked:
    """Split legacy results into kept and quarantined ones.

    Parameters
    ----------
    results
        The phase's results (status OK).
    metrics
        Each result's metrics by position in ``results``, flmon telemetry removed.
    global_arrays
        The global arrays sent this round (train); arrays are checked against them.
    secure
        Secure aggregation: every result carries the same aggregate, not its own arrays.
    reference
        The metric shape established in an earlier round of this phase (the first
        :attr:`Checked.reference` that was not None), or None.
    selected
        How many nodes the phase was sent to (None: unknown); as for
        :func:`flmon.flower.replies.triage`.
    limits
        Bounds on metric keys, list lengths and weights (``num_examples``).
    """
    out = Checked()
    candidates: list[tuple[ClientProxy, Any, MetricShape, Arrays | None, float]] = []
    for index, (proxy, res) in enumerate(results):
        values = metrics.get(index, {})
        if oversized(values, limits):
            out.quarantined.append((proxy, "oversized_metrics"))
            continue
        loss = getattr(res, "loss", 0.0)
        if not all(_finite(v) for v in (*values.values(), res.num_examples)) or not (
                isinstance(loss, (int, float)) and math.isfinite(loss)):
            out.quarantined.append((proxy, "non_finite_metrics"))
            continue
        weight = weights.accepted(res.num_examples, limits.max_weight)
        if weight is None:
            out.quarantined.append((proxy, "invalid_weight"))
            continue
        arrays: Arrays | None = None
        if isinstance(res, FitRes) and not secure and global_arrays is not None:
            try:
                arrays = parameters_to_ndarrays(res.parameters)
            except Exception:  # garbage bytes from a client  # noqa: BLE001
                arrays = None
            if arrays is None or _array_problem(arrays, global_arrays):
                out.quarantined.append((proxy, "malformed_arrays"))
                continue
        candidates.append((proxy, res, metric_shape(values), arrays, weight))
    if not candidates:
        return out
    verdict = judge([c[2] for c in candidates], reference, selected, len(out.quarantined))
    agreed = [c for c, reason in zip(candidates, verdict.reasons, strict=True)
              if reason is None]
    out.quarantined.extend((c[0], reason) for c, reason in
                           zip(candidates, verdict.reasons, strict=True) if reason is not None)
    out.reference = verdict.reference
    problems = weights.judge([c[4] for c in agreed], limits.max_weight_ratio)
    for (proxy, res, _, arrays, weight), problem in zip(agreed, problems, strict=True):
        if problem is not None:
            out.quarantined.append((proxy, problem))
            continue
        out.kept.append((proxy, res))
        out.weights[node_id(proxy)] = weight
        if arrays is not None:
            out.arrays[node_id(proxy)] = arrays
    return out
