"""flmon's default ports: one plan, so that a watch and concurrent runs never collide.

A host may run ``flmon watch`` and several ServerApps at once (Flower runs concurrent
runs each in its own ServerApp process). Each ServerApp's live exporter binds the first
free port of ``LIVE_PORT .. LIVE_PORT + LIVE_PORT_TRIES - 1`` (``start_exporter(...,
port_tries=LIVE_PORT_TRIES)``, as the reference apps do). The watch listens *below* that
range, on ``WATCH_PORT``: an exporter only ever scans upwards from its port, so no
number of concurrent runs (nor a larger ``port_tries``) reaches the watch's port, and
``scrape.live.targets`` may list the whole live range without copying the watch's series
into the live job.
"""

from __future__ import annotations

LIVE_PORT = 9464
"""First port of the ServerApp's live exporter (``scrape.live.targets`` default)."""

LIVE_PORT_TRIES = 10
"""Ports the reference apps let ``start_exporter`` try: 9464-9473, ten concurrent runs."""

WATCH_PORT = 9463
"""``flmon watch --port`` default (``scrape.watch.targets`` default): below the live range."""


def live_ports(port: int = LIVE_PORT, tries: int = LIVE_PORT_TRIES) -> range:
    """The ports ServerApps' exporters may bind, from ``port`` up."""
    return range(port, min(port + tries, 65536))
