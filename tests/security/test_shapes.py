"""The shape vote on its own: what settles a round, and what the verdict reports."""

from __future__ import annotations

from flmon.flower.shapes import Verdict, judge, metric_shape

A = metric_shape({"accuracy": 0.9, "loss": 0.1})
B = metric_shape({"accuracy": 0.9, "loss": 0.1, "extra": 1.0})


def test_a_lone_reply_out_of_two_asked_settles_nothing() -> None:
    # The other node failed or timed out, and was not set aside on its own merits.
    assert judge([A], None, selected=2) == Verdict(None, None, ("undecided_metric_keys",))


def test_a_lone_reply_settles_when_the_other_was_set_aside_on_its_merits() -> None:
    assert judge([A], None, selected=2, set_aside=1) == Verdict(A, None, (None,))


def test_the_verdict_names_the_shape_the_majority_settled() -> None:
    verdict = judge([A, B, A], None, selected=3)
    assert verdict.settled == A and verdict.reference == A
    assert verdict.reasons == (None, "inconsistent_metric_keys", None)
