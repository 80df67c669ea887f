"""Fault scenarios for the example Flower apps, chosen by run config or node config.

Run config (same for every node; ``flwr run ... --run-config "scenario='poisoned'"``):

``scenario``
    ``healthy`` (default), ``straggler``, ``poisoned``, ``accuracy-collapse``,
    ``node-killed``, ``privacy-budget`` or ``privacy-leak``. The last three act outside
    the ClientApp: the demo kills a SuperNode process, the ServerApp runs the DP variant
    with a small epsilon budget, and the demo pushes ``flmon privacy-test``'s figures.
``fault-partition``
    ``partition-id`` of the offending node (default 1). ``accuracy-collapse`` hits every
    node: it stands for a broken upstream data pipeline shared by all sites.
``fault-start-round``, ``fault-end-round``
    First and last faulty round (defaults 2 and 3); the rounds after are the recovery.
    ``fault-end-round = 0`` keeps the fault until the run ends.
``straggler-delay``
    Seconds the straggler sleeps before training (default 20).
``poison-scale``
    The poisoned node sends ``global + poison-scale * (local - global)``; negative values
    flip the update's sign (default -8).

Node config (one node; ``flower-supernode --node-config "... fault='poisoned'"``):
``fault`` makes this node faulty in every round of the fault window, whatever the run
config says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SCENARIOS: tuple[str, ...] = (
    "healthy",
    "node-killed",
    "straggler",
    "poisoned",
    "accuracy-collapse",
    "privacy-budget",
    "privacy-leak",
)
CLIENT_FAULTS: frozenset[str] = frozenset({"straggler", "poisoned", "accuracy-collapse"})

Value = bool | int | float | str


@dataclass(frozen=True)
class Fault:
    """What this node does wrong in this round (nothing, by default)."""

    kind: str = "healthy"
    delay_seconds: float = 0.0
    poison_scale: float = 1.0
    flip_labels: bool = False

    @property
    def active(self) -> bool:
        return self.kind != "healthy"


def _int(config: Mapping[str, Value], key: str, default: int) -> int:
    value = config.get(key, default)
    return int(value)


def _float(config: Mapping[str, Value], key: str, default: float) -> float:
    value = config.get(key, default)
    return float(value)


def fault_for(
    run_config: Mapping[str, Value],
    node_config: Mapping[str, Value],
    server_round: int,
) -> Fault:
    """The fault this node injects in ``server_round`` (``Fault()`` when none)."""
    scenario = str(run_config.get("scenario", "healthy"))
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    node_fault = str(node_config.get("fault", "") or "")
    if node_fault and node_fault not in CLIENT_FAULTS:
        raise ValueError(f"unknown node fault {node_fault!r}")
    start = _int(run_config, "fault-start-round", 2)
    end = _int(run_config, "fault-end-round", 3)
    in_window = server_round >= start and (end == 0 or server_round <= end)
    if not in_window:
        return Fault()
    if node_fault:
        kind = node_fault
    elif scenario == "accuracy-collapse" or (
        scenario in CLIENT_FAULTS
        and _int(node_config, "partition-id", -1) == _int(run_config, "fault-partition", 1)
    ):
        kind = scenario
    else:
        return Fault()
    return Fault(
        kind=kind,
        delay_seconds=_float(run_config, "straggler-delay", 20.0) if kind == "straggler" else 0.0,
        poison_scale=_float(run_config, "poison-scale", -8.0) if kind == "poisoned" else 1.0,
        flip_labels=kind == "accuracy-collapse",
    )


def poison(
    local: list[npt.NDArray[np.float32]],
    global_: list[npt.NDArray[np.float32]],
    scale: float,
) -> list[npt.NDArray[np.float32]]:
    """``global + scale * (local - global)``, array by array."""
    return [
        (g + scale * (w - g)).astype(np.float32) for w, g in zip(local, global_, strict=True)
    ]
