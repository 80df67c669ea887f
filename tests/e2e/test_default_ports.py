"""flmon's default ports on one host: a watch and several concurrent ServerApps never collide.

Real processes on flmon's real default ports (:mod:`flmon.ports`): ``flmon watch`` started
without ``--port``, and ServerApp-like processes that start their live exporter exactly as
the reference apps do (``start_exporter(LIVE_PORT, port_tries=LIVE_PORT_TRIES)``), some
before the watch (a watch restarted while runs are in progress) and some after it.
"""

from __future__ import annotations

import re
import sys
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest

from flmon.ports import LIVE_PORT, LIVE_PORT_TRIES, WATCH_PORT, live_ports
from flmon.stack.ports import free_port, is_listening
from flmon.stack.process import ManagedProcess
from flmon.stack.watch import scrape, value

pytestmark = [pytest.mark.e2e]

# A ServerApp's exporter as the reference apps start it, with one series of its own.
SERVERAPP = """
import sys, threading
from prometheus_client import CollectorRegistry, Gauge
import flmon
from flmon.ports import LIVE_PORT, LIVE_PORT_TRIES
registry = CollectorRegistry()
Gauge("fl_run_active", "1 while the run is in progress", registry=registry).set(1)
exporter = flmon.start_exporter(LIVE_PORT, registry=registry, port_tries=LIVE_PORT_TRIES)
print("PORT", exporter.port, flush=True)
threading.Event().wait()
"""

_PORT = re.compile(r"^PORT (\d+)$", re.M)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[ManagedProcess]]:
    started: list[ManagedProcess] = []
    yield started
    for proc in started:
        proc.stop()


def _defaults_free() -> None:
    taken = [p for p in [WATCH_PORT, *live_ports()] if is_listening(p)]
    assert not taken, f"flmon's default ports are in use on this host already: {taken}"


def _serverapp(tmp_path: Path, index: int, processes: list[ManagedProcess]) -> int:
    proc = ManagedProcess(f"serverapp-{index}", [sys.executable, "-c", SERVERAPP],
                          tmp_path / f"serverapp-{index}.log")
    processes.append(proc.start())
    proc.wait_until(lambda: bool(_PORT.search(proc.log_path.read_text())), 30, "bound")
    match = _PORT.search(proc.log_path.read_text())
    assert match is not None
    return int(match.group(1))


def test_a_watch_and_concurrent_serverapps_on_the_default_ports_never_collide(
        tmp_path: Path, processes: list[ManagedProcess]) -> None:
    _defaults_free()
    # Two runs already in progress when the watch (re)starts...
    ports = [_serverapp(tmp_path, i, processes) for i in range(2)]
    closed = free_port()  # no SuperLink there: the watch keeps serving, saying so
    watch = ManagedProcess("flmon-watch", [
        sys.executable, "-m", "flmon.cli.main", "watch", "--superlink", f"127.0.0.1:{closed}",
        "--insecure", "--interval", "500ms", "--timeout", "1s"], tmp_path / "watch.log")
    processes.append(watch.start())
    watch_url = f"http://127.0.0.1:{WATCH_PORT}/metrics"

    def watch_serves() -> bool:
        try:
            return value(scrape(watch_url), "fl_watch_polls_total") is not None
        except (OSError, urllib.error.URLError):
            return False

    watch.wait_until(watch_serves, 30, "serving on its default port")
    # ...and more runs starting while the watch is up.
    ports += [_serverapp(tmp_path, i, processes) for i in range(2, 4)]

    assert ports == [LIVE_PORT, LIVE_PORT + 1, LIVE_PORT + 2, LIVE_PORT + 3]
    assert WATCH_PORT not in ports and all(p in live_ports() for p in ports)
    assert len(ports) <= LIVE_PORT_TRIES
    for port in ports:  # each exporter serves its own run, none of them the watch
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
        assert value(samples, "fl_run_active") == 1
        assert not any(name == "fl_superlink_up" for name, _ in samples)
    samples = scrape(watch_url)
    assert value(samples, "fl_superlink_up") == 0
    assert not any(name == "fl_run_active" for name, _ in samples)
    assert all(proc.running for proc in processes)
