"""No secret material outside Secrets: not in ConfigMaps, annotations, env values or NOTES."""

from __future__ import annotations

import base64
import re
from typing import Any

import yaml
from helmchart import by_kind, manifests, notes, one, render, secret_data

FAKE_WEBHOOK = "http://127.0.0.1:9/services/T0FAKE/B0FAKE/fakeWebhookSecret42"
FAKE_API_KEY = "fakeid42:ZmFrZS1hcGkta2V5LXNlY3JldA-42"
WITH_SECRETS: dict[str, Any] = {
    "slack": {"enabled": True, "create": True, "webhookUrl": FAKE_WEBHOOK},
    "filebeat": {"enabled": True, "create": True, "apiKey": FAKE_API_KEY},
    "datadog": {"enabled": True, "dogstatsd": True},
}
# What a webhook URL or a credential looks like when it is written out in clear.
SECRET_SHAPES = [
    re.compile(r"https://hooks\.slack\.com/services/\S+"),
    re.compile(r"xox[abpr]-[0-9A-Za-z-]+"),
    re.compile(r"^[ \t]*api_url:[ \t]*\S+", re.MULTILINE),
    re.compile(r"^[ \t]*slack_api_url:[ \t]*\S+", re.MULTILINE),
    re.compile(r"^[ \t]*api_key:[ \t]*(?!\$\{)\S+", re.MULTILINE),
    re.compile(r"^[ \t]*password:[ \t]*(?!\$\{)\S+", re.MULTILINE),
]


def _encodings(secret: str) -> list[str]:
    return [secret, base64.b64encode(secret.encode()).decode()]


def test_created_secrets_hold_the_values_and_nothing_else_does() -> None:
    rendered = render(WITH_SECRETS)
    objects = manifests(rendered)
    slack = one(objects, "Secret", "flmon-slack")
    assert secret_data(slack) == {"webhook-url": FAKE_WEBHOOK}
    elastic = one(objects, "Secret", "flmon-elasticsearch")
    assert secret_data(elastic) == {"api-key": FAKE_API_KEY}
    for obj in objects:
        if obj in (slack, elastic):
            continue
        text = yaml.safe_dump(obj)
        # AlertManager's config is a Secret too: decode it before looking.
        if obj["kind"] == "Secret":
            text += "\n".join(secret_data(obj).values())
        for secret in (FAKE_WEBHOOK, FAKE_API_KEY):
            for form in _encodings(secret):
                assert form not in text, f"{obj['kind']} {obj['metadata']['name']} leaks it"
    for secret in (FAKE_WEBHOOK, FAKE_API_KEY):
        for form in _encodings(secret):
            assert form not in notes(rendered)
    # The raw text of every template but the two Secrets' is clean as well.
    for template, text in rendered.items():
        if template.endswith(("slack-secret.yaml", "elasticsearch-secret.yaml")):
            continue
        assert FAKE_WEBHOOK not in text and FAKE_API_KEY not in text, template


def test_secrets_are_referenced_not_copied() -> None:
    objects = manifests(render(WITH_SECRETS))
    am = secret_data(one(objects, "Secret", "flmon-alertmanager"))
    config = yaml.safe_load(am["alertmanager.yaml"])
    files = {s["api_url_file"] for r in config["receivers"] for s in r.get("slack_configs", [])}
    assert files == {"/etc/alertmanager/secrets/flmon-slack/webhook-url"}
    filebeat = one(objects, "ConfigMap", "flmon-filebeat")
    assert "api_key: ${ELASTICSEARCH_API_KEY}" in filebeat["data"]["filebeat.yml"]


def test_notes_name_the_secret_but_never_its_value() -> None:
    text = notes(render(WITH_SECRETS))
    assert "flmon-slack" in text
    assert FAKE_WEBHOOK not in text and "127.0.0.1:9/services" not in text


def test_existing_secret_creates_no_secret() -> None:
    objects = manifests(render({"slack": {"existingSecret": "team-slack",
                                          "existingSecretKey": "url"},
                                "pushgateway": {"auth": {"existingSecret": "team-pg"}}}))
    assert [s["metadata"]["name"] for s in by_kind(objects, "Secret")] == ["flmon-alertmanager"]
    config = yaml.safe_load(secret_data(by_kind(objects, "Secret")[0])["alertmanager.yaml"])
    files = {s["api_url_file"] for r in config["receivers"] for s in r.get("slack_configs", [])}
    assert files == {"/etc/alertmanager/secrets/team-slack/url"}


def test_no_manifest_of_any_case_carries_secret_material(case: tuple[str, dict[str, Any]]) -> None:
    _, values = case
    for obj in manifests(render(values)):
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind == "Secret":
            texts = list(secret_data(obj).values())
            if name != "flmon-alertmanager":
                continue  # a Secret created from values: that is where it belongs
        else:
            texts = [yaml.safe_dump(obj)]
            if kind == "ConfigMap":
                texts += list((obj.get("data") or {}).values())
        for text in texts:
            for shape in SECRET_SHAPES:
                assert not shape.search(text), f"{kind} {name}: {shape.pattern}"
        if kind in {"Deployment", "StatefulSet", "Job"}:
            for container in obj["spec"]["template"]["spec"]["containers"]:
                for env in container.get("env", []):
                    # A *_FILE variable holding a mounted path names where a secret is read.
                    is_path = env["name"].endswith("_FILE") and env.get("value", "").startswith(
                        "/etc/")
                    assert not re.search(r"(?i)(token|password|api_?key|webhook)", env["name"]) \
                        or "valueFrom" in env or is_path, \
                        f"{name}: env {env['name']} has a literal value"


def test_the_scan_finds_a_planted_secret() -> None:
    # The shapes are live: a ConfigMap carrying a webhook URL in clear is caught.
    planted = "api_url: https://hooks.slack.com/services/T000/B000/XXXX"
    assert any(shape.search(planted) for shape in SECRET_SHAPES)
    assert not any(shape.search("api_key: ${ELASTICSEARCH_API_KEY}") for shape in SECRET_SHAPES)
