"""``flmon watch``: the federation seen from the SuperLink's Control API.

:mod:`.control` polls ``ListNodes`` and ``ListRuns``, :mod:`.aggregate` turns a poll into
bounded aggregates, :mod:`.collector` exposes them, :mod:`.pushgateway` deletes the
groups of ended runs and :mod:`.service` runs the loop.
"""

from __future__ import annotations

from flmon.watch.service import Watch, WatchOptions

__all__ = ["Watch", "WatchOptions"]
