"""End-to-end tests: real Prometheus, AlertManager, Pushgateway and Flower on loopback."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# TensorFlow's C++ start-up chatter in every ClientApp log and in this process.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def no_orphans() -> Iterator[list[int]]:
    """Collects pids a test started; after the test every one of them must be gone."""
    pids: list[int] = []
    yield pids
    deadline = time.monotonic() + 3.0  # a SIGKILL is delivered asynchronously
    while True:
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists() and _not_zombie(pid)]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not alive, f"processes left running: {alive}"


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
