"""Where the project publishes itself: the same addresses as ``[project.urls]`` in
``pyproject.toml`` (a test keeps the two equal).

Alerts link to :data:`RUNBOOKS_URL` unless ``prometheus.runbook_url`` in ``flmon.yaml``
points at the runbooks a team publishes itself.
"""

from __future__ import annotations

HOMEPAGE = "https://github.com/flmon/flmon"
"""The project's home: source, issues, releases."""

DOCUMENTATION = f"{HOMEPAGE}/tree/main/docs"
"""The published documentation (``docs/`` of the main branch)."""

RUNBOOKS_URL = f"{HOMEPAGE}/blob/main/docs/runbooks.md"
"""The published ``docs/runbooks.md``: one section per alert, anchored by the lowercased
alert name (``#flnodeoffline``)."""
