"""FlmonCallback inside a NumPyClient.fit: its figures reach a legacy strategy as telemetry."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from flwr.app import Context
from flwr.client import NumPyClient
from flwr.clientapp import ClientApp
from flwr.server import ServerConfig
from flwr.server.compat.app import start_grid
from flwr.server.strategy import FedAvg

from flmon.flower import TelemetryMod, instrument
from flmon.keras import FlmonCallback
from flmon.metrics import FlmonMetrics
from flmon.training import LocalRecorder
from tests.core.ingrid import InProcessGrid


class KerasClient(NumPyClient):
    def __init__(self, seed: int, recorder: LocalRecorder) -> None:
        rng = np.random.default_rng(seed)
        self.x = rng.normal(size=(64, 4)).astype("float32")
        self.y = (self.x[:, 0] > 0).astype("float32")
        self.recorder = recorder
        self.model = keras.Sequential([keras.Input((4,)),
                                       keras.layers.Dense(1, activation="sigmoid")])
        self.model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])

    def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]:
        return list(self.model.get_weights())

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]
            ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        self.model.set_weights(parameters)
        history = self.model.fit(self.x, self.y, epochs=3, batch_size=16, verbose=0,
                                 callbacks=[FlmonCallback(self.recorder, batch_size=16)])
        return list(self.model.get_weights()), len(self.y), {
            "accuracy": float(history.history["accuracy"][-1])}

    def evaluate(self, parameters: list[np.ndarray], config: dict[str, Any]
                 ) -> tuple[float, int, dict[str, Any]]:
        return 0.5, len(self.y), {"accuracy": 0.5}


def _app(seed: int) -> ClientApp:
    recorder = LocalRecorder()
    client = KerasClient(seed, recorder)

    def client_fn(context: Context) -> Any:
        return client.to_client()

    return ClientApp(client_fn=client_fn, mods=[TelemetryMod(recorder=recorder)])


def test_keras_callback_in_a_numpy_client_reaches_the_legacy_server() -> None:
    metrics = FlmonMetrics(sides=("server", "sink"))
    strategy = instrument(FedAvg(min_available_clients=2, min_fit_clients=2,
                                 min_evaluate_clients=2), metrics=metrics, num_rounds=1)
    start_grid(grid=InProcessGrid({1: _app(1), 2: _app(2)}), config=ServerConfig(num_rounds=1),
               strategy=strategy)
    value = metrics.registry.get_sample_value
    for client in ("1", "2"):
        assert value("fl_client_local_epochs", {"client": client}) == 3
        assert value("fl_client_local_steps", {"client": client}) == 12  # 64 / 16 x 3
        assert value("fl_model_updates_total", {"client": client}) == 1
    assert value("fl_telemetry_received_total") == 4
