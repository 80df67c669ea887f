"""Deprecated: the local-DP mod wrapper is in :mod:`flmon.flower.localdp`
(``from flmon.flower import LocalDpEpsilon, report_dp_epsilon``)."""

from __future__ import annotations

import warnings

from flmon.flower.localdp import STATE_KEY, LocalDpEpsilon, report_dp_epsilon

__all__ = ["STATE_KEY", "LocalDpEpsilon", "report_dp_epsilon"]

warnings.warn("flmon.security.localdp is deprecated; import flmon.flower.localdp instead",
              DeprecationWarning, stacklevel=2)
