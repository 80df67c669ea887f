"""The rendered AlertManager configuration delivers every rendered alert to Slack.

Real AlertManager loaded with the demo's rendered ``alertmanager.yml`` and ``slack.tmpl``,
posting to the loopback Slack receiver; alerts are posted the way Prometheus posts them,
with the labels and annotations of the rendered rules.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from flmon.config import ALERT_NAMES
from flmon.demo.config import CHANNELS, SECURITY_CHANNEL
from flmon.demo.stack import DemoStack
from flmon.render.rules import INHIBITIONS
from flmon.stack.slack_receiver import SlackMessage
from tests.e2e.amsignals import is_sentinel, sentinel, wait_inhibited


@pytest.fixture(scope="module")
def stack() -> Iterator[DemoStack]:
    s = DemoStack("hospitals", 3).start(with_flower=False)
    try:
        yield s
    finally:
        s.stop()


def _rules(stack: DemoStack) -> list[dict[str, Any]]:
    doc = yaml.safe_load((stack.render_dir / "rules" / "flmon-rules.yaml").read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _expected_channels(labels: dict[str, str]) -> set[str]:
    channels = {CHANNELS[labels["severity"]]}
    if labels["team"] == "security" and labels["severity"] in ("critical", "warning"):
        channels.add(SECURITY_CHANNEL)
    return channels


def _title(m: SlackMessage) -> str:
    return str(m.attachments[0].get("title", "")) if m.attachments else ""


def _wait_firing(stack: DemoStack, labels: dict[str, str], channel: str) -> SlackMessage:
    return stack.slack.wait_for(
        lambda m: m.channel == channel and not m.resolved
        and f"] {labels['alertname']} ({labels['severity']}) in federation hospitals" in _title(m),
        30)


def _wait_resolved(stack: DemoStack, labels: dict[str, str], channel: str) -> SlackMessage:
    return stack.slack.wait_for(
        lambda m: m.channel == channel and m.resolved
        and f"] {labels['alertname']} (" in _title(m), 30)


def test_every_rendered_alert_reaches_its_slack_channels_and_resolves(stack: DemoStack) -> None:
    assert stack.alertmanager is not None
    rules = _rules(stack)
    # the watch's alerts are rendered when the stack scrapes flmon watch
    watch_alerts = {"FLSuperLinkDown", "FLNodeOffline", "FLRunFailed"}
    assert {r["alert"] for r in rules} - watch_alerts == set(ALERT_NAMES) - watch_alerts
    now = dt.datetime.now(dt.timezone.utc)
    posted: dict[str, dict[str, Any]] = {}
    for rule in rules:
        labels = {"alertname": rule["alert"], "job": "flmon", **rule["labels"],
                  "client": "1234567"}
        posted[rule["alert"]] = {"labels": labels, "annotations": dict(rule["annotations"]),
                                 "startsAt": _iso(now),
                                 "generatorURL": "http://127.0.0.1/graph"}
    rendered = {r["alert"] for r in rules}
    inhibited = {target for source, target, _equal in INHIBITIONS
                 if source in rendered and target in rendered}
    stack.alertmanager.post_alerts(list(posted.values()))

    # Every alert that no other alert inhibits arrives on its channels, naming the client.
    for name, alert in posted.items():
        if name in inhibited:
            continue
        labels = alert["labels"]
        for channel in _expected_channels(labels):
            msg = _wait_firing(stack, labels, channel)
            assert _title(msg).startswith("[FIRING:1] ")
            text = msg.all_text()
            assert "client `1234567`" in text
            assert f"*Severity:* {labels['severity']}" in text
            assert alert["annotations"]["summary"] in text
            # the title and the "what to do" line open the alert's runbook
            runbook = alert["annotations"]["runbook_url"]
            assert runbook.startswith("https://") and runbook.endswith(f"#{name.lower()}")
            assert msg.payload["attachments"][0]["title_link"] == runbook
            assert f"<{runbook}|what to do>" in text
            expected_color = {"critical": "danger", "warning": "warning"}.get(
                labels["severity"], "#439FE0")
            assert msg.colors == (expected_color,)
    # AlertManager reports every inhibited alert as such; then a sentinel posted after
    # them arrives: a notification of an inhibited alert would have come before it.
    for target in inhibited:
        assert wait_inhibited(stack.alertmanager.url, target)
    stack.alertmanager.post_alerts([{**sentinel("hospitals"), "startsAt": _iso(now)}])
    stack.slack.wait_for(lambda m: m.channel == CHANNELS["info"] and is_sentinel(_title(m)),
                         30)
    firing = [m for m in stack.slack.messages() if not m.resolved
              and not is_sentinel(_title(m))]
    assert len(firing) == sum(len(_expected_channels(a["labels"]))
                              for n, a in posted.items() if n not in inhibited)
    for target in inhibited:
        assert not any(f"] {target} (" in _title(m) for m in firing), f"{target} not inhibited"

    # The inhibiting alerts end: they resolve, and what they inhibited is delivered now.
    ended = _iso(dt.datetime.now(dt.timezone.utc))
    stack.alertmanager.post_alerts(
        [{**a, "endsAt": ended} for n, a in posted.items() if n not in inhibited])
    for name, alert in posted.items():
        labels = alert["labels"]
        for channel in _expected_channels(labels):
            if name in inhibited:
                assert _title(_wait_firing(stack, labels, channel)).startswith("[FIRING:1] ")
            else:
                msg = _wait_resolved(stack, labels, channel)
                assert _title(msg).startswith("[RESOLVED] ")
                assert msg.colors == ("good",)
    ended = _iso(dt.datetime.now(dt.timezone.utc))
    stack.alertmanager.post_alerts(
        [{**a, "endsAt": ended} for n, a in posted.items() if n in inhibited])
    for name in inhibited:
        labels = posted[name]["labels"]
        for channel in _expected_channels(labels):
            _wait_resolved(stack, labels, channel)
