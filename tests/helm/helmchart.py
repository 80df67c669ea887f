"""Helpers for the Helm chart tests: render with the real Helm SDK, parse, look up.

The chart under test is ``helm/flmon`` as it is in the repository, with the files that
``flmon render`` wrote into ``helm/flmon/files/``; a missing file makes the chart (and so
these tests) fail, never skip.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "flmon"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
KUBE_VERSION = "1.29.0"
RELEASE = "flmon"
NAMESPACE = "fl"

# The cases every chart-wide test runs over: the defaults and each ci/*-values.yaml.
CASES: list[tuple[str, dict[str, Any]]] = [("defaults", {})] + [
    (path.name, yaml.safe_load(path.read_text()) or {}) for path in CI_VALUES
]
CASE_IDS = [name for name, _ in CASES]


@functools.lru_cache(maxsize=1)
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART)


def _freeze(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True)


@functools.lru_cache(maxsize=64)
def _render_cached(frozen: str, name: str, namespace: str, revision: int) -> dict[str, str]:
    return chart().render(
        json.loads(frozen), name=name, namespace=namespace, revision=revision, is_install=True
    )


def render(
    values: dict[str, Any] | None = None,
    *,
    name: str = RELEASE,
    namespace: str = NAMESPACE,
    revision: int = 1,
) -> dict[str, str]:
    """Render the chart: template path -> rendered text (NOTES.txt included)."""
    return dict(_render_cached(_freeze(values or {}), name, namespace, revision))


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object of a render, in template order (NOTES.txt left out)."""
    objects: list[dict[str, Any]] = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc is None:
                continue
            assert isinstance(doc, dict), f"{template}: a document is not a mapping"
            objects.append(doc)
    return objects


def notes(rendered: dict[str, str]) -> str:
    [text] = [t for path, t in rendered.items() if path.endswith("NOTES.txt")]
    return text


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    """A Secret's data, base64-decoded (stringData merged in)."""
    decoded = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    decoded.update(secret.get("stringData") or {})
    return decoded


def containers(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Containers (init containers too) of a workload object."""
    spec = obj["spec"]["template"]["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def files_dir() -> Path:
    return CHART / "files"
