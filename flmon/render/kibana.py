"""Kibana saved objects (NDJSON for ``POST /api/saved_objects/_import``).

A data view over the ECS log index pattern, saved searches (errors, rounds, client
failures, security events), a visualization of log events over time and a dashboard
holding them. Ids are stable; every reference names an object of the same file.
NDJSON cannot hold comments: the generated-file note is in each object's description.
"""

from __future__ import annotations

import json
from typing import Any

from flmon.config import FlmonConfig
from flmon.render.templating import HEADER, dump_json_line

KIBANA_VERSION = "7.17.0"
"""The saved-object format written: Kibana 7.17 and every 8.x import it and migrate it
forward (a version newer than the importing Kibana would be refused)."""
_INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def _ids(cfg: FlmonConfig) -> dict[str, str]:
    fed = cfg.federation.name
    return {
        "data_view": f"flmon-{fed}-logs",
        "errors": f"flmon-{fed}-errors",
        "rounds": f"flmon-{fed}-rounds",
        "failures": f"flmon-{fed}-client-failures",
        "security": f"flmon-{fed}-security-events",
        "events": f"flmon-{fed}-events-over-time",
        "dashboard": f"flmon-{fed}-dashboard",
    }


def _search_source(query: str) -> str:
    return json.dumps({"query": {"query": query, "language": "kuery"}, "filter": [],
                       "indexRefName": _INDEX_REF}, sort_keys=True)


SEARCHES: tuple[tuple[str, str, str, list[str]], ...] = (
    ("errors", "Errors",
     'log.level : ("error" or "critical") or error.type : *',
     ["log.level", "message", "labels.round", "labels.node_id", "error.type"]),
    ("rounds", "Rounds",
     'event.action : round* or (labels.round : * and log.logger : flmon*)',
     ["labels.run_id", "labels.round", "event.action", "message"]),
    ("failures", "Client failures",
     'event.action : (*fail* or *quarantin*) or (log.level : ("warning" or "error") '
     'and labels.client : *)',
     ["labels.client", "labels.phase", "event.action", "message"]),
    ("security", "Security events",
     'event.kind : "alert"',
     ["event.action", "event.category", "labels.client", "labels.round", "message"]),
)


def _grid(i: int) -> dict[str, Any]:
    # The first panel spans the width; the others go two per row beneath it.
    if i == 0:
        return {"x": 0, "y": 0, "w": 48, "h": 15, "i": "1"}
    return {"x": ((i - 1) % 2) * 24, "y": 15 + ((i - 1) // 2) * 15, "w": 24, "h": 15,
            "i": str(i + 1)}


def saved_objects(cfg: FlmonConfig) -> list[dict[str, Any]]:
    """The saved objects, in import order (data view first)."""
    fed = cfg.federation.name
    ids = _ids(cfg)
    index_ref = [{"name": _INDEX_REF, "type": "index-pattern", "id": ids["data_view"]}]
    objects: list[dict[str, Any]] = [{
        "id": ids["data_view"],
        "type": "index-pattern",
        "attributes": {
            "title": cfg.elasticsearch.index_pattern,
            "name": f"flmon logs ({fed})",
            "timeFieldName": "@timestamp",
        },
        "references": [],
        "migrationVersion": {"index-pattern": KIBANA_VERSION},
    }]
    for key, title, query, columns in SEARCHES:
        objects.append({
            "id": ids[key],
            "type": "search",
            "attributes": {
                "title": f"flmon / {fed} / {title}",
                "description": f"{HEADER}. {title} in the logs of federation {fed}.",
                "columns": columns,
                "sort": [["@timestamp", "desc"]],
                "kibanaSavedObjectMeta": {
                    "searchSourceJSON": _search_source(
                        f'({query}) and (labels.federation : "{fed}" or not '
                        "labels.federation : *)"),
                },
            },
            "references": index_ref,
            "migrationVersion": {"search": KIBANA_VERSION},
        })
    vis_state = {
        "title": f"flmon / {fed} / Log events over time",
        "type": "histogram",
        "params": {"addLegend": True, "addTooltip": True, "legendPosition": "right"},
        "aggs": [
            {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}},
            {"id": "2", "enabled": True, "type": "date_histogram", "schema": "segment",
             "params": {"field": "@timestamp", "interval": "auto", "min_doc_count": 1}},
            {"id": "3", "enabled": True, "type": "terms", "schema": "group",
             "params": {"field": "log.level", "size": 6, "order": "desc",
                        "orderBy": "1"}},
        ],
    }
    objects.append({
        "id": ids["events"],
        "type": "visualization",
        "attributes": {
            "title": vis_state["title"],
            "description": f"{HEADER}. Log events by level.",
            "visState": json.dumps(vis_state, sort_keys=True),
            "uiStateJSON": "{}",
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source("")},
        },
        "references": index_ref,
        "migrationVersion": {"visualization": KIBANA_VERSION},
    })
    panel_keys = ["events", "errors", "rounds", "failures", "security"]
    panels = []
    references = []
    for i, key in enumerate(panel_keys):
        ref = f"panel_{i}"
        panels.append({
            "version": KIBANA_VERSION,
            "type": "visualization" if key == "events" else "search",
            "gridData": _grid(i),
            "panelIndex": str(i + 1),
            "embeddableConfig": {},
            "panelRefName": ref,
        })
        references.append({"name": ref, "type": panels[-1]["type"], "id": ids[key]})
    objects.append({
        "id": ids["dashboard"],
        "type": "dashboard",
        "attributes": {
            "title": f"flmon / {fed} / Logs: rounds, failures, security events",
            "description": f"{HEADER}. Rounds, client failures and security events of "
                           f"federation {fed}.",
            "panelsJSON": json.dumps(panels, sort_keys=True),
            "optionsJSON": json.dumps({"useMargins": True, "syncColors": False,
                                       "hidePanelTitles": False}, sort_keys=True),
            "timeRestore": False,
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(
                {"query": {"query": "", "language": "kuery"}, "filter": []}, sort_keys=True)},
        },
        "references": references,
        "migrationVersion": {"dashboard": KIBANA_VERSION},
    })
    return objects


def render_kibana(cfg: FlmonConfig) -> dict[str, str]:
    """``{relative path: text}`` of the Kibana outputs."""
    lines = [dump_json_line(obj) for obj in saved_objects(cfg)]
    return {"dashboards/kibana/flmon.ndjson": "\n".join(lines) + "\n"}
