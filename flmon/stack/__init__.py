"""Real processes on loopback, for the end-to-end tests and ``flmon demo``.

Every component binds ``127.0.0.1`` on a port it picks (or is given), writes its log to a
file, and stops (terminate, then kill) on ``stop()`` or when its ``with`` block ends,
including on Ctrl-C. ``flmon.harness.flower`` runs the Flower SuperLink and SuperNodes.
"""

from __future__ import annotations

from flmon.harness.alertmanager import AlertManager
from flmon.harness.ports import LOOPBACK, free_port
from flmon.harness.process import ManagedProcess, ProcessError
from flmon.harness.prometheus import Prometheus
from flmon.harness.pushgateway import Pushgateway
from flmon.harness.slack_receiver import SlackMessage, SlackReceiver

__all__ = [
    "LOOPBACK",
    "AlertManager",
    "ManagedProcess",
    "ProcessError",
    "Prometheus",
    "Pushgateway",
    "SlackMessage",
    "SlackReceiver",
    "free_port",
]
