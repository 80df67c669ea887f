"""The Elasticsearch index template is ECS, and Kibana shows only fields flmon writes.

``ECS`` below is the Elastic Common Schema's own definition (ECS 8.11 field reference,
``ecs_flat.yml``: type, ``ignore_above``, multi-fields) of each field flmon's template
maps; ``labels`` is ECS's object of keywords. The template is checked field by field
against it, and the fields a real flmon log record carries against the template.
"""

from __future__ import annotations

import ast
import io
import json
import logging
import re
from functools import cache
from typing import Any

import pytest

from flmon import logs
from flmon.config import parse_config
from flmon.render.elasticsearch import index_template
from flmon.render.kibana import saved_objects

from .conftest import REPO, example_data

KEYWORD = {"type": "keyword", "ignore_above": 1024}
LONG = {"type": "long"}
TEXT = {"type": "match_only_text"}
ECS: dict[str, dict[str, Any]] = {
    "@timestamp": {"type": "date"},
    "message": TEXT,
    "ecs.version": KEYWORD,
    "log.level": KEYWORD,
    "log.logger": KEYWORD,
    "log.origin.function": KEYWORD,
    "log.origin.file.name": KEYWORD,
    "log.origin.file.line": LONG,
    "event.action": KEYWORD,
    "event.kind": KEYWORD,
    "event.category": KEYWORD,
    "event.type": KEYWORD,
    "event.outcome": KEYWORD,
    "event.dataset": KEYWORD,
    "event.duration": LONG,
    "error.type": KEYWORD,
    "error.message": TEXT,
    "error.stack_trace": {"type": "wildcard", "fields": {"text": TEXT}},
    "process.pid": LONG,
    "process.thread.name": KEYWORD,
    "service.name": KEYWORD,
    "service.version": KEYWORD,
    "service.environment": KEYWORD,
    "host.name": KEYWORD,
}
"""ECS's definition of every field the template may map (outside ``labels``)."""


def _leaves(props: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, spec in props.items():
        if "properties" in spec:
            assert set(spec) == {"properties"}, f"{prefix}{name}: an object with a type"
            out.update(_leaves(spec["properties"], f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = spec
    return out


def _mappings() -> dict[str, Any]:
    template = json.loads((REPO / "elasticsearch/index-template.json").read_text("utf-8"))
    assert template == index_template(parse_config(example_data()))
    mappings: dict[str, Any] = template["template"]["mappings"]
    return mappings


def test_every_mapped_field_has_its_ecs_definition() -> None:
    leaves = _leaves(_mappings()["properties"])
    assert len(leaves) >= 20
    for field, spec in leaves.items():
        if field.startswith("labels."):
            assert spec == KEYWORD, f"{field}: ECS stores labels as keywords, not {spec}"
        else:
            assert field in ECS, f"{field} is not an ECS field"
            assert spec == ECS[field], f"{field}: {spec}, ECS has {ECS[field]}"
    assert leaves["labels.round"] == KEYWORD


def test_any_other_label_is_a_keyword_whatever_its_json_type() -> None:
    templates = [next(iter(t.items())) for t in _mappings()["dynamic_templates"]]
    names = [name for name, _ in templates]
    labels = dict(templates)["labels_as_keyword"]
    # First, so a number under labels.* is a keyword rather than long; no
    # match_mapping_type, so it applies to numbers and booleans as well as strings.
    assert names[0] == "labels_as_keyword"
    assert labels == {"path_match": "labels.*", "mapping": KEYWORD}


@cache
def _extra_keys_in_flmon() -> frozenset[str]:
    """ECS field names flmon's code passes to a log call (``extra={...}`` or ``**{...}``)."""
    found: set[str] = set()
    for path in (REPO / "flmon").rglob("*.py"):
        if path.name == "logs.py" or "render" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg in ("extra", None) and isinstance(kw.value, ast.Dict):
                    found |= {k.value for k in kw.value.keys
                              if isinstance(k, ast.Constant) and isinstance(k.value, str)
                              and k.value in logs._ECS_EXTRA_FIELDS}
    return frozenset(found)


def _fields_flmon_writes() -> set[str]:
    """Every field of the ECS records flmon's own logging produces: the context labels, a
    security event, an exception, and each ECS extra field flmon's code passes."""
    stream = io.StringIO()
    logger = logging.getLogger("flmon.test-ecs-fields")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.EcsFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with logs.log_context(run_id="7", round=3, node_id="42", client="c1", phase="train",
                              federation="default"):
            logs.security_event(logger, "anomalous-update", "flagged", client="c1")
            for key in sorted(_extra_keys_in_flmon()):
                logger.info("with %s", key, extra={key: "x"})
            try:
                raise ValueError("boom")
            except ValueError:
                logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    fields: set[str] = set()
    for line in stream.getvalue().splitlines():
        doc = json.loads(line)
        for key, value in doc.items():
            fields |= {f"labels.{k}" for k in value} if key == "labels" else {key}
    return fields


def test_every_field_flmon_writes_is_mapped_as_ecs_defines_it() -> None:
    written = _fields_flmon_writes()
    assert {"labels.round", "event.action", "event.kind", "error.stack_trace",
            "log.origin.file.line"} <= written
    leaves = _leaves(_mappings()["properties"])
    for field in sorted(written):
        assert field in leaves, f"{field} is written but not mapped"


def _searches() -> list[dict[str, Any]]:
    lines = (REPO / "dashboards/kibana/flmon.ndjson").read_text("utf-8").splitlines()
    objects = [json.loads(line) for line in lines]
    assert objects == saved_objects(parse_config(example_data()))
    return [o for o in objects if o["type"] == "search"]


def test_every_saved_search_column_is_a_field_flmon_writes() -> None:
    written = _fields_flmon_writes()
    searches = _searches()
    assert len(searches) == 4
    for search in searches:
        for column in search["attributes"]["columns"]:
            assert column in written, f"{search['attributes']['title']}: column {column}"


@pytest.mark.parametrize("search", _searches(), ids=lambda s: s["id"])
def test_every_field_a_saved_search_queries_is_mapped(search: dict[str, Any]) -> None:
    source = json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    fields = re.findall(r"([a-z_@][a-z_.]*)\s*:", source["query"]["query"])
    leaves = _leaves(_mappings()["properties"])
    assert fields
    for field in fields:
        assert field in leaves, f"{search['id']}: the query names {field}, which is not mapped"


def test_the_column_check_catches_a_field_nothing_writes() -> None:
    # event.duration is ECS and mapped, and flmon's formatter would copy it, but no flmon
    # code writes it: a column of it would stay empty.
    assert "event.duration" in logs._ECS_EXTRA_FIELDS
    assert "event.duration" not in _fields_flmon_writes()
