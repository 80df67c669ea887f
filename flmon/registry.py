"""The process's default flmon registry (never ``prometheus_client.REGISTRY``).

``start_exporter()`` without a registry serves this one; ``instrument()`` and
``track_training`` record into it unless given their own. Each part of the catalog is
created in it once, on first use.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry

from flmon.metrics import FlmonMetrics

_lock = threading.Lock()
_registry = CollectorRegistry(auto_describe=True)
_server: FlmonMetrics | None = None


def default_registry() -> CollectorRegistry:
    """The registry shared by the process's server instrumentation and local recorder."""
    return _registry


def server_metrics() -> FlmonMetrics:
    """The server and sink metrics in the default registry, created on first use."""
    global _server
    with _lock:
        if _server is None:
            _server = FlmonMetrics(_registry, sides=("server", "sink"))
        return _server
