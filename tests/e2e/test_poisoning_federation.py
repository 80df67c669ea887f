"""A real federation with one poisoning client: it, and only it, is flagged.

flower-superlink and 6 flower-supernode processes on loopback run tests/apps/tinyfl
(logistic regression, every node on a partition with its own feature shift); the node
at ``ATTACKER`` sends its update sign-flipped. The ServerApp wraps FedAvg with
``instrument`` and pushes to a real Pushgateway; the test reads the pushed series and
the ServerApp's security events, and finds the attacker's node id in its SuperNode log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flmon.stack.flower import FlowerFederation
from flmon.stack.pushgateway import Pushgateway

pytestmark = pytest.mark.e2e

APP = Path(__file__).resolve().parents[1] / "apps" / "tinyfl"
NODES = 6
ATTACKER = 3
ROUNDS = 2
THRESHOLD = 3.5


def _node_config(index: int, count: int) -> dict[str, int | str]:
    return {"partition-id": index, "num-partitions": count,
            "behaviour": "sign-flip" if index == ATTACKER else "honest"}


def _by_client(text: str, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[sample.labels["client"]] = sample.value
    return out


@pytest.fixture(scope="module")
def poisoned_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    workdir = tmp_path_factory.mktemp("poisoning")
    with Pushgateway(workdir=workdir / "pushgateway") as gateway, FlowerFederation(
        NODES, node_config=_node_config, workdir=workdir / "flower"
    ) as fed:
        result = fed.run(APP, {"num-server-rounds": ROUNDS, "pushgateway": gateway.address,
                               "anomaly-threshold": THRESHOLD}, timeout=300)
        assert result.returncode == 0, result.output[-4000:] + fed.logs()
        node_ids = {}
        for index in range(NODES):
            log = (workdir / "flower" / f"supernode-{index}.log").read_text()
            found = re.search(r"SuperNode ID: (\d+)", log)
            assert found, log[-2000:]
            node_ids[index] = found.group(1)
        yield {"pushed": gateway.metrics_text(), "output": result.output,
               "node_ids": node_ids}


def test_the_attacker_and_only_it_crosses_the_threshold_in_each_of_two_rounds(
        poisoned_run: dict[str, object]) -> None:
    text = str(poisoned_run["pushed"])
    node_ids: dict[int, str] = poisoned_run["node_ids"]  # type: ignore[assignment]
    attacker = node_ids[ATTACKER]
    honest = [node_ids[i] for i in range(NODES) if i != ATTACKER]
    flagged = _by_client(text, "fl_anomalous_updates_total")
    assert flagged.get(attacker) == ROUNDS, flagged
    assert all(flagged.get(node, 0.0) == 0.0 for node in honest), flagged
    scores = _by_client(text, "fl_client_anomaly_score")
    assert set(scores) == set(node_ids.values())
    assert scores[attacker] >= THRESHOLD
    assert max(scores[node] for node in honest) < THRESHOLD
    cosines = _by_client(text, "fl_client_update_cosine_similarity")
    assert cosines[attacker] < 0 < min(cosines[node] for node in honest)
    # flmon reports; it does not drop the update (that is the strategy's call)
    updates = _by_client(text, "fl_model_updates_total")
    assert updates[attacker] == ROUNDS


def test_each_detection_is_a_security_event_naming_the_attacker(
        poisoned_run: dict[str, object]) -> None:
    node_ids: dict[int, str] = poisoned_run["node_ids"]  # type: ignore[assignment]
    events = []
    for line in str(poisoned_run["output"]).splitlines():
        line = line.strip()
        if line.startswith("{") and '"anomalous-update"' in line:
            events.append(json.loads(line))
    assert len(events) == ROUNDS
    assert {e["labels"]["client"] for e in events} == {node_ids[ATTACKER]}
    assert sorted(e["labels"]["round"] for e in events) == list(range(1, ROUNDS + 1))
    assert all(e["event.kind"] == "alert" for e in events)
