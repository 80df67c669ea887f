"""Ended runs' Pushgateway groups are deleted after stale_after, against a real Pushgateway."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge

from flmon.push import Pusher
from flmon.stack.pushgateway import Pushgateway
from flmon.watch.control import RunView
from flmon.watch.pushgateway import Group, PushgatewayJanitor, is_stale

NOW = 1_800_000_000.0
STALE = 1800.0


def _run(run_id: int, status: str, finished: float | None) -> RunView:
    return RunView(run_id, status, NOW - 9000, None, NOW - 8000, finished, 0, 0, 0.0)


def _group(run_id: str | None, push: float | None = None, active: float | None = None,
           end: float | None = None) -> Group:
    labels = {"job": "flmon"} | ({"run_id": run_id} if run_id is not None else {})
    return Group(labels, push, active, end)


@pytest.mark.parametrize(("group", "runs", "stale"), [
    # known to the SuperLink: its finished_at decides
    (_group("1"), {1: _run(1, "completed", NOW - STALE - 1)}, True),
    (_group("1"), {1: _run(1, "failed", NOW - STALE + 60)}, False),
    (_group("1", push=NOW - 10 * STALE), {1: _run(1, "running", None)}, False),
    # unknown: the group's own end, else its last push
    (_group("2", push=NOW - 60, active=0, end=NOW - STALE - 1), {}, True),
    (_group("2", push=NOW - 60, active=0, end=NOW - 60), {}, False),
    (_group("3", push=NOW - STALE - 1, active=1), {}, True),
    (_group("3", push=NOW - 60, active=1), {}, False),
    # not a run's group
    (_group(None, push=NOW - 10 * STALE), {}, False),
    (_group("unknown", push=NOW - 10 * STALE), {}, False),
])
def test_which_groups_are_stale(group: Group, runs: dict[int, RunView], stale: bool) -> None:
    assert is_stale(group, runs, NOW, STALE) is stale


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushgateway]:
    with Pushgateway(workdir=Path(tmp_path_factory.mktemp("pgw"))) as gw:
        yield gw


def test_sweep_deletes_only_the_ended_runs_groups(gateway: Pushgateway) -> None:
    now = time.time()
    ended = "fl_run_active 0\nfl_run_end_timestamp_seconds 1000\n"
    gateway.push_text("flmon", ended, federation="a", run_id="41")
    gateway.push_text("flmon", "fl_run_active 1\n", federation="a", run_id="42")
    gateway.push_text("flmon", "fl_run_active 1\n", federation="a", run_id="43")
    gateway.push_text("other", "something 1\n", instance="x")
    runs = {42: _run(42, "running", None), 43: _run(43, "completed", now - 5)}
    janitor = PushgatewayJanitor(gateway.address, stale_after=60.0)
    assert janitor.sweep(runs, now) == (1, 0)  # 41: unknown, ended long ago
    text = gateway.metrics_text()
    assert 'run_id="41"' not in text
    assert 'run_id="42"' in text and 'run_id="43"' in text
    assert "something" in text
    # 43 finished 5 s ago; once 60 s have passed, its group goes too.
    assert janitor.sweep(runs, now + 60) == (1, 0)
    text = gateway.metrics_text()
    assert 'run_id="43"' not in text and 'run_id="42"' in text


def test_a_pushgateway_that_is_down_is_counted_not_raised() -> None:
    from flmon.stack.ports import free_port

    janitor = PushgatewayJanitor(f"127.0.0.1:{free_port()}", stale_after=1.0, timeout=1.0)
    assert janitor.sweep({}, NOW) == (0, 1)


def test_sweep_with_credentials_for_a_pushgateway_behind_basic_auth(tmp_path: Path) -> None:
    import bcrypt

    web_config = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"push-secret-123", bcrypt.gensalt(rounds=4)).decode()
    web_config.write_text(f"basic_auth_users:\n  flmon: {hashed}\n")
    with Pushgateway(workdir=tmp_path / "pgw", web_config=web_config) as gateway:
        janitor = PushgatewayJanitor(gateway.address, stale_after=1.0, username="flmon",
                                     password="push-secret-123")
        registry = CollectorRegistry()
        Gauge("fl_run_active", "x", registry=registry).set(0)
        Gauge("fl_run_end_timestamp_seconds", "x", registry=registry).set(1000)
        pusher = Pusher(gateway.address, registry, grouping_key={"run_id": "9"},
                        username="flmon", password="push-secret-123")
        assert pusher.close(timeout=5) is True and pusher.pushes == 1
        anonymous = PushgatewayJanitor(gateway.address, stale_after=1.0)
        assert anonymous.sweep({}, time.time()) == (0, 1)  # refused: counted, not raised
        assert janitor.sweep({}, time.time()) == (1, 0)
        assert [g for g in janitor.groups() if g.labels.get("run_id") == "9"] == []
