"""The rendered Datadog files, run through Datadog's own OpenMetrics check.

``datadog-checks-base`` is the Python package the Agent runs its checks with;
``OpenMetricsBaseCheckV2`` is the check ``conf.d/openmetrics.d/conf.yaml`` configures, and
its stub aggregator records what the Agent would send. The check scrapes a live flmon
exporter fed by a real instrumented run (real Flower strategy and ClientApps in-process),
``flmon watch``'s exposition and a real Pushgateway holding privacy-test figures, with the
``conf.yaml`` rendered from a configuration that is not the shipped example. Every metric,
tag and service check a rendered monitor or the dashboard queries must be one the check
submits, under that exact name.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import yaml
from flwr.app import ArrayRecord
from flwr.serverapp.strategy import FedAvg
from prometheus_client import CollectorRegistry

from flmon import logs, runlabel
from flmon.config import FlmonConfig, parse_config
from flmon.exporter import Exporter, start_exporter
from flmon.flower import instrument
from flmon.flower.recorder import ServerRecorder
from flmon.labels import ClientLabeler
from flmon.metrics import FlmonMetrics
from flmon.privacy.report import push as push_privacy
from flmon.render.datadog import composite_parts, render_datadog
from flmon.security.dp import DpFigures
from flmon.stack.pushgateway import Pushgateway
from flmon.watch.collector import WatchState
from flmon.watch.control import NodeView, RunView, Snapshot
from tests.core.clientapps import make_app
from tests.core.ingrid import InProcessGrid
from tests.render.conftest import minimal_data, with_changes

pytestmark = pytest.mark.e2e

FED = "clinics"
NS = "hospital"
RUN_ID = "4242"  # the in-process grid's run


@dataclass
class Stack:
    cfg: FlmonConfig
    files: dict[str, str]
    metrics: FlmonMetrics
    recorder: ServerRecorder
    live: Exporter
    watch: Exporter
    pushgateway: Pushgateway

    @property
    def conf(self) -> dict[str, Any]:
        conf = yaml.safe_load(self.files["datadog/conf.yaml"])
        assert isinstance(conf, dict)
        return conf

    def monitors(self) -> dict[str, dict[str, Any]]:
        return {path.rsplit("/", 1)[1].removesuffix(".json"): json.loads(text)
                for path, text in self.files.items() if path.startswith("datadog/monitors/")}


def _instrumented_run() -> tuple[FlmonMetrics, ServerRecorder]:
    """Two rounds of FedAvg over real ClientApps: one down, one sending forged telemetry."""
    metrics = FlmonMetrics(sides=("server", "sink"))
    strategy = FedAvg(min_available_nodes=1, min_train_nodes=1, min_evaluate_nodes=1)
    wrapped = instrument(strategy, metrics=metrics)
    apps = {1: make_app(seed=1), 2: make_app(seed=2), 3: None,
            4: make_app("hostile-telemetry", seed=4, telemetry={"loss": "not a number"})}
    wrapped.start(grid=InProcessGrid(apps), initial_arrays=ArrayRecord(
        [np.zeros((4, 3)), np.zeros(3)]), num_rounds=2)
    # What a DP wrapper reports (the recorder's own entry point for it).
    wrapped.recorder.dp(DpFigures(epsilon=2.0, delta=1e-5, budget=8.0,
                                  noise_multiplier=1.0, clipping_norm=0.5))
    return metrics, wrapped.recorder


def _watch_registry() -> CollectorRegistry:
    now = 1_800_000_000.0
    state = WatchState(ClientLabeler())
    runs = (RunView(7, "running", now - 900, now - 899, now - 898, None, 1, 2, 3.0),
            RunView(6, "failed", now - 1900, None, None, now - 1850, 0, 0, 0.0),
            RunView(5, "completed", now - 2900, now - 2899, now - 2898, now - 2000, 1, 2, 3.0))
    nodes = (NodeView(5, "online", 1.0, now + 50, 30.0), NodeView(6, "offline", 2.0, now - 50,
                                                                  30.0))
    state.record_success(Snapshot(now, nodes, runs), 0.01)
    registry = CollectorRegistry()
    registry.register(state.collector())
    return registry


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The run sets the process's current run (the live exporter's run_id label) and log
    # context for the module's tests; both are put back afterwards.
    with logs._GLOBAL_LOCK:
        saved_context = dict(logs._GLOBAL_CONTEXT)
    saved_run = runlabel.current_run()
    metrics, recorder = _instrumented_run()
    live = start_exporter(0, registry=runlabel.run_labelled(metrics.registry))
    watch = start_exporter(0, registry=_watch_registry())
    with Pushgateway(workdir=tmp_path_factory.mktemp("pg")) as pg:
        result = {"federation": FED, **{section: {"attacks": {"gradient_alignment": {
            "client_update": {"auc": auc, "advantage": auc - 0.5}}}}
            for section, auc in (("no_dp", 0.71), ("dp", 0.52))}}
        assert push_privacy(result, pg.address)
        data = with_changes(
            minimal_data(), federation__name=FED, datadog__namespace=NS,
            datadog__tags=["env:test"],
            datadog__openmetrics_endpoint=f"http://127.0.0.1:{live.port}/metrics",
            scrape__watch__enabled=True, scrape__watch__targets=[f"127.0.0.1:{watch.port}"],
            scrape__pushgateway__targets=[pg.address])
        cfg = parse_config(data)
        yield Stack(cfg, render_datadog(cfg), metrics, recorder, live, watch, pg)
    live.close()
    watch.close()
    with logs._GLOBAL_LOCK:
        logs._GLOBAL_CONTEXT.clear()
        logs._GLOBAL_CONTEXT.update(saved_context)
    runlabel.set_current_run(None if saved_run == runlabel.UNKNOWN_RUN else saved_run)


# --- the Agent's check --------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """What the stub aggregator recorded for one check run over every instance."""

    metrics: dict[str, list[Any]]
    service_checks: dict[str, list[Any]]
    errors: list[str]


def run_check(conf: dict[str, Any], runs: int = 2) -> Sent:
    """Run the OpenMetrics check of every instance of ``conf`` ``runs`` times, as the
    Agent does every 15 s (monotonic counts are sent from the second run on)."""
    from datadog_checks.base import OpenMetricsBaseCheckV2
    from datadog_checks.base.stubs import aggregator

    aggregator.reset()
    checks = [OpenMetricsBaseCheckV2("openmetrics", conf["init_config"], [instance])
              for instance in conf["instances"]]
    errors = [error for _ in range(runs) for check in checks if (error := check.run())]
    metrics = {name: list(stubs) for name, stubs in aggregator._metrics.items()}
    service_checks = {name: list(stubs) for name, stubs in aggregator._service_checks.items()}
    return Sent(metrics, service_checks, errors)


@pytest.fixture(scope="module")
def sent(stack: Stack) -> Sent:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DDEV_SKIP_GENERIC_TAGS_CHECK", "1")
        return run_check(stack.conf)


# --- what the monitors and the dashboard query ---------------------------------------

_TERM = re.compile(r"(avg|sum|min|max):([a-z][a-z0-9_.]*)\{([^}]*)\}(?:\s*by\s*\{([^}]*)\})?")
_SERVICE_CHECK = re.compile(r'^"([^"]+)"((?:\.(?:over|exclude)\([^)]*\))*)\.by\(')


@dataclass(frozen=True)
class Ref:
    """One metric a query reads: its name, the tags it filters on, the tags it groups by."""

    metric: str
    tags: tuple[str, ...]
    by: tuple[str, ...]
    space: str = "max"
    """The space aggregation across the series of one group."""


def metric_refs(query: str) -> list[Ref]:
    query = query.replace("{$federation}", f"{{federation:{FED}}}")
    return [Ref(m, tuple(t.strip() for t in tags.split(",") if t.strip()),
                tuple(b.strip() for b in (by or "").split(",") if b.strip()), space)
            for space, m, tags, by in _TERM.findall(query)]


def service_check_ref(query: str) -> tuple[str, list[str], list[str]]:
    match = _SERVICE_CHECK.match(query)
    assert match, query
    over = [t for part in re.findall(r"\.over\(([^)]*)\)", match.group(2))
            for t in re.findall(r'"([^"]+)"', part)]
    exclude = [t for part in re.findall(r"\.exclude\(([^)]*)\)", match.group(2))
               for t in re.findall(r'"([^"]+)"', part)]
    return match.group(1), over, exclude


def dashboard_queries(stack: Stack) -> list[str]:
    doc = json.loads(stack.files["datadog/dashboard.json"])
    return [r["q"] for w in doc["widgets"] for r in w["definition"]["requests"]]


def submitted(sent: Sent, ref: Ref) -> bool:
    """Whether the check sent ``ref.metric`` with every filter tag and every group key."""
    for stub in sent.metrics.get(ref.metric, []):
        keys = {t.split(":", 1)[0] for t in stub.tags}
        if set(ref.tags) <= set(stub.tags) and set(ref.by) <= keys:
            return True
    return False


def test_the_check_scrapes_every_endpoint_of_the_rendered_conf(stack: Stack, sent: Sent) -> None:
    assert sent.errors == []
    endpoints = [i["openmetrics_endpoint"] for i in stack.conf["instances"]]
    assert endpoints == [stack.live.url, f"http://{stack.pushgateway.address}/metrics",
                         stack.watch.url]
    health = sent.service_checks[f"{NS}.openmetrics.health"]
    assert {s.status for s in health} == {0}  # OK
    assert {t for s in health for t in s.tags if t.startswith("endpoint:")} == {
        f"endpoint:{e}" for e in endpoints}


def test_every_metric_a_monitor_or_the_dashboard_reads_is_submitted_under_that_name(
        stack: Stack, sent: Sent) -> None:
    queries = [m["query"] for m in stack.monitors().values() if m["type"] == "query alert"]
    refs = [r for q in [*queries, *dashboard_queries(stack)] for r in metric_refs(q)]
    assert len(refs) >= 40  # every widget and monitor term was parsed
    missing = sorted({f"{r.metric}{{{','.join(r.tags)}}} by {r.by}" for r in refs
                      if not submitted(sent, r)})
    assert missing == []
    # The names monitors rely on for the alerts the issue is about, spelled out.
    for name in ("fl_training_accuracy", "fl_training_accuracy_valid", "fl_run_active",
                 "fl_model_updates.count", "fl_round_in_progress", "fl_rounds_completed.count",
                 "fl_runs", "fl_superlink_up", "fl_supernode_online", "fl_runs_finished.count",
                 "fl_privacy_attack_auc", "fl_client_failures.count"):
        assert f"{NS}.{name}" in {r.metric for r in refs}, name


def test_submitted_check_can_fail_on_a_misspelt_name(sent: Sent) -> None:
    assert submitted(sent, Ref(f"{NS}.fl_runs", (f"federation:{FED}", "status:running"), ()))
    assert not submitted(sent, Ref(f"{NS}.fl_runs_total", (f"federation:{FED}",), ()))
    assert not submitted(sent, Ref(f"{NS}.fl_runs", ("status:runing",), ()))
    assert not submitted(sent, Ref(f"{NS}.fl_superlink_up", (), ("run_id",)))


def test_every_service_check_a_monitor_reads_is_sent_with_its_tags(
        stack: Stack, sent: Sent) -> None:
    monitors = stack.monitors()
    checks = {name: m for name, m in monitors.items() if m["type"] == "service check"}
    assert set(checks) == {"FLExporterDown.scrape", "FLExporterDown.pushgateway",
                           "FLSuperLinkDown.scrape"}
    for name, monitor in checks.items():
        check, over, exclude = service_check_ref(monitor["query"])
        assert check == f"{NS}.openmetrics.health", name
        matching = [s for s in sent.service_checks.get(check, [])
                    if set(over) <= set(s.tags) and not set(exclude) & set(s.tags)]
        assert matching, (name, over)
    assert f"endpoint:{stack.live.url}" in checks["FLExporterDown.scrape"]["query"]
    assert f"endpoint:{stack.watch.url}" in checks["FLSuperLinkDown.scrape"]["query"]


def test_composite_monitors_name_parts_that_are_rendered(stack: Stack) -> None:
    monitors = stack.monitors()
    composites = {name: m for name, m in monitors.items() if m["type"] == "composite"}
    assert set(composites) == {"FLExporterDown", "FLSuperLinkDown"}
    for name, monitor in composites.items():
        parts = composite_parts(monitor["query"])
        assert parts and all(p.startswith(f"{name}.") and p in monitors for p in parts)
    assert composites["FLExporterDown"]["query"] == (
        "(FLExporterDown.scrape && FLExporterDown.run) || FLExporterDown.pushgateway")


def test_no_created_series_is_submitted(stack: Stack, sent: Sent) -> None:
    assert [n for n in sent.metrics if n.endswith("_created")] == []
    # Without the rendered exclusion, the check sends them: the exclusion is what works.
    conf = stack.conf
    for instance in conf["instances"]:
        instance.pop("exclude_metrics", None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DDEV_SKIP_GENERIC_TAGS_CHECK", "1")
        unfiltered = run_check(conf)
    created = [n for n in unfiltered.metrics if n.endswith("_created")]
    assert f"{NS}.fl_model_updates_created" in created and len(created) >= 10


# --- NaN: the check drops the sample, the validity series carries it ------------------

_ALERT = re.compile(r"^(min|max)\(last_\w+\):(.*)\s(<|>|<=|>=)\s([-0-9.e]+)$", re.S)


def evaluate(query: str, sent: Sent, group: str) -> bool | None:
    """The monitor's condition on the last values the check sent for ``group`` (a tag),
    the way Datadog computes a query alert's formula: ``default_zero`` fills a missing
    value with 0, any other missing term means no data (``None``: no alert)."""
    match = _ALERT.match(query)
    assert match, query
    _, formula, op, threshold = match.groups()
    refs = metric_refs(formula)
    values: list[float | None] = []
    for ref in refs:
        last = [s.value for s in sent.metrics.get(ref.metric, [])
                if set(ref.tags) <= set(s.tags) and group in s.tags]
        values.append(last[-1] if last else None)
    try:
        value = compute(formula, values)
    except TypeError:  # a missing term without default_zero
        return None
    return bool(eval(f"{value!r} {op} {threshold}"))


def compute(formula: str, values: list[float | None]) -> float:
    """``formula`` with its metric terms replaced, in order, by ``values``."""
    names = iter(range(len(values)))
    expr = _TERM.sub(lambda _m: f"v[{next(names)}]", formula)
    return float(eval(expr, {"v": values, "default_zero": lambda x: 0.0 if x is None else x}))


@pytest.mark.parametrize(("accuracy", "valid", "low", "dropped"), [
    (0.9, 1, False, False), (0.82, 1, True, False), (0.5, 1, True, True),
    (math.nan, 0, True, True), (math.inf, 0, True, True), (1.5, 0, True, True)])
def test_accuracy_monitors_fire_when_their_rules_do_nan_included(
        stack: Stack, accuracy: float, valid: int, low: bool, dropped: bool) -> None:
    conf = stack.conf
    conf["instances"] = conf["instances"][:1]  # the live exporter
    try:
        stack.recorder.aggregated("train", {"accuracy": accuracy})
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DDEV_SKIP_GENERIC_TAGS_CHECK", "1")
            sent = run_check(conf, runs=1)
    finally:
        stack.recorder.aggregated("train", {"accuracy": 0.9})
    acc = sent.metrics.get(f"{NS}.fl_training_accuracy", [])
    assert [s.value for s in sent.metrics[f"{NS}.fl_training_accuracy_valid"]] == [valid]
    if not math.isfinite(accuracy):
        assert acc == []  # the check dropped the sample: the rule's NaN case is silent here
    monitors = stack.monitors()
    group = f"run_id:{RUN_ID}"
    assert evaluate(monitors["FLLowTrainingAccuracy"]["query"], sent, group) is low
    assert evaluate(monitors["FLModelAccuracyDropped"]["query"], sent, group) is dropped


def test_the_formula_reader_sees_missing_data(stack: Stack, sent: Sent) -> None:
    query = stack.monitors()["FLLowTrainingAccuracy"]["query"]
    assert evaluate(query, sent, f"run_id:{RUN_ID}") is False
    assert evaluate(query, sent, "run_id:999") is None  # no such run: no data, no alert


# --- a run over time: the check every 15 s, the monitor's window over its points ------


class CheckRunner:
    """The check of one instance, run again and again as the Agent does; each run is one
    point of the monitor's window."""

    def __init__(self, instance: dict[str, Any]) -> None:
        from datadog_checks.base import OpenMetricsBaseCheckV2

        self.check = OpenMetricsBaseCheckV2("openmetrics", {}, [instance])

    def point(self) -> Sent:
        from datadog_checks.base.stubs import aggregator

        aggregator.reset()
        assert self.check.run() == ""
        return Sent({n: list(v) for n, v in aggregator._metrics.items()},
                    {n: list(v) for n, v in aggregator._service_checks.items()}, [])


def window_value(query: str, points: list[Sent], group: str) -> float | None:
    """The query alert's time aggregation (min or max) of its formula over ``points[1:]``.

    The check sends monotonic counts as the counter's value; the Agent's aggregator turns
    them into the increase since the previous run, which is what a monitor reads (the
    first point is only the baseline of those increases).
    """
    from datadog_checks.base.stubs import aggregator

    match = _ALERT.match(query)
    assert match, query
    aggregation, formula, _, _ = match.groups()
    refs = metric_refs(formula)

    def value(sent: Sent, before: Sent, ref: Ref) -> float | None:
        def matching(point: Sent) -> dict[tuple[str, ...], float]:
            return {tuple(sorted(s.tags)): s.value for s in point.metrics.get(ref.metric, [])
                    if set(ref.tags) <= set(s.tags) and group in s.tags}
        now = matching(sent)
        if not now:
            return None
        if sent.metrics[ref.metric][0].type == aggregator.MONOTONIC_COUNT:
            old = matching(before)
            now = {k: v - old.get(k, v) for k, v in now.items()}
        spaces = {"max": max, "min": min, "sum": sum,
                  "avg": lambda v: sum(v) / len(v)}
        return float(spaces[ref.space](list(now.values())))

    values = []
    for before, sent in itertools.pairwise(points):
        values.append(compute(formula, [value(sent, before, ref) for ref in refs]))
    return min(values) if aggregation == "min" else max(values)


def _fires(query: str, value: float | None) -> bool:
    match = _ALERT.match(query)
    assert match and value is not None
    return bool(eval(f"{value!r} {match.group(3)} {match.group(4)}"))


@pytest.fixture()
def run_exporter(stack: Stack) -> Iterator[tuple[ServerRecorder, CheckRunner]]:
    """A fresh ServerApp's series on their own exporter, and the check on it."""
    metrics = FlmonMetrics(sides=("server",))
    recorder = ServerRecorder(metrics, ClientLabeler(), 3.5)
    recorder.run_started(9, "FedAvg", "1.42.0", 100)
    with start_exporter(0, registry=metrics.registry) as exporter:
        instance = {**stack.conf["instances"][0], "openmetrics_endpoint": exporter.url,
                    "tags": [f"federation:{FED}", "run_id:9"]}
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DDEV_SKIP_GENERIC_TAGS_CHECK", "1")
            yield recorder, CheckRunner(instance)


def test_round_stalled_is_quiet_for_a_healthy_long_run_and_fires_on_a_stall(
        stack: Stack, run_exporter: tuple[ServerRecorder, CheckRunner]) -> None:
    recorder, check = run_exporter
    query = stack.monitors()["FLRoundStalled"]["query"]
    old = f"min(last_30m):min:{NS}.fl_round_in_progress{{federation:{FED}}} >= 1"
    recorder.round_started(1)
    healthy = [check.point()]
    for server_round in range(2, 9):  # back-to-back rounds: in progress at every point
        recorder.round_completed(1.0)
        recorder.round_started(server_round)
        healthy.append(check.point())
    assert not _fires(query, window_value(query, healthy, "run_id:9"))
    assert _fires(old, window_value(old, healthy, "run_id:9"))  # the finding: always true
    stalled = [healthy[-1], *(check.point() for _ in range(7))]  # no round completes
    assert _fires(query, window_value(query, stalled, "run_id:9"))


def test_no_model_updates_fires_only_while_a_run_gets_none(
        stack: Stack, run_exporter: tuple[ServerRecorder, CheckRunner]) -> None:
    recorder, check = run_exporter
    query = stack.monitors()["FLNoModelUpdates"]["query"]
    assert stack.monitors()["FLNoModelUpdates"]["options"]["require_full_window"] is True
    recorder.model_update(1)
    updating = [check.point()]
    for _ in range(5):
        recorder.model_update(1)
        updating.append(check.point())
    assert not _fires(query, window_value(query, updating, "run_id:9"))
    silent = [updating[-1], *(check.point() for _ in range(5))]
    assert _fires(query, window_value(query, silent, "run_id:9"))
    recorder.run_ended(None)
    ended = [silent[-1], *(check.point() for _ in range(5))]
    assert not _fires(query, window_value(query, ended, "run_id:9"))


def test_exporter_down_scrape_part_matches_the_critical_the_check_sends(
        stack: Stack) -> None:
    monitors = stack.monitors()
    check_name, over, _ = service_check_ref(monitors["FLExporterDown.scrape"]["query"])
    conf = stack.conf
    instance = conf["instances"][0]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DDEV_SKIP_GENERIC_TAGS_CHECK", "1")
        runner = CheckRunner(instance)
        ok = runner.point()
        stack.live.close()  # the ServerApp is gone
        from datadog_checks.base.stubs import aggregator

        aggregator.reset()
        assert runner.check.run() != ""  # the check reports the failed scrape
        down = aggregator._service_checks[check_name]
    assert [s.status for s in ok.service_checks[check_name] if set(over) <= set(s.tags)] == [0]
    assert [s.status for s in down if set(over) <= set(s.tags)] == [2]  # CRITICAL
    # Between runs it is CRITICAL too: the composite needs the watch's running runs.
    run_part = monitors["FLExporterDown.run"]["query"]
    assert f"{NS}.fl_runs{{federation:{FED},status:running}} > 0" in run_part


# --- DogStatsD: the same names, by one path only -------------------------------------


def test_dogstatsd_sends_the_check_names_so_the_monitors_read_either_path(
        stack: Stack, sent: Sent) -> None:
    from flmon.sinks.datadog import DatadogConfig, DatadogSink
    from tests.fakes.loopback import UdpReceiver

    udp = UdpReceiver()
    try:
        sink = DatadogSink(DatadogConfig(host="127.0.0.1", port=udp.port, namespace=NS,
                                         federation=FED, round_tag=False,
                                         origin_detection=False), mirror=stack.metrics)
        queued = sink.collect()
        assert sink.close(5.0)
        lines = udp.wait_for(queued)
    finally:
        udp.close()
    assert len(lines) >= queued > 50  # and the last collection on close
    dogstatsd = {line.split(":", 1)[0] for line in lines}
    live = {name for name, stubs in sent.metrics.items()
            if any(f"endpoint:{stack.live.url}" in s.tags for s in stubs)}
    assert dogstatsd <= live  # no name of its own
    # What the check has and DogStatsD not: counters that never moved (nothing to count).
    for name in live - dogstatsd:
        assert name.endswith(".count"), name
        family = name.removeprefix(f"{NS}.").removesuffix(".count")
        values = [s.value for m in stack.metrics.registry.collect() if m.name == family
                  for s in m.samples if s.name.endswith("_total")]
        assert values and set(values) == {0.0}, name
    tags = {line.split(":", 1)[0]: line.split("|#", 1)[1].split(",") for line in lines}
    for name, line_tags in tags.items():
        assert f"federation:{FED}" in line_tags and f"run_id:{RUN_ID}" in line_tags, name
        assert len({t.split(":", 1)[0] for t in line_tags}) == len(line_tags), line_tags
    # Every monitor term on the live path finds its name and its group keys by DogStatsD.
    queries = [m["query"] for m in stack.monitors().values() if m["type"] == "query alert"]
    refs = [r for q in queries for r in metric_refs(q) if r.metric in live]
    assert len(refs) >= 12
    for ref in refs:
        assert ref.metric in tags, ref
        keys = {t.split(":", 1)[0] for t in tags[ref.metric]}
        assert set(ref.by) <= keys and set(ref.tags) <= set(tags[ref.metric]), ref
