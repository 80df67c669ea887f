"""values.schema.json: bad values fail before anything renders, with a message naming the key."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from helmchart import CHART, chart, render

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def _error(values: dict[str, Any]) -> str:
    with pytest.raises(helm_python.HelmValuesError) as excinfo:
        render(values)
    return str(excinfo.value)


def test_schema_is_draft_07_and_strict() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert SCHEMA["additionalProperties"] is False
    assert chart().schema == SCHEMA


def test_default_values_and_ci_values_validate() -> None:
    chart().validate_schema(chart().values)
    for path in sorted((CHART / "ci").glob("*-values.yaml")):
        chart().validate_schema(chart().merge_values(yaml.safe_load(path.read_text()) or {}))


def _documented_keys(node: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, sub in node.get("properties", {}).items():
        keys.add(prefix + key)
        if sub.get("type") == "object" and sub.get("additionalProperties") is False:
            keys |= _documented_keys(sub, f"{prefix}{key}.")
    return keys


def _values_lines() -> dict[str, int]:
    """Dotted key path -> line index of every key in values.yaml (block style only)."""
    stack: list[tuple[int, str]] = []
    found: dict[str, int] = {}
    for number, line in enumerate((CHART / "values.yaml").read_text().splitlines()):
        match = re.match(r"^(\s*)([A-Za-z][A-Za-z0-9]*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        found[".".join(key for _, key in stack)] = number
    return found


def test_every_schema_key_is_in_values_yaml_with_a_comment() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    where = _values_lines()
    keys = _documented_keys(SCHEMA)
    assert len(keys) > 50
    for key in sorted(keys):
        assert key in where, f"{key} is in the schema but not in values.yaml"
        above = lines[where[key] - 1].strip()
        assert above.startswith("#"), f"values.yaml: {key} has no comment above it"
    # And the other way round: values.yaml has no key the schema does not know.
    chart().validate_schema(chart().values)


def test_negative_replicas_fail() -> None:
    message = _error({"federation": {"supernodes": -1}})
    assert "/federation/supernodes" in message
    assert "minimum: got -1, want 1" in message


def test_zero_and_non_integer_replicas_fail() -> None:
    assert "/federation/supernodes" in _error({"federation": {"supernodes": 0}})
    message = _error({"federation": {"supernodes": "three"}})
    assert "/federation/supernodes" in message and "string" in message


@pytest.mark.parametrize(
    ("values", "where", "key"),
    [
        ({"replicas": 3}, "at ''", "replicas"),
        ({"federation": {"superlink": {"prot": 9093}}}, "at '/federation/superlink'", "prot"),
        ({"slack": {"webhook": "x"}}, "at '/slack'", "webhook"),
    ],
)
def test_unknown_keys_fail(values: dict[str, Any], where: str, key: str) -> None:
    message = _error(values)
    assert where in message
    assert f"additional properties '{key}' not allowed" in message


def test_missing_slack_secret_name_fails() -> None:
    message = _error({"slack": {"enabled": True, "existingSecret": ""}})
    assert "/slack/existingSecret" in message
    assert "minLength" in message


def test_created_slack_secret_needs_a_url() -> None:
    message = _error({"slack": {"enabled": True, "create": True}})
    assert "/slack/webhookUrl" in message


def test_slack_off_needs_no_secret() -> None:
    rendered = render({"slack": {"enabled": False, "existingSecret": ""}})
    assert "flmon-slack" not in "\n".join(rendered.values())


def test_filebeat_needs_an_api_key_secret() -> None:
    message = _error({"filebeat": {"enabled": True}})
    assert "/filebeat/existingSecret" in message


def test_bad_ports_and_durations_fail() -> None:
    assert "/exporter/port" in _error({"exporter": {"port": 70000}})
    assert "/serviceMonitor/interval" in _error({"serviceMonitor": {"interval": "often"}})


def test_node_config_cannot_override_the_partition() -> None:
    message = _error({"federation": {"supernode": {"extraNodeConfig": {"partition-id": 1}}}})
    assert "/federation/supernode/extraNodeConfig" in message


def test_template_guard_names_the_missing_secret_without_schema(tmp_path: Path) -> None:
    # Without the schema (a chart copy that lacks it), the templates still refuse.
    copy = tmp_path / "flmon"
    shutil.copytree(CHART, copy)
    (copy / "values.schema.json").unlink()
    with helm_python.Chart.load(copy) as unchecked:
        with pytest.raises(helm_python.HelmRenderError) as excinfo:
            unchecked.render({"slack": {"existingSecret": ""}}, name="flmon", namespace="fl")
        assert "set slack.existingSecret" in str(excinfo.value)
        with pytest.raises(helm_python.HelmRenderError) as excinfo:
            unchecked.render({"slack": {"create": True}}, name="flmon", namespace="fl")
        assert "slack.webhookUrl is empty" in str(excinfo.value)


def test_readme_documents_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    keys = _documented_keys(SCHEMA)
    leaves = [k for k in sorted(keys) if not any(o.startswith(f"{k}.") for o in keys)]
    assert len(leaves) > 50
    missing = [key for key in leaves if f"| `{key}` |" not in readme]
    assert not missing, f"README.md's values table lacks {missing}"


def test_embedded_kubernetes_definitions_are_current() -> None:
    # values.schema.json carries copies of the Kubernetes definitions its $refs name;
    # helm/hack/sync_kubernetes_definitions.py writes them, and the copy must match.
    import importlib.util

    path = CHART.parent / "hack" / "sync_kubernetes_definitions.py"
    spec = importlib.util.spec_from_file_location("sync_kubernetes_definitions", path)
    assert spec is not None and spec.loader is not None
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    assert sync.synced(SCHEMA) == SCHEMA, f"run python {path.relative_to(CHART.parents[1])}"
    for short in ("ResourceRequirements", "SecurityContext", "PodSecurityContext", "EnvVar"):
        assert short in SCHEMA["definitions"]
