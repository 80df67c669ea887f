"""Real legacy ClientApps (``ClientApp(client_fn=...)`` with a ``NumPyClient``) for
in-process tests of the legacy strategy wrapper, honest or misbehaving."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from flwr.app import Context, RecordDict
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import FitRes, Parameters, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import LegacyContext, ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.app import start_grid
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow

from flmon.flower import InstrumentedLegacyStrategy, TelemetryMod, instrument
from flmon.flower.legacy_guard import node_id
from flmon.metrics import FlmonMetrics
from flmon.training import LocalRecorder, track_training
from tests.core.ingrid import InProcessGrid

SHAPES = ((4, 3), (3,))


ATTACK = 1000.0
"""What a hostile client sends in every parameter: "the model became the attacker's"
shows at a glance."""
STEP = 0.1
"""What an honest client adds to every parameter each round."""


def initial() -> list[np.ndarray]:
    return [np.zeros(s, dtype=np.float32) for s in SHAPES]


def trained(parameters: list[np.ndarray], hostile: bool) -> list[np.ndarray]:
    """An honest client's update (``STEP`` added), or a hostile one's (``ATTACK``)."""
    if hostile:
        return [np.full(a.shape, ATTACK, dtype=a.dtype) for a in parameters]
    return [(a + STEP).astype(a.dtype) for a in parameters]


class RecordingFedAvg(FedAvg):
    """FedAvg that records the global parameters it is handed, what it aggregates and the
    model after the last fit round."""

    def __init__(self) -> None:
        super().__init__(min_available_clients=1, min_fit_clients=1,
                         min_evaluate_clients=1,
                         on_fit_config_fn=lambda r: {"server_round": r},
                         initial_parameters=ndarrays_to_parameters(initial()))
        self.sent: dict[int, list[np.ndarray]] = {}
        self.aggregated: dict[int, list[int]] = {}
        self.final: list[np.ndarray] | None = None

    def configure_fit(self, server_round: int, parameters: Parameters,
                      client_manager: ClientManager) -> Any:
        self.sent[server_round] = parameters_to_ndarrays(parameters)
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
                      failures: Any) -> Any:
        self.aggregated[server_round] = sorted(node_id(p) for p, _ in results)
        return super().aggregate_fit(server_round, results, failures)

    def configure_evaluate(self, server_round: int, parameters: Parameters,
                           client_manager: ClientManager) -> Any:
        self.final = parameters_to_ndarrays(parameters)  # the model after the fit round
        return super().configure_evaluate(server_round, parameters, client_manager)


def run_legacy(apps: Mapping[int, ClientApp], rounds: int, *, workflow: bool = False,
               **options: Any) -> tuple[RecordingFedAvg, FlmonMetrics]:
    """``apps`` through Flower's ``start_grid`` loop (or with ``workflow`` its
    ``DefaultWorkflow``), the strategy instrumented with ``options``."""
    metrics = FlmonMetrics(sides=("server", "sink"))
    base = RecordingFedAvg()
    wrapped = instrument(base, metrics=metrics, num_rounds=rounds, **options)
    assert isinstance(wrapped, InstrumentedLegacyStrategy)
    grid, config = InProcessGrid(dict(apps)), ServerConfig(num_rounds=rounds)
    if workflow:
        context = Context(run_id=4242, node_id=0, node_config={}, state=RecordDict(),
                          run_config={})
        DefaultWorkflow()(grid, LegacyContext(context, config, wrapped))
    else:
        start_grid(grid=grid, config=config, strategy=wrapped)
    return base, metrics


class LegacyClient(NumPyClient):
    """``behaviour``: honest, raise, nan, zero-examples, bad-shape, bad-dtype, inf-array,
    extra-key, scaled, sign-flip, nan-loss, forged-telemetry (prefixed keys holding
    garbage, unasked)."""

    def __init__(self, behaviour: str, seed: int, recorder: LocalRecorder) -> None:
        self.behaviour = behaviour
        self.rng = np.random.default_rng(seed)
        self.recorder = recorder
        self.configs: list[dict[str, Any]] = []

    def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]:
        return initial()

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]
            ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        self.configs.append(dict(config))
        b = self.behaviour
        if b == "raise":
            raise RuntimeError("simulated NumPyClient failure")
        arrays = [a.copy() for a in parameters]

        @track_training(recorder=self.recorder)
        def local_fit() -> dict[str, float]:
            direction = np.linspace(0.5, 1.5, arrays[0].size).reshape(arrays[0].shape)
            noise = 0.03 * self.rng.normal(size=arrays[0].shape)
            arrays[0] = (arrays[0] + 0.1 * direction + noise).astype(np.float32)
            return {"loss": 0.3, "accuracy": 0.9, "examples": 50, "epochs": 2}

        local_fit()
        if b == "scaled":
            arrays = [s + 20 * (a - s) for a, s in zip(arrays, parameters, strict=True)]
        if b == "sign-flip":
            arrays = [s - (a - s) for a, s in zip(arrays, parameters, strict=True)]
        if b == "bad-shape":
            arrays = [np.zeros(a.size + 1, dtype=np.float32) for a in arrays]
        if b == "bad-dtype":
            arrays = [a.astype(np.float64) for a in arrays]
        if b == "inf-array":
            arrays[1] = np.full_like(arrays[1], np.inf)
        metrics: dict[str, Any] = {"loss": 0.3, "accuracy": 0.9}
        if b == "nan":
            metrics["accuracy"] = float("nan")
        if b == "extra-key":
            metrics["extra"] = 1.0
        if b == "forged-telemetry":
            metrics.update({"flmon.telemetry.v": 1, "flmon.telemetry.duration_s": 1e9,
                            "flmon.telemetry.loss": "text", 'flmon.telemetry.x"}': 1.0})
        examples = {"zero-examples": 0}.get(b, 50)
        return arrays, examples, metrics

    def evaluate(self, parameters: list[np.ndarray], config: dict[str, Any]
                 ) -> tuple[float, int, dict[str, Any]]:
        loss = float("nan") if self.behaviour == "nan-loss" else 0.4
        return loss, 20, {"accuracy": 0.8}


def make_legacy_app(behaviour: str = "honest", seed: int = 0, telemetry: bool = True,
                    clients: list[LegacyClient] | None = None,
                    secagg: bool = False) -> ClientApp:
    """A legacy ClientApp; the NumPyClient it builds is appended to ``clients``.

    ``secagg`` puts Flower's ``secaggplus_mod`` outermost, as Flower's examples do.
    """
    recorder = LocalRecorder()
    client = LegacyClient(behaviour, seed, recorder)
    if clients is not None:
        clients.append(client)

    def client_fn(context: Context) -> Any:
        return client.to_client()

    mods: list[Any] = [secaggplus_mod] if secagg else []
    if telemetry:
        mods.append(TelemetryMod(recorder=recorder))
    return ClientApp(client_fn=client_fn, mods=mods)
