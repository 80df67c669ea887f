"""A real federation: flower-superlink and 4 flower-supernode processes on loopback.

The ServerApp (tests/apps/tinyfl) wraps FedAvg with ``instrument``, serves ``/metrics``
on a fixed port during the run and pushes to a real Pushgateway; the ClientApps use
``telemetry_mod`` and ``track_training``. Two nodes are honest, one raises from round 2
on, one sends hostile telemetry and an extra metric key every round.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from flmon.stack.flower import FlowerFederation
from flmon.stack.ports import free_port
from flmon.stack.pushgateway import Pushgateway
from tests.e2e.support import exposition_samples, sample_sum

pytestmark = pytest.mark.e2e

APP = Path(__file__).resolve().parents[1] / "apps" / "tinyfl"
ROUNDS = 3
BEHAVIOURS = ["honest", "honest", "raise", "hostile"]

_samples = exposition_samples
_value = sample_sum


class _LiveScraper(threading.Thread):
    """Scrapes the ServerApp's exporter while the run is in progress."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.texts: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    self.texts.append(response.read().decode())
            except OSError:
                continue


@pytest.fixture(scope="module")
def federation_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    workdir = tmp_path_factory.mktemp("federation")
    summary_path = workdir / "summary.json"
    exporter_port = free_port()

    def node_config(index: int, count: int) -> dict[str, int | str]:
        return {"partition-id": index, "num-partitions": count,
                "behaviour": BEHAVIOURS[index]}

    with Pushgateway(workdir=workdir / "pushgateway") as gateway, FlowerFederation(
        len(BEHAVIOURS), node_config=node_config, workdir=workdir / "flower"
    ) as fed:
        scraper = _LiveScraper(exporter_port)
        scraper.start()
        result = fed.run(APP, {"num-server-rounds": ROUNDS, "exporter-port": exporter_port,
                               "pushgateway": gateway.address,
                               "summary-path": str(summary_path)}, timeout=400)
        scraper.stop.set()
        scraper.join()
        assert result.returncode == 0, result.output[-4000:] + fed.logs()
        assert summary_path.exists(), result.output[-4000:] + fed.logs()
        yield {
            "summary": json.loads(summary_path.read_text()),
            "pushed": gateway.metrics_text(),
            "live": scraper.texts,
            "output": result.output,
            "serverapp_alive_after": _listening(exporter_port),
        }


def _listening(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
        return True
    except OSError:
        return False


def test_rounds_completed_equals_rounds_run(federation_run: dict[str, object]) -> None:
    summary = federation_run["summary"]
    samples = _samples(str(federation_run["pushed"]))
    assert summary["train_rounds"] == list(range(1, ROUNDS + 1))  # type: ignore[index]
    assert _value(samples, "fl_rounds_completed_total") == ROUNDS
    assert _value(samples, "fl_round_duration_seconds_count") == ROUNDS
    assert _value(samples, "fl_current_round") == ROUNDS
    assert _value(samples, "fl_run_active") == 0
    assert _value(samples, "fl_nodes_connected") == len(BEHAVIOURS)


def test_updates_received_equal_the_replies_that_were_aggregated(
    federation_run: dict[str, object],
) -> None:
    s = _samples(str(federation_run["pushed"]))
    replies = _value(s, "fl_client_replies_total", phase="train")
    failures = _value(s, "fl_client_failures_total", phase="train")
    quarantined = _value(s, "fl_replies_quarantined_total", phase="train")
    updates = _value(s, "fl_model_updates_total")
    assert replies == ROUNDS * len(BEHAVIOURS)
    assert updates == replies - failures - quarantined
    # honest x2 every round, the raising node in round 1 only, the hostile node never
    assert updates == 2 * ROUNDS + 1
    per_client = {lab["client"]: v for lab, v in s["fl_model_updates_total"]}
    assert sorted(per_client.values()) == [1, ROUNDS, ROUNDS]


def test_per_client_series_present_for_every_node(federation_run: dict[str, object]) -> None:
    s = _samples(str(federation_run["pushed"]))
    clients = {lab["client"] for lab, _ in s["fl_client_replies_total"]}
    assert len(clients) == len(BEHAVIOURS)
    seen = {lab["client"] for lab, _ in s["fl_client_last_seen_timestamp_seconds"]}
    assert seen == clients
    durations = {lab["client"] for lab, _ in s["fl_client_fit_duration_seconds"]}
    assert len(durations) >= 3  # the raising node sends no train telemetry after round 1
    for labels, value in s["fl_client_update_norm"]:
        assert value > 0, labels


def test_the_raising_client_shows_up_in_failures(federation_run: dict[str, object]) -> None:
    s = _samples(str(federation_run["pushed"]))
    failing = [(lab, v) for lab, v in s["fl_client_failures_total"] if v > 0]
    assert len(failing) == 1, failing
    labels, value = failing[0]
    assert labels["error"] == "client_app_raised_exception" and labels["phase"] == "train"
    assert value == ROUNDS - 1
    assert _value(s, "fl_model_updates_total", client=labels["client"]) == 1


def test_hostile_client_is_contained(federation_run: dict[str, object],
                                     tmp_path: Path) -> None:
    text = str(federation_run["pushed"])
    s = _samples(text)
    assert _value(s, "fl_replies_quarantined_total", phase="train",
                  reason="inconsistent_metric_keys") == ROUNDS
    assert _value(s, "fl_telemetry_rejected_total", reason="oversized") == 2  # train + eval
    for reason in ("non_finite", "unknown_key", "non_numeric", "out_of_bounds"):
        assert _value(s, "fl_telemetry_rejected_total", reason=reason) >= 2, reason
    assert "fl_injected" not in text and 'x\\"}' not in text
    # the series count is bounded by the catalog and the 4 clients, not by the garbage
    assert sum(len(v) for k, v in s.items() if k.startswith("fl_")) < 400
    flmon_only = "\n".join(line for line in text.splitlines()
                           if line.startswith(("fl_", "# HELP fl_", "# TYPE fl_")))
    exposition = tmp_path / "metrics.prom"
    exposition.write_text(flmon_only + "\n")
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by make test"
    check = subprocess.run([promtool, "check", "metrics"], input=flmon_only + "\n",
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_live_exporter_served_during_the_run(federation_run: dict[str, object]) -> None:
    live = federation_run["live"]
    assert live, "the ServerApp's /metrics was never reachable during the run"
    rounds_seen = {_value(_samples(t), "fl_current_round") for t in live}  # type: ignore[union-attr]
    assert rounds_seen & {1.0, 2.0, 3.0}
    assert any(_value(_samples(t), "fl_round_in_progress") == 1 for t in live)  # type: ignore[union-attr]
    assert federation_run["serverapp_alive_after"] is False


def test_server_logs_are_ecs_json_with_run_and_round(federation_run: dict[str, object]) -> None:
    docs = []
    for line in str(federation_run["output"]).splitlines():
        line = line.strip()
        if line.startswith("{") and '"ecs.version"' in line:
            docs.append(json.loads(line))
    assert docs, "no ECS records in the ServerApp output"
    security = [d for d in docs if d.get("event.action") == "reply-quarantined"]
    assert len(security) == ROUNDS
    assert all("run_id" in d["labels"] and "round" in d["labels"] for d in security)
    assert any(d["log.logger"] == "flwr" for d in docs)
