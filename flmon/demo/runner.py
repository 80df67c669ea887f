"""Run one scenario on a :class:`~flmon.demo.stack.DemoStack` and watch it through Prometheus.

:class:`ScenarioRun` submits the example app with ``flwr run --stream`` in the
background, follows the rounds through Prometheus' HTTP API (the same series the
dashboards and alerts read), injects the SuperNode kill of the ``node-killed`` scenario,
records alert transitions and Slack messages, and after the run waits (bounded) for the
expected alerts to fire and, where the fault ended, to resolve.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flmon.demo.config import LIVE_JOB, PUSHED_JOB
from flmon.demo.scenarios import Scenario
from flmon.demo.stack import ConfigValue, DemoStack
from flmon.reference import APPS_DIR as EXAMPLES_DIR
from flmon.reference import EXAMPLES as EXAMPLES  # re-exported
from flmon.reference import app_config as app_config
from flmon.reference import app_dir as example_dir
from flmon.reference import load_task
from flmon.stack.flower import CONNECTION, FlowerFederation, format_config
from flmon.stack.process import ManagedProcess


def _flwr_bin() -> str:
    candidate = Path(sys.executable).parent / "flwr"
    return str(candidate) if candidate.exists() else "flwr"


@dataclass
class RoundRow:
    """What Prometheus showed when a round completed."""

    round: int
    seconds: float
    train_accuracy: float | None
    eval_accuracy: float | None
    central_accuracy: float | None
    replied: int | None
    selected: int | None
    firing: tuple[str, ...]
    completed_at: float = field(default_factory=time.time)
    """Unix time the demo saw the round completed."""


@dataclass
class AlertEvent:
    """An alert transition seen in Prometheus."""

    at: float
    alertname: str
    state: str  # "firing" or "resolved"
    labels: dict[str, str]


@dataclass
class RunOutcome:
    """Everything the summary needs."""

    scenario: str
    example: str
    rounds_planned: int
    rounds_completed: int
    returncode: int | None
    seconds: float
    rows: list[RoundRow] = field(default_factory=list)
    events: list[AlertEvent] = field(default_factory=list)
    final: dict[str, float | None] = field(default_factory=dict)
    killed_node: int | None = None
    killed_node_id: str | None = None
    """Flower node id of the killed SuperNode (from its log), when known."""
    killed_at: float | None = None
    """Unix time of the SIGKILL."""

    def offline_alert_after(self) -> float | None:
        """Seconds from the SIGKILL to ``FLNodeOffline`` firing for the killed node."""
        if self.killed_at is None or self.killed_node_id is None:
            return None
        for e in self.events:
            if e.alertname == "FLNodeOffline" and e.state == "firing" \
                    and e.labels.get("client") == self.killed_node_id:
                return e.at - self.killed_at
        return None

    def fired(self) -> list[str]:
        """Alert names that fired, in order of first firing."""
        seen: list[str] = []
        for e in self.events:
            if e.state == "firing" and e.alertname not in seen:
                seen.append(e.alertname)
        return seen

    def resolved(self) -> list[str]:
        """Alert names that fired and were no longer firing at the end."""
        last: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        for e in self.events:
            last[(e.alertname, tuple(sorted(e.labels.items())))] = e.state
        names = {k[0] for k in last}
        return [n for n in self.fired()
                if n in names and all(s == "resolved" for (a, _), s in last.items() if a == n)]


def may_restart(scenario: Scenario, outcome: RunOutcome, now: float) -> bool:
    """Whether the killed SuperNode may be started again at unix time ``now``.

    When the scenario expects ``FLNodeOffline``, only once it fired for the killed node,
    or ``scenario.offline_timeout`` seconds after the kill (then the summary says it did
    not fire); otherwise at once.
    """
    if "FLNodeOffline" not in scenario.expected_alerts or outcome.killed_at is None:
        return True
    if outcome.offline_alert_after() is not None:
        return True
    return now - outcome.killed_at > scenario.offline_timeout


_NODE_ID = re.compile(r"SuperNode ID: (\d+)")


def logged_node_id(log_path: Path) -> str | None:
    """The node id a SuperNode logged when it registered (its last one), if any."""
    try:
        ids = _NODE_ID.findall(log_path.read_text(errors="replace"))
    except FileNotFoundError:
        return None
    return ids[-1] if ids else None


def _alert_key(alert: dict[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    labels: dict[str, str] = alert["labels"]
    return labels["alertname"], tuple(sorted(labels.items()))


class ScenarioRun:
    """One ``flwr run`` of an example app on a started stack.

    Parameters
    ----------
    stack
        A started :class:`DemoStack` (with Flower).
    example
        ``healthcare`` or ``fraud``.
    scenario
        What to inject.
    rounds
        ``num-server-rounds``.
    run_config
        Extra run-config overrides.
    on_round, on_alert
        Progress callbacks.
    """

    def __init__(
        self,
        stack: DemoStack,
        example: str,
        scenario: Scenario,
        rounds: int,
        *,
        run_config: dict[str, ConfigValue] | None = None,
        examples_dir: Path = EXAMPLES_DIR,
        on_round: Callable[[RoundRow], None] | None = None,
        on_alert: Callable[[AlertEvent], None] | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        if stack.flower is None or stack.prometheus is None:
            raise RuntimeError("start the stack (with Flower) first")
        self.stack = stack
        self.flower: FlowerFederation = stack.flower
        self.example = example
        self.app_dir = example_dir(example, examples_dir)
        self.scenario = scenario
        self.rounds = rounds
        self.run_config: dict[str, ConfigValue] = {
            "num-server-rounds": rounds,
            "scenario": scenario.name,
            **scenario.run_config,
            **stack.flmon_run_config(),
            **(run_config or {}),
        }
        self.on_round = on_round or (lambda _r: None)
        self.on_alert = on_alert or (lambda _e: None)
        self.on_note = on_note or (lambda _n: None)
        self.process: ManagedProcess | None = None
        self._alert_state: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        self._waiting_noted = False
        self.outcome = RunOutcome(scenario.name, example, rounds, 0, None, 0.0)

    # --- Prometheus reads -----------------------------------------------------------------

    def value(self, metric: str, extra: str = "") -> float | None:
        """Latest value of a federation metric: the live exporter's, else the pushed one."""
        prom = self.stack.prometheus
        assert prom is not None
        fed = self.stack.federation
        for job in (LIVE_JOB, PUSHED_JOB):
            sel = f'job="{job}",federation="{fed}"' + (f",{extra}" if extra else "")
            result = prom.query(f"max({metric}{{{sel}}})")
            if result:
                return float(result[0]["value"][1])
        return None

    def pushed_value(self, metric: str, extra: str = "") -> float | None:
        """Latest value of a federation metric as the Pushgateway holds it."""
        prom = self.stack.prometheus
        assert prom is not None
        sel = f'job="{PUSHED_JOB}",federation="{self.stack.federation}"'
        result = prom.query(f"max({metric}{{{sel}{',' + extra if extra else ''}}})")
        return float(result[0]["value"][1]) if result else None

    def _completed(self) -> int:
        values = [v for v in (self.value("fl_rounds_completed_total"),
                              self.pushed_value("fl_rounds_completed_total")) if v is not None]
        return int(max(values)) if values else 0

    def _poll_alerts(self) -> tuple[str, ...]:
        prom = self.stack.prometheus
        assert prom is not None
        now = time.time()
        current: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]] = {}
        for alert in prom.alerts():
            if alert.get("state") == "firing":
                current[_alert_key(alert)] = alert
        for key, alert in current.items():
            if self._alert_state.get(key) != "firing":
                self._alert_state[key] = "firing"
                event = AlertEvent(now, key[0], "firing", dict(alert["labels"]))
                self.outcome.events.append(event)
                self.on_alert(event)
        for key, state in list(self._alert_state.items()):
            if state == "firing" and key not in current:
                self._alert_state[key] = "resolved"
                event = AlertEvent(now, key[0], "resolved", dict(key[1]))
                self.outcome.events.append(event)
                self.on_alert(event)
        return tuple(sorted({k[0] for k in current}))

    def firing(self) -> set[str]:
        """Alert names firing now (as last polled)."""
        return {k[0] for k, s in self._alert_state.items() if s == "firing"}

    # --- the run ------------------------------------------------------------------------

    def start(self) -> ManagedProcess:
        """Submit the run (``flwr run APP CONNECTION --stream``) in the background.

        A scenario with ``privacy_test`` first runs ``flmon privacy-test`` on the example
        and pushes its figures to the stack's Pushgateway (a few seconds, in-process).
        """
        if self.scenario.privacy_test:
            result = push_privacy_figures(self.stack, self.example, self.app_dir.parent)
            self.on_note(privacy_note(result))
        argv = [_flwr_bin(), "run", str(self.app_dir), CONNECTION, "--stream",
                "--run-config", format_config(self.run_config)]
        self.process = ManagedProcess(
            "flwr-run", argv, self.flower.workdir / "flwr-run.log",
            env=self.flower.env, cwd=self.flower.workdir,
        ).start()
        return self.process

    def _inject(self, completed: int) -> None:
        sc = self.scenario
        index = int(self.run_config.get("fault-partition", 1)) % self.flower.num_supernodes
        if sc.kill_after_round and completed >= sc.kill_after_round \
                and self.outcome.killed_node is None:
            self.outcome.killed_node_id = logged_node_id(self.flower.supernodes[index].log_path)
            self.flower.kill_supernode(index)
            self.outcome.killed_node = index
            self.outcome.killed_at = time.time()
            self.on_note(f"killed SuperNode {index} (node {self.outcome.killed_node_id}, "
                         f"SIGKILL) after round {completed}")
        if sc.restart_after_round and completed >= sc.restart_after_round \
                and self.outcome.killed_node is not None and not self.flower.supernodes[
                    self.outcome.killed_node].running and self._offline_shown():
            self.flower.restart_supernode(self.outcome.killed_node)
            self.on_note(f"restarted SuperNode {index} after round {completed}")

    def _offline_shown(self) -> bool:
        """Whether the killed node may be restarted (see :func:`may_restart`)."""
        now = time.time()
        if may_restart(self.scenario, self.outcome, now):
            if self.outcome.killed_at is not None and self._waiting_noted \
                    and self.outcome.offline_alert_after() is None:
                self.on_note(f"FLNodeOffline did not fire within "
                             f"{self.scenario.offline_timeout:.0f} s of the kill; "
                             f"restarting the node anyway")
            return True
        if not self._waiting_noted:
            self._waiting_noted = True
            waited = now - (self.outcome.killed_at or now)
            self.on_note(f"waiting for FLNodeOffline of node {self.outcome.killed_node_id} "
                         f"before restarting it (Flower sees it offline after missed "
                         f"heartbeats; {waited:.0f} s since the kill)")
        return False

    def run(self, timeout: float = 900.0, settle_timeout: float = 90.0) -> RunOutcome:
        """Run to the end, then wait for the expected alerts (see the module docstring)."""
        started = time.monotonic()
        proc = self.process or self.start()
        try:
            return self._follow(proc, started, timeout, settle_timeout)
        except BaseException:
            proc.stop()  # Ctrl-C or an error: the run's client goes with the rest
            raise

    def _follow(
        self, proc: ManagedProcess, started: float, timeout: float, settle_timeout: float
    ) -> RunOutcome:
        last_completed = 0
        last_round_at = time.monotonic()
        while proc.running:
            if time.monotonic() - started > timeout:
                proc.stop()
                raise TimeoutError(f"run did not end within {timeout:.0f}s; log {proc.log_path}")
            firing = self._poll_alerts()
            completed = self._completed()
            if completed > last_completed:
                time.sleep(1.2)  # let Prometheus scrape the centralized evaluation
                for number in range(last_completed + 1, completed + 1):
                    self._emit_row(number, time.monotonic() - last_round_at, firing)
                last_completed = completed
                last_round_at = time.monotonic()
            self._inject(completed)
            time.sleep(0.5)
        self.outcome.returncode = proc.returncode
        self.outcome.seconds = time.monotonic() - started
        time.sleep(2.5)  # the final push and one more scrape
        completed = self._completed()
        for number in range(last_completed + 1, completed + 1):
            self._emit_row(number, time.monotonic() - last_round_at, self._poll_alerts())
        self.outcome.rounds_completed = completed
        self.outcome.final = {
            "centralized_accuracy": self.pushed_value("fl_centralized_accuracy"),
            "training_accuracy": self.pushed_value("fl_training_accuracy"),
            "evaluation_accuracy": self.pushed_value("fl_evaluation_accuracy"),
            "dp_epsilon_spent": self.pushed_value("fl_dp_epsilon_spent"),
            "dp_epsilon_budget": self.pushed_value("fl_dp_epsilon_budget"),
        }
        self._settle(settle_timeout)
        return self.outcome

    def _settle(self, timeout: float) -> None:
        expected = set(self.scenario.expected_alerts)
        deadline = time.monotonic() + timeout
        if expected:
            self.on_note(f"waiting for {', '.join(sorted(expected))} "
                         f"{'to fire and resolve' if self.scenario.resolves else 'to fire'}")
        else:
            deadline = time.monotonic() + min(timeout, 5.0)
        while time.monotonic() < deadline:
            self._poll_alerts()
            self._inject(self.outcome.rounds_completed)  # a restart may wait for FLNodeOffline
            fired = set(self.outcome.fired())
            if expected and expected <= fired and (
                not self.scenario.resolves or not (self.firing() & expected)
            ):
                break
            time.sleep(1.0)
        # AlertManager needs a group_interval to send what Prometheus resolved.
        time.sleep(3.0)
        self._poll_alerts()

    def _emit_row(self, number: int, seconds: float, firing: tuple[str, ...]) -> None:
        def count(metric: str) -> int | None:
            v = self.value(metric, 'phase="train"')
            return None if v is None else int(v)

        row = RoundRow(
            round=number,
            seconds=seconds,
            train_accuracy=self.value("fl_training_accuracy"),
            eval_accuracy=self.value("fl_evaluation_accuracy"),
            central_accuracy=self.value("fl_centralized_accuracy"),
            replied=count("fl_clients_replied"),
            selected=count("fl_clients_selected"),
            firing=firing,
        )
        self.outcome.rows.append(row)
        self.on_round(row)


def push_privacy_figures(stack: DemoStack, example: str,
                         examples_dir: Path = EXAMPLES_DIR) -> dict[str, Any]:
    """Run ``flmon privacy-test`` on ``example`` (its defaults) and push the figures to
    the stack's Pushgateway, as ``flmon privacy-test --pushgateway`` does."""
    from flmon.privacy import run_privacy_test
    from flmon.privacy.report import push

    result = run_privacy_test(example=example, examples_dir=examples_dir)
    if result["federation"] != stack.federation:
        raise ValueError(f"example {example} is federation {result['federation']!r}, the "
                         f"stack's is {stack.federation!r}")
    if not push(result, stack.pushgateway.url):
        raise RuntimeError(f"the Pushgateway {stack.pushgateway.url} refused the figures")
    return result


def privacy_note(result: dict[str, Any]) -> str:
    """One line of the privacy test's headline attack, each view without and with DP."""
    no_dp, dp = result["no_dp"], result["dp"]
    name = no_dp["attack"]

    def auc(section: dict[str, Any], view: str) -> str:
        return f"{section['attacks'][name][view]['auc']:.3f}"

    eps = "n/a" if dp["epsilon"] is None else f"{dp['epsilon']:.2f}"
    return (f"flmon privacy-test pushed ({name} AUC, without DP -> with {dp['mode']} DP, "
            f"epsilon {eps}): client updates {auc(no_dp, 'client_update')} -> "
            f"{auc(dp, 'client_update')}, release {auc(no_dp, 'release')} -> "
            f"{auc(dp, 'release')}")


def centralized_baseline(example: str, num_nodes: int, rounds: int,
                         examples_dir: Path = EXAMPLES_DIR) -> dict[str, float]:
    """Train the same network on the union of every node's training data.

    Same hyperparameters as the federation, ``local-epochs x rounds`` epochs, scored on
    the same global test set the server uses. Imports TensorFlow in this process.
    """
    from flmon.reference import tabular

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cfg = app_config(example_dir(example, examples_dir))
    task = load_task(example, examples_dir)
    union = task.load_union(num_nodes)
    weights = tabular.init_weights(task.NUM_FEATURES, task.HIDDEN_UNITS, int(cfg["seed"]))
    with _quiet_native_stderr():  # TensorFlow's C++ start-up lines would cut the table
        trained, _ = tabular.fit_keras(
            weights, union, hidden=task.HIDDEN_UNITS,
            learning_rate=float(cfg["learning-rate"]),
            epochs=int(cfg["local-epochs"]) * rounds, batch_size=int(cfg["batch-size"]),
            seed=1,
        )
    return tabular.evaluate(trained, task.load_global_test())


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the block (native libraries write there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
