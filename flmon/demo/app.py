"""``flmon demo``: start the reference deployment, run a scenario, print a summary."""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

from flmon.demo import scenarios
from flmon.demo.runner import (
    EXAMPLES,
    AlertEvent,
    RoundRow,
    RunOutcome,
    ScenarioRun,
    centralized_baseline,
)
from flmon.demo.stack import ConfigValue, DemoStack
from flmon.reference import APPS_DIR as EXAMPLES_DIR
from flmon.reference import app_dir as example_dir
from flmon.stack.slack_receiver import SlackMessage


@dataclass(frozen=True)
class DemoOptions:
    """What ``flmon demo`` was asked for."""

    scenario: str = "healthy"
    example: str = "healthcare"
    nodes: int = 3
    rounds: int = 5
    dp: bool = False
    workdir: Path = Path(".flmon-demo")
    hold: bool = False
    baseline: bool = True
    insecure: bool = False
    examples_dir: Path = EXAMPLES_DIR


def _fmt(value: float | None, percent: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if percent else f"{value:.2f}"


class Printer:
    """Progress lines on ``out``; thread-safe enough for one line per call."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.t0 = time.monotonic()

    def line(self, text: str) -> None:
        self.out.write(f"[{time.monotonic() - self.t0:6.1f}s] {text}\n")
        self.out.flush()

    def header(self) -> None:
        self.out.write(
            f"{'round':>5}  {'time':>6}  {'train acc':>9}  {'eval acc':>8}  "
            f"{'global acc':>10}  {'replies':>7}  alerts firing\n"
        )
        self.out.flush()

    def row(self, r: RoundRow) -> None:
        replies = f"{r.replied}/{r.selected}" if r.selected is not None else "-"
        self.out.write(
            f"{r.round:>5}  {r.seconds:5.1f}s  {_fmt(r.train_accuracy):>9}  "
            f"{_fmt(r.eval_accuracy):>8}  {_fmt(r.central_accuracy):>10}  {replies:>7}  "
            f"{', '.join(r.firing) or '-'}\n"
        )
        self.out.flush()

    def alert(self, e: AlertEvent) -> None:
        client = f" client={e.labels['client']}" if "client" in e.labels else ""
        sev = e.labels.get("severity", "?")
        job = e.labels.get("job", "?")
        self.line(f"Prometheus: {e.alertname} {e.state.upper()} ({sev}, job {job}){client}")

    def slack(self, m: SlackMessage) -> None:
        title = m.attachments[0].get("title", "") if m.attachments else m.text
        self.line(f"Slack {m.channel}: {title}")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(opts: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Run the demo; 0 when the scenario showed what it should, 1 otherwise."""
    scenario = scenarios.get(opts.scenario)
    app_dir = example_dir(opts.example, opts.examples_dir)
    federation = EXAMPLES[opts.example]
    if opts.rounds < scenario.min_rounds:
        raise ValueError(f"scenario {scenario.name} needs at least {scenario.min_rounds} rounds")
    if opts.nodes < 3:
        raise ValueError("the demo needs at least 3 nodes (robust update statistics need 3)")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    p = Printer(out)
    p.line(f"flmon demo: {opts.example} ({federation}), {opts.nodes} nodes, {opts.rounds} "
           f"rounds, scenario {scenario.name}: {scenario.description}")
    workdir = opts.workdir.resolve()
    try:
        with DemoStack(federation, opts.nodes, workdir=workdir, on_slack=p.slack,
                       secure=not opts.insecure) as stack:
            assert stack.prometheus is not None and stack.alertmanager is not None
            p.line(f"Prometheus {stack.prometheus.url}  AlertManager {stack.alertmanager.url}  "
                   f"Pushgateway {stack.pushgateway.url}  Slack receiver {stack.slack.url}")
            p.line(f"SuperLink {stack.flower.address if stack.flower else '-'}, "
                   f"{opts.nodes} SuperNodes, flmon watch {stack.watch_address}; "
                   f"logs in {workdir}")
            p.line("SuperLink with TLS and SuperNode authentication (CA, certificates and "
                   f"node keys in {workdir / 'flower'})" if not opts.insecure else
                   "SuperLink INSECURE (--insecure): no TLS, any SuperNode accepted")
            extra: dict[str, ConfigValue] = {"dp": True} if opts.dp else {}
            run = ScenarioRun(stack, opts.example, scenario, opts.rounds, run_config=extra,
                              examples_dir=opts.examples_dir, on_round=p.row,
                              on_alert=p.alert, on_note=p.line)
            run.start()
            p.line(f"flwr run {app_dir.name} submitted")
            p.header()
            outcome = run.run()
            report = write_run_report(stack, p)
            baseline: dict[str, float] | None = None
            if opts.baseline:
                p.line("training the centralized baseline on the union of the nodes' data")
                baseline = centralized_baseline(opts.example, opts.nodes, opts.rounds,
                                                opts.examples_dir)
            ok = _summary(out, opts, scenario, outcome, stack, baseline, report)
            if opts.hold:
                p.line("holding: Prometheus and AlertManager stay up; Ctrl-C to stop")
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    p.line("stopping every process")
            return 0 if ok else 1
    except KeyboardInterrupt:
        out.write("\ninterrupted: every process was stopped\n")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_run_report(stack: DemoStack, p: Printer) -> Path | None:
    """Write ``report.html`` of the run into the work directory, while Prometheus is up."""
    from flmon.report import ReportError, ReportRequest, write_report

    assert stack.prometheus is not None and stack.alertmanager is not None
    path = stack.workdir / "report.html"
    try:
        write_report(ReportRequest(stack.prometheus.url, stack.alertmanager.url,
                                   config=stack.config), path)
    except ReportError as exc:
        p.line(f"report not written: {exc}")
        return None
    return path


def federation_view(stack: DemoStack) -> list[str]:
    """The federation as flmon watch reports it, read back from Prometheus (job flmon-watch):
    SuperLink up, nodes by status, runs by status."""
    from flmon.demo.config import WATCH_JOB
    from flmon.watch.control import NODE_STATUSES, RUN_STATUSES

    assert stack.prometheus is not None
    sel = f'job="{WATCH_JOB}",federation="{stack.federation}"'

    def by(metric: str, statuses: tuple[str, ...]) -> str:
        rows = {r["metric"].get("status", ""): float(r["value"][1])
                for r in stack.prometheus.query(f"{metric}{{{sel}}}")}  # type: ignore[union-attr]
        return ", ".join(f"{s} {int(rows[s])}" for s in statuses if s in rows) or "-"

    up = stack.prometheus.query_value(f"max(fl_superlink_up{{{sel}}})")
    superlink = "-" if up is None else ("up" if up == 1 else "DOWN")
    return [
        f"SuperLink           {superlink} (flmon watch {stack.watch_address}, "
        f"job {WATCH_JOB})",
        f"SuperNodes          {by('fl_supernodes', NODE_STATUSES)}",
        f"runs                {by('fl_runs', RUN_STATUSES)}",
    ]


def _summary(
    out: TextIO,
    opts: DemoOptions,
    scenario: scenarios.Scenario,
    outcome: RunOutcome,
    stack: DemoStack,
    baseline: dict[str, float] | None,
    report: Path | None = None,
) -> bool:
    assert stack.prometheus is not None and stack.alertmanager is not None
    messages = stack.slack.messages()
    fired, resolved = outcome.fired(), outcome.resolved()
    missing = [a for a in scenario.expected_alerts if a not in fired]
    offline_after = outcome.offline_alert_after()
    if "FLNodeOffline" in scenario.expected_alerts and "FLNodeOffline" not in missing \
            and offline_after is None:
        missing.append(f"FLNodeOffline for the killed node {outcome.killed_node_id}")
    unresolved = [a for a in scenario.expected_alerts
                  if scenario.resolves and a in fired and a not in resolved]
    unexpected_critical = sorted({
        e.alertname for e in outcome.events
        if e.state == "firing" and e.labels.get("severity") == "critical"
        and e.alertname not in scenario.expected_alerts
    })
    final = outcome.final
    w = out.write
    w("\n=== summary " + "=" * 60 + "\n")
    w(f"scenario            {scenario.name} ({opts.example}, {opts.nodes} nodes)\n")
    w(f"rounds              {outcome.rounds_completed}/{outcome.rounds_planned} completed "
      f"in {outcome.seconds:.0f}s (flwr run exit code {outcome.returncode})\n")
    w(f"global accuracy     {_fmt(final.get('centralized_accuracy'))} on the held-out "
      f"test set (federated)\n")
    if baseline is not None:
        w(f"baseline accuracy   {_fmt(baseline['accuracy'])} (centralized, trained on the "
          f"union of the nodes' data)\n")
    if final.get("dp_epsilon_spent"):
        budget = final.get("dp_epsilon_budget") or 0.0
        w(f"DP epsilon spent    {final['dp_epsilon_spent']:.2f}"
          f"{f' of {budget:.2f}' if budget else ' (no budget)'}\n")
    for line in federation_view(stack):
        w(line + "\n")
    w(f"alerts fired        {', '.join(fired) or 'none'}\n")
    w(f"alerts resolved     {', '.join(resolved) or 'none'}\n")
    if outcome.killed_node is not None:
        shown = ("did not fire" if offline_after is None
                 else f"fired {offline_after:.0f} s after the SIGKILL")
        w(f"killed SuperNode    {outcome.killed_node} (node {outcome.killed_node_id}): "
          f"FLNodeOffline {shown}\n")
    firing_msgs = [m for m in messages if not m.resolved]
    w(f"Slack messages      {len(messages)} ({len(firing_msgs)} firing, "
      f"{len(messages) - len(firing_msgs)} resolved)\n")
    for m in messages:
        title = m.attachments[0].get("title", "") if m.attachments else m.text
        w(f"  {m.channel:<14} {title}\n")
    w(f"Prometheus          {stack.prometheus.url}/alerts\n")
    w(f"AlertManager        {stack.alertmanager.url}/#/alerts\n")
    w(f"Grafana dashboards  {stack.dashboards_dir}/*.json (import into Grafana)\n")
    if report is not None:
        w(f"report              {report} (open in a browser)\n")
    w(f"logs and config     {stack.workdir}\n")
    ok = not missing and not unresolved and not unexpected_critical \
        and outcome.rounds_completed > 0
    if missing:
        w(f"NOT SHOWN: expected alert(s) did not fire: {', '.join(missing)}\n")
    if unresolved:
        w(f"NOT SHOWN: alert(s) did not resolve after recovery: {', '.join(unresolved)}\n")
    if unexpected_critical:
        w(f"UNEXPECTED: critical alert(s) fired: {', '.join(unexpected_critical)}\n")
    if ok:
        w("result              the scenario showed what it should\n")
    out.flush()
    return ok
