"""Coordinator side: FedAvg (optionally with central DP) instrumented by flmon.

flmon here: ``instrument(strategy)`` records rounds, participation, failures, per-client
figures, update norms and anomaly scores, and DP epsilon; ``start_exporter`` serves them
on ``/metrics`` while the run lasts, and the Pushgateway keeps the final state after the
ServerApp process exits. Both addresses come from the run config.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.exception import PrivacyBudgetExhausted
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg, Strategy

import flmon
import flmon.flower
from flmon.demo import tabular
from healthcare import task

log = logging.getLogger("healthcare")

app = ServerApp()


def _strategy(cfg: dict[str, bool | int | float | str]) -> Strategy:
    num_nodes = int(cfg["num-nodes"])
    min_nodes = max(1, min(num_nodes, int(cfg["min-nodes"])))
    dp = bool(cfg["dp"]) or cfg["scenario"] == "privacy-budget"
    strategy: Strategy = FedAvg(
        fraction_train=1.0,
        fraction_evaluate=1.0,
        min_train_nodes=num_nodes if dp else min_nodes,
        min_evaluate_nodes=min_nodes,
        min_available_nodes=num_nodes if dp else min_nodes,
        weighted_by_key="dp-weight" if dp else "num-examples",
    )
    if dp:
        noise_seed = int(cfg.get("dp-noise-seed", 0))
        if noise_seed:  # Flower draws DP noise from numpy's global generator
            np.random.seed(noise_seed)
        from flwr.serverapp import (
            NeighboringRelation,
            PrivacyConfig,
            RdpAccountant,
            SamplingMethod,
        )

        max_epsilon = float(cfg["dp-max-epsilon"])
        accountant = RdpAccountant(
            PrivacyConfig(
                target_delta=float(cfg["dp-delta"]),
                population_size=num_nodes,
                neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
                sampling_method=SamplingMethod.NO_AMPLIFICATION,
                max_epsilon=max_epsilon if max_epsilon > 0 else None,
            )
        )
        strategy = DifferentialPrivacyServerSideFixedClipping(
            strategy,
            noise_multiplier=float(cfg["dp-noise-multiplier"]),
            clipping_norm=float(cfg["dp-clipping-norm"]),
            num_sampled_clients=num_nodes,
            accountant=accountant,
        )
    pushgateway = str(cfg.get("flmon-pushgateway", ""))
    federation = str(cfg.get("flmon-federation", ""))
    return flmon.flower.instrument(
        strategy,
        pushgateway=pushgateway or None,
        job=str(cfg.get("flmon-job", "flmon")),
        # One Pushgateway group per federation, so federations sharing a gateway do not
        # overwrite each other's series.
        grouping_key={"federation": federation} if federation else None,
        anomaly_threshold=float(cfg.get("flmon-anomaly-threshold", 3.5)),
    )


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run FedAvg for ``num-server-rounds`` rounds, scoring the global model each round."""
    flmon.configure_logging()
    cfg = context.run_config
    port = int(cfg.get("flmon-exporter-port", 0))
    if port:
        # TLS and authentication from a web config file when the deployment provides one;
        # concurrent runs on one host bind the next free port.
        flmon.start_exporter(port, addr=str(cfg.get("flmon-exporter-addr", "127.0.0.1")),
                             web_config=os.environ.get("FLMON_EXPORTER_WEB_CONFIG") or None,
                             port_tries=10)

    global_test = task.load_global_test()

    def central_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        scores = tabular.evaluate(arrays.to_numpy_ndarrays(), global_test)
        return MetricRecord({"accuracy": scores["accuracy"], "loss": scores["loss"]})

    strategy = _strategy(cfg)
    initial = ArrayRecord(
        tabular.init_weights(task.NUM_FEATURES, task.HIDDEN_UNITS, int(cfg["seed"]))
    )
    try:
        result = strategy.start(
            grid=grid,
            initial_arrays=initial,
            num_rounds=int(cfg["num-server-rounds"]),
            timeout=float(cfg["round-timeout"]),
            evaluate_fn=central_evaluate,
        )
    except PrivacyBudgetExhausted as exc:
        # The accountant refused the next release: stop training, keep what was released.
        log.warning("privacy budget exhausted, training stopped: %s", exc)
        return
    final = result.evaluate_metrics_serverapp.get(max(result.evaluate_metrics_serverapp, default=0))
    log.info("final global model on the held-out test set: %s", final)
