"""``triage`` and ``arrays.layout`` as pure functions: each rule at its boundary."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Error, Message, MetricRecord, RecordDict

from flmon.flower.arrays import ArrayFormatError, layout, view
from flmon.flower.replies import (
    SCALAR,
    Limits,
    metric_shape,
    triage,
    weight_of,
)
from tests.core.ingrid import InProcessGrid
from tests.security.guardkit import raw_array

GLOBAL = ArrayRecord([np.zeros((2, 2), np.float32), np.zeros(3, np.float32)])
METRICS: dict[str, Any] = {"loss": 0.3, "num-examples": 10}


def _reply(node: int, metrics: dict[str, Any] | None = None,
           arrays: ArrayRecord | None = None, extra: RecordDict | None = None) -> Message:
    grid = InProcessGrid({})
    sent = grid.create_message(RecordDict(), "train", node, "1")
    content = RecordDict({"arrays": arrays if arrays is not None else ArrayRecord(
        [np.ones((2, 2), np.float32), np.ones(3, np.float32)]),
        "metrics": MetricRecord(dict(METRICS if metrics is None else metrics))})
    for key, value in (extra or {}).items():
        content[key] = value
    return Message(content=content, reply_to=sent)


def _error(node: int) -> Message:
    grid = InProcessGrid({})
    sent = grid.create_message(RecordDict(), "train", node, "1")
    return Message(Error(code=0, reason="x"), reply_to=sent)


def _run(replies: list[Message], **kw: Any) -> tuple[list[int], dict[int, str], Any]:
    kw.setdefault("global_arrays", GLOBAL)
    kw.setdefault("weighted_by_key", "num-examples")
    out = triage(replies, True, **kw)
    return ([m.metadata.src_node_id for m in out.kept],
            {m.metadata.src_node_id: r for m, r in out.quarantined}, out)


def test_kept_preserves_order_and_errors_pass_through() -> None:
    replies = [_reply(3), _error(9), _reply(1), _reply(2)]
    kept, set_aside, out = _run(replies)
    assert kept == [3, 1, 2] and set_aside == {}
    assert [m.metadata.src_node_id for m in out.errors] == [9]
    assert out.reference == metric_shape(METRICS)


def test_triage_changes_no_message() -> None:
    replies = [_reply(1), _reply(2, {"!": 1.0, "num-examples": 10})]
    before = [dict(m.content.metric_records["metrics"]) for m in replies]
    _run(replies)
    assert [dict(m.content.metric_records["metrics"]) for m in replies] == before


def test_metric_shape_marks_numbers_and_list_lengths() -> None:
    assert metric_shape({"a": 1, "b": [1.0, 2.0], "c": []}) == frozenset(
        {("a", SCALAR), ("b", 2), ("c", 0)})


@pytest.mark.parametrize(("count", "kept"), [(3, [1, 2]), (4, [1, 2])])
def test_key_cap_is_inclusive(count: int, kept: list[int]) -> None:
    limits = Limits(max_metric_keys=3)
    many = {**METRICS, **{f"k{i}": 1.0 for i in range(count - 2)}}
    got, set_aside, _ = _run([_reply(1), _reply(2), _reply(3, many)], limits=limits)
    assert got == kept
    assert set_aside == {3: "oversized_metrics" if count > 3 else "inconsistent_metric_keys"}


def test_list_length_cap_is_inclusive() -> None:
    limits = Limits(max_list_length=2)
    at = {**METRICS, "c": [1.0, 2.0]}
    over = {**METRICS, "c": [1.0, 2.0, 3.0]}
    got, set_aside, _ = _run([_reply(1, at), _reply(2, at), _reply(3, over)], limits=limits)
    assert got == [1, 2] and set_aside == {3: "oversized_metrics"}


def test_a_reference_outvotes_any_count() -> None:
    hostile = {"!": 1.0, "num-examples": 10}
    reference = metric_shape(METRICS)
    got, set_aside, out = _run([_reply(1), _reply(2, hostile), _reply(3, hostile)],
                               reference=reference)
    assert got == [1]
    assert set_aside == {2: "inconsistent_metric_keys", 3: "inconsistent_metric_keys"}
    assert out.reference == reference


def test_with_a_reference_and_no_match_nothing_is_kept() -> None:
    hostile = {"!": 1.0, "num-examples": 10}
    got, _, out = _run([_reply(2, hostile), _reply(3, hostile)],
                       reference=metric_shape(METRICS))
    assert got == [] and out.reference == metric_shape(METRICS)


def test_two_agreeing_replies_settle_a_round_whatever_the_failures() -> None:
    got, _, out = _run([_reply(1), _reply(2)], selected=5)
    assert got == [1, 2] and out.reference is not None


def test_a_lone_reply_settles_nothing_when_other_nodes_were_asked() -> None:
    got, set_aside, out = _run([_reply(1)], selected=2)
    assert got == [] and set_aside == {1: "undecided_metric_keys"}
    assert out.reference is None


def test_a_lone_reply_is_kept_when_its_peers_were_set_aside_on_their_merits() -> None:
    nan = {**METRICS, "loss": float("nan")}
    got, set_aside, out = _run([_reply(1), _reply(2, nan)], selected=2)
    assert got == [1] and set_aside == {2: "non_finite_metrics"}
    assert out.reference is None


def test_replies_set_aside_on_their_merits_do_not_dilute_the_majority() -> None:
    nan = {**METRICS, "loss": float("nan")}
    got, set_aside, _ = _run([_reply(1), _reply(2), _reply(3, nan), _reply(4, nan)],
                             selected=4)
    assert got == [1, 2] and set_aside == {3: "non_finite_metrics", 4: "non_finite_metrics"}


@pytest.mark.parametrize("selected", [1, None])
def test_a_lone_reply_is_kept_but_sets_no_rule(selected: int | None) -> None:
    got, _, out = _run([_reply(1)], selected=selected)
    assert got == [1] and out.reference is None


def test_two_agreeing_replies_set_the_rule() -> None:
    _, _, out = _run([_reply(1), _reply(2), _reply(3, {"!": 1.0, "num-examples": 1})])
    assert out.reference == metric_shape(METRICS)


@pytest.mark.parametrize(("value", "ok"), [
    (1, True), (0.5, True), (1e12, True), (1e12 * (1 + 1e-15), False), (0, False),
    (-1, False), (float("nan"), False), (float("inf"), False), ([1], False),
    (None, False), (True, False),
])
def test_weight_of(value: Any, ok: bool) -> None:
    metrics = {} if value is None else {"w": value}
    assert (weight_of(metrics, "w") is not None) is ok
    if ok:
        assert weight_of(metrics, "w") == float(value)


def test_missing_weight_key_is_an_invalid_weight() -> None:
    got, set_aside, _ = _run([_reply(1), _reply(2), _reply(3, {"loss": 0.3})])
    assert got == [1, 2] and set_aside == {3: "invalid_weight"}


def test_no_weight_key_no_weight_checks() -> None:
    got, _, _ = _run([_reply(1, {"loss": 0.3}), _reply(2, {"loss": 0.3})],
                     weighted_by_key=None)
    assert got == [1, 2]


@pytest.mark.parametrize(("weights", "kept"), [
    ([10, 10, 10_000], [1, 2, 3]),          # exactly 1000x the median: kept
    ([10, 10, 10_001], [1, 2]),             # above: outlying
    ([10, 20, 30, 25_001], [1, 2, 3]),      # even count: median 25 -> 25,000 is the cap
    ([10, 20, 30, 25_000], [1, 2, 3, 4]),
    ([1, 10_000, 10_000], [1, 2, 3]),       # a small weight is never outlying
    ([10, 20, 19_000], [1, 2, 3]),          # odd count: the middle value, 20
])
def test_outlying_weights_against_the_median(weights: list[int], kept: list[int]) -> None:
    replies = [_reply(i + 1, {**METRICS, "num-examples": w}) for i, w in enumerate(weights)]
    got, set_aside, _ = _run(replies)
    assert got == kept
    assert set(set_aside.values()) <= {"outlying_weight"}


@pytest.mark.parametrize(("weights", "kept"), [([10, 10_000], [1, 2]), ([10, 10_001], []),
                                               ([10_001, 10], [])])
def test_two_weights_too_far_apart_are_undecided(weights: list[int], kept: list[int]) -> None:
    replies = [_reply(i + 1, {**METRICS, "num-examples": w}) for i, w in enumerate(weights)]
    got, set_aside, _ = _run(replies)
    assert got == kept
    assert set(set_aside.values()) <= {"undecided_weights"}
    assert len(set_aside) == 2 - len(kept)


def test_a_single_reply_has_no_weight_ratio() -> None:
    got, _, _ = _run([_reply(1, {**METRICS, "num-examples": 10**11})], selected=1)
    assert got == [1]


@pytest.mark.parametrize(("extra", "reason"), [
    ("second-metrics", "metric_records"), ("second-arrays", "array_records"),
])
def test_record_counts(extra: str, reason: str) -> None:
    more = RecordDict({"m2": MetricRecord({"x": 1.0})} if extra == "second-metrics" else
                      {"a2": ArrayRecord([np.zeros(1)])})
    got, set_aside, _ = _run([_reply(1), _reply(2), _reply(3, extra=more)])
    assert got == [1, 2] and set_aside == {3: reason}


def test_evaluate_replies_need_no_arrays() -> None:
    grid = InProcessGrid({})
    replies = []
    for node in (1, 2):
        sent = grid.create_message(RecordDict(), "evaluate", node, "1")
        replies.append(Message(RecordDict({"metrics": MetricRecord(METRICS)}), reply_to=sent))
    out = triage(replies, False, weighted_by_key="num-examples")
    assert len(out.kept) == 2


def test_array_keys_order_matters() -> None:
    swapped = ArrayRecord({"1": Array(np.ones(3, np.float32)),
                           "0": Array(np.ones((2, 2), np.float32))})
    got, set_aside, _ = _run([_reply(1), _reply(2), _reply(3, arrays=swapped)])
    assert got == [1, 2] and set_aside == {3: "inconsistent_array_keys"}


def test_another_float_dtype_is_malformed() -> None:
    wide = ArrayRecord([np.ones((2, 2), np.float64), np.ones(3, np.float32)])
    got, set_aside, _ = _run([_reply(1), _reply(2), _reply(3, arrays=wide)])
    assert got == [1, 2] and set_aside == {3: "malformed_arrays"}


def test_an_unreadable_global_array_skips_its_content_check_only() -> None:
    odd = ArrayRecord({"0": Array(dtype="x", shape=(1,), stype="torch", data=b"zz"),
                       "1": Array(np.zeros(3, np.float32))})
    mine = ArrayRecord({"0": Array(np.ones(5)), "1": Array(np.ones(3, np.float32))})
    bad = ArrayRecord({"0": Array(np.ones(5)), "1": Array(np.ones(4, np.float32))})
    got, set_aside, _ = _run([_reply(1, arrays=mine), _reply(2, arrays=mine),
                              _reply(3, arrays=bad)], global_arrays=odd)
    assert got == [1, 2] and set_aside == {3: "malformed_arrays"}


# -- arrays.layout -----------------------------------------------------------------------
@pytest.mark.parametrize("array", [
    np.array(["a", "b"]), np.array([1 + 1j]), np.array([(1, 2.0)], dtype="i4,f8"),
    np.array([b"x"]), np.array([np.datetime64("2026-01-01")]),
], ids=["text", "complex", "structured", "bytes", "datetime"])
def test_layout_rejects_non_numeric_dtypes(array: np.ndarray) -> None:
    with pytest.raises(ArrayFormatError):
        layout(Array(array))


@pytest.mark.parametrize("array", [np.arange(6, dtype=np.int64).reshape(2, 3),
                                   np.array([True, False]), np.zeros(0, np.float16),
                                   np.arange(4, dtype=np.uint8)])
def test_layout_accepts_numeric_dtypes(array: np.ndarray) -> None:
    lay = layout(Array(array))
    assert lay.dtype == array.dtype and lay.shape == array.shape
    assert np.array_equal(view(Array(array)), array.ravel())


def test_view_is_c_order_for_fortran_arrays_and_a_copy_free_view_otherwise() -> None:
    f = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert layout(Array(f)).fortran_order
    assert np.array_equal(view(Array(f)), np.arange(6, dtype=np.float32))
    c = Array(np.arange(6, dtype=np.float32))
    assert not view(c).flags.owndata and not view(c).flags.writeable


@pytest.mark.parametrize("mangle", ["truncated", "padded", "stype", "magic", "version",
                                    "header", "long-header", "not-bytes"])
def test_layout_rejects_mangled_buffers(mangle: str) -> None:
    good = raw_array(np.zeros(4, np.float32))
    data = good.data
    if mangle == "truncated":
        good.data = data[:-1]
    elif mangle == "padded":
        good.data = data + b"\0"
    elif mangle == "stype":
        good.stype = "torch.Tensor"
    elif mangle == "magic":
        good.data = b"\x93NUMPZ" + data[6:]
    elif mangle == "version":
        good.data = data[:6] + b"\x03\x00" + data[8:]
    elif mangle == "header":
        good.data = data[:10] + b"[" + data[11:]
    elif mangle == "long-header":
        good.data = data[:8] + (20_000).to_bytes(2, "little") + data[10:]
    else:
        good.data = bytearray(data)  # type: ignore[assignment]
    with pytest.raises(ArrayFormatError):
        layout(good)


def test_layout_reads_npy_version_2() -> None:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.arange(3, dtype=np.float32), version=(2, 0))
    array = Array(dtype="float32", shape=(3,), stype="numpy.ndarray", data=buffer.getvalue())
    assert layout(array).shape == (3,)
    assert np.array_equal(view(array), np.arange(3, dtype=np.float32))


def test_declared_dtype_and_shape_are_not_trusted() -> None:
    forged = raw_array(np.zeros(5, np.float64), dtype="float32", shape=(2, 2))
    lay = layout(forged)
    assert lay.dtype == np.float64 and lay.shape == (5,)


def test_default_limits_at_their_boundaries() -> None:
    at_keys = {**METRICS, **{f"k{i}": 1.0 for i in range(256 - len(METRICS))}}
    over_keys = {**at_keys, "one-more": 1.0}
    got, set_aside, _ = _run([_reply(1, at_keys), _reply(2, at_keys), _reply(3, over_keys)])
    assert got == [1, 2] and set_aside == {3: "oversized_metrics"}
    at_list = {**METRICS, "c": [0.5] * 4096}
    over_list = {**METRICS, "c": [0.5] * 4097}
    got, set_aside, _ = _run([_reply(1, at_list), _reply(2, at_list), _reply(3, over_list)])
    assert got == [1, 2] and set_aside == {3: "oversized_metrics"}
    assert Limits() == Limits(max_metric_keys=256, max_list_length=4096, max_weight=1e12,
                              max_weight_ratio=1000.0)


def test_a_nan_inside_a_list_is_non_finite() -> None:
    lists = {**METRICS, "c": [0.5, 0.5]}
    nan = {**METRICS, "c": [0.5, float("nan")]}
    got, set_aside, _ = _run([_reply(1, lists), _reply(2, lists), _reply(3, nan)])
    assert got == [1, 2] and set_aside == {3: "non_finite_metrics"}


def test_evaluate_replies_ignore_global_arrays() -> None:
    grid = InProcessGrid({})
    replies = [Message(RecordDict({"metrics": MetricRecord(METRICS)}),
                       reply_to=grid.create_message(RecordDict(), "evaluate", n, "1"))
               for n in (1, 2)]
    out = triage(replies, False, global_arrays=GLOBAL, weighted_by_key="num-examples")
    assert len(out.kept) == 2 and not out.quarantined


def test_the_weight_bound_comes_from_the_limits() -> None:
    heavy = {**METRICS, "num-examples": 1000}
    got, set_aside, _ = _run([_reply(1), _reply(2), _reply(3, heavy)],
                             limits=Limits(max_weight=100))
    assert got == [1, 2] and set_aside == {3: "invalid_weight"}
