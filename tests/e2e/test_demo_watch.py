"""The demo runs flmon watch next to its SuperLink, and its Prometheus scrapes it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flmon.demo.app import federation_view
from flmon.demo.config import WATCH_JOB
from flmon.demo.stack import DemoStack

pytestmark = pytest.mark.slow


def test_the_demo_summary_shows_the_federation_as_prometheus_sees_it(tmp_path: Path) -> None:
    with DemoStack("hospitals", 3, workdir=tmp_path / "demo") as stack:
        assert stack.watch is not None and stack.prometheus is not None
        sel = f'job="{WATCH_JOB}",federation="hospitals"'
        stack.prometheus.wait_for(
            lambda: stack.prometheus.query_value(  # type: ignore[union-attr]
                f'fl_supernodes{{{sel},status="online"}}') == 3, timeout=90)
        view = federation_view(stack)
        jobs = yaml.safe_load((stack.render_dir / "prometheus" / "prometheus.yml")
                              .read_text())["scrape_configs"]
    assert view[0].startswith("SuperLink           up (flmon watch 127.0.0.1:")
    assert view[1] == ("SuperNodes          registered 0, online 3, offline 0, "
                       "unregistered 0")
    assert view[2] == ("runs                pending 0, starting 0, running 0, completed 0, "
                       "failed 0, stopped 0")
    [watch_job] = [j for j in jobs if j["job_name"] == WATCH_JOB]
    assert watch_job["static_configs"][0]["labels"] == {"federation": "hospitals"}
