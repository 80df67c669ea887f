"""Run one scenario of an example app on a fresh demo stack, for the e2e tests."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flmon.demo import scenarios
from flmon.demo.runner import EXAMPLES, AlertEvent, RunOutcome, ScenarioRun
from flmon.demo.stack import ConfigValue, DemoStack


@dataclass
class Finished:
    """A finished run whose stack is still up for queries."""

    stack: DemoStack
    run: ScenarioRun
    outcome: RunOutcome
    started_at: float
    am_seen: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """AlertManager's alerts, read the moment each alert was first seen firing."""


@contextlib.contextmanager
def finished_run(
    workdir: Path,
    example: str,
    scenario: str,
    rounds: int,
    *,
    run_config: dict[str, ConfigValue] | None = None,
    alert_overrides: dict[str, dict[str, Any]] | None = None,
    settle_timeout: float = 90.0,
) -> Iterator[Finished]:
    """Start the stack, run the scenario to its end (and settle), yield, stop everything."""
    sc = scenarios.get(scenario)
    stack = DemoStack(EXAMPLES[example], 3, workdir=workdir, alert_overrides=alert_overrides)
    stack.start()
    try:
        am_seen: dict[str, list[dict[str, Any]]] = {}

        def on_alert(event: AlertEvent) -> None:
            if event.state == "firing" and event.alertname not in am_seen:
                assert stack.alertmanager is not None
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    got = stack.alertmanager.alerts(alertname=event.alertname)
                    if got:
                        am_seen[event.alertname] = got
                        break
                    time.sleep(0.3)

        started = time.time()
        run = ScenarioRun(stack, example, sc, rounds, run_config=run_config, on_alert=on_alert)
        outcome = run.run(timeout=600, settle_timeout=settle_timeout)
        yield Finished(stack, run, outcome, started, am_seen)
    finally:
        stack.stop()
