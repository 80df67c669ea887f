"""The privacy-leak scenario through the real stack: flmon privacy-test's figures pushed to
the demo's Pushgateway, FLPrivacyLeakage in Prometheus, AlertManager and Slack, and the run
report showing both.

The federation run itself is the healthy one (covered by test_healthy); here flmon's
server recorder stands in for it, so the report has a run to draw, and the privacy test
runs in this process as the demo runs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import push_to_gateway

from flmon.demo import scenarios
from flmon.demo.config import PUSHED_JOB, SECURITY_CHANNEL
from flmon.demo.runner import push_privacy_figures
from flmon.demo.stack import DemoStack
from flmon.flower.recorder import ServerRecorder
from flmon.labels import ClientLabeler
from flmon.metrics import FlmonMetrics
from flmon.report import ReportRequest, write_report
from flmon.stack.slack_receiver import SlackMessage

THRESHOLD = 0.6  # flmon's default alerts.FLPrivacyLeakage.threshold, the demo's too


@pytest.fixture
def stack() -> Iterator[DemoStack]:
    s = DemoStack("hospitals", 3)
    s.start(with_flower=False)
    try:
        yield s
    finally:
        s.stop()


def _title(m: SlackMessage) -> str:
    return str(m.attachments[0].get("title", "")) if m.attachments else ""


def test_privacy_leak_fires_reaches_slack_and_is_in_the_report(stack: DemoStack,
                                                              tmp_path: Path) -> None:
    assert stack.prometheus is not None and stack.alertmanager is not None
    scenario = scenarios.get("privacy-leak")
    assert scenario.privacy_test and scenario.expected_alerts == ("FLPrivacyLeakage",)
    metrics = FlmonMetrics(sides=("server", "sink"))
    ServerRecorder(metrics, ClientLabeler(50, "node_id", None), 10.0).run_started(
        1, "FedAvg", "1.42", 2)
    push_to_gateway(stack.pushgateway.address, job=PUSHED_JOB, registry=metrics.registry)

    result = push_privacy_figures(stack, "healthcare")

    leaking = {(attack, section)
               for section, dp in (("no_dp", "off"), ("dp", "on"))
               for attack, views in result[section]["attacks"].items()
               if views["client_update"]["auc"] > THRESHOLD}
    assert ("gradient_decomposition", "no_dp") in leaking  # the headline of the scenario
    prom = stack.prometheus
    firing = prom.wait_for(lambda: [a["labels"] for a in prom.firing("FLPrivacyLeakage")],
                           60, "FLPrivacyLeakage firing")
    want = {(attack, "off" if section == "no_dp" else "on") for attack, section in leaking}
    assert {(lb["attack"], lb["dp"]) for lb in firing} == want
    assert all(lb["federation"] == "hospitals" and lb["team"] == "security" for lb in firing)

    auc = result["no_dp"]["attacks"]["gradient_decomposition"]["client_update"]["auc"]
    said = (f"The gradient_decomposition membership-inference attack reaches ROC AUC "
            f"{auc:.2f} on the model updates of federation hospitals (DP off;")
    msg = stack.slack.wait_for(
        lambda m: m.channel == SECURITY_CHANNEL and not m.resolved
        and "] FLPrivacyLeakage (" in _title(m) and said in m.all_text(), 60)
    assert "*Severity:* warning" in msg.all_text()

    out = tmp_path / "report.html"
    write_report(ReportRequest(prom.url, stack.alertmanager.url, config=stack.config), out)
    html = out.read_text(encoding="utf-8")
    # The security dashboard's stat: the highest AUC of the last privacy test.
    top = max(figures["auc"] for section in ("no_dp", "dp")
              for views in result[section]["attacks"].values() for figures in views.values())
    assert re.search(rf'<div class="v">{top:.1%}</div><div class="l"><span>Privacy attack AUC',
                     html)
    assert "Alerts fired: FLPrivacyLeakage" in html
