"""ClientApp: a legacy ``NumPyClient`` via ``client_fn``, with flmon's ``telemetry_mod``.

Node config ``behaviour = "raise"`` makes the client raise in every fit from round 2 on.
With run config ``secagg = true``, Flower's ``secaggplus_mod`` goes outermost.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import Context, Message
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable

import flmon
from flmon.flower import telemetry_mod
from legacyfl.task import evaluate, load_partition, train

tracked_train = flmon.track_training(train)


class LegacyClient(NumPyClient):
    def __init__(self, context: Context) -> None:
        self.behaviour = str(context.node_config.get("behaviour", "honest"))
        self.x, self.y = load_partition(int(context.node_config["partition-id"]),
                                        int(context.node_config["num-partitions"]))

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]
            ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        if self.behaviour == "raise" and int(config.get("server-round", 0)) >= 2:
            raise RuntimeError("simulated NumPyClient failure")
        weights = [p.copy() for p in parameters]
        result = tracked_train(weights, self.x, self.y)
        return weights, len(self.y), {"accuracy": result["accuracy"], "loss": result["loss"]}

    def evaluate(self, parameters: list[np.ndarray], config: dict[str, Any]
                 ) -> tuple[float, int, dict[str, Any]]:
        loss, accuracy = evaluate(parameters, self.x, self.y)
        return loss, len(self.y), {"accuracy": accuracy}


def client_fn(context: Context) -> Any:
    return LegacyClient(context).to_client()


def optional_secagg_mod(msg: Message, context: Context, call_next: ClientAppCallable
                        ) -> Message:
    if context.run_config.get("secagg", False):
        return secaggplus_mod(msg, context, call_next)
    return call_next(msg, context)


app = ClientApp(client_fn=client_fn, mods=[optional_secagg_mod, telemetry_mod])
