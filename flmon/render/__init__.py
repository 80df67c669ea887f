"""``flmon render``: one ``flmon.yaml`` to every configuration file flmon ships.

:func:`render` returns every output as ``{relative path: text}``, validated, without
touching the disk; :func:`write` and :func:`check` compare it with an output directory.
Rendering is deterministic: the same configuration gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from flmon.config import FlmonConfig
from flmon.render.alertmanager import render_alertmanager
from flmon.render.datadog import render_datadog
from flmon.render.elasticsearch import render_elasticsearch
from flmon.render.grafana import render_grafana
from flmon.render.kibana import render_kibana
from flmon.render.prometheus import RULES_PATH, render_prometheus
from flmon.render.validate import RenderError, validate
from flmon.render.writer import stale_files, write_atomic
from flmon.render_targets import HELM_FILES as HELM_FILES
from flmon.render_targets import TARGET_NAMES
from flmon.render_targets import target_of as target_of

__all__ = ["TARGETS", "RenderError", "check", "render", "write"]

_RENDERERS: dict[str, Callable[[FlmonConfig], dict[str, str]]] = {
    "prometheus": render_prometheus,
    "alertmanager": render_alertmanager,
    "grafana": render_grafana,
    "kibana": render_kibana,
    "datadog": render_datadog,
    "elasticsearch": render_elasticsearch,
}

TARGETS: tuple[str, ...] = TARGET_NAMES
"""Output groups (:mod:`flmon.render_targets`), in rendering order; ``helm`` copies the
Prometheus rules, Grafana dashboards and AlertManager files into the chart's ``files/``."""
if set(_RENDERERS) | {"helm"} != set(TARGETS):  # pragma: no cover - a programming error
    raise RuntimeError("flmon.render_targets and the renderers disagree")


def _helm_copies(files: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for rel, text in files.items():
        if (rel == RULES_PATH or rel.startswith("dashboards/grafana/")
                or rel.startswith("alertmanager/")):
            out[f"{HELM_FILES}/{rel}"] = text
    return out


def render(cfg: FlmonConfig, only: Iterable[str] | None = None) -> dict[str, str]:
    """Render the selected targets (all by default) and validate them.

    Raises
    ------
    ValueError
        When ``only`` names an unknown target.
    RenderError
        When a rendered file fails validation.
    """
    selected = list(TARGETS) if only is None else list(dict.fromkeys(only))
    unknown = [t for t in selected if t not in TARGETS]
    if unknown:
        raise ValueError(f"unknown target(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(TARGETS)}")
    everything: dict[str, str] = {}
    for renderer in _RENDERERS.values():
        everything.update(renderer(cfg))
    everything.update(_helm_copies(everything))
    validate(everything)
    return {rel: text for rel, text in sorted(everything.items())
            if target_of(rel) in selected}


def write(files: dict[str, str], out: str | Path) -> list[str]:
    """Write rendered ``files`` under ``out`` atomically; return the paths changed."""
    return write_atomic(files, Path(out))


def check(files: dict[str, str], out: str | Path) -> list[tuple[str, str]]:
    """``(path, why)`` of every file under ``out`` that a fresh render would change."""
    return stale_files(files, Path(out))
