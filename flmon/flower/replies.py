"""Checks on reply Messages before they reach the wrapped strategy.

Flower's message strategies raise ``InconsistentMessageReplies`` (which ends the
ServerApp) when one reply has a second MetricRecord or different metric keys, and
average a NaN accuracy into a NaN aggregate. One misbehaving or hostile client could so
stop a whole federation. :func:`triage` sets such replies aside, with a reason, and
keeps the rest.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flwr.app import Message

QUARANTINE_REASONS = (
    "array_records",
    "metric_records",
    "non_finite_metrics",
    "inconsistent_metric_keys",
    "inconsistent_array_keys",
    "malformed_arrays",
)


@dataclass
class Triage:
    """Replies sorted for aggregation."""

    kept: list[Message] = field(default_factory=list)
    errors: list[Message] = field(default_factory=list)
    quarantined: list[tuple[Message, str]] = field(default_factory=list)


def _finite(value: Any) -> bool:
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def _majority_keys(key_sets: Sequence[frozenset[str]], preferred: str | None) -> frozenset[str]:
    counts = Counter(key_sets)
    best = max(counts.values())
    candidates = sorted(
        (keys for keys, n in counts.items() if n == best), key=lambda k: tuple(sorted(k))
    )
    for keys in candidates:
        if preferred is not None and preferred in keys:
            return keys
    return candidates[0]


def triage(
    replies: Iterable[Message],
    is_train: bool,
    expected_array_keys: Sequence[str] | None = None,
    weighted_by_key: str | None = None,
) -> Triage:
    """Split replies into kept, error and quarantined ones.

    Parameters
    ----------
    replies
        The round's replies for one phase.
    is_train
        Train replies must also carry exactly one ArrayRecord with the keys sent.
    expected_array_keys
        Keys of the global ArrayRecord sent in this round (train), if known.
    weighted_by_key
        The strategy's weighting key; breaks ties when choosing the majority key set.
    """
    result = Triage()
    candidates: list[tuple[Message, frozenset[str]]] = []
    for msg in replies:
        if msg.has_error():
            result.errors.append(msg)
            continue
        content = msg.content
        if is_train and len(content.array_records) != 1:
            result.quarantined.append((msg, "array_records"))
            continue
        if len(content.metric_records) != 1:
            result.quarantined.append((msg, "metric_records"))
            continue
        metrics = next(iter(content.metric_records.values()))
        if not all(_finite(v) for v in metrics.values()):
            result.quarantined.append((msg, "non_finite_metrics"))
            continue
        if is_train and expected_array_keys is not None:
            arrays = next(iter(content.array_records.values()))
            if list(arrays.keys()) != list(expected_array_keys):
                result.quarantined.append((msg, "inconsistent_array_keys"))
                continue
        candidates.append((msg, frozenset(metrics.keys())))
    if candidates:
        majority = _majority_keys([keys for _, keys in candidates], weighted_by_key)
        for msg, keys in candidates:
            if keys == majority:
                result.kept.append(msg)
            else:
                result.quarantined.append((msg, "inconsistent_metric_keys"))
    return result
