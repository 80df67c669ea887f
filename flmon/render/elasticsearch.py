"""Elasticsearch index template and ILM policy for flmon's ECS JSON logs."""

from __future__ import annotations

from typing import Any

from flmon.config import FlmonConfig
from flmon.render.templating import HEADER, dump_json

POLICY_NAME = "flmon-logs"


def _kw(ignore_above: int = 1024) -> dict[str, Any]:
    return {"type": "keyword", "ignore_above": ignore_above}


def _obj(**props: dict[str, Any]) -> dict[str, Any]:
    return {"properties": props}


def mappings() -> dict[str, Any]:
    """ECS mappings of the fields flmon's log records carry (``flmon.logs``).

    Each field has its ECS type: ``labels.*`` are keywords whatever the JSON value (ECS
    stores every label as a keyword, so ``labels.round: 3`` is the keyword ``"3"``),
    ``message`` and ``error.message`` ``match_only_text``, ``error.stack_trace`` a wildcard
    with a ``.text`` multi-field, keywords ``ignore_above: 1024``.
    """
    return {
        "dynamic_templates": [
            {"labels_as_keyword": {"path_match": "labels.*", "mapping": _kw()}},
            {"strings_as_keyword": {"match_mapping_type": "string", "mapping": _kw()}},
        ],
        "properties": {
            "@timestamp": {"type": "date"},
            "message": {"type": "match_only_text"},
            "ecs": _obj(version=_kw()),
            "log": _obj(level=_kw(), logger=_kw(),
                        origin=_obj(function=_kw(), file=_obj(line={"type": "long"}))),
            "event": _obj(action=_kw(), kind=_kw(), category=_kw(), type=_kw(),
                          outcome=_kw(), dataset=_kw(), duration={"type": "long"}),
            "error": _obj(type=_kw(), message={"type": "match_only_text"},
                          stack_trace={"type": "wildcard",
                                       "fields": {"text": {"type": "match_only_text"}}}),
            "process": _obj(pid={"type": "long"}, thread=_obj(name=_kw())),
            "service": _obj(name=_kw(), version=_kw(), environment=_kw()),
            "host": _obj(name=_kw()),
            "labels": _obj(run_id=_kw(), round=_kw(), node_id=_kw(),
                           client=_kw(), phase=_kw(), federation=_kw()),
        },
    }


def index_template(cfg: FlmonConfig) -> dict[str, Any]:
    """A composable index template (``PUT _index_template/flmon-logs``).

    It makes every index matching the pattern a data stream (the sink writes
    ``flmon-logs-default`` with ``op_type: create``), which is what lets the ILM policy
    roll over without a rollover alias.
    """
    es = cfg.elasticsearch
    return {
        "_meta": {"description": HEADER, "managed_by": "flmon"},
        "index_patterns": [es.index_pattern],
        "data_stream": {},
        "priority": 200,
        "template": {
            "settings": {
                "index": {
                    "number_of_shards": es.shards,
                    "number_of_replicas": es.replicas,
                    "lifecycle": {"name": POLICY_NAME},
                },
            },
            "mappings": mappings(),
        },
    }


def ilm_policy(cfg: FlmonConfig) -> dict[str, Any]:
    """The ILM policy (``PUT _ilm/policy/flmon-logs``)."""
    es = cfg.elasticsearch
    return {
        "policy": {
            "_meta": {"description": HEADER, "managed_by": "flmon"},
            "phases": {
                "hot": {"min_age": "0ms", "actions": {"rollover": {
                    "max_age": es.rollover_max_age,
                    "max_primary_shard_size": f"{es.rollover_max_primary_shard_size_gb}gb",
                }}},
                "delete": {"min_age": es.delete_after, "actions": {"delete": {}}},
            },
        },
    }


def render_elasticsearch(cfg: FlmonConfig) -> dict[str, str]:
    """``{relative path: text}`` of the Elasticsearch outputs."""
    return {
        "elasticsearch/index-template.json": dump_json(index_template(cfg)),
        "elasticsearch/ilm-policy.json": dump_json(ilm_policy(cfg)),
    }
