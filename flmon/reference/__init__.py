"""The reference apps flmon ships, by name: the one list ``flmon demo``, ``flmon
privacy-test`` and their runners choose from.

Kept free of imports so that the command line can build its parsers without loading
Flower or the apps.
"""

from __future__ import annotations

EXAMPLES: dict[str, str] = {"healthcare": "hospitals", "fraud": "banks"}
"""Example app (``examples/<name>``) -> the name of its federation."""

EXAMPLE_NAMES: tuple[str, ...] = tuple(EXAMPLES)
"""The example apps' names, the default first."""
