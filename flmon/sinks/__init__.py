"""Sinks that send flmon's signals to Datadog, Elasticsearch and Slack without ever
blocking training.

Each sink is a bounded queue drained by one background thread (:mod:`flmon.sinks.base`):
the training loop only appends to the queue, drops and counts when it is full
(``fl_sink_dropped_total{sink}``), and the process exits promptly whatever the endpoint
does. The client libraries are optional extras and are imported only by the module
that needs them.

* :mod:`flmon.sinks.datadog`: DogStatsD, mirroring a Prometheus registry.
* :mod:`flmon.sinks.elasticsearch`: a ``logging.Handler`` shipping ECS documents in bulk.
* :mod:`flmon.sinks.slack`: run lifecycle notifications through an incoming webhook.
* :func:`build_sinks`: the enabled sinks, from the environment or keyword arguments.
"""

from __future__ import annotations

from flmon.sinks.base import QueueSettings, QueueSink, SendResult
from flmon.sinks.factory import Sinks, build_sinks

__all__ = ["QueueSettings", "QueueSink", "SendResult", "Sinks", "build_sinks"]
