"""flmon: monitoring and alerting for federated learning.

Core (no Flower or TensorFlow import): :mod:`flmon.catalog`, :func:`start_exporter`,
:func:`track_training`, :func:`configure_logging`. Flower and Keras integrations are
imported on first use: ``flmon.flower.telemetry_mod``, ``flmon.flower.instrument``,
``flmon.keras.FlmonCallback``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "configure_logging",
    "start_exporter",
    "track_training",
]

_LAZY_FUNCS = {
    "start_exporter": ("flmon.exporter", "start_exporter"),
    "track_training": ("flmon.training", "track_training"),
    "configure_logging": ("flmon.logs", "configure_logging"),
}
_LAZY_MODULES = {"flower", "keras", "catalog", "metrics", "exporter", "training", "logs"}

if TYPE_CHECKING:
    from flmon import flower as flower
    from flmon import keras as keras
    from flmon.exporter import start_exporter
    from flmon.logs import configure_logging
    from flmon.training import track_training


def __getattr__(name: str) -> Any:
    if name in _LAZY_FUNCS:
        module, attr = _LAZY_FUNCS[name]
        value = getattr(importlib.import_module(module), attr)
    elif name in _LAZY_MODULES:
        value = importlib.import_module(f"flmon.{name}")
    else:
        raise AttributeError(f"module 'flmon' has no attribute {name!r}")
    globals()[name] = value
    return value
