"""Two runs at once in one federation, each pushed into its own ``run_id`` group.

When the ``fl_*`` series carry a ``run_id`` label (the Pushgateway grouping key of a run),
``--run`` narrows every dashboard query to that run: the other run's figures must not
appear in its report. Federation ``banks`` is pushed under its own label (kept by the
Pushgateway job's ``honor_labels``), apart from the recorded hospitals run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import push_to_gateway

from flmon.cli.main import main
from flmon.demo.config import PUSHED_JOB
from flmon.flower.recorder import ServerRecorder
from flmon.labels import ClientLabeler
from flmon.metrics import FlmonMetrics
from tests.e2e.report.conftest import StackWithRun

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RUNS = {"8001": ("FedProx", 0.61), "8002": ("FedAvg", 0.93)}


def _push_run(address: str, run_id: str, strategy: str, accuracy: float) -> None:
    metrics = FlmonMetrics(sides=("server",))
    recorder = ServerRecorder(metrics, ClientLabeler(50, "node_id", None), 10.0)
    recorder.run_started(run_id, strategy, "1.42.0", 1)
    recorder.round_started(1)
    recorder.aggregated("train", {"accuracy": accuracy, "loss": 1 - accuracy})
    recorder.round_completed(1.0)
    recorder.run_ended(None)
    push_to_gateway(address, job=PUSHED_JOB, registry=metrics.registry,
                    grouping_key={"federation": "banks", "run_id": run_id})


@pytest.fixture(scope="module")
def banks(recorded: StackWithRun) -> StackWithRun:
    stack = recorded.stack
    for run_id, (strategy, accuracy) in RUNS.items():
        _push_run(stack.pushgateway.address, run_id, strategy, accuracy)
    prom = stack.prometheus
    assert prom is not None
    prom.wait_for(lambda: len(prom.query(
        'fl_run_end_timestamp_seconds{federation="banks"} > 0')) == len(RUNS), 30,
        "both banks runs scraped")
    return recorded


@pytest.mark.parametrize("run_id", sorted(RUNS))
def test_run_filter_keeps_the_other_runs_series_out(banks: StackWithRun, run_id: str,
                                                    tmp_path: Path) -> None:
    assert banks.stack.prometheus is not None
    out = tmp_path / "r.html"
    assert main(["report", "--prometheus", banks.stack.prometheus.url,
                 "--federation", "banks", "--run", run_id, "--out", str(out)]) == 0
    page = out.read_text()
    strategy, accuracy = RUNS[run_id]
    (other,) = set(RUNS) - {run_id}
    assert f"<dd>{run_id}</dd>" in page and f"<dd>{strategy}</dd>" in page
    accuracy_panel = page[page.index("<h3>Accuracy</h3>"):page.index("<h3>Loss</h3>")]
    assert f"{accuracy:.1%}" in accuracy_panel
    assert f"{RUNS[other][1]:.1%}" not in accuracy_panel
    assert other not in page


def test_latest_run_is_the_default(banks: StackWithRun, tmp_path: Path) -> None:
    assert banks.stack.prometheus is not None
    out = tmp_path / "r.html"
    assert main(["report", "--prometheus", banks.stack.prometheus.url,
                 "--federation", "banks", "--out", str(out)]) == 0
    page = out.read_text()
    # Both runs were last seen at the same evaluation: either is "latest", never both.
    assert sum(f"<dd>{r}</dd>" in page for r in RUNS) == 1
