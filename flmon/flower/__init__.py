"""Flower integration: ``telemetry_mod`` for ClientApps, ``instrument`` for strategies.

Tested against the Flower range pinned in ``pyproject.toml`` (the ``flower`` extra):
the Message API of ``flwr.clientapp`` and ``flwr.serverapp`` changed across recent
minor releases.
"""

from flmon.flower.mod import TelemetryMod, telemetry_mod
from flmon.flower.strategy import InstrumentedStrategy, instrument
from flmon.security.localdp import LocalDpEpsilon, report_dp_epsilon

__all__ = [
    "InstrumentedStrategy",
    "LocalDpEpsilon",
    "TelemetryMod",
    "instrument",
    "report_dp_epsilon",
    "telemetry_mod",
]
