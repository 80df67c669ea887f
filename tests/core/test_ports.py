"""flmon's port plan (flmon.ports) is the one every default states, and it cannot collide."""

from __future__ import annotations

from pathlib import Path

import yaml

from flmon.cli.watch import DEFAULT_PORT
from flmon.config import Datadog, LiveScrape, WatchScrape, load_config
from flmon.ports import LIVE_PORT, LIVE_PORT_TRIES, WATCH_PORT, live_ports

ROOT = Path(__file__).resolve().parents[2]


def test_no_number_of_concurrent_runs_reaches_the_watch_port() -> None:
    # An exporter scans upwards from its port: the watch sits below the whole live range,
    # whatever port_tries a user passes.
    assert WATCH_PORT < LIVE_PORT
    assert WATCH_PORT not in live_ports(LIVE_PORT, 65536 - LIVE_PORT)
    assert list(live_ports()) == list(range(9464, 9474))  # ten concurrent runs
    assert list(live_ports(65530, 10)) == list(range(65530, 65536))


def test_every_default_names_the_same_ports() -> None:
    assert DEFAULT_PORT == WATCH_PORT
    assert WatchScrape().targets == [f"127.0.0.1:{WATCH_PORT}"]
    assert LiveScrape().targets == [f"127.0.0.1:{LIVE_PORT}"]
    assert Datadog().openmetrics_endpoint == f"http://127.0.0.1:{LIVE_PORT}/metrics"
    example = load_config(ROOT / "examples" / "flmon.yaml")
    assert example.scrape.watch.targets == [f"127.0.0.1:{WATCH_PORT}"]
    values = yaml.safe_load((ROOT / "helm" / "flmon" / "values.yaml").read_text())
    assert values["watch"]["port"] == WATCH_PORT
    assert values["exporter"]["port"] == LIVE_PORT
    # The reference apps' ServerApp (shared by both) searches the live range only.
    source = (ROOT / "flmon" / "reference" / "apps.py").read_text()
    assert "port_tries=LIVE_PORT_TRIES" in source
    assert LIVE_PORT_TRIES == 10
