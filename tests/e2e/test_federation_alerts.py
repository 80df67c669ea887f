"""The federation's own alerts, end to end: a SuperNode and the SuperLink killed.

Real processes on loopback: a Flower SuperLink with 3 SuperNodes, ``flmon watch`` polling
it, a Pushgateway, Prometheus and AlertManager loaded with the render of a ``flmon.yaml``
of its own (not the shipped example: another federation name and other job names), and
the Slack receiver AlertManager notifies. No run is submitted: what is watched here is the
federation between runs, when no ServerApp (and so no exporter) exists.

Each case waits for a positive signal (the alert in AlertManager, its Slack notification),
then proves "and nothing else" without a fixed sleep: Prometheus has evaluated every rule
group after the alert fired and holds no other pending or firing alert, AlertManager holds
no other active alert, and a sentinel alert posted afterwards reaches Slack with no other
notification before it.

The cases run in order on one stack: the SuperNode kill leaves its node dead for the
SuperLink case. Flower 1.42 marks a killed SuperNode offline only after missed heartbeats
(about 50-55 s here), which bounds the first case; ``for:`` is 5 s for FLNodeOffline,
10 s for FLSuperLinkDown.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flmon.config import parse_config
from flmon.render import render, write
from flmon.stack.alertmanager import AlertManager
from flmon.stack.flower import FlowerFederation
from flmon.stack.ports import LOOPBACK, free_ports
from flmon.stack.prometheus import Prometheus
from flmon.stack.pushgateway import Pushgateway
from flmon.stack.slack_receiver import SlackMessage, SlackReceiver
from flmon.stack.watch import WatchProcess, value
from tests.e2e.amsignals import is_sentinel, sentinel, wait_inhibited
from tests.e2e.support import node_id, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


FEDERATION = "clinics-eu"
WATCH_JOB = "clinics-watch"
CHANNELS = {"critical": "#oncall", "warning": "#fl-warn", "info": "#fl-info"}
NODES = 3
VICTIM = NODES - 1
STALE_AFTER = "2m"


@dataclass
class Stack:
    fed: FlowerFederation
    watch: WatchProcess
    prom: Prometheus
    am: AlertManager
    slack: SlackReceiver
    workdir: Path


def _config(ports: dict[str, int], pushgateway: str, webhook: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "federation": {"name": FEDERATION},
        "scrape": {
            "interval": "1s",
            # nothing listens there: no run is in progress, so no ServerApp exporter
            "live": {"enabled": True, "job": "clinics-serverapp",
                     "targets": [f"{LOOPBACK}:{ports['live']}"]},
            "pushgateway": {"enabled": True, "job": "clinics-pushgateway",
                            "pushed_job": "clinics-runs", "targets": [pushgateway]},
            "watch": {"enabled": True, "job": WATCH_JOB,
                      "targets": [f"{LOOPBACK}:{ports['watch']}"]},
        },
        "lifecycle": {"stale_after": STALE_AFTER},
        # FLSuperLinkDown also fires when the watch's `up` is absent: Prometheus starts
        # scraping up to 5 s after it starts evaluating rules, so its `for:` is longer.
        "alerts": {"FLNodeOffline": {"for": "5s"}, "FLSuperLinkDown": {"for": "10s"}},
        "prometheus": {"evaluation_interval": "1s"},
        "alertmanager": {"targets": [f"{LOOPBACK}:{ports['am']}"], "group_wait": "1s",
                         "group_interval": "2s", "repeat_interval": "1h"},
        "slack": {"webhook_url_file": str(webhook), "channels": dict(CHANNELS)},
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("federation-alerts")
    live, watch_port, am_port = free_ports(3)
    with SlackReceiver() as slack, Pushgateway(workdir=workdir / "pushgateway") as pg, \
            FlowerFederation(NODES, workdir=workdir / "flower") as fed:
        webhook = workdir / "slack-webhook-url"
        webhook.write_text(slack.url + "\n")
        webhook.chmod(0o600)
        out = workdir / "render"
        cfg = _config({"live": live, "watch": watch_port, "am": am_port}, pg.address, webhook)
        write(render(parse_config(cfg)), out)
        am_dir = out / "alertmanager"
        with WatchProcess(fed.address, workdir / "watch.log",
                          ["--interval", "1s", "--stale-after", STALE_AFTER],
                          port=watch_port) as watch, \
                AlertManager(am_dir / "alertmanager.yml", templates=sorted(
                    am_dir.glob("*.tmpl")), workdir=workdir / "am", port=am_port) as am, \
                Prometheus(out / "prometheus/prometheus.yml",
                           rules=[out / "rules/flmon-rules.yaml"],
                           workdir=workdir / "prom") as prom:
            yield Stack(fed, watch, prom, am, slack, workdir)


# --- signals ------------------------------------------------------------------------




def _key(labels: dict[str, str]) -> tuple[str, str]:
    return labels["alertname"], labels.get("client", "")


def _am_active(stack: Stack) -> set[tuple[str, str]]:
    return {_key(a["labels"]) for a in stack.am.alerts(active=True)
            if a["labels"]["alertname"] != "FLTestSentinel"}


def _evaluated_since(stack: Stack, since: float) -> bool:
    """Every rule group of Prometheus has been evaluated after ``since`` (unix time)."""
    groups = stack.prom.rules()
    return bool(groups) and all(_unix(g["lastEvaluation"]) > since for g in groups)


def _unix(stamp: str) -> float:
    """RFC 3339 with nanoseconds, as Prometheus writes it, to unix time."""
    m = re.fullmatch(r"(.+T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", stamp)
    assert m, stamp
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return dt.datetime.fromisoformat(m.group(1) + zone).timestamp() + float(m.group(2) or 0)


def _nothing_else(stack: Stack, expected: set[tuple[str, str]]) -> None:
    """Prometheus and AlertManager hold exactly ``expected``, seen after fresh evaluations."""
    since = time.time() + 1.0  # a scrape of the watch after this point, then an evaluation
    wait_until("a rule evaluation of every group", lambda: _evaluated_since(stack, since), 30)
    in_prometheus = {_key(a["labels"]) for a in stack.prom.alerts()}  # pending and firing
    assert in_prometheus == expected, stack.prom.alerts()
    assert _am_active(stack) == expected, stack.am.alerts(active=True)


def _title(m: SlackMessage) -> str:
    return str(m.attachments[0].get("title", "")) if m.attachments else ""


def _flush_slack(stack: Stack) -> list[SlackMessage]:
    """Post a sentinel, wait for its notification; return every other message so far."""
    now = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    stack.am.post_alerts([{**sentinel(FEDERATION), "startsAt": now}])
    stack.slack.wait_for(lambda m: is_sentinel(_title(m)), 30)
    messages = [m for m in stack.slack.messages() if not is_sentinel(_title(m))]
    stack.am.post_alerts([{**sentinel(FEDERATION), "startsAt": now, "endsAt": now}])
    return messages


def _notified(messages: list[SlackMessage]) -> list[tuple[str, bool]]:
    """(title, resolved) of each message, sentinel ones left out."""
    return [(_title(m), m.resolved) for m in messages]


def _record(stack: Stack, name: str, seconds: float) -> None:
    """Print a measured delay and keep it next to the test's work directories."""
    print(f"\n{name}: {seconds:.1f} s")
    with (stack.workdir.parent / "federation-alert-delays.txt").open("a") as fh:
        fh.write(f"{name}: {seconds:.1f}\n")


def _ecs_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


# --- cases --------------------------------------------------------------------------


def test_the_healthy_federation_raises_nothing(stack: Stack) -> None:
    stack.watch.wait_for("fl_supernodes", NODES, timeout=60, status="online")
    stack.prom.wait_for(lambda: stack.prom.query_value(
        f'sum(fl_supernode_online{{job="{WATCH_JOB}",federation="{FEDERATION}"}})') == NODES,
        30, "the watch's nodes in Prometheus")
    _nothing_else(stack, set())
    assert _notified(_flush_slack(stack)) == []


def test_a_supernode_killed_between_runs_fires_node_offline_for_it_only(stack: Stack) -> None:
    victim = node_id(stack.fed, VICTIM)
    others = {node_id(stack.fed, i) for i in range(NODES) if i != VICTIM}
    stack.fed.kill_supernode(VICTIM)
    killed = time.monotonic()
    alerts = wait_until("FLNodeOffline in AlertManager",
                   lambda: stack.am.alerts(active=True, alertname="FLNodeOffline"), 150)
    _record(stack, "SIGKILL of a SuperNode -> FLNodeOffline firing in AlertManager",
            time.monotonic() - killed)
    assert [a["labels"]["client"] for a in alerts] == [victim]
    labels = alerts[0]["labels"]
    assert labels["federation"] == FEDERATION and labels["severity"] == "warning"
    assert "job" not in labels and "instance" not in labels
    assert alerts[0]["annotations"]["description"].startswith(
        f"SuperNode {victim} of federation {FEDERATION} is offline")
    _nothing_else(stack, {("FLNodeOffline", victim)})
    # Slack: one notification, on the warning channel, naming the node; nothing else.
    msg = stack.slack.wait_for(lambda m: "] FLNodeOffline (" in _title(m), 30)
    assert msg.channel == CHANNELS["warning"] and not msg.resolved
    assert f"client `{victim}`" in msg.all_text()
    assert not any(f"client `{other}`" in msg.all_text() for other in others)
    assert _notified(_flush_slack(stack)) == [(_title(msg), False)]
    # The watch agrees: this node is offline, the two others online.
    samples = stack.watch.metrics()
    assert value(samples, "fl_supernodes", status="offline") == 1
    assert value(samples, "fl_supernodes", status="online") == NODES - 1


def test_the_superlink_killed_fires_superlink_down_and_back_resolves_it(stack: Stack) -> None:
    stack.slack.clear()
    victim = node_id(stack.fed, VICTIM)
    stack.fed.kill_superlink()
    killed = time.monotonic()
    down = wait_until("FLSuperLinkDown in AlertManager",
                 lambda: stack.am.alerts(active=True, alertname="FLSuperLinkDown"), 90)
    _record(stack, "SIGKILL of the SuperLink -> FLSuperLinkDown firing in AlertManager",
            time.monotonic() - killed)
    assert len(down) == 1
    assert down[0]["labels"]["federation"] == FEDERATION
    assert down[0]["labels"]["severity"] == "critical"
    assert down[0]["annotations"]["description"].startswith(
        f"The SuperLink of federation {FEDERATION} does not answer flmon watch's")
    # The watch keeps serving: healthy, fl_superlink_up 0, the nodes as last known (the
    # killed node offline), and its ECS JSON log says why.
    with urllib.request.urlopen(f"http://{LOOPBACK}:{stack.watch.port}/healthz",
                                timeout=5) as resp:
        assert resp.status == 200
    samples = stack.watch.metrics()
    assert value(samples, "fl_superlink_up") == 0
    assert (value(samples, "fl_watch_poll_errors_total", reason="unreachable") or 0) >= 1
    assert value(samples, "fl_supernode_online", client=victim) == 0
    assert value(samples, "fl_supernodes", status="offline") is None  # counts: unknown
    errors = [r for r in _ecs_records(stack.watch.process.log_path)
              if r["log.level"] == "error" and "does not answer" in r["message"]]
    assert errors and list(errors[-1])[:3] == ["@timestamp", "log.level", "message"]
    assert "unreachable" in errors[-1]["message"]
    # The killed node's FLNodeOffline keeps firing (the watch keeps its last state), held
    # back by the inhibition: it does not reach Slack as RESOLVED while the node is dead.
    _nothing_else(stack, {("FLSuperLinkDown", ""), ("FLNodeOffline", victim)})
    # What FLSuperLinkDown inhibits (per the declaration) is held back by AlertManager:
    # the killed node's alert, and an FLNodeOffline of this federation posted now, are
    # suppressed, never notified.
    now = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    node_alert = {"labels": {"alertname": "FLNodeOffline", "federation": FEDERATION,
                             "client": "4242", "severity": "warning", "team": "platform"},
                  "annotations": {"summary": "A SuperNode is offline"}, "startsAt": now}
    stack.am.post_alerts([node_alert])
    assert set(wait_inhibited(stack.am.url, "FLNodeOffline")) == {down[0]["fingerprint"]}
    # Each aggregation group flushes on its own timer: the page is awaited, then the sentinel.
    stack.slack.wait_for(lambda m: not m.resolved and "] FLSuperLinkDown (" in _title(m), 30)
    messages = _flush_slack(stack)
    stack.am.post_alerts([{**node_alert, "endsAt": now}])
    titles = [title for title, resolved in _notified(messages) if not resolved]
    assert [t for t in titles if "FLSuperLinkDown" in t] and all(
        "FLSuperLinkDown (critical)" in t for t in titles), titles
    assert all(m.channel == CHANNELS["critical"] for m in messages if not m.resolved)
    assert not [m for m in messages if "FLNodeOffline" in _title(m)]  # nor as resolved

    # The SuperLink is back (its state is in memory, so it starts empty): resolved.
    stack.fed.restart_superlink()
    stack.watch.wait_for("fl_superlink_up", 1, timeout=60)
    stack.slack.wait_for(lambda m: m.resolved and "] FLSuperLinkDown (" in _title(m), 60)
    wait_until("FLSuperLinkDown gone from AlertManager", lambda: not stack.am.alerts(
        active=True, alertname="FLSuperLinkDown") or None, 30)
    # The restarted SuperLink kept nothing (in-memory state): the SuperNodes still alive
    # are refused (401 on their next heartbeat or pull) and exit, and none is listed any
    # more. The watch remembers them: each is offline and replaced (its place is gone),
    # so FLNodeOffline fires for the survivors, until stale_after (2m) after their last
    # heartbeat, when the watch forgets them and every alert resolves.
    survivors = {node_id(stack.fed, i) for i in range(NODES - 1)}
    gone = stack.watch.wait_for("fl_superlink_up", 1)
    assert value(gone, "fl_supernodes", status="online") == 0
    assert value(gone, "fl_supernodes", status="offline") == 0
    for client in survivors:
        assert value(gone, "fl_supernode_online", client=client) == 0
        assert value(gone, "fl_supernode_replaced", client=client) == 1
    wait_until("FLNodeOffline of every surviving node in AlertManager", lambda: survivors <= {
        client for name, client in _am_active(stack) if name == "FLNodeOffline"} or None, 60)
    for index in range(NODES - 1):
        stack.fed.supernodes[index].wait(timeout=120)
    wait_until("every FLNodeOffline resolved after stale_after", lambda: not stack.am.alerts(
        active=True, alertname="FLNodeOffline") or None, 180)
    forgotten = stack.watch.wait_for("fl_superlink_up", 1)
    assert all(value(forgotten, "fl_supernode_online", client=c) is None
               for c in {*survivors, victim})
    _nothing_else(stack, set())
