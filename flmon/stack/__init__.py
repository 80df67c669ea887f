"""The local monitoring stack: real processes on loopback.

What ``flmon demo`` starts, and what you can start to try your own alert rules end to end
(see docs/stack.md): Prometheus, AlertManager, Pushgateway, a Slack webhook receiver, and
the Flower SuperLink and SuperNodes.

Every component binds ``127.0.0.1`` on a port it picks (or is given), writes its log to a
file, and stops (terminate, then kill) on ``stop()`` or when its ``with`` block ends,
including on Ctrl-C. ``flmon.stack.flower`` runs the Flower SuperLink and SuperNodes.
"""

from __future__ import annotations

from flmon.stack.alertmanager import AlertManager
from flmon.stack.ports import LOOPBACK, free_port
from flmon.stack.process import ManagedProcess, ProcessError
from flmon.stack.prometheus import Prometheus
from flmon.stack.pushgateway import Pushgateway
from flmon.stack.slack_receiver import SlackMessage, SlackReceiver

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
