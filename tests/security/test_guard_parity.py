"""The Message API guard (``triage``) and the legacy guard (``legacy_guard.check``) decide
the metric key set alike: one table of key-set patterns, each with its expected verdict
per reply and round, run through both guards with the history each one carries.

Verdicts: ``K`` kept; ``I`` inconsistent_metric_keys; ``T`` inconsistent_metric_types;
``U`` undecided_metric_keys; ``N`` non_finite_metrics; ``O`` oversized_metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters

from flmon.flower import legacy_guard
from flmon.flower.replies import Limits, triage
from flmon.flower.shapes import MetricShape
from tests.core.ingrid import InProcessGrid

VERDICTS = {"K": None, "I": "inconsistent_metric_keys", "T": "inconsistent_metric_types",
            "U": "undecided_metric_keys", "N": "non_finite_metrics",
            "O": "oversized_metrics"}

H: dict[str, Any] = {"loss": 0.3, "accuracy": 0.9}
X: dict[str, Any] = {"!": 1.0}
A: dict[str, Any] = {"a": 1.0}
HX: dict[str, Any] = {**H, "!": 1.0}
F: dict[str, Any] = {"loss": 0.3, "f1": 0.5}
C: dict[str, Any] = {"loss": 0.3, "auc": 0.7}
NEW: dict[str, Any] = {"!": 1.0, "a": 1.0, "accuracy": 0.9}
NAN: dict[str, Any] = {"loss": float("nan"), "accuracy": 0.9}
SCALAR_CURVE: dict[str, Any] = {**H, "curve": 0.5}
LIST_CURVE: dict[str, Any] = {**H, "curve": [0.5, 0.5]}
FLOOD: dict[str, Any] = {**H, **{f"k{i}": 1.0 for i in range(5000)}}

Round = tuple[int | None, list[dict[str, Any]], str]
"""(nodes the phase was sent to or None, each reply's metrics, expected verdicts)."""

PATTERNS: dict[str, list[Round]] = {
    "1v1": [(None, [H, X], "UU")],
    "1v1-sorts-first": [(None, [H, A], "UU")],
    "2v2": [(None, [H, H, X, X], "UUUU")],
    "3v3-extra-key": [(None, [H, H, H, HX, HX, HX], "UUUUUU")],
    "plurality": [(None, [H, H, F, F, C], "UUUUU")],
    "strict-majority-3-of-5": [(None, [H, H, H, F, X], "KKKII")],
    "history-then-tie": [(None, [H, H], "KK"), (None, [H, X], "KI")],
    "history-beats-later-majority": [(None, [H, H, H], "KKK"), (None, [H, NEW, NEW], "KII")],
    "history-none-match": [(None, [H, H], "KK"), (None, [X, X], "II")],
    "lone-reply-peer-failed": [(2, [H], "U")],
    "lone-reply-sets-no-rule": [(1, [H], "K"), (2, [H, X], "UU")],
    "set-aside-on-merits-do-not-dilute": [(4, [H, H, NAN, NAN], "KKNN")],
    "set-aside-on-merits-do-not-force-a-tie": [(2, [H, NAN], "KN")],
    "3v3-thousands-of-extra-keys": [(None, [H, H, H, FLOOD, FLOOD, FLOOD], "KKKOOO")],
    "1v1-thousands-of-extra-keys": [(2, [H, FLOOD], "KO")],
    "types": [(None, [SCALAR_CURVE, SCALAR_CURVE, LIST_CURVE], "KKT")],
}

SHAPES = ((2, 2), (3,))


def _message_verdicts(rounds: Sequence[Round]) -> list[str]:
    grid = InProcessGrid({})
    global_arrays = ArrayRecord([np.zeros(s, np.float32) for s in SHAPES])
    reference: MetricShape | None = None
    out = []
    for selected, metrics, _ in rounds:
        replies = []
        for node, values in enumerate(metrics, start=1):
            sent = grid.create_message(RecordDict(), "train", node, "1")
            content = RecordDict({
                "arrays": ArrayRecord([np.ones(s, np.float32) for s in SHAPES]),
                "metrics": MetricRecord({**values, "num-examples": 10})})
            replies.append(Message(content=content, reply_to=sent))
        sorted_ = triage(replies, True, global_arrays=global_arrays,
                         weighted_by_key="num-examples", reference=reference,
                         selected=selected)
        reference = reference or sorted_.reference
        reasons = {m.metadata.src_node_id: r for m, r in sorted_.quarantined}
        out.append(_letters(reasons, len(metrics)))
    return out


class _Proxy:
    def __init__(self, node: int) -> None:
        self.cid, self.node_id = str(node), node


def _legacy_verdicts(rounds: Sequence[Round]) -> list[str]:
    global_arrays = [np.zeros(s, np.float32) for s in SHAPES]
    reference: MetricShape | None = None
    out = []
    for selected, metrics, _ in rounds:
        results: list[Any] = []
        for node, values in enumerate(metrics, start=1):
            res = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(
                [np.ones(s, np.float32) for s in SHAPES]), 10, dict(values))
            results.append((_Proxy(node), res))
        checked = legacy_guard.check(results, {i: r.metrics for i, (_, r) in
                                               enumerate(results)}, global_arrays,
                                     reference=reference, selected=selected)
        reference = reference or checked.reference
        reasons = {legacy_guard.node_id(p): r for p, r in checked.quarantined}
        out.append(_letters(reasons, len(metrics)))
    return out


def _letters(reasons: dict[int, str], count: int) -> str:
    by_reason = {reason: letter for letter, reason in VERDICTS.items()}
    return "".join(by_reason[reasons[node]] if node in reasons else "K"
                   for node in range(1, count + 1))


@pytest.mark.parametrize("name", list(PATTERNS))
@pytest.mark.parametrize("guard", [_message_verdicts, _legacy_verdicts],
                         ids=["message", "legacy"])
def test_both_guards_decide_each_key_set_pattern_as_expected(guard: Any, name: str) -> None:
    rounds = PATTERNS[name]
    assert guard(rounds) == [expected for _, _, expected in rounds]


# -- weights --------------------------------------------------------------------------
# The same reply (honest metrics and arrays) with the weight as the only difference: the
# Message API's ``num-examples`` and the legacy ``num_examples``. Verdicts as above plus
# ``W`` invalid_weight, ``L`` outlying_weight, ``D`` undecided_weights.
WEIGHT_VERDICTS = {**VERDICTS, "W": "invalid_weight", "L": "outlying_weight",
                   "D": "undecided_weights"}

WEIGHT_PATTERNS: dict[str, tuple[list[int | float], str]] = {
    "zero": ([10, 10, 0], "KKW"),
    "negative": ([10, 10, -100], "KKW"),
    "sum-to-one": ([125, 125, -249], "KKW"),
    "above-max": ([10, 10, 10**13], "KKW"),
    "at-max": ([10**12, 10**12, 10**12], "KKK"),
    "nan": ([10, 10, float("nan")], "KKN"),
    "inf": ([10, 10, float("inf")], "KKN"),
    "float": ([2.5, 3.5, 4.0], "KKK"),
    "3-outlier": ([50, 50, 50_001], "KKL"),
    "3-at-ratio": ([50, 50, 50_000], "KKK"),
    "4-even-median": ([10, 10, 20, 15_001], "KKKL"),
    "5-two-outliers": ([10, 10, 10, 10**5, 10**5], "KKKLL"),
    "invalid-then-outlier": ([50, 50, 0, 50_001], "KKWL"),
    "2-apart": ([50, 50_001], "DD"),
    "2-at-ratio": ([50, 50_000], "KK"),
    "2-one-invalid": ([50, 0], "KW"),
}


def _message_weight_verdicts(weights: Sequence[int | float]) -> str:
    grid = InProcessGrid({})
    replies = []
    for node, weight in enumerate(weights, start=1):
        sent = grid.create_message(RecordDict(), "train", node, "1")
        content = RecordDict({
            "arrays": ArrayRecord([np.ones(s, np.float32) for s in SHAPES]),
            "metrics": MetricRecord({**H, "num-examples": weight})})
        replies.append(Message(content=content, reply_to=sent))
    sorted_ = triage(replies, True,
                     global_arrays=ArrayRecord([np.zeros(s, np.float32) for s in SHAPES]),
                     weighted_by_key="num-examples")
    reasons = {m.metadata.src_node_id: r for m, r in sorted_.quarantined}
    return _weight_letters(reasons, len(weights))


def _legacy_weight_verdicts(weights: Sequence[Any]) -> str:
    results: list[Any] = [
        (_Proxy(node), FitRes(Status(Code.OK, ""), ndarrays_to_parameters(
            [np.ones(s, np.float32) for s in SHAPES]), weight, dict(H)))
        for node, weight in enumerate(weights, start=1)]
    checked = legacy_guard.check(results, {i: r.metrics for i, (_, r) in enumerate(results)},
                                 [np.zeros(s, np.float32) for s in SHAPES])
    reasons = {legacy_guard.node_id(p): r for p, r in checked.quarantined}
    kept = {legacy_guard.node_id(p) for p, _ in checked.kept}
    assert set(checked.weights) == kept
    return _weight_letters(reasons, len(weights))


def _weight_letters(reasons: dict[int, str], count: int) -> str:
    by_reason = {reason: letter for letter, reason in WEIGHT_VERDICTS.items()}
    return "".join(by_reason[reasons[node]] if node in reasons else "K"
                   for node in range(1, count + 1))


@pytest.mark.parametrize("name", list(WEIGHT_PATTERNS))
@pytest.mark.parametrize("guard", [_message_weight_verdicts, _legacy_weight_verdicts],
                         ids=["message", "legacy"])
def test_both_guards_decide_each_weight_pattern_as_expected(guard: Any, name: str) -> None:
    weights, expected = WEIGHT_PATTERNS[name]
    assert guard(weights) == expected


@pytest.mark.parametrize("weight", [True, False, "50", None, [50], 10**400],
                         ids=["true", "false", "text", "none", "list", "beyond-float"])
def test_the_legacy_guard_refuses_num_examples_that_are_not_numbers(weight: Any) -> None:
    """What a legacy ``FitRes`` can hold in process (a bool is an int to Python, and
    ``NumPyClient`` lets it through; Flower's MetricRecord refuses it on the wire)."""
    assert _legacy_weight_verdicts([10, 10, weight]) == "KKW"


def test_the_legacy_guard_takes_its_weight_bounds_from_limits() -> None:
    results: list[Any] = [
        (_Proxy(node), FitRes(Status(Code.OK, ""), ndarrays_to_parameters(
            [np.ones(s, np.float32) for s in SHAPES]), weight, dict(H)))
        for node, weight in enumerate([50, 50, 501, 10**6], start=1)]
    checked = legacy_guard.check(results, {i: r.metrics for i, (_, r) in enumerate(results)},
                                 [np.zeros(s, np.float32) for s in SHAPES],
                                 limits=Limits(max_weight=10**5, max_weight_ratio=10.0))
    assert sorted((legacy_guard.node_id(p), r) for p, r in checked.quarantined) == [
        (3, "outlying_weight"), (4, "invalid_weight")]
    assert checked.weights == {1: 50.0, 2: 50.0}
