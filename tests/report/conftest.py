"""A monitoring stack (real Prometheus, AlertManager, Pushgateway, Slack receiver) with one
recorded five-round run, shared by the report tests of this directory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from flmon.demo.stack import DemoStack
from tests.report.federation import RecordedRun, record_run


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
