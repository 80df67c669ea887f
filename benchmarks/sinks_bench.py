"""What the sinks cost a training loop: healthy, down and slow endpoints, as ratios to no sink.

Every repetition times the loop once per (sink, endpoint state), each time next to the
same loop without a sink, in a rotating order, so that all figures come from the same
run; the ratio of a case is the median over the repetitions of its paired ratios.
Endpoints are loopback stand-ins (:mod:`tests.fakes.loopback`):

* healthy: a DogStatsD UDP socket that reads, a ``_bulk`` endpoint, a webhook answering
  ``ok`` (all in a separate process, so their work is not charged to the loop)
* down: a closed port
* slow: answers after 10 s (DogStatsD: a Unix datagram socket read every 10 s)

Per step, the loop does ``work`` small numpy least-squares gradient steps (0.4-1 ms in
all by default, depending on the machine; a real training step is rarely shorter) and
calls the sink: a DogStatsD gauge, one log record shipped to Elasticsearch, and a Slack
message every ``slack_every`` steps (far more than the few lifecycle messages of a real
run). Setting sinks up is not timed; closing them is timed separately
(``close_seconds``).

Run ``python -m benchmarks.sinks_bench [repetitions]`` for a table.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flmon.metrics import FlmonMetrics
from flmon.sinks.base import QueueSettings, QueueSink
from flmon.sinks.datadog import DatadogConfig, DatadogSink
from flmon.sinks.elasticsearch import ElasticsearchConfig, ElasticsearchHandler
from flmon.sinks.slack import SlackConfig, SlackNotifier
from tests.fakes.loopback import (
    FakeElasticsearch,
    FakeSlack,
    SlowHttpServer,
    SlowUnixReader,
    closed_port,
)

SINKS = ("datadog", "elasticsearch", "slack")
STATES = ("healthy", "down", "slow")

Step = Callable[[int], object]


class _UdpSink:
    """A DogStatsD socket that reads and discards everything."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.stop = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while not self.stop.is_set():
            try:
                self.sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@dataclass(frozen=True)
class _Endpoints:
    """Where the loopback endpoints listen (they run in a separate process)."""

    udp: int
    udp_closed: int
    dsd_slow: str
    es: str
    slack: str
    slow: str
    closed: str


def _serve(tmp: str) -> None:
    """Child process: run one of each endpoint until stdin closes.

    The endpoints get their own process so that their CPU time (parsing bulk bodies,
    answering webhooks) is not charged to the training loop, as on a real deployment.
    """
    with ExitStack() as stack:
        udp = _UdpSink()
        stack.callback(udp.close)
        path = Path(tmp) / "dsd-slow.socket"
        stack.callback(SlowUnixReader(path, 10.0).close)
        es = FakeElasticsearch()
        stack.callback(es.close)
        slack = FakeSlack()
        stack.callback(slack.close)
        slow = SlowHttpServer(delay=10.0)
        stack.callback(slow.close)
        endpoints = _Endpoints(udp=udp.port, udp_closed=closed_port(), dsd_slow=str(path),
                               es=es.url, slack=slack.url, slow=slow.url,
                               closed=f"http://127.0.0.1:{closed_port()}")
        print(json.dumps(asdict(endpoints)), flush=True)
        sys.stdin.read()  # until the parent closes our stdin


@contextmanager
def _endpoints(tmp: str) -> Iterator[_Endpoints]:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}
    code = f"from benchmarks.sinks_bench import _serve; _serve({tmp!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=root, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the loopback endpoints did not start")
        yield _Endpoints(**json.loads(line))
    finally:
        if proc.stdin is not None:
            with suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(5)


def _make(sink: str, state: str, ep: _Endpoints, settings: QueueSettings,
          slack_every: int) -> tuple[QueueSink[Any], Step, Callable[[], None]]:
    metrics = FlmonMetrics(sides=("sink",))
    if sink == "datadog":
        if state == "slow":
            cfg = DatadogConfig(socket_path=f"unix://{ep.dsd_slow}", origin_detection=False,
                                queue=settings)
        else:
            port = ep.udp if state == "healthy" else ep.udp_closed
            cfg = DatadogConfig(host="127.0.0.1", port=port, origin_detection=False,
                                queue=settings)
        dd = DatadogSink(cfg, metrics=metrics)
        return dd, lambda i: dd.record("fl_local_training_loss", 0.5), lambda: None
    url = {"healthy": ep.es if sink == "elasticsearch" else ep.slack,
           "down": ep.closed, "slow": ep.slow}[state]
    if sink == "elasticsearch":
        handler = ElasticsearchHandler(
            ElasticsearchConfig(hosts=(url,), index="flmon-bench", queue=settings),
            metrics, env={})
        logger = logging.getLogger(f"flmon.bench.{state}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(handler)
        return (handler.sink, lambda i: logger.info("step %d loss %.4f", i, 0.5),
                lambda: logger.removeHandler(handler))
    slack = SlackNotifier(SlackConfig(queue=settings), metrics,
                          env={"FLMON_SLACK_WEBHOOK_URL": f"{url}/services/T/B/benchbenchbench"})

    def notify(i: int) -> object:
        return slack.notify(f"step {i}") if i % slack_every == 0 else None

    return slack, notify, lambda: None


def _loop(steps: int, step: Step | None, work: int, batch: int = 256,
          features: int = 64) -> tuple[float, float]:
    """Wall and process CPU seconds (all threads, the sink's worker included) of the loop."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, features))
    y = rng.standard_normal(batch)
    w = np.zeros(features)
    cpu = time.process_time()
    started = time.perf_counter()
    for i in range(steps):
        for _ in range(work):
            w -= 0.01 * (x.T @ (x @ w - y)) / batch
        if step is not None:
            step(i)
    return time.perf_counter() - started, time.process_time() - cpu


def run(repetitions: int = 5, steps: int = 500, work: int = 75, slack_every: int = 100,
        close_timeout: float = 1.0) -> dict[str, Any]:
    """Time the loop with each sink healthy, down and slow against the loop without a sink.

    Every case runs next to a loop without a sink (in alternating order), and its ratio
    is the median over the repetitions of (time with the sink / time of its neighbour
    without): pairs close in time cancel most of the drift of a shared machine.

    Parameters
    ----------
    repetitions
        Times each case is run; figures are medians.
    steps
        Training steps per loop (one sink call per step, Slack every ``slack_every``).
    work
        Small gradient steps per training step (sets the step time).
    slack_every
        Steps between two Slack messages.
    close_timeout
        Deadline of each sink's ``close``.

    Returns
    -------
    dict
        ``ratios[sink][state]`` (median of the paired wall-time ratios),
        ``cpu_ratios[sink][state]`` (the same with the process's CPU time, all threads,
        which a busy machine disturbs less), ``overhead_us_per_step[sink][state]``
        (median paired difference), ``close_seconds[sink][state]`` (longest ``close``),
        ``dropped[sink][state]`` (records dropped over all repetitions),
        ``baseline_seconds``, ``baseline_step_microseconds`` and the parameters.
    """
    if repetitions < 1:
        raise ValueError("repetitions must be at least 1")
    settings = QueueSettings(close_timeout=close_timeout)
    cases = [(s, st) for s in SINKS for st in STATES]
    base_times: list[float] = []
    ratios: dict[str, list[float]] = {}
    cpu_ratios: dict[str, list[float]] = {}
    overheads: dict[str, list[float]] = {}
    closes: dict[str, list[float]] = {}
    dropped: dict[str, float] = {}
    _loop(min(steps, 200), None, work)  # warm-up
    quiet = [logging.getLogger(name) for name in ("flmon.sinks", "flmon.sinks.slack.client")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:  # the sinks' own complaints about the endpoints we broke on purpose
        logger.setLevel(logging.CRITICAL)
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        for logger, level in zip(quiet, levels, strict=True):
            stack.callback(logger.setLevel, level)
        ep = stack.enter_context(_endpoints(tmp))
        for rep in range(repetitions):
            shift = rep % len(cases)
            for index, case in enumerate(cases[shift:] + cases[:shift]):
                key = "/".join(case)
                sink, step, detach = _make(*case, ep, settings, slack_every)
                if (rep + index) % 2:
                    wall, used = _loop(steps, step, work)
                    base_wall, base_used = _loop(steps, None, work)
                else:
                    base_wall, base_used = _loop(steps, None, work)
                    wall, used = _loop(steps, step, work)
                base_times.append(base_wall)
                ratios.setdefault(key, []).append(wall / base_wall)
                cpu_ratios.setdefault(key, []).append(used / base_used)
                overheads.setdefault(key, []).append((wall - base_wall) / steps * 1e6)
                detach()
                started = time.perf_counter()
                sink.close()
                closes.setdefault(key, []).append(time.perf_counter() - started)
                sample = sink.metrics.registry.get_sample_value(
                    "fl_sink_dropped_total", {"sink": sink.name}) or 0.0
                dropped[key] = dropped.get(key, 0.0) + sample
    base = statistics.median(base_times)
    result: dict[str, Any] = {
        "repetitions": repetitions, "steps": steps, "work": work,
        "slack_every": slack_every, "close_timeout": close_timeout,
        "baseline_seconds": base,
        "baseline_step_microseconds": base / steps * 1e6,
        "ratios": {s: {} for s in SINKS},
        "cpu_ratios": {s: {} for s in SINKS},
        "overhead_us_per_step": {s: {} for s in SINKS},
        "close_seconds": {s: {} for s in SINKS},
        "dropped": {s: {} for s in SINKS},
    }
    for s, st in cases:
        key = f"{s}/{st}"
        result["ratios"][s][st] = statistics.median(ratios[key])
        result["cpu_ratios"][s][st] = statistics.median(cpu_ratios[key])
        result["overhead_us_per_step"][s][st] = statistics.median(overheads[key])
        result["close_seconds"][s][st] = max(closes[key])
        result["dropped"][s][st] = int(dropped[key])
    return result


def _table(result: dict[str, Any]) -> str:
    lines = [f"baseline: {result['baseline_seconds']:.3f} s for {result['steps']} steps "
             f"({result['baseline_step_microseconds']:.0f} us/step), median of "
             f"{result['repetitions']}",
             f"{'sink':<14}{'state':<9}{'ratio':>8}{'cpu':>8}{'us/step':>9}{'close s':>9}"
             f"{'dropped':>9}"]
    for s in SINKS:
        for st in STATES:
            lines.append(f"{s:<14}{st:<9}{result['ratios'][s][st]:>8.3f}"
                         f"{result['cpu_ratios'][s][st]:>8.3f}"
                         f"{result['overhead_us_per_step'][s][st]:>9.1f}"
                         f"{result['close_seconds'][s][st]:>9.2f}"
                         f"{result['dropped'][s][st]:>9d}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    repetitions = int(args[0]) if args else 5
    result = run(repetitions)
    print(_table(result))
    if "--json" in args:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
