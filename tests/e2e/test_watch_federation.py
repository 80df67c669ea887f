"""``flmon watch`` against a real SuperLink with 3 SuperNodes, and runs of tests/apps/tinyfl.

One federation, one Pushgateway and one watch (polling every second) are shared by the
whole module; the tests run in order and each leaves the federation as the next expects:
nodes online; a failed run counted as failed; two concurrent runs, each with its own run_id
on its own exporter port and Pushgateway group, counted as completed; a watch restart that
keeps fl_runs_finished_total and deletes ended runs' groups; a SuperNode killed between
runs going offline; the SuperLink killed and back.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flmon.stack.flower import FlowerFederation, RunResult
from flmon.stack.ports import free_port, is_listening
from flmon.stack.pushgateway import Pushgateway
from flmon.stack.watch import Samples, WatchProcess, scrape, value
from tests.e2e.support import node_id

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APP = Path(__file__).resolve().parents[1] / "apps" / "tinyfl"
NODES = 3


@dataclass
class Stack:
    fed: FlowerFederation
    gateway: Pushgateway
    watch: WatchProcess
    workdir: Path
    finished: dict[str, float] = field(default_factory=dict)
    run_ids: list[int] = field(default_factory=list)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("watch")
    with Pushgateway(workdir=workdir / "pushgateway") as gateway, FlowerFederation(
        NODES, workdir=workdir / "flower"
    ) as fed:
        watch = WatchProcess(fed.address, workdir / "watch.log", ["--interval", "1s"])
        with watch:
            yield Stack(fed, gateway, watch, workdir)


def _run(stack: Stack, name: str, **config: int | str | bool) -> tuple[RunResult, int | None]:
    summary = stack.workdir / f"{name}.json"
    result = stack.fed.run(APP, {"num-server-rounds": 1, "pushgateway": stack.gateway.address,
                                 "summary-path": str(summary), **config}, timeout=300)
    if result.returncode == 0:  # the ServerApp writes it as its last step
        deadline = time.monotonic() + 30
        while not summary.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    run_id = json.loads(summary.read_text())["run_id"] if summary.exists() else None
    return result, run_id


def test_every_supernode_is_online_under_its_node_id(stack: Stack) -> None:
    samples = stack.watch.wait_for("fl_supernodes", NODES, status="online")
    assert value(samples, "fl_superlink_up") == 1
    assert value(samples, "fl_supernodes", status="offline") == 0
    for index in range(NODES):
        assert value(samples, "fl_supernode_online", client=node_id(stack.fed, index)) == 1
        age = value(samples, "fl_supernode_heartbeat_age_seconds",
                    client=node_id(stack.fed, index))
        assert age is not None and 0 <= age <= 60


def test_a_failed_run_is_counted_as_failed(stack: Stack) -> None:
    failed, _ = _run(stack, "failed", fail=True)
    assert "failing on purpose" in failed.output, failed.output[-3000:]
    samples = stack.watch.wait_for("fl_runs", 1, status="failed")
    assert value(samples, "fl_runs", status="completed") == 0
    assert value(samples, "fl_runs", status="running") == 0
    assert value(samples, "fl_runs_finished_total", result="failed") == 1
    assert value(samples, "fl_runs_finished_total", result="completed") == 0
    assert value(samples, "fl_run_duration_seconds_count", result="failed") == 1


def _two_free_ports() -> int:
    while True:
        port = free_port()
        if port < 65535 and not is_listening(port + 1):
            return port


class _Scraper(threading.Thread):
    """Scrapes two exporter ports at once while runs are in progress."""

    def __init__(self, ports: tuple[int, int]) -> None:
        super().__init__(daemon=True)
        self.ports = ports
        self.seen: dict[int, set[str]] = {p: set() for p in ports}
        self.together: set[frozenset[str]] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            now: dict[int, str] = {}
            for port in self.ports:
                try:
                    samples = scrape(f"http://127.0.0.1:{port}/metrics", timeout=2)
                except OSError:
                    continue
                ids = {dict(labels)["run_id"] for (name, labels) in samples
                       if name == "fl_run_active"}
                if ids:
                    self.seen[port] |= ids
                    now[port] = next(iter(ids))
            if len(now) == 2:
                self.together.add(frozenset(now.values()))


def test_two_concurrent_runs_are_each_visible_under_their_own_run_id(stack: Stack) -> None:
    port = _two_free_ports()
    scraper = _Scraper((port, port + 1))
    scraper.start()
    results: list[tuple[RunResult, int | None]] = []
    threads = [threading.Thread(target=lambda n=n: results.append(
        _run(stack, f"concurrent-{n}", **{"num-server-rounds": 2, "exporter-port": port})))
        for n in (1, 2)]
    running_seen = 0.0
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        with contextlib.suppress(OSError):
            running_seen = max(running_seen,
                               value(stack.watch.metrics(), "fl_runs", status="running") or 0)
        time.sleep(0.5)
    scraper.stop.set()
    scraper.join()
    assert len(results) == 2
    for result, run_id in results:
        assert result.returncode == 0, result.output[-3000:]
        assert run_id is not None
        stack.run_ids.append(run_id)
    ids = {str(run_id) for _, run_id in results}
    assert running_seen == 2  # the watch saw both runs in progress at once
    # Both exporters answered at the same time, on two ports, each with its run's id.
    assert ids in scraper.together, (scraper.seen, scraper.together)
    # The watch counts both as completed, next to the failed run before them.
    samples = stack.watch.wait_for("fl_runs", 2, status="completed")
    assert value(samples, "fl_runs", status="failed") == 1
    assert value(samples, "fl_runs_finished_total", result="completed") == 2
    assert value(samples, "fl_run_duration_seconds_count", result="completed") == 2
    sent = value(samples, "fl_run_transferred_bytes_sum", direction="sent")
    assert sent is not None and sent > 0  # the model went out to the nodes
    # One Pushgateway group per run, told apart by run_id.
    pushed = stack.gateway.metrics_text()
    for run_id in ids:
        assert f'fl_rounds_completed_total{{instance="",job="flmon",run_id="{run_id}"}} 2' \
            in pushed, pushed[:3000]


def test_a_restarted_watch_keeps_the_finished_count_and_deletes_ended_groups(
    stack: Stack,
) -> None:
    before = stack.watch.wait_for("fl_runs_finished_total", 2, result="completed")
    assert value(before, "fl_runs_finished_total", result="failed") == 1
    with WatchProcess(stack.fed.address, stack.workdir / "watch-2.log",
                      ["--interval", "1s", "--pushgateway", stack.gateway.address,
                       "--stale-after", "1s"]) as second:
        after = second.wait_for("fl_superlink_up", 1)
        for result in ("completed", "failed", "stopped"):
            assert value(after, "fl_runs_finished_total", result=result) == value(
                before, "fl_runs_finished_total", result=result)
        # Every ended run's group goes once it is 1 s past its end.
        deleted = second.wait_for("fl_watch_pushgateway_groups_deleted_total",
                                  len(stack.run_ids))
        assert value(deleted, "fl_watch_pushgateway_errors_total") == 0
    pushed = stack.gateway.metrics_text()
    assert not any(f'run_id="{run_id}"' in pushed for run_id in stack.run_ids)


def test_a_supernode_killed_between_runs_goes_offline(stack: Stack) -> None:
    victim = node_id(stack.fed, NODES - 1)
    stack.fed.kill_supernode(NODES - 1)
    killed = time.monotonic()
    samples = stack.watch.wait_for("fl_supernode_online", 0, timeout=120, client=victim)
    elapsed = time.monotonic() - killed
    print(f"\nSuperNode {victim} killed -> fl_supernode_online 0 after {elapsed:.1f} s")
    (stack.workdir.parent / "node-offline-seconds.txt").write_text(f"{elapsed:.1f}\n")
    assert value(samples, "fl_supernodes", status="offline") == 1
    assert value(samples, "fl_supernodes", status="online") == NODES - 1
    for index in range(NODES - 1):
        assert value(samples, "fl_supernode_online", client=node_id(stack.fed, index)) == 1


def test_the_superlink_killed_and_back(stack: Stack) -> None:
    stack.fed.kill_superlink()
    down: Samples = stack.watch.wait_for("fl_superlink_up", 0)
    assert (value(down, "fl_watch_poll_errors_total", reason="unreachable") or 0) >= 1
    assert value(down, "fl_supernodes", status="online") is None  # absent, not stale
    assert value(down, "fl_runs_finished_total", result="completed") == 2
    log = [json.loads(line) for line in stack.watch.process.log_path.read_text().splitlines()
           if line.startswith("{")]
    assert any("does not answer" in r["message"] and r["log.level"] == "error" for r in log)
    stack.fed.restart_superlink()
    back = stack.watch.wait_for("fl_superlink_up", 1)
    assert value(back, "fl_runs", status="completed") is not None
