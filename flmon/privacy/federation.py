"""A reference app's federation in this process, with a server that keeps what it sees.

Flower's own ``Strategy.start`` loop drives real ``ClientApp`` objects through an
in-process :class:`~flwr.serverapp.Grid` (no network: the privacy test measures what the
updates reveal, not the transport). The strategy is the example's (``FedAvg``), wrapped
for central DP in Flower's ``DifferentialPrivacyServerSideFixedClipping`` with Flower's
RDP accountant, or with Flower's ``LocalDpMod`` on every client for local DP; outermost
sits an observer, the honest-but-curious part of the server: it forwards every
call unchanged and records, per round, the global model it sent, each client's update as
it arrived, and the aggregate the server released.

The clients train the example's network on the example's partitions with the example's
run-config hyperparameters; the training itself is :func:`flmon.privacy.model.train`
(the same network and optimiser in numpy, so runs are fast, seeded and TensorFlow-free).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from flmon.privacy import model

Weights = list[npt.NDArray[np.float32]]

NODE_ID_BASE = 1001
"""Node ids of the in-process SuperNodes: ``NODE_ID_BASE + partition id``."""


@dataclass(frozen=True)
class TrainingConfig:
    """The clients' hyperparameters (the example's ``[tool.flwr.app.config]``)."""

    learning_rate: float
    local_epochs: int
    batch_size: int


@dataclass(frozen=True)
class DpSettings:
    """DP of one federation run: ``mode`` is "central" or "local"."""

    mode: str
    noise_multiplier: float
    clipping_norm: float
    delta: float


@dataclass
class RoundView:
    """What the curious server kept of one round."""

    round: int
    before: Weights
    updates: dict[int, Weights] = field(default_factory=dict)
    """Partition id -> the model that client sent back (after local DP, if any)."""
    released: Weights | None = None
    """The aggregate the server released (after central DP, if any)."""


@dataclass
class FederationRun:
    """Outcome of one federation run."""

    rounds: list[RoundView]
    accuracy: float
    """Accuracy of the final global model on the example's global test set."""
    epsilon: float | None = None
    delta: float | None = None


def _arrays(content: Any) -> Weights:
    """The model in a train message or reply (its one ArrayRecord, ``arrays``)."""
    record = content.array_records["arrays"]
    return [np.asarray(a, dtype=np.float32) for a in record.to_numpy_ndarrays()]


def _observer_class() -> type[Any]:
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
    from flwr.serverapp import Grid
    from flwr.serverapp.strategy import Strategy

    class _Observer(Strategy):
        """Delegates every call to ``strategy`` and records the rounds' models."""

        def __init__(self, strategy: Strategy, node_partition: Mapping[int, int]) -> None:
            self.strategy = strategy
            self.node_partition = dict(node_partition)
            self.rounds: list[RoundView] = []

        def summary(self) -> None:
            self.strategy.summary()

        def configure_train(self, server_round: int, arrays: ArrayRecord,
                            config: ConfigRecord, grid: Grid) -> Iterable[Message]:
            self.rounds.append(RoundView(server_round, arrays.to_numpy_ndarrays()))
            return list(self.strategy.configure_train(server_round, arrays, config, grid))

        def aggregate_train(self, server_round: int, replies: Iterable[Message],
                            ) -> tuple[ArrayRecord | None, MetricRecord | None]:
            replies = list(replies)
            view = self.rounds[-1]
            for reply in replies:
                if reply.has_error() or not reply.has_content():
                    continue
                partition = self.node_partition[reply.metadata.src_node_id]
                view.updates[partition] = _arrays(reply.content)
            arrays, metrics = self.strategy.aggregate_train(server_round, replies)
            if arrays is not None:
                view.released = arrays.to_numpy_ndarrays()
            return arrays, metrics

        def configure_evaluate(self, server_round: int, arrays: ArrayRecord,
                               config: ConfigRecord, grid: Grid) -> Iterable[Message]:
            return []  # the test needs no federated evaluation

        def aggregate_evaluate(self, server_round: int,
                               replies: Iterable[Message]) -> MetricRecord | None:
            return None

    return _Observer


def _grid_class() -> type[Any]:
    from flwr.app import Context, Error, Message, RecordDict
    from flwr.common.constant import ErrorCode
    from flwr.serverapp import Grid
    from flwr.supercore.run import Run
    from flwr.supercore.task_identity import TaskIdentity

    run_record = Run.create_empty(run_id=1)

    class _InProcessGrid(Grid):
        """Delivers each message to a ``ClientApp`` of this process, one per node id."""

        def __init__(self, apps: Mapping[int, Any], node_config: Mapping[int, dict[str, Any]],
                     ) -> None:
            TaskIdentity.run_id = 1
            TaskIdentity.task_id = 1
            TaskIdentity.node_id = 0
            self.apps = dict(apps)
            self.contexts = {
                node: Context(run_id=1, node_id=node, node_config=dict(node_config[node]),
                              state=RecordDict(), run_config={})
                for node in self.apps
            }

        def set_run(self, run: object) -> None:
            pass

        @property
        def run(self) -> Run:
            return run_record

        def create_message(self, content: RecordDict, message_type: str, dst_node_id: int,
                           group_id: str, ttl: float | None = None) -> Message:
            return Message(content=content, message_type=message_type,
                           dst_node_id=dst_node_id, group_id=group_id, ttl=ttl)

        def get_node_ids(self) -> Iterable[int]:
            return list(self.apps)

        def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
            raise NotImplementedError("the in-process grid only sends and receives")

        def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
            raise NotImplementedError("the in-process grid only sends and receives")

        def send_and_receive(self, messages: Iterable[Message], *,
                             timeout: float | None = None) -> Iterable[Message]:
            replies = []
            # In node order: Flower samples nodes in random order, and the order in which
            # clients draw local-DP noise from numpy's generator must not depend on it.
            for msg in sorted(messages, key=lambda m: m.metadata.dst_node_id):
                node = msg.metadata.dst_node_id
                try:
                    replies.append(self.apps[node](msg, self.contexts[node]))
                except Exception as exc:  # noqa: BLE001 - as a SuperNode reports it
                    replies.append(Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION,
                                                 reason=str(exc)), reply_to=msg))
            return replies

    return _InProcessGrid


def local_noise_epsilon(noise_multiplier: float, delta: float) -> float:
    """The ``epsilon`` that makes Flower's ``LocalDpMod`` add noise of ``noise_multiplier * C``.

    ``LocalDpMod`` draws ``N(0, (sensitivity * sqrt(2 ln(1.25 / delta)) / epsilon)^2)``;
    with ``sensitivity = C`` this epsilon gives a standard deviation of
    ``noise_multiplier * C``. It only sets the noise: the privacy figure reported is the RDP
    accountant's (the classic formula behind it holds for epsilon < 1 only).
    """
    return math.sqrt(2.0 * math.log(1.25 / delta)) / noise_multiplier


def _client_app(task: ModuleType, training: TrainingConfig, seed: int,
                local_dp: DpSettings | None) -> Any:
    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    mods: list[Any] = []
    if local_dp is not None:
        from flwr.clientapp.mod import LocalDpMod

        mods.append(LocalDpMod(
            clipping_norm=local_dp.clipping_norm, sensitivity=local_dp.clipping_norm,
            epsilon=local_noise_epsilon(local_dp.noise_multiplier, local_dp.delta),
            delta=local_dp.delta,
        ))
    app = ClientApp(mods=mods)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        partition = int(context.node_config["partition-id"])
        split, _ = task.load_partition(partition, int(context.node_config["num-partitions"]))
        server_round = int(str(msg.content["config"]["server-round"]))
        weights = model.train(
            _arrays(msg.content), split.x, split.y,
            learning_rate=training.learning_rate, epochs=training.local_epochs,
            batch_size=training.batch_size,
            seed=int(np.random.SeedSequence([seed, server_round, partition]).generate_state(1)[0]),
        )
        metrics = MetricRecord({"num-examples": len(split), "dp-weight": 1})
        content = RecordDict({"arrays": ArrayRecord(weights), "metrics": metrics})
        return Message(content=content, reply_to=msg)

    return app


@contextmanager
def _quiet_flower() -> Iterator[None]:
    """Keep Flower's per-round INFO lines out of the command's output."""
    import flwr.common.logger  # noqa: F401 - it sets the level when first imported

    logger = logging.getLogger("flwr")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextmanager
def _seeded_global_numpy(seed: int) -> Iterator[None]:
    """Flower's DP noise comes from numpy's global generator: seed it, then put it back."""
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


def accountant_epsilon(noise_multiplier: float, rounds: int, sample_size: int,
                       population_size: int, delta: float) -> float:
    """Epsilon of ``rounds`` Gaussian releases by Flower's RDP accountant."""
    from flwr.serverapp import (
        GaussianPrivacyEvent,
        NeighboringRelation,
        PrivacyConfig,
        RdpAccountant,
        SamplingMethod,
    )

    accountant = RdpAccountant(PrivacyConfig(
        target_delta=delta, population_size=population_size,
        neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
        sampling_method=SamplingMethod.NO_AMPLIFICATION,
    ))
    event = GaussianPrivacyEvent(noise_multiplier=noise_multiplier, sample_size=sample_size,
                                 population_size=population_size)
    accountant.compose(event, count=rounds)
    return float(accountant.get_privacy_spent().epsilon)


def _run_federation(
    task: ModuleType,
    *,
    nodes: int,
    rounds: int,
    training: TrainingConfig,
    seed: int,
    dp: DpSettings | None = None,
) -> FederationRun:
    from flwr.app import ArrayRecord
    from flwr.serverapp import (
        NeighboringRelation,
        PrivacyConfig,
        RdpAccountant,
        SamplingMethod,
    )
    from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg

    from flmon.reference import tabular

    central = dp is not None and dp.mode == "central"
    local = dp if dp is not None and dp.mode == "local" else None
    weight_key = "dp-weight" if central else "num-examples"
    apps = {NODE_ID_BASE + p: _client_app(task, training, seed, local)
            for p in range(nodes)}
    node_config = {NODE_ID_BASE + p: {"partition-id": p, "num-partitions": nodes}
                   for p in range(nodes)}
    strategy: Any = FedAvg(
        fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=nodes,
        min_available_nodes=nodes, weighted_by_key=weight_key,
    )
    accountant = None
    if central:
        assert dp is not None
        accountant = RdpAccountant(PrivacyConfig(
            target_delta=dp.delta, population_size=nodes,
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION,
        ))
        strategy = DifferentialPrivacyServerSideFixedClipping(
            strategy, noise_multiplier=dp.noise_multiplier, clipping_norm=dp.clipping_norm,
            num_sampled_clients=nodes, accountant=accountant,
        )
    observer = _observer_class()(strategy, {n: c["partition-id"] for n, c in node_config.items()})
    grid = _grid_class()(apps, node_config)
    initial = ArrayRecord(tabular.init_weights(task.NUM_FEATURES, task.HIDDEN_UNITS, seed))
    with _seeded_global_numpy(seed):
        result = observer.start(grid=grid, initial_arrays=initial, num_rounds=rounds)
    final = result.arrays.to_numpy_ndarrays()
    accuracy = tabular.evaluate(final, task.load_global_test())["accuracy"]
    run = FederationRun(rounds=observer.rounds, accuracy=float(accuracy))
    missing = [v.round for v in run.rounds if len(v.updates) != nodes or v.released is None]
    if missing:
        raise RuntimeError(f"rounds {missing} did not get every client's update")
    if dp is not None:
        run.delta = dp.delta
        if accountant is not None:
            run.epsilon = float(accountant.get_privacy_spent().epsilon)
        else:  # local DP: each client's own Gaussian releases
            run.epsilon = accountant_epsilon(dp.noise_multiplier, rounds, 1, 1, dp.delta)
    return run


def run_federation(
    task: ModuleType,
    *,
    nodes: int,
    rounds: int,
    training: TrainingConfig,
    seed: int,
    dp: DpSettings | None = None,
) -> FederationRun:
    """Run ``rounds`` rounds of the example's FedAvg over ``nodes`` clients, observed.

    ``dp``: central DP (Flower's server-side fixed clipping, RDP accountant) or local DP
    (Flower's ``LocalDpMod`` on every client); none when omitted. Flower's log lines below
    ERROR are held back while it runs.
    """
    with _quiet_flower():
        return _run_federation(task, nodes=nodes, rounds=rounds, training=training,
                               seed=seed, dp=dp)
