"""The chart's monitoring.coreos.com objects, checked against the Prometheus Operator's models.

``cloudcoil-models-prometheus-operator`` is generated from the operator's own CRDs. Its
models ignore fields they do not know, so each object is validated and dumped back: any field
the operator does not define (a typo, a field of another version) is lost on the way and the
round trip differs.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from cloudcoil.models.prometheus_operator import v1, v1alpha1
from helmchart import CASE_IDS, CASES, by_kind, manifests, render
from pydantic import BaseModel

MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): v1.ServiceMonitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): v1.PrometheusRule,
    ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"): v1alpha1.AlertmanagerConfig,
}


def round_trip(obj: dict[str, Any]) -> dict[str, Any]:
    model = MODELS[(obj["apiVersion"], obj["kind"])]
    dumped: dict[str, Any] = model.model_validate(obj).model_dump(
        by_alias=True, exclude_unset=True, mode="json")
    return dumped


@pytest.fixture(params=CASES, ids=CASE_IDS)
def case(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param  # type: ignore[no-any-return]


def test_every_operator_object_is_one_the_operator_defines(
    case: tuple[str, dict[str, Any]],
) -> None:
    _, values = case
    objects = [o for o in manifests(render(values)) if o["apiVersion"].startswith("monitoring.")]
    for obj in objects:
        assert (obj["apiVersion"], obj["kind"]) in MODELS, obj["kind"]
        assert round_trip(obj) == obj, f"{obj['kind']} {obj['metadata']['name']}"


def test_defaults_render_the_operator_objects() -> None:
    objects = manifests(render())
    assert len(by_kind(objects, "ServiceMonitor")) >= 2
    assert len(by_kind(objects, "PrometheusRule")) == 1


def test_the_round_trip_catches_an_unknown_field() -> None:
    [monitor, *_] = by_kind(manifests(render()), "ServiceMonitor")
    broken = copy.deepcopy(monitor)
    broken["spec"]["endpoints"][0]["intervall"] = "15s"
    assert round_trip(broken) != broken
    assert round_trip(monitor) == monitor
