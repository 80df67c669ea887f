"""The old import paths keep working, warn ``DeprecationWarning`` and give the new objects."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CASES = [
    ("flmon.harness", "Prometheus", "flmon.stack", "Prometheus"),
    ("flmon.harness.flower", "FlowerFederation", "flmon.stack.flower", "FlowerFederation"),
    ("flmon.harness.ports", "free_port", "flmon.stack.ports", "free_port"),
    ("flmon.registry_hub", "server_metrics", "flmon.registry", "server_metrics"),
    ("flmon.security.localdp", "LocalDpEpsilon", "flmon.flower.localdp", "LocalDpEpsilon"),
]

PROBE = """
import importlib, json, sys, warnings
old, name, new, new_name = sys.argv[1:]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    module = importlib.import_module(old)
same = getattr(module, name) is getattr(importlib.import_module(new), new_name)
print(json.dumps({"same": same, "module_is_new": module is sys.modules.get(new),
                  "warnings": [str(w.message) for w in caught
                               if issubclass(w.category, DeprecationWarning)]}))
"""


@pytest.mark.parametrize(("old", "name", "new", "new_name"), CASES)
def test_the_old_path_warns_and_gives_the_same_object(old: str, name: str, new: str,
                                                      new_name: str) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, old, name, new, new_name],
                          capture_output=True, text=True, timeout=120, check=True)
    got = json.loads(done.stdout)
    assert got["same"]
    assert any(old in w and new in w for w in got["warnings"]), got["warnings"]
    if old.startswith("flmon.harness."):
        assert got["module_is_new"]  # one module object: classes and isinstance stay the same
