"""Bad values fail before anything renders, each with one message naming the key."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest
from helmchart import manifests, render

INJECTED = "\nkind: ClusterRoleBinding\n"


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"federation": {"superlink": {"resources": {"limit": {"memory": "1Gi"}}}}},
         "/federation/superlink/resources"),
        ({"pushgateway": {"resources": {"requests": {"memory": ["1Gi"]}}}},
         "/pushgateway/resources/requests/memory"),
        ({"federation": {"securityContext": {"runAsRoot": True}}},
         "/federation/securityContext"),
        ({"federation": {"podSecurityContext": {"runAsUser": "root"}}},
         "/federation/podSecurityContext/runAsUser"),
        ({"federation": {"supernode": {"extraEnv": [{"nme": "A", "value": "b"}]}}},
         "/federation/supernode/extraEnv/0"),
        ({"federation": {"superlink": {"tolerations": [{"efect": "NoSchedule"}]}}},
         "/federation/superlink/tolerations/0"),
        ({"exporter": {"path": "/metrics" + INJECTED}}, "/exporter/path"),
        ({"slack": {"existingSecret": "flmon-slack" + INJECTED}}, "/slack/existingSecret"),
        ({"filebeat": {"enabled": True, "existingSecret": "es" + INJECTED}},
         "/filebeat/existingSecret"),
        ({"datadog": {"enabled": True, "tags": ["team:fl" + INJECTED]}}, "/datadog/tags/0"),
        ({"datadog": {"exporterCaFile": "/etc/ca.crt" + INJECTED}}, "/datadog/exporterCaFile"),
        ({"networkPolicy": {"datadogAgent": {"podSelector": {"matchLabel": {"a": "b"}}}}},
         "/networkPolicy/datadogAgent/podSelector"),
        ({"pushgateway": {"image": {"repository": "quay.io/pg" + INJECTED}}},
         "/pushgateway/image/repository"),
        ({"federation": {"image": {"server": {"tag": "1.0 latest"}}}},
         "/federation/image/server/tag"),
        ({"serviceMonitor": {"exporter": {"job": 'flmon"exporter'}}},
         "/serviceMonitor/exporter/job"),
        ({"dashboards": {"labelValue": "a b"}}, "/dashboards/labelValue"),
        ({"federation": {"superlink": {"extraArgs": ["--x" + INJECTED]}}},
         "/federation/superlink/extraArgs/0"),
    ],
)
def test_bad_value_fails_naming_its_key(values: dict[str, Any], key: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as excinfo:
        render(values)
    message = str(excinfo.value)
    assert f"'{key}'" in message or f"at '{key}" in message, message


def test_good_values_of_the_same_keys_render() -> None:
    # The patterns refuse the injections above, not ordinary values.
    objects = manifests(render({
        "exporter": {"path": "/federation/metrics"},
        "federation": {
            "image": {"server": {"repository": "registry.example:5000/fl/server",
                                 "tag": "v1.2.3_rc-1"}},
            "superlink": {"resources": {"limits": {"memory": "2Gi", "cpu": 2}},
                          "extraEnv": [{"name": "A", "valueFrom": {"secretKeyRef": {
                              "name": "s", "key": "k"}}}],
                          "extraArgs": ["--fleet-api-num-workers=4"]},
        },
        "datadog": {"enabled": True, "tags": ["team:fl-ops", "env:prod"]},
    }))
    assert objects


def test_scrape_timeout_longer_than_the_interval_fails_clearly() -> None:
    with pytest.raises(helm_python.HelmRenderError) as excinfo:
        render({"serviceMonitor": {"interval": "30s", "scrapeTimeout": "1m"}})
    message = str(excinfo.value)
    assert "serviceMonitor.scrapeTimeout (1m) is longer than serviceMonitor.interval (30s)" \
        in message


@pytest.mark.parametrize(("interval", "timeout"), [("30s", "30s"), ("1m", "59s"), ("2m", "500ms")])
def test_scrape_timeout_up_to_the_interval_renders(interval: str, timeout: str) -> None:
    render({"serviceMonitor": {"interval": interval, "scrapeTimeout": timeout}})
