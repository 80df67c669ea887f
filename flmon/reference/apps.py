"""What the reference apps share: the data split, the ServerApp and the ClientApp.

Each app (``flmon/reference/<name>/<name>/``) keeps only what is its own: the data set
recipe and the scores it reports, in a :class:`Task`. Its ``server_app.py`` and
``client_app.py`` are one call each::

    app = server_app(task.TASK)          # flmon/reference/fraud/fraud/server_app.py
    app = client_app(task.TASK)          # flmon/reference/fraud/fraud/client_app.py

flmon shows here the way a user wires it: ``instrument(strategy)`` and ``start_exporter``
on the server, ``telemetry_mod`` and ``FlmonCallback`` on the clients, ECS logs, and the
sinks of :func:`flmon.sinks.build_sinks` when the environment configures them
(``FLMON_ES_URL`` ships the ServerApp's ECS logs to Elasticsearch, ``FLMON_DATADOG_ENABLED``
sends its figures to DogStatsD, ``FLMON_SLACK_WEBHOOK_URL[_FILE]`` posts the run's start
and end to Slack; see docs/sinks.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from flmon.ports import LIVE_PORT_TRIES
from flmon.reference.tabular import Split, dirichlet_label_partition, train_test_split_indices

Config = dict[str, Any]


@dataclass(frozen=True)
class Task:
    """One reference app's data and model size.

    Parameters
    ----------
    name
        The app's name (its logger's name too).
    dataset
        ``() -> (pool, global_test)``: the preprocessed data before partitioning.
    num_features, hidden_units
        The network's input width and hidden layer.
    alpha, split_seed, min_size
        The Dirichlet label skew across partitions, its seed, and the least examples a
        partition holds.
    scores
        Scores of :func:`flmon.reference.tabular.evaluate` the clients report besides
        accuracy and loss, as ``eval_<score>``.
    central_scores
        Those the server's central evaluation reports besides accuracy and loss.
    """

    name: str
    dataset: Callable[[], tuple[Split, Split]]
    num_features: int
    hidden_units: int
    alpha: float
    split_seed: int
    min_size: int
    scores: tuple[str, ...] = ()
    central_scores: tuple[str, ...] = ()
    _cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, compare=False, repr=False)

    def _cached(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]

    def _data(self) -> tuple[Split, Split]:
        data: tuple[Split, Split] = self._cached("dataset", self.dataset)
        return data

    def load_partition(self, partition_id: int, num_partitions: int) -> tuple[Split, Split]:
        """``(train, test)`` of partition ``partition_id`` out of ``num_partitions``.

        Each partition keeps a random 20 % (seed ``100 + partition_id``) as its local
        test set.
        """
        if not 0 <= partition_id < num_partitions:
            raise ValueError(f"partition-id {partition_id} not in 0..{num_partitions - 1}")

        def make() -> tuple[Split, Split]:
            pool, _ = self._data()
            parts = dirichlet_label_partition(pool.y, num_partitions, self.alpha,
                                              self.split_seed, min_size=self.min_size)
            idx = parts[partition_id]
            train_idx, test_idx = train_test_split_indices(len(idx), 0.2, 100 + partition_id)
            return (
                Split(pool.x[idx[train_idx]], pool.y[idx[train_idx]]),
                Split(pool.x[idx[test_idx]], pool.y[idx[test_idx]]),
            )

        split: tuple[Split, Split] = self._cached(("partition", partition_id, num_partitions),
                                                  make)
        return split

    def load_global_test(self) -> Split:
        """The server's held-out test set."""
        return self._data()[1]

    def load_union(self, num_partitions: int) -> Split:
        """Every partition's training data together: what a centralized model would see."""
        parts = [self.load_partition(p, num_partitions)[0] for p in range(num_partitions)]
        return Split(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]))


# --- ServerApp ----------------------------------------------------------------------------


def _strategy(cfg: Config) -> Any:
    """FedAvg (with Flower's central DP when asked) wrapped by ``flmon.flower.instrument``."""
    from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg

    import flmon.flower

    num_nodes = int(cfg["num-nodes"])
    min_nodes = max(1, min(num_nodes, int(cfg["min-nodes"])))
    dp = bool(cfg["dp"]) or cfg["scenario"] == "privacy-budget"
    strategy: Any = FedAvg(
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
    federation = str(cfg.get("flmon-federation", ""))
    return flmon.flower.instrument(
        strategy,
        pushgateway=str(cfg.get("flmon-pushgateway", "")) or None,
        job=str(cfg.get("flmon-job", "flmon")),
        # One Pushgateway group per federation, so federations sharing a gateway do not
        # overwrite each other's series.
        grouping_key={"federation": federation} if federation else None,
        anomaly_threshold=float(cfg.get("flmon-anomaly-threshold", 3.5)),
    )


@contextlib.contextmanager
def _sinks(metrics: Any, run_id: int, rounds: int, strategy: str) -> Iterator[None]:
    """The sinks the environment configures, for the block; none when it configures none.

    The Elasticsearch handler goes on the root logger (the ServerApp's and flmon's ECS
    records), Slack hears of the run's start and end. DogStatsD is not built here: the
    instrumented strategy sends the run's ``fl_*`` series itself when
    ``FLMON_DATADOG_ENABLED`` is set, and a second sender would count everything twice.
    Closing is bounded: a sink that is down never holds the ServerApp.
    """
    from flmon.sinks import build_sinks

    sinks = build_sinks(metrics=metrics, datadog=False)
    if not sinks:
        yield
        return
    sinks.attach_logging()
    try:
        if sinks.slack is not None:
            with sinks.slack.track_run(run_id, rounds=rounds, strategy=strategy):
                yield
        else:
            yield
    finally:
        sinks.close(timeout=float(os.environ.get("FLMON_SINKS_CLOSE_TIMEOUT", "5")))


def server_app(task: Task) -> Any:
    """The app's ``ServerApp``: FedAvg for ``num-server-rounds`` rounds, instrumented,
    scoring the global model on the held-out test set each round."""
    from flwr.app import ArrayRecord, Context, MetricRecord
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.exception import PrivacyBudgetExhausted

    import flmon
    from flmon.reference import tabular

    log = logging.getLogger(task.name)
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        flmon.configure_logging()
        cfg = context.run_config
        port = int(cfg.get("flmon-exporter-port", 0))
        if port:
            # TLS and authentication from a web config file when the deployment provides
            # one; concurrent runs on one host bind the next free port.
            flmon.start_exporter(port, addr=str(cfg.get("flmon-exporter-addr", "127.0.0.1")),
                                 web_config=os.environ.get("FLMON_EXPORTER_WEB_CONFIG") or None,
                                 port_tries=LIVE_PORT_TRIES)

        global_test = task.load_global_test()

        def central_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
            scores = tabular.evaluate(arrays.to_numpy_ndarrays(), global_test)
            names = ("accuracy", "loss", *task.central_scores)
            return MetricRecord({name: scores[name] for name in names})

        strategy = _strategy(cfg)
        initial = ArrayRecord(
            tabular.init_weights(task.num_features, task.hidden_units, int(cfg["seed"]))
        )
        rounds = int(cfg["num-server-rounds"])
        with _sinks(strategy.metrics, context.run_id, rounds, type(strategy).__name__):
            try:
                result = strategy.start(
                    grid=grid,
                    initial_arrays=initial,
                    num_rounds=rounds,
                    timeout=float(cfg["round-timeout"]),
                    evaluate_fn=central_evaluate,
                )
            except PrivacyBudgetExhausted as exc:
                # The accountant refused the next release: stop training, keep what was
                # released.
                log.warning("privacy budget exhausted, training stopped: %s", exc)
                return
            by_round = result.evaluate_metrics_serverapp
            final = by_round.get(max(by_round, default=0))
            log.info("final global model on the held-out test set: %s", final)

    return app


# --- ClientApp ----------------------------------------------------------------------------


def _partition(context: Any) -> tuple[int, int]:
    return int(context.node_config["partition-id"]), int(context.node_config["num-partitions"])


def client_app(task: Task) -> Any:
    """The app's ``ClientApp``: local Keras training (with the run's fault injected where
    the scenario says) and a numpy evaluation, with ``telemetry_mod`` on every message."""
    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    import flmon.flower
    from flmon.reference import faults, tabular

    flmon.configure_logging()
    app = ClientApp(mods=[flmon.flower.telemetry_mod])

    def dp_weight(cfg: Config, metrics: dict[str, Any]) -> None:
        if bool(cfg.get("dp", False)):
            metrics["dp-weight"] = 1  # Flower's DP accountant needs equal client weights

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        from flmon.keras import FlmonCallback

        cfg = context.run_config
        server_round = int(cast(int, msg.content.config_records["config"]["server-round"]))
        fault = faults.fault_for(cfg, context.node_config, server_round)
        partition_id, num_partitions = _partition(context)
        train_split, _ = task.load_partition(partition_id, num_partitions)

        if fault.delay_seconds:
            time.sleep(fault.delay_seconds)
        if fault.flip_labels:
            # A broken upstream join: labels no longer belong to their records.
            rng = np.random.default_rng(1000 * server_round + partition_id)
            train_split = tabular.Split(train_split.x, rng.integers(0, 2, len(train_split)))

        global_weights = msg.content.array_records["arrays"].to_numpy_ndarrays()
        weights, history = tabular.fit_keras(
            global_weights,
            train_split,
            hidden=task.hidden_units,
            learning_rate=float(cfg["learning-rate"]),
            epochs=int(cfg["local-epochs"]),
            batch_size=int(cfg["batch-size"]),
            seed=1000 * server_round + partition_id,
            callbacks=[FlmonCallback()],
        )
        if fault.kind == "poisoned":
            weights = faults.poison(weights, global_weights, fault.poison_scale)

        metrics: dict[str, Any] = {
            "train_loss": float(history["loss"][-1]),
            "train_acc": float(history["accuracy"][-1]),
            "num-examples": len(train_split),
        }
        dp_weight(cfg, metrics)
        content = RecordDict({"arrays": ArrayRecord(weights), "metrics": MetricRecord(metrics)})
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        partition_id, num_partitions = _partition(context)
        _, test_split = task.load_partition(partition_id, num_partitions)
        scores = tabular.evaluate(msg.content.array_records["arrays"].to_numpy_ndarrays(),
                                  test_split)
        metrics: dict[str, Any] = {
            "eval_loss": scores["loss"],
            "eval_acc": scores["accuracy"],
            **{f"eval_{name}": scores[name] for name in task.scores},
            "num-examples": len(test_split),
        }
        dp_weight(context.run_config, metrics)
        return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)

    return app
