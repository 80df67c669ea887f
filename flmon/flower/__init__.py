"""Flower integration: ``telemetry_mod`` for ClientApps, ``instrument`` for strategies
(Message-API and legacy ``flwr.server.strategy`` ones).

Tested against the Flower range pinned in ``pyproject.toml`` (the ``flower`` extra):
the Message API of ``flwr.clientapp`` and ``flwr.serverapp`` changed across recent
minor releases.
"""

from flmon.flower.legacy import InstrumentedLegacyStrategy
from flmon.flower.localdp import LocalDpEpsilon, report_dp_epsilon
from flmon.flower.mod import TelemetryMod, telemetry_mod
from flmon.flower.strategy import InstrumentedStrategy, instrument

__all__ = [
    "InstrumentedLegacyStrategy",
    "InstrumentedStrategy",
    "LocalDpEpsilon",
    "TelemetryMod",
    "instrument",
    "report_dp_epsilon",
    "telemetry_mod",
]
