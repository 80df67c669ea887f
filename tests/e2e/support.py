"""Helpers shared by the end-to-end tests: what Flower reported, polling, AlertManager set-ups."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from flmon.stack.flower import FlowerFederation

_NODE_ID = re.compile(r"SuperNode ID: (\d+)")
_ROUND = re.compile(r"\[ROUND (\d+)/(\d+)\]")
_CENTRAL = re.compile(r"(\d+): \{'accuracy': '([0-9.eE+-]+)'")
_RECEIVED = re.compile(r"aggregate_(train|evaluate): Received (\d+) results and (\d+) failures")


def node_id(federation: FlowerFederation, index: int) -> str:
    """The node id SuperNode ``index`` logged when it registered (its last one)."""
    text = federation.supernodes[index].log_path.read_text(errors="replace")
    ids = _NODE_ID.findall(text)
    assert ids, f"no node id in {federation.supernodes[index].log_path}"
    return ids[-1]


@dataclass
class FlowerReport:
    """What the ServerApp logged: rounds started and replies per phase."""

    rounds_started: int
    train_results: list[int]
    train_failures: list[int]
    evaluate_results: list[int]
    centralized_accuracy: dict[int, float]
    """Round -> accuracy of the final "ServerApp-side Evaluate Metrics" summary."""


def flower_report(federation: FlowerFederation) -> FlowerReport:
    """Parse ``flwr run --stream`` output (the ServerApp's log) in the federation's workdir.

    Per round, the first ``aggregate_train``/``aggregate_evaluate`` line counts (a DP
    wrapper logs the same line again for the strategy it wraps).
    """
    text = (federation.workdir / "flwr-run.log").read_text(errors="replace")
    starts = list(_ROUND.finditer(text))
    report = FlowerReport(len(starts), [], [], [], {})
    for k, start in enumerate(starts):
        end = starts[k + 1].start() if k + 1 < len(starts) else len(text)
        segment = text[start.end():end]
        phases: dict[str, tuple[int, int]] = {}
        for m in _RECEIVED.finditer(segment):
            phases.setdefault(m.group(1), (int(m.group(2)), int(m.group(3))))
        if "train" in phases:
            report.train_results.append(phases["train"][0])
            report.train_failures.append(phases["train"][1])
        if "evaluate" in phases:
            report.evaluate_results.append(phases["evaluate"][0])
    final = text.rfind("ServerApp-side Evaluate Metrics")
    if final >= 0:
        for m in _CENTRAL.finditer(text[final:]):
            report.centralized_accuracy[int(m.group(1))] = float(m.group(2))
    return report


def log_path(federation: FlowerFederation) -> Path:
    return federation.workdir / "flwr-run.log"


Samples = dict[str, list[tuple[dict[str, str], float]]]
"""Exposition samples by name: (labels without job and instance, value)."""


def exposition_samples(text: str, job: str | None = None) -> Samples:
    """The samples of an exposition text (of job ``job`` only, when given)."""
    out: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if job is not None and sample.labels.get("job") != job:
                continue
            labels = {k: v for k, v in sample.labels.items() if k not in ("job", "instance")}
            out[sample.name].append((labels, sample.value))
    return out


def sample_sum(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the ``name`` samples whose labels include ``labels``."""
    return sum(v for lab, v in samples.get(name, []) if all(lab.get(k) == x
                                                            for k, x in labels.items()))


T = TypeVar("T")


def wait_until(what: str, probe: Callable[[], T | None], timeout: float = 120.0) -> T:
    """``probe()``'s first truthy value; the test fails naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def silent_alertmanager_config(render_dir: Path) -> dict[str, Any]:
    """An AlertManager configuration that notifies nobody but keeps the inhibitions
    rendered into ``render_dir``: what fires, resolves or is inhibited is read from its API."""
    rendered = yaml.safe_load((render_dir / "alertmanager/alertmanager.yml").read_text())
    return {
        "route": {"receiver": "null", "group_by": ["federation", "alertname"],
                  "group_wait": "0s", "group_interval": "1s"},
        "receivers": [{"name": "null"}],
        "inhibit_rules": rendered["inhibit_rules"],
    }
