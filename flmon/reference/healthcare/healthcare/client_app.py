"""Hospital side: train on local patients, evaluate the global model locally.

flmon here: ``telemetry_mod`` times every message and attaches allow-listed numeric
telemetry to the reply (it travels over the Flower channel, the only way out of a
hospital network); ``FlmonCallback`` feeds Keras' per-epoch figures into it. No raw data
and no per-patient figures leave the node.

The code is shared with the other reference app: :mod:`flmon.reference.apps`.
"""

from __future__ import annotations

from flmon.reference.apps import client_app
from healthcare.task import TASK

app = client_app(TASK)
