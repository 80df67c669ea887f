"""Local differential privacy: report the epsilon a client has spent.

When clients add their own noise (Flower's ``LocalDpMod``, or a DP optimiser such as
Opacus in the local training loop), only the client knows what it spent. flmon
forwards that figure as the ``dp_epsilon`` telemetry field; the server exports it as
``fl_client_dp_epsilon{client}``.

Two ways to report it, both from inside the ClientApp call (the telemetry mod sends
what was reported while it handled the message):

- :func:`report_dp_epsilon` with the cumulative epsilon of your own accountant;
- :class:`LocalDpEpsilon` around Flower's ``LocalDpMod``: it counts the train replies
  the mod has noised in the run (in ``Context.state``, which the SuperNode keeps
  between the ClientApp processes of a run) and reports ``count * epsilon``::

      from flwr.clientapp.mod import LocalDpMod
      from flmon.flower import LocalDpEpsilon, telemetry_mod

      local_dp = LocalDpMod(clipping_norm=1.0, sensitivity=1.0, epsilon=0.5, delta=1e-5)
      app = ClientApp(mods=[telemetry_mod, LocalDpEpsilon(local_dp)])

  ``telemetry_mod`` must come first (outermost) so that it sees the report.

``count * epsilon`` is basic sequential composition of the mod's per-round Gaussian
mechanism (whose delta composes to ``count * delta``): a valid upper bound, looser
than an RDP or moments accountant would give. ``LocalDpMod`` calibrates its noise with
the classic ``sqrt(2 ln(1.25 / delta)) / epsilon`` formula, which holds for
``epsilon < 1``; with a larger per-round epsilon the reported figure is not a
guarantee.
"""

from __future__ import annotations

import math
from typing import Any

from flmon.training import LocalRecorder, default_recorder

STATE_KEY = "flmon.local_dp"
"""Key of the ConfigRecord in ``Context.state`` where :class:`LocalDpEpsilon` counts."""


def report_dp_epsilon(epsilon: float, recorder: LocalRecorder | None = None) -> None:
    """Report the local-DP epsilon spent so far by this client (cumulative).

    Call it inside the ClientApp's train (or evaluate) function; the value goes out
    with that message's reply. ``recorder``: the process's default recorder (the one
    ``telemetry_mod`` reads) when omitted.
    """
    (recorder if recorder is not None else default_recorder()).dp_epsilon(epsilon)


class LocalDpEpsilon:
    """A Flower mod wrapping a local-DP mod and reporting its cumulative epsilon.

    Parameters
    ----------
    local_dp_mod
        Flower's ``LocalDpMod`` (or any mod with a per-call ``epsilon`` attribute that
        noises train replies).
    recorder
        Where to report; the process's default recorder when omitted.
    """

    def __init__(self, local_dp_mod: Any, recorder: LocalRecorder | None = None) -> None:
        epsilon = getattr(local_dp_mod, "epsilon", None)
        if (not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool)
                or not math.isfinite(epsilon) or epsilon < 0):
            raise ValueError("the wrapped mod needs a finite epsilon >= 0 "
                             "(Flower's LocalDpMod has one)")
        if not callable(local_dp_mod):
            raise TypeError("the wrapped local-DP mod must be callable like a Flower mod")
        self.mod = local_dp_mod
        self.epsilon = float(epsilon)
        self._recorder = recorder

    def __call__(self, msg: Any, ctx: Any, call_next: Any) -> Any:
        reply = self.mod(msg, ctx, call_next)
        if str(msg.metadata.message_type).split(".")[0] != "train":
            return reply
        if reply.has_error() or not reply.has_content():
            return reply
        from flwr.app import ConfigRecord

        state = ctx.state
        record = state.get(STATE_KEY) if STATE_KEY in state else None
        rounds = record.get("rounds", 0) if record is not None else 0
        rounds = int(rounds) + 1
        state[STATE_KEY] = ConfigRecord({"rounds": rounds})
        report_dp_epsilon(rounds * self.epsilon, self._recorder)
        return reply

    def spent(self, ctx: Any) -> float:
        """The cumulative epsilon recorded in ``ctx.state`` so far."""
        state = ctx.state
        record = state.get(STATE_KEY) if STATE_KEY in state else None
        return float(record.get("rounds", 0) if record is not None else 0) * self.epsilon
