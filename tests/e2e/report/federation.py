"""A five-round run recorded by flmon's own ServerRecorder into a real monitoring stack.

No Flower processes: :func:`record_run` drives :class:`~flmon.flower.recorder.ServerRecorder`
through what ``instrument()`` records in each round (sampling, replies, client metrics,
update indicators, aggregates, centralized evaluation), serves the registry on the
stack's live-exporter port with :func:`flmon.start_exporter` and pushes it to the
Pushgateway after every phase, as the ServerApp does. Client 3 sends a poisoned update in
round 2: its anomaly score crosses the demo's threshold and FLClientUpdateAnomaly fires
through the rendered rules, reaches AlertManager and Slack, and resolves afterwards.
A second push group carries a hostile client label value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from flmon import start_exporter
from flmon.demo.config import PUSHED_JOB
from flmon.demo.scenarios import ANOMALY_THRESHOLD
from flmon.demo.stack import DemoStack
from flmon.flower.recorder import ServerRecorder
from flmon.labels import ClientLabeler
from flmon.metrics import FlmonMetrics
from flmon.security.updates import UpdateStats

RUN_ID = "7310"
ROUNDS = 5
POISONED = 3
POISONED_ROUND = 2
NODES = (1, 2, POISONED)
HOSTILE = "<script>alert(1)</script>"
ROUND_SECONDS = 3.0


@dataclass
class RecordedRun:
    started: float
    ended: float
    poisoned_score: float


def _push(stack: DemoStack, metrics: FlmonMetrics) -> None:
    push_to_gateway(stack.pushgateway.address, job=PUSHED_JOB, registry=metrics.registry)


def _push_hostile(stack: DemoStack) -> None:
    registry = CollectorRegistry()
    gauge = Gauge("fl_client_anomaly_score", "hostile label value", ["client"],
                  registry=registry)
    gauge.labels(client=HOSTILE).set(0.5)
    push_to_gateway(stack.pushgateway.address, job=PUSHED_JOB, registry=registry,
                    grouping_key={"source": "hostile"})


def record_run(stack: DemoStack) -> RecordedRun:
    """Record the run; return when its last round is in and the alert has resolved."""
    assert stack.prometheus is not None
    metrics = FlmonMetrics(sides=("server", "sink"))
    recorder = ServerRecorder(metrics, ClientLabeler(50, "node_id", None), ANOMALY_THRESHOLD)
    exporter = start_exporter(stack.exporter_port, registry=metrics.registry)
    try:
        stack.prometheus.wait_targets_up()
        started = time.time()
        recorder.run_started(RUN_ID, "FedAvg", "1.42.0", ROUNDS)
        recorder.nodes_connected(len(NODES))
        _push_hostile(stack)
        poisoned_score = 0.0
        for rnd in range(1, ROUNDS + 1):
            t0 = time.monotonic()
            recorder.round_started(rnd)
            recorder.phase_configured("train", len(NODES), 40_000)
            stats: dict[int, UpdateStats] = {}
            for k, node in enumerate(NODES):
                recorder.reply("train", node, None, 40_000)
                recorder.client_metrics("train", node, {"accuracy": 0.70 + 0.04 * rnd + 0.01 * k,
                                                        "loss": 0.9 - 0.1 * rnd,
                                                        "num-examples": 120}, "num-examples")
                recorder.model_update(node)
                poisoned = node == POISONED and rnd == POISONED_ROUND
                score = 36.0 if poisoned else 0.4 + 0.3 * k
                stats[node] = UpdateStats(norm=120.0 if poisoned else 1.1 + 0.1 * k,
                                          cosine=-1.0 if poisoned else 0.9,
                                          norm_score=score, cosine_score=score / 2)
            poisoned_score = max(poisoned_score, max(s.score for s in stats.values()))
            _push(stack, metrics)
            time.sleep(ROUND_SECONDS / 3)  # the clients train
            recorder.update_stats(stats, 1.2)
            recorder.phase_aggregated("train", len(NODES), 0, ROUND_SECONDS / 3)
            recorder.aggregated("train", {"accuracy": 0.71 + 0.04 * rnd,
                                          "loss": 0.9 - 0.1 * rnd})
            _push(stack, metrics)
            time.sleep(ROUND_SECONDS / 3)  # the clients evaluate
            recorder.phase_configured("evaluate", len(NODES), 40_000)
            for node in NODES:
                recorder.reply("evaluate", node, None, 0)
                recorder.client_metrics("evaluate", node, {"accuracy": 0.72 + 0.04 * rnd},
                                        None)
            recorder.phase_aggregated("evaluate", len(NODES), 0, ROUND_SECONDS / 3)
            recorder.aggregated("evaluate", {"accuracy": 0.72 + 0.04 * rnd,
                                             "loss": 0.8 - 0.1 * rnd})
            recorder.centralized({"accuracy": 0.73 + 0.04 * rnd, "loss": 0.7 - 0.1 * rnd})
            _push(stack, metrics)
            time.sleep(ROUND_SECONDS / 3)
            recorder.round_completed(time.monotonic() - t0)
            _push(stack, metrics)
        recorder.run_ended(None)
        _push(stack, metrics)
        ended = time.time()
    finally:
        exporter.close()
    prom = stack.prometheus
    prom.wait_for(lambda: prom.query_value(
        f'max(fl_run_end_timestamp_seconds{{job="{PUSHED_JOB}"}})') or 0, 30,
        "the run's end scraped")
    # The anomaly fired in round 2; once its window has passed it resolves, in Prometheus
    # and then in Slack.
    stack.slack.wait_for(lambda m: not m.resolved and "] FLClientUpdateAnomaly (" in str(
        m.attachments[0].get("title", "") if m.attachments else ""), 60)
    prom.wait_for(lambda: not prom.firing("FLClientUpdateAnomaly"), 90,
                  "FLClientUpdateAnomaly resolved")
    stack.slack.wait_for(lambda m: m.resolved and "] FLClientUpdateAnomaly (" in str(
        m.attachments[0].get("title", "") if m.attachments else ""), 60)
    return RecordedRun(started, ended, poisoned_score)
