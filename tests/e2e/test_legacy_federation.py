"""Real legacy-API federations: flower-superlink and 3 flower-supernode processes.

The app (tests/apps/legacyfl) is a ``NumPyClient`` behind ``ClientApp(client_fn=...)``
with ``telemetry_mod``, and a legacy ``flwr.server.strategy.FedAvg`` wrapped by
``instrument``; one node raises in every fit from round 2 on. The same SuperLink runs
it twice: as a plain ``ServerApp(server_fn=...)``, then with SecAgg+
(``SecAggPlusWorkflow`` + ``secaggplus_mod``). The ServerApp pushes to a real
Pushgateway, which the tests read. Each SecAgg+ stage is a message round trip, so its
2 rounds take about as long as 4 plain ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flmon.stack.flower import FlowerFederation
from flmon.stack.pushgateway import Pushgateway
from tests.e2e.support import Samples, exposition_samples, sample_sum

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APP = Path(__file__).resolve().parents[1] / "apps" / "legacyfl"
ROUNDS = 2
BEHAVIOURS = ["honest", "honest", "raise"]

_samples = exposition_samples
_value = sample_sum


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    workdir = tmp_path_factory.mktemp("legacy")

    def node_config(index: int, count: int) -> dict[str, int | str]:
        return {"partition-id": index, "num-partitions": count,
                "behaviour": BEHAVIOURS[index]}

    with Pushgateway(workdir=workdir / "pushgateway") as gateway, FlowerFederation(
        len(BEHAVIOURS), node_config=node_config, workdir=workdir / "flower"
    ) as fed:
        out: dict[str, object] = {}
        for job, secagg in (("legacy", False), ("secagg", True)):
            result = fed.run(APP, {"num-server-rounds": ROUNDS, "num-nodes": len(BEHAVIOURS),
                                   "pushgateway": gateway.address, "job": job,
                                   # SecAgg+ is about fit: its run skips evaluate
                                   "secagg": secagg, "evaluate": not secagg}, timeout=400)
            assert result.returncode == 0, result.output[-4000:] + fed.logs()
            out[f"{job}-output"] = result.output
        text = gateway.metrics_text()
        out["legacy"] = _samples(text, "legacy")
        out["secagg"] = _samples(text, "secagg")
        yield out


def test_legacy_run_records_rounds_updates_and_the_failing_client(
        runs: dict[str, object]) -> None:
    s: Samples = runs["legacy"]  # type: ignore[assignment]
    assert _value(s, "fl_rounds_completed_total") == ROUNDS
    assert _value(s, "fl_run_active") == 0
    assert _value(s, "fl_run_info", strategy="FedAvg") == 1
    per_client = {lab["client"]: v for lab, v in s["fl_model_updates_total"]}
    assert sorted(per_client.values()) == [1, ROUNDS, ROUNDS]  # the raising node: round 1
    failing = [(lab, v) for lab, v in s["fl_client_failures_total"] if v > 0]
    assert len(failing) == 1 and failing[0][1] == ROUNDS - 1, failing
    assert per_client[failing[0][0]["client"]] == 1
    assert _value(s, "fl_clients_failed", phase="train") == 1
    assert 0.5 < _value(s, "fl_training_accuracy") <= 1.0
    assert _value(s, "fl_update_indicators_available") == 1
    assert all(v > 0 for _, v in s["fl_client_update_norm"])


def test_legacy_run_receives_telemetry_from_the_numpy_clients(
        runs: dict[str, object]) -> None:
    s: Samples = runs["legacy"]  # type: ignore[assignment]
    # (3 + 2 train replies) + 2 x 3 evaluate replies, each with a telemetry record
    assert _value(s, "fl_telemetry_received_total") == 11
    assert sum(v for _, v in s["fl_telemetry_rejected_total"]) == 0
    epochs = {lab["client"]: v for lab, v in s["fl_client_local_epochs"]}
    assert len(epochs) == 3 and set(epochs.values()) == {2}  # from track_training
    durations = [v for lab, v in s["fl_client_fit_duration_seconds"] if lab["phase"] == "train"]
    assert len(durations) == 3 and all(v > 0 for v in durations)


def test_secagg_run_completes_and_says_indicators_are_unavailable(
        runs: dict[str, object]) -> None:
    s: Samples = runs["secagg"]  # type: ignore[assignment]
    assert _value(s, "fl_rounds_completed_total") == ROUNDS
    assert _value(s, "fl_run_active") == 0
    assert _value(s, "fl_update_indicators_available") == 0
    assert "fl_client_update_norm" not in s and "fl_client_anomaly_score" not in s
    assert _value(s, "fl_anomalous_updates_total") == 0
    # round 1: 3 masked updates; round 2: the raising node dropped out, SecAgg+ recovered
    assert _value(s, "fl_model_updates_total") == 2 * ROUNDS + 1
    assert _value(s, "fl_client_failures_total", phase="train") == ROUNDS - 1
    assert _value(s, "fl_clients_failed", phase="train") == 1
    assert _value(s, "fl_aggregation_failures_total", phase="train") == 0
    assert _value(s, "fl_telemetry_received_total") >= 5
    assert "update indicators are unavailable" in str(runs["secagg-output"])
