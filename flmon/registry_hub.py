"""Deprecated: the default registry is in :mod:`flmon.registry`."""

from __future__ import annotations

import warnings

from flmon.registry import default_registry, server_metrics

__all__ = ["default_registry", "server_metrics"]

warnings.warn("flmon.registry_hub is deprecated; import flmon.registry instead",
              DeprecationWarning, stacklevel=2)
