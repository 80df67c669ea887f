"""A monitoring stack (real Prometheus, AlertManager, Pushgateway, Slack receiver) with one
recorded five-round run, shared by the report tests of this directory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flmon.cli.main import main
from flmon.demo.stack import DemoStack
from tests.e2e.report.federation import RecordedRun, record_run


@dataclass
class StackWithRun:
    stack: DemoStack
    run: RecordedRun


@pytest.fixture(scope="package")
def recorded() -> Iterator[StackWithRun]:
    # A short anomaly window so the alert resolves within seconds of the poisoned round.
    stack = DemoStack("hospitals", 3,
                      alert_overrides={"FLClientUpdateAnomaly": {"window": "8s"}})
    stack.start(with_flower=False)
    try:
        yield StackWithRun(stack, record_run(stack))
    finally:
        stack.stop()


@pytest.fixture(scope="package")
def report_file(recorded: StackWithRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``flmon report`` of the recorded run, as the command line writes it."""
    stack = recorded.stack
    assert stack.prometheus is not None and stack.alertmanager is not None
    out = tmp_path_factory.mktemp("report") / "report.html"
    code = main(["report", "--prometheus", stack.prometheus.url,
                 "--alertmanager", stack.alertmanager.url,
                 "--config", str(stack.workdir / "flmon.yaml"), "--out", str(out)])
    assert code == 0
    return out
