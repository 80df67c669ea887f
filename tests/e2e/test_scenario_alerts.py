"""The scenarios not run end to end with Flower, through the rest of the real stack.

node-killed, straggler and privacy-budget take minutes each with real SuperNodes (a killed
node is waited for until the round times out; a straggler by definition). Here flmon's own
server recorder produces the series those runs produce (failures of one client, a round
in progress for long, epsilon spent near the budget), pushes them to the Pushgateway as
``instrument()`` does, and real Prometheus (rendered rules), AlertManager (rendered
configuration) and the Slack receiver must show the alert firing with the right channel,
severity and client, then resolved. Alert windows are shortened from the demo's minute
so the recovery is seen within seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client import push_to_gateway

from flmon.demo.config import CHANNELS, PUSHED_JOB, SECURITY_CHANNEL
from flmon.demo.scenarios import ANOMALY_THRESHOLD
from flmon.demo.stack import DemoStack
from flmon.flower.recorder import ServerRecorder
from flmon.labels import ClientLabeler
from flmon.metrics import FlmonMetrics
from flmon.security.dp import DpFigures
from flmon.stack.slack_receiver import SlackMessage

CLIENT = 4242


@pytest.fixture
def stack(tmp_path: pytest.TempPathFactory) -> Iterator[DemoStack]:
    s = DemoStack("hospitals", 3, alert_overrides={"FLClientDropout": {"window": "10s"}})
    s.start(with_flower=False)
    try:
        yield s
    finally:
        s.stop()


class Server:
    """The server side of a run, minus Flower: recorder, registry, pushes."""

    def __init__(self, stack: DemoStack) -> None:
        self.stack = stack
        self.metrics = FlmonMetrics(sides=("server", "sink"))
        self.recorder = ServerRecorder(self.metrics, ClientLabeler(50, "node_id", None),
                                       ANOMALY_THRESHOLD)
        self.recorder.run_started(1, "FedAvg", "1.42", 5)

    def push(self) -> None:
        push_to_gateway(self.stack.pushgateway.address, job=PUSHED_JOB,
                        registry=self.metrics.registry)


def _scraped(stack: DemoStack, expr: str, value: float) -> None:
    """Wait until Prometheus has scraped what was pushed: ``expr`` reads ``value``."""
    assert stack.prometheus is not None
    stack.prometheus.wait_for(
        lambda: stack.prometheus.query_value(expr) == value,  # type: ignore[union-attr]
        40, f"{expr} == {value}", interval=0.2)


def _title(m: SlackMessage) -> str:
    return str(m.attachments[0].get("title", "")) if m.attachments else ""


def _firing(stack: DemoStack, alert: str, channel: str, timeout: float = 40) -> SlackMessage:
    return stack.slack.wait_for(
        lambda m: m.channel == channel and not m.resolved and f"] {alert} (" in _title(m),
        timeout)


def _resolved(stack: DemoStack, alert: str, channel: str, timeout: float = 60) -> SlackMessage:
    return stack.slack.wait_for(
        lambda m: m.channel == channel and m.resolved and f"] {alert} (" in _title(m), timeout)


def _prometheus_firing(stack: DemoStack, alert: str) -> list[dict[str, str]]:
    assert stack.prometheus is not None
    return stack.prometheus.wait_for(
        lambda: [a["labels"] for a in stack.prometheus.firing(alert)]  # type: ignore[union-attr]
        , 40, f"{alert} firing")


def test_node_killed_client_dropout_names_the_client(stack: DemoStack) -> None:
    server = Server(stack)
    server.recorder.round_started(2)
    # The killed node misses train and evaluate of two rounds (node_unavailable after the
    # SuperLink's heartbeat patience, no_reply before it).
    for failures, (phase, error) in enumerate((("train", "no_reply"), ("evaluate", "no_reply"),
                                               ("train", "node_unavailable")), start=1):
        server.recorder.failure(phase, CLIENT, error)
        server.push()
        _scraped(stack, f'sum(fl_client_failures_total{{client="{CLIENT}"}})', failures)
    labels = _prometheus_firing(stack, "FLClientDropout")
    assert {lb["client"] for lb in labels} == {str(CLIENT)}
    assert stack.alertmanager is not None
    assert [a["labels"]["client"] for a in stack.alertmanager.alerts(
        alertname="FLClientDropout")] == [str(CLIENT)]
    msg = _firing(stack, "FLClientDropout", CHANNELS["warning"])
    assert f"client `{CLIENT}`" in msg.all_text()
    assert "*Severity:* warning" in msg.all_text()
    assert "FLClientDropout (warning) in federation hospitals" in _title(msg)
    # The node is back: no new failures; after the window the alert resolves.
    _resolved(stack, "FLClientDropout", CHANNELS["warning"])


def test_straggler_round_stalled_then_resolved(stack: DemoStack) -> None:
    server = Server(stack)
    server.recorder.round_started(2)
    # The round has been waiting for the straggler for longer than the demo's 60 s line.
    server.metrics.gauge("fl_round_start_timestamp_seconds").set(time.time() - 70)
    server.push()
    labels = _prometheus_firing(stack, "FLRoundStalled")
    assert all(lb["severity"] == "warning" for lb in labels)
    msg = _firing(stack, "FLRoundStalled", CHANNELS["warning"])
    assert "A round is stalled" in msg.all_text()
    # The straggler's reply missed the round timeout twice: it is named by FLClientDropout.
    for failures in (1, 2):
        server.recorder.failure("train", CLIENT, "no_reply")
        server.push()
        _scraped(stack, f'sum(fl_client_failures_total{{client="{CLIENT}"}})', failures)
    dropout = _firing(stack, "FLClientDropout", CHANNELS["warning"])
    assert f"client `{CLIENT}`" in dropout.all_text()
    server.recorder.round_completed(75.0)
    server.push()
    _resolved(stack, "FLRoundStalled", CHANNELS["warning"])
    _resolved(stack, "FLClientDropout", CHANNELS["warning"])


def test_privacy_budget_nearly_exhausted_then_refused(stack: DemoStack) -> None:
    server = Server(stack)
    # What the RDP accountant reports after each release (noise 1.0, 3 of 3 clients).
    for epsilon in (4.73, 7.08):
        server.recorder.dp(DpFigures(epsilon=epsilon, delta=1e-5, budget=7.5,
                                     noise_multiplier=1.0, clipping_norm=0.5))
        server.push()
        _scraped(stack, "max(fl_dp_epsilon_spent)", epsilon)
    labels = _prometheus_firing(stack, "FLPrivacyBudgetNearlyExhausted")
    assert all(lb["team"] == "security" for lb in labels)
    for channel in (CHANNELS["warning"], SECURITY_CHANNEL):
        msg = _firing(stack, "FLPrivacyBudgetNearlyExhausted", channel)
        assert "94.4%" in msg.all_text()  # 7.08 / 7.5
    # FLPrivacyBudgetExhausted is evaluated with it, from the same ratio: not firing
    assert stack.prometheus is not None
    assert not stack.prometheus.firing("FLPrivacyBudgetExhausted")
    # The accountant refuses the third release (it would pass 7.5): the run stops there.
    server.recorder.dp_budget_exhausted(RuntimeError("the next release would exceed 7.5"))
    server.push()
    labels = _prometheus_firing(stack, "FLPrivacyBudgetExhausted")
    assert all(lb["severity"] == "critical" for lb in labels)
    msg = _firing(stack, "FLPrivacyBudgetExhausted", CHANNELS["critical"])
    assert "Privacy budget exhausted" in msg.all_text()
