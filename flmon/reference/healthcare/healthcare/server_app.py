"""Coordinator side: FedAvg (optionally with central DP) instrumented by flmon.

flmon here: ``instrument(strategy)`` records rounds, participation, failures, per-client
figures, update norms and anomaly scores, and DP epsilon; ``start_exporter`` serves them
on ``/metrics`` while the run lasts, and the Pushgateway keeps the final state after the
ServerApp process exits. Both addresses come from the run config.

The code is shared with the other reference app: :mod:`flmon.reference.apps`.
"""

from __future__ import annotations

from flmon.reference.apps import server_app
from healthcare.task import TASK

app = server_app(TASK)
