"""The reference Flower apps flmon ships: hospitals (``healthcare``) and banks (``fraud``).

Each app is a Flower app directory inside this package (``<name>/pyproject.toml`` and the
``<name>`` package with ``server_app``, ``client_app`` and ``task``), so ``flmon demo`` and
``flmon privacy-test`` run from an installed wheel in any directory. The apps depend on
flmon (:mod:`flmon.reference.apps`, :mod:`flmon.reference.tabular`,
:mod:`flmon.reference.faults`); nothing in flmon's core imports them.

This module is the one list of the apps and finds their directories; it imports nothing
heavy, so the command line can build its parsers without loading Flower or the apps.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXAMPLES: dict[str, str] = {"healthcare": "hospitals", "fraud": "banks"}
"""Reference app (``flmon/reference/<name>``) -> the name of its federation."""

EXAMPLE_NAMES: tuple[str, ...] = tuple(EXAMPLES)
"""The reference apps' names, the default first."""

APPS_DIR = Path(__file__).resolve().parent
"""The directory holding the app directories."""


def app_dir(example: str, apps_dir: Path = APPS_DIR) -> Path:
    """The Flower app directory of ``example``; ``FileNotFoundError`` if it is not there."""
    if example not in EXAMPLES:
        raise KeyError(f"unknown example {example!r}; choose from {', '.join(EXAMPLES)}")
    path = apps_dir / example
    if not (path / "pyproject.toml").is_file():
        raise FileNotFoundError(f"{path}/pyproject.toml not found")
    return path


def app_config(app: Path) -> dict[str, Any]:
    """The ``[tool.flwr.app.config]`` defaults of the app in directory ``app``."""
    with open(app / "pyproject.toml", "rb") as fh:
        doc = tomllib.load(fh)
    config: dict[str, Any] = doc["tool"]["flwr"]["app"]["config"]
    return config


def load_task(example: str, apps_dir: Path = APPS_DIR) -> ModuleType:
    """Import ``<example>.task`` from the app's directory (as its ServerApp does)."""
    app = app_dir(example, apps_dir)
    if not (app / example / "task.py").is_file():
        raise FileNotFoundError(f"{app / example / 'task.py'} not found")
    sys.path.insert(0, str(app))
    try:
        return importlib.import_module(f"{example}.task")
    finally:
        sys.path.remove(str(app))
