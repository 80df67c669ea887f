"""ServerApp: FedAvg wrapped by flmon, /metrics served, state pushed to a Pushgateway."""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, Strategy

import flmon
from flmon.flower import instrument
from tinyfl.task import initial_weights

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    if cfg["fail"]:  # a run that ends with the failed sub-status, for the watch's tests
        raise RuntimeError("tinyfl: failing on purpose (run config fail=true)")
    base = FedAvg(fraction_evaluate=1.0, min_train_nodes=1, min_evaluate_nodes=1,
                  min_available_nodes=1)
    exporter = None
    strategy: Strategy = base
    if cfg["flmon"]:
        flmon.configure_logging(run_id=grid.run.run_id)
        exporter = flmon.start_exporter(port=int(cfg["exporter-port"]), port_tries=10)
        strategy = instrument(
            base,
            pushgateway=str(cfg["pushgateway"]) or None,
            max_client_labels=int(cfg["max-client-labels"]),
            anomaly_threshold=float(cfg["anomaly-threshold"]),
        )
    try:
        result = strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(initial_weights()),
            num_rounds=int(cfg["num-server-rounds"]),
            timeout=float(cfg["round-timeout"]),
        )
    finally:
        if exporter is not None:
            exporter.close()
    summary_path = str(cfg["summary-path"])
    if summary_path:
        summary = {
            "run_id": grid.run.run_id,
            "train_rounds": sorted(result.train_metrics_clientapp),
            "evaluate_rounds": sorted(result.evaluate_metrics_clientapp),
            "train_metrics": {str(k): dict(v) for k, v in
                              result.train_metrics_clientapp.items()},
            # largest absolute parameter of the final global model (None: never aggregated)
            "final_max_abs": max((float(abs(a).max()) for a in
                                  result.arrays.to_numpy_ndarrays()), default=None),
        }
        Path(summary_path).write_text(json.dumps(summary))
