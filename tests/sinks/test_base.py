"""The bounded queue and its worker: never blocking, counting, retrying, closing on time.

Deadlines are asserted through what ``close`` returns and what the counters say; how long
closing takes is a figure of ``make bench`` (``benchmarks/sinks_bench.py``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from sinkfakes import count

from flmon.metrics import FlmonMetrics
from flmon.sinks import base
from flmon.sinks.base import QueueSettings, QueueSink, SendResult


class Recorder(QueueSink[int]):
    """Delivers everything, or follows ``plan`` (one SendResult factory per attempt)."""

    def __init__(self, *args: object, plan: list[str] | None = None, **kwargs: object) -> None:
        self.delivered: list[int] = []
        self.attempts: list[list[int]] = []
        self.plan = list(plan or [])
        self.release = threading.Event()
        self.entered = threading.Event()
        self.shutdowns = 0
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _send(self, batch: Sequence[int], deadline: float | None) -> SendResult[int]:
        self.attempts.append(list(batch))
        step = self.plan.pop(0) if self.plan else "ok"
        if step == "retry":
            return SendResult(retry=list(batch), error=True)
        if step == "raise":
            raise RuntimeError("endpoint exploded")
        if step == "refuse":
            return SendResult(failed=len(batch), error=True)
        if step == "hang":
            self.entered.set()
            self.release.wait(30)
        self.delivered.extend(batch)
        return SendResult(sent=len(batch))

    def _shutdown(self) -> None:
        self.shutdowns += 1


def test_put_never_blocks_and_counts_drops_when_full(metrics: FlmonMetrics) -> None:
    sink = Recorder("t", QueueSettings(queue_size=3), metrics, start=False)
    accepted = [sink.put(i) for i in range(5)]
    assert accepted == [True, True, True, False, False]
    assert count(metrics, "fl_sink_dropped_total", "t") == 2
    assert sink.queued == 3
    sink.start()
    assert sink.close(2.0)
    assert sink.delivered == [0, 1, 2]
    assert count(metrics, "fl_sink_sent_total", "t") == 3


def test_every_record_is_counted_once_as_sent_or_dropped(
        metrics: FlmonMetrics, quick: QueueSettings) -> None:
    sink = Recorder("t", QueueSettings(queue_size=20, batch_size=5, flush_interval=0.01),
                    metrics)
    for i in range(500):
        sink.put(i)
        if i % 50 == 0:
            time.sleep(0.005)
    assert sink.close(2.0)
    sent = count(metrics, "fl_sink_sent_total", "t")
    dropped = count(metrics, "fl_sink_dropped_total", "t")
    assert sent == len(sink.delivered) == len(set(sink.delivered))
    assert sent + dropped == 500
    assert sink.delivered == sorted(sink.delivered)  # order kept


def test_retries_with_backoff_then_delivers(metrics: FlmonMetrics, quick: QueueSettings) -> None:
    sink = Recorder("t", quick, metrics, plan=["retry", "raise", "ok"])
    sink.put(1)
    sink.put(2)
    assert sink.flush(5.0)
    assert sink.attempts == [[1, 2], [1, 2], [1, 2]]
    assert sink.delivered == [1, 2]
    assert count(metrics, "fl_sink_errors_total", "t") == 2
    assert count(metrics, "fl_sink_dropped_total", "t") == 0
    assert sink.close(1.0)


def test_gives_up_after_max_retries(metrics: FlmonMetrics, quick: QueueSettings) -> None:
    sink = Recorder("t", quick, metrics, plan=["retry"] * 10)
    sink.put(7)
    assert sink.flush(5.0)
    assert len(sink.attempts) == quick.max_retries + 1
    assert count(metrics, "fl_sink_dropped_total", "t") == 1
    assert count(metrics, "fl_sink_errors_total", "t") == quick.max_retries + 1
    assert sink.delivered == []
    sink.close(1.0)


def test_refused_records_are_dropped_without_retry(
        metrics: FlmonMetrics, quick: QueueSettings) -> None:
    sink = Recorder("t", quick, metrics, plan=["refuse"])
    sink.put(1)
    assert sink.flush(5.0)
    assert len(sink.attempts) == 1
    assert count(metrics, "fl_sink_dropped_total", "t") == 1
    sink.close(1.0)


def test_close_returns_by_its_deadline_when_the_send_hangs(metrics: FlmonMetrics) -> None:
    sink = Recorder("t", QueueSettings(batch_size=2, flush_interval=0.01), metrics,
                    plan=["hang"])
    for i in range(5):
        sink.put(i)
    assert sink.entered.wait(10.0)
    assert sink.close(0.5) is False
    # close returned while the send still hangs: it did not wait for it
    assert not sink.release.is_set() and sink.delivered == []
    worker = _worker("t")
    assert worker.is_alive()
    # 2 in flight and 3 queued, all counted dropped
    assert count(metrics, "fl_sink_dropped_total", "t") == 5
    sink.release.set()
    worker.join(10.0)  # the positive signal: the late send returned and the worker ended
    assert not worker.is_alive()
    assert sink.delivered == [0, 1]  # it did arrive late...
    assert count(metrics, "fl_sink_sent_total", "t") == 0  # ...and is not counted
    assert count(metrics, "fl_sink_dropped_total", "t") == 5
    assert sink.close(0.1) is False  # idempotent, same outcome


def _worker(name: str) -> threading.Thread:
    (thread,) = [t for t in threading.enumerate() if t.name == f"flmon-sink-{name}"]
    return thread


def test_put_after_close_is_dropped(metrics: FlmonMetrics) -> None:
    sink = Recorder("t", metrics=metrics)
    assert sink.close(1.0)
    assert sink.put(1) is False
    assert count(metrics, "fl_sink_dropped_total", "t") == 1
    assert sink.shutdowns == 1


def test_closing_flushes_what_is_queued(metrics: FlmonMetrics) -> None:
    sink = Recorder("t", QueueSettings(batch_size=1000, flush_interval=60.0), metrics)
    for i in range(10):
        sink.put(i)
    assert sink.close(2.0)
    assert sink.delivered == list(range(10))


def test_interpreter_exit_closes_live_sinks(metrics: FlmonMetrics) -> None:
    sink = Recorder("t", QueueSettings(batch_size=1000, flush_interval=60.0), metrics)
    sink.put(1)
    base._close_all()
    assert sink.closed
    assert sink.delivered == [1]


def test_sink_counters_need_the_sink_side() -> None:
    with pytest.raises(ValueError, match="sink"):
        Recorder("t", metrics=FlmonMetrics(sides=("server",)))


@pytest.mark.parametrize("bad", [dict(queue_size=0), dict(batch_size=0),
                                 dict(flush_interval=0), dict(max_retries=-1),
                                 dict(initial_backoff=2, max_backoff=1)])
def test_settings_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        QueueSettings(**bad)  # type: ignore[arg-type]


def test_backs_off_between_retries_while_closing(metrics: FlmonMetrics) -> None:
    settings = QueueSettings(flush_interval=0.01, max_retries=100, initial_backoff=0.2,
                             max_backoff=0.2)
    sink = Recorder("t", settings, metrics, plan=["retry"] * 1000, start=False)
    sink.put(1)
    sink.start()
    assert sink.close(1.0) is False
    # at most one attempt per back-off (0.1-0.2 s) within the 1 s deadline, not a busy
    # loop; more than one: the worker kept retrying while closing
    assert 2 <= len(sink.attempts) <= 11
    assert count(metrics, "fl_sink_dropped_total", "t") == 1


def test_sinks_given_a_bare_registry_share_its_counters() -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    first = Recorder("a", metrics=registry)
    second = Recorder("b", metrics=registry)
    first.put(1)
    second.put(2)
    assert first.close(1.0) and second.close(1.0)
    assert first.metrics is second.metrics
    assert registry.get_sample_value("fl_sink_sent_total", {"sink": "a"}) == 1
    assert registry.get_sample_value("fl_sink_sent_total", {"sink": "b"}) == 1
    taken = FlmonMetrics(sides=("sink",)).registry
    with pytest.raises(ValueError, match="pass that FlmonMetrics"):
        Recorder("c", metrics=taken, start=False)
