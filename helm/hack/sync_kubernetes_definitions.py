"""Copy the Kubernetes object schemas that values.schema.json refers to into the schema.

``resources``, ``securityContext``, ``podSecurityContext``, ``extraEnv``, ``tolerations`` and
``affinity`` values go into pod specs as they are, so the chart's values schema checks them
against the Kubernetes API's own definitions (the strict schemas shipped by the
``kubernetes-validate`` package, for the Kubernetes version below). Helm validates values
offline, so the definitions are embedded under ``definitions`` (draft-07 ``$ref``), not
referenced by URL.

Run from the repository root: ``python helm/hack/sync_kubernetes_definitions.py`` rewrites
the schema; ``--check`` exits non-zero when the embedded copy is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate

KUBE_VERSION = "1.29.0"
ROOTS = {
    "ResourceRequirements": "io.k8s.api.core.v1.ResourceRequirements",
    "SecurityContext": "io.k8s.api.core.v1.SecurityContext",
    "PodSecurityContext": "io.k8s.api.core.v1.PodSecurityContext",
    "EnvVar": "io.k8s.api.core.v1.EnvVar",
    "Toleration": "io.k8s.api.core.v1.Toleration",
    "Affinity": "io.k8s.api.core.v1.Affinity",
    "LabelSelector": "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "NetworkPolicyPeer": "io.k8s.api.networking.v1.NetworkPolicyPeer",
}
"""Short names used in values.schema.json -> Kubernetes definition names."""
SCHEMA = Path(__file__).resolve().parents[1] / "flmon" / "values.schema.json"
_REF_PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")


def _definitions_file() -> Path:
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    return base / f"v{KUBE_VERSION}-local-strict" / "_definitions.json"


def _rewrite(node: Any, needed: set[str]) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "description" or key.startswith("x-kubernetes-"):
                continue
            prefix = next((p for p in _REF_PREFIXES if isinstance(value, str)
                           and value.startswith(p)), None) if key == "$ref" else None
            if prefix is not None:
                name = value[len(prefix):]
                needed.add(name)
                out[key] = f"#/definitions/{name}"
            else:
                out[key] = _rewrite(value, needed)
        return out
    if isinstance(node, list):
        return [_rewrite(item, needed) for item in node]
    return node


def definitions() -> dict[str, Any]:
    """The root definitions and everything they refer to, with local ``$ref``s."""
    source = json.loads(_definitions_file().read_text(encoding="utf-8"))["$defs"]
    out: dict[str, Any] = {}
    pending = set(ROOTS.values())
    while pending:
        name = pending.pop()
        if name in out:
            continue
        needed: set[str] = set()
        out[name] = _rewrite(source[name], needed)
        pending |= needed - set(out)
    for short, name in ROOTS.items():
        out[short] = {"$ref": f"#/definitions/{name}"}
    return dict(sorted(out.items()))


def synced(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "definitions": definitions()}


def main(argv: list[str]) -> int:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    text = json.dumps(synced(schema), indent=2) + "\n"
    if "--check" in argv:
        if SCHEMA.read_text(encoding="utf-8") != text:
            print(f"{SCHEMA} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    SCHEMA.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
