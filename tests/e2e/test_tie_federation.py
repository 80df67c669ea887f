"""A real federation tied 1 vs 1: the hostile reply never becomes the aggregate.

flower-superlink and 2 flower-supernode processes on loopback run tests/apps/tinyfl;
node 1 sends metric keys of its own (``{"!", "num-examples"}``, which once won such ties
by sort order) and a model with every parameter at ``TAKEOVER_VALUE``. With no earlier
round to go by, the guard cannot tell the two apart: each round it aggregates nothing,
counts both replies as ``undecided_metric_keys``, logs a security event, and the run
finishes with the initial model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flmon.stack.flower import FlowerFederation
from flmon.stack.pushgateway import Pushgateway

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APP = Path(__file__).resolve().parents[1] / "apps" / "tinyfl"
ROUNDS = 2
HOSTILE = 1


def _node_config(index: int, count: int) -> dict[str, int | str]:
    return {"partition-id": index, "num-partitions": count,
            "behaviour": "takeover" if index == HOSTILE else "honest"}


def _value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def test_a_one_to_one_tie_never_hands_the_model_to_the_hostile_node(
        tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    with Pushgateway(workdir=tmp_path / "pushgateway") as gateway, FlowerFederation(
        2, node_config=_node_config, workdir=tmp_path / "flower"
    ) as fed:
        result = fed.run(APP, {"num-server-rounds": ROUNDS, "pushgateway": gateway.address,
                               "summary-path": str(summary_path)}, timeout=300)
        assert result.returncode == 0, result.output[-4000:] + fed.logs()
        pushed = gateway.metrics_text()
    summary = json.loads(summary_path.read_text())
    # the run finished every round, and no round's aggregate was the hostile model
    assert summary["evaluate_rounds"] == list(range(1, ROUNDS + 1))
    assert summary["train_rounds"] == []
    assert summary["final_max_abs"] is None  # never aggregated: the initial model stands
    assert _value(pushed, "fl_rounds_completed_total") == ROUNDS
    assert _value(pushed, "fl_replies_quarantined_total", phase="train",
                  reason="undecided_metric_keys") == 2 * ROUNDS
    assert _value(pushed, "fl_security_events_total", kind="nothing_aggregated") == ROUNDS
    events = [json.loads(line) for line in result.output.splitlines()
              if line.strip().startswith("{") and '"nothing-aggregated"' in line]
    assert len(events) == ROUNDS
