"""Each sink pointed at a closed port, a black hole and a slow endpoint while a training
loop runs: the loop completes, the drop counter moves, and ``close`` accounts for every
record. How long the loop and ``close`` take is measured by ``make bench``
(``benchmarks/sinks_bench.py``), not asserted here.

DogStatsD speaks datagrams, which have no "answer" to wait for: its black hole and slow
endpoint are Unix datagram sockets that are never (or only every 10 s) read, which is
what a stalled Agent looks like; its closed port is a UDP port nobody listens on.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sinkfakes import BlackHole, SlowHttpServer, SlowUnixReader, UdpReceiver, closed_port, count

from flmon.metrics import FlmonMetrics
from flmon.sinks.base import QueueSettings, QueueSink
from flmon.sinks.datadog import DatadogConfig, DatadogSink
from flmon.sinks.elasticsearch import ElasticsearchConfig, ElasticsearchHandler
from flmon.sinks.slack import SlackConfig, SlackNotifier

STEPS = 1500
CLOSE_DEADLINE = 1.0
SETTINGS = QueueSettings(queue_size=100, batch_size=50, flush_interval=0.05, max_retries=2,
                         initial_backoff=0.05, max_backoff=0.2, close_timeout=CLOSE_DEADLINE)
REPO = Path(__file__).resolve().parents[2]


def http_endpoint(fault: str, stack: ExitStack) -> str:
    if fault == "closed":
        return f"http://127.0.0.1:{closed_port()}"
    if fault == "blackhole":
        return stack.enter_context(_closing(BlackHole())).url
    return stack.enter_context(_closing(SlowHttpServer(delay=3600.0))).url


class _closing:  # noqa: N801 - used like contextlib.closing
    def __init__(self, thing: BlackHole | SlowHttpServer | SlowUnixReader) -> None:
        self.thing = thing

    def __enter__(self) -> BlackHole | SlowHttpServer | SlowUnixReader:
        return self.thing

    def __exit__(self, *exc: object) -> None:
        self.thing.close()


Step = Callable[[int], object]


def build(kind: str, fault: str, metrics: FlmonMetrics, stack: ExitStack,
          tmp_path: Path) -> tuple[QueueSink[object], Step]:
    if kind == "datadog":
        if fault == "closed":
            receiver = UdpReceiver()
            receiver.close()
            cfg = DatadogConfig(host="127.0.0.1", port=receiver.port, origin_detection=False,
                                queue=SETTINGS)
        else:
            path = tmp_path / "dsd.socket"
            stack.enter_context(_closing(
                SlowUnixReader(path, None if fault == "blackhole" else 10.0)))
            cfg = DatadogConfig(socket_path=f"unix://{path}", origin_detection=False,
                                queue=SETTINGS)
        dd = DatadogSink(cfg, metrics=metrics)
        return dd, lambda i: dd.record("fl_local_training_loss", 1.0 / (i + 1))  # type: ignore[return-value]
    if kind == "elasticsearch":
        url = http_endpoint(fault, stack)
        handler = ElasticsearchHandler(
            ElasticsearchConfig(hosts=(url,), index="flmon-fault", request_timeout=1.0,
                                queue=SETTINGS), metrics, env={})
        logger = logging.getLogger(f"flmon.tests.fault.{fault}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(handler)
        stack.callback(logger.removeHandler, handler)
        return handler.sink, lambda i: logger.info("step %d", i)  # type: ignore[return-value]
    url = http_endpoint(fault, stack) + "/services/T0/B0/faultfaultfaultfault"
    slack = SlackNotifier(SlackConfig(timeout=1.0, queue=SETTINGS), metrics,
                          env={"FLMON_SLACK_WEBHOOK_URL": url})
    return slack, lambda i: slack.notify(f"step {i}")  # type: ignore[return-value]


def train(step: Step, steps: int = STEPS) -> int:
    """A plain training loop: a little arithmetic per step and one sink call.

    Returns the number of steps run."""
    weights = [0.0] * 32
    done = 0
    for i in range(steps):
        for j in range(len(weights)):
            weights[j] += 0.001 * (j - weights[j])
        step(i)
        done += 1
    return done


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


@pytest.mark.parametrize("fault", ["closed", "blackhole", "slow"])
@pytest.mark.parametrize("kind", ["datadog", "elasticsearch", "slack"])
def test_a_faulty_endpoint_never_blocks_training(
        kind: str, fault: str, metrics: FlmonMetrics, stack: ExitStack,
        tmp_path: Path) -> None:
    sink, step = build(kind, fault, metrics, stack, tmp_path)
    assert train(step) == STEPS  # the loop ran to its end
    sink.close(CLOSE_DEADLINE)
    assert sink.closed
    dropped = count(metrics, "fl_sink_dropped_total", kind)
    sent = count(metrics, "fl_sink_sent_total", kind)
    assert dropped > 0
    assert sent + dropped == STEPS  # every call accounted for, once
    if kind == "datadog":
        # datagrams are handed over until the Agent's socket refuses them
        assert count(metrics, "fl_sink_errors_total", kind) > 0
    else:
        assert sent == 0  # nothing can be delivered there within the 1 s timeout


@pytest.mark.parametrize("kind", ["datadog", "elasticsearch", "slack"])
def test_a_healthy_endpoint_drops_nothing(kind: str, metrics: FlmonMetrics,
                                          stack: ExitStack, tmp_path: Path) -> None:
    """The same loop against a healthy endpoint: what the fault tests compare with."""
    from sinkfakes import FakeElasticsearch, FakeSlack

    settings = QueueSettings(queue_size=STEPS, batch_size=50, flush_interval=0.05)
    sink: QueueSink[object]
    if kind == "datadog":
        receiver = stack.enter_context(_closing_udp(UdpReceiver()))
        dd = DatadogSink(DatadogConfig(host="127.0.0.1", port=receiver.port,
                                       origin_detection=False, queue=settings),
                         metrics=metrics)
        sink, step = dd, (lambda i: dd.record("fl_local_training_loss", 0.5))  # type: ignore[assignment]
    elif kind == "elasticsearch":
        es = FakeElasticsearch()
        stack.callback(es.close)
        handler = ElasticsearchHandler(ElasticsearchConfig(hosts=(es.url,), queue=settings),
                                       metrics, env={})
        logger = logging.getLogger("flmon.tests.fault.healthy")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(handler)
        stack.callback(logger.removeHandler, handler)
        sink, step = handler.sink, (lambda i: logger.info("step %d", i))  # type: ignore[assignment]
    else:
        fake = FakeSlack()
        stack.callback(fake.close)
        slack = SlackNotifier(SlackConfig(queue=settings), metrics,
                              env={"FLMON_SLACK_WEBHOOK_URL": fake.webhook_url()})
        sink, step = slack, (lambda i: slack.notify(f"step {i}"))  # type: ignore[assignment]
    train(step)
    assert sink.close(30.0)
    assert count(metrics, "fl_sink_dropped_total", kind) == 0
    assert count(metrics, "fl_sink_sent_total", kind) == STEPS


class _closing_udp:  # noqa: N801
    def __init__(self, receiver: UdpReceiver) -> None:
        self.receiver = receiver

    def __enter__(self) -> UdpReceiver:
        return self.receiver

    def __exit__(self, *exc: object) -> None:
        self.receiver.close()


def test_dogstatsd_over_udp_cannot_see_a_black_hole(metrics: FlmonMetrics) -> None:
    """A UDP socket nobody reads swallows datagrams silently: the sink counts them sent."""
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hole.bind(("127.0.0.1", 0))
    try:
        dd = DatadogSink(DatadogConfig(host="127.0.0.1", port=hole.getsockname()[1],
                                       origin_detection=False,
                                       queue=QueueSettings(queue_size=STEPS)),
                         metrics=metrics)
        assert train(lambda i: dd.record("fl_local_training_loss", 0.5)) == STEPS
        assert dd.close(CLOSE_DEADLINE)
        assert count(metrics, "fl_sink_sent_total", "datadog") == STEPS
    finally:
        hole.close()


def test_the_process_exits_promptly_without_close(tmp_path: Path) -> None:
    """Sinks left open at exit are flushed with their deadline; nothing keeps the process.

    Neither endpoint answers before the process has ended (the slow one answers only when
    closed, after it): that the process ends at all shows that nothing waits for them.
    """
    hole, slow = BlackHole(), SlowHttpServer(delay=3600.0)
    udp = UdpReceiver()
    udp.close()
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import logging
        from flmon.sinks import QueueSettings, build_sinks
        from flmon.sinks.datadog import DatadogConfig
        from flmon.sinks.elasticsearch import ElasticsearchConfig
        from flmon.sinks.slack import SlackConfig

        q = QueueSettings(queue_size=50, close_timeout=1.0)
        sinks = build_sinks(
            datadog=DatadogConfig(host="127.0.0.1", port={udp.port}, origin_detection=False,
                                  queue=q),
            elasticsearch=ElasticsearchConfig(hosts=("{hole.url}",), request_timeout=5.0,
                                              queue=q),
            slack=SlackConfig(timeout=5.0, queue=q),
            env={{"FLMON_SLACK_WEBHOOK_URL": "{slow.url}/services/T/B/exitexitexitexit"}},
        )
        sinks.attach_logging()
        logging.getLogger().setLevel(logging.INFO)
        sinks.slack.run_started("exit-test")
        for i in range(500):
            logging.getLogger("train").info("step %d", i)
            sinks.datadog.record("fl_local_steps_total", 1)
        print("loop done", flush=True)
    """))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        # the timeout only keeps a hung process from hanging the suite
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=60, env=env, cwd=tmp_path)
    finally:
        hole.close()
        slow.close()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "loop done"
    # the Slack message reached the endpoint, which had not answered when the process ended
    assert slow.hits >= 1
