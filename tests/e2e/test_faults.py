"""Fault scenarios end to end: real SuperNodes, the fault injected by the example apps.

poisoned (hospitals): partition 1 sends a sign-flipped update scaled by 100 in round 2.
accuracy-collapse (banks): every bank trains on relabelled data in round 2.
Each must make its alert fire in Prometheus, reach AlertManager, arrive in Slack on the
right channel with the right severity (and the offending client named, where there is
one), and be resolved in Slack after the recovery rounds.
"""

from __future__ import annotations

from pathlib import Path

from flmon.demo.config import CHANNELS, SECURITY_CHANNEL
from flmon.stack.slack_receiver import SlackMessage
from tests.e2e.scenario_run import finished_run
from tests.e2e.support import flower_report, log_path, node_id

ROUNDS = 3


def _title(m: SlackMessage) -> str:
    return str(m.attachments[0].get("title", "")) if m.attachments else ""


def test_poisoned_update_is_flagged_with_the_offending_client(tmp_path: Path) -> None:
    with finished_run(tmp_path, "healthcare", "poisoned", ROUNDS) as done:
        assert done.stack.flower is not None
        assert done.outcome.returncode == 0, log_path(done.stack.flower).read_text()[-3000:]
        assert flower_report(done.stack.flower).train_results == [3] * ROUNDS
        offender = node_id(done.stack.flower, 1)
        others = {node_id(done.stack.flower, i) for i in (0, 2)}

        fired = [e for e in done.outcome.events
                 if e.alertname == "FLClientUpdateAnomaly" and e.state == "firing"]
        assert fired, done.outcome.events
        assert {e.labels["client"] for e in fired} == {offender}
        assert {e.labels["severity"] for e in fired} == {"warning"}
        assert {a["labels"]["client"] for a in done.am_seen["FLClientUpdateAnomaly"]} \
            == {offender}
        # The offender's anomaly counter moved; nobody else's did.
        sel = done.stack.selector()
        assert done.stack.prometheus is not None
        counts = {r["metric"]["client"]: float(r["value"][1]) for r in
                  done.stack.prometheus.query(f"fl_anomalous_updates_total{sel}")}
        assert counts.get(offender, 0) >= 1
        assert all(counts.get(c, 0) == 0 for c in others)

        for channel in (SECURITY_CHANNEL, CHANNELS["warning"]):
            msg = done.stack.slack.wait_for(
                lambda m, ch=channel: m.channel == ch and not m.resolved
                and "] FLClientUpdateAnomaly (warning) in federation hospitals" in _title(m), 5)
            assert f"client `{offender}`" in msg.all_text()
            assert "*Severity:* warning" in msg.all_text()
            done.stack.slack.wait_for(
                lambda m, ch=channel: m.channel == ch and m.resolved
                and "] FLClientUpdateAnomaly (" in _title(m), 30)


def test_accuracy_collapse_pages_critical_and_recovers(tmp_path: Path) -> None:
    with finished_run(tmp_path, "fraud", "accuracy-collapse", ROUNDS) as done:
        assert done.stack.flower is not None
        assert done.outcome.returncode == 0, log_path(done.stack.flower).read_text()[-3000:]
        round1_done = done.outcome.rows[0].completed_at
        fired = [e for e in done.outcome.events
                 if e.alertname == "FLModelAccuracyDropped" and e.state == "firing"
                 and e.at > round1_done]
        assert fired, done.outcome.events
        assert {e.labels["severity"] for e in fired} == {"critical"}
        assert {e.labels["federation"] for e in fired} == {"banks"}
        assert done.am_seen.get("FLModelAccuracyDropped")
        # The collapse is visible in the round-2 row, and gone in round 3.
        rows = {r.round: r for r in done.outcome.rows}
        assert rows[2].train_accuracy is not None and rows[2].train_accuracy < 0.8
        assert rows[3].train_accuracy is not None and rows[3].train_accuracy >= 0.85

        msg = done.stack.slack.wait_for(
            lambda m: m.channel == CHANNELS["critical"] and not m.resolved
            and "] FLModelAccuracyDropped (critical) in federation banks" in _title(m)
            and m.received_at > round1_done, 5)
        assert "*Severity:* critical" in msg.all_text()
        assert msg.colors == ("danger",)
        done.stack.slack.wait_for(
            lambda m: m.channel == CHANNELS["critical"] and m.resolved
            and "] FLModelAccuracyDropped (" in _title(m) and m.received_at > msg.received_at,
            30)
        assert "FLModelAccuracyDropped" not in done.run.firing()
