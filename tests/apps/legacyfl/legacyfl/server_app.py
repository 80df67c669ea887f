"""ServerApp: a legacy ``flwr.server.strategy.FedAvg`` wrapped by flmon.

``LEGACY`` is a plain legacy ServerApp (``ServerApp(server_fn=...)`` returning
``ServerAppComponents``), run exactly as Flower runs such a component. With run config
``secagg = true`` the run uses SecAgg+ instead (``SecAggPlusWorkflow`` inside
``DefaultWorkflow``), which needs a ``main`` of its own: ``app`` picks one of the two.
"""

from __future__ import annotations

from flwr.app import Context
from flwr.common import Metrics, ndarrays_to_parameters
from flwr.server import LegacyContext, ServerAppComponents, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid, ServerApp

import flmon
from flmon.flower import InstrumentedLegacyStrategy, instrument
from legacyfl.task import initial_weights


def weighted_average(metrics: list[tuple[int, Metrics]]) -> Metrics:
    total = sum(n for n, _ in metrics)
    return {"accuracy": sum(n * float(m["accuracy"]) for n, m in metrics) / total}


def _strategy(context: Context) -> InstrumentedLegacyStrategy:
    cfg = context.run_config
    nodes = int(cfg["num-nodes"])
    evaluate = bool(cfg["evaluate"])
    flmon.configure_logging(run_id=context.run_id)
    base = FedAvg(
        fraction_fit=1.0, fraction_evaluate=1.0 if evaluate else 0.0, min_fit_clients=nodes,
        min_evaluate_clients=nodes if evaluate else 0, min_available_clients=nodes,
        initial_parameters=ndarrays_to_parameters(initial_weights()),
        on_fit_config_fn=lambda r: {"server-round": r},
        fit_metrics_aggregation_fn=weighted_average,
        evaluate_metrics_aggregation_fn=weighted_average,
    )
    return instrument(base, num_rounds=int(cfg["num-server-rounds"]),
                      secure_aggregation=bool(cfg["secagg"]) or None,
                      pushgateway=str(cfg["pushgateway"]) or None, job=str(cfg["job"]))


def server_fn(context: Context) -> ServerAppComponents:
    rounds = int(context.run_config["num-server-rounds"])
    port = int(context.run_config["exporter-port"])
    if port > 0:  # serves until the process exits with the run
        flmon.start_exporter(port=port, port_tries=10)
    return ServerAppComponents(strategy=_strategy(context),
                               config=ServerConfig(num_rounds=rounds, round_timeout=60))


LEGACY = ServerApp(server_fn=server_fn)

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    if not context.run_config["secagg"]:
        LEGACY(grid, context)
        return
    strategy = _strategy(context)
    rounds = int(context.run_config["num-server-rounds"])
    legacy_context = LegacyContext(context=context, config=ServerConfig(num_rounds=rounds),
                                   strategy=strategy)
    # 3 nodes: every node holds a share of every other's secrets; 2 shares rebuild one,
    # so the protocol survives one node dropping out.
    workflow = DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(
        num_shares=3, reconstruction_threshold=2, timeout=60))
    try:
        workflow(grid, legacy_context)
    finally:
        strategy.close()
