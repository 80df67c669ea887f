"""``flwr run`` on Flower's local simulation SuperLink with 120 virtual SuperNodes.

The ServerApp (tests/apps/tinyfl, FedAvg wrapped by ``instrument``) runs in a
``flwr-simulation`` process, the ClientApps (with ``telemetry_mod``) in Ray actors; the
ServerApp pushes to a real Pushgateway. The run uses a client label cap of 20, so
100 of the 120 clients share ``client="_other"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flmon.stack.pushgateway import Pushgateway
from flmon.stack.simulation import LocalSimulation
from tests.e2e.support import Samples, exposition_samples, sample_sum

pytest.importorskip("ray", reason="needs the simulation extra: pip install 'flmon[simulation]'")

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APP = Path(__file__).resolve().parents[1] / "apps" / "tinyfl"
CLIENTS = 120
CAP = 20

_samples = exposition_samples
_value = sample_sum


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Samples]:
    workdir = tmp_path_factory.mktemp("simulation")
    with Pushgateway(workdir=workdir / "pushgateway") as gateway, LocalSimulation(
            CLIENTS, workdir=workdir / "sim") as sim:
        result = sim.run(APP, {"num-server-rounds": 1, "pushgateway": gateway.address,
                               "max-client-labels": CAP, "round-timeout": 600}, timeout=900)
        assert result.returncode == 0, result.output[-4000:] + sim.superlink.log_tail(40)  # type: ignore[union-attr]
        yield _samples(gateway.metrics_text())


def test_simulation_run_records_the_round_and_every_update(pushed: Samples) -> None:
    assert _value(pushed, "fl_rounds_completed_total") == 1
    assert _value(pushed, "fl_run_active") == 0
    assert _value(pushed, "fl_nodes_connected") == CLIENTS
    assert _value(pushed, "fl_clients_selected", phase="train") == CLIENTS
    assert _value(pushed, "fl_clients_replied", phase="train") == CLIENTS
    assert _value(pushed, "fl_model_updates_total") == CLIENTS
    assert _value(pushed, "fl_client_failures_total") == 0
    # train and evaluate telemetry of every virtual client, from the Ray actors
    assert _value(pushed, "fl_telemetry_received_total") == 2 * CLIENTS
    assert 0.5 < _value(pushed, "fl_training_accuracy") <= 1.0


def test_simulation_client_labels_are_capped(pushed: Samples) -> None:
    assert _value(pushed, "fl_clients_tracked") == CAP
    assert _value(pushed, "fl_clients_folded_total") == CLIENTS - CAP
    labels = {lab["client"] for lab, _ in pushed["fl_model_updates_total"]}
    assert len(labels) == CAP + 1 and "_other" in labels
    assert _value(pushed, "fl_model_updates_total", client="_other") == CLIENTS - CAP
    gauges = {lab["client"] for lab, _ in pushed["fl_client_update_norm"]}
    assert len(gauges) == CAP and "_other" not in gauges
