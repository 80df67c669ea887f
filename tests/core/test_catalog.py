"""The catalog: naming rules, required names, generated docs, CLI output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flmon import catalog
from flmon.catalog import MetricSpec
from flmon.cli.main import main

ROOT = Path(__file__).resolve().parents[2]

REQUIRED = {
    "fl_model_updates_total", "fl_training_accuracy", "fl_training_loss",
    "fl_rounds_completed_total", "fl_round_duration_seconds", "fl_client_failures_total",
    "fl_client_update_norm", "fl_dp_epsilon_spent", "fl_telemetry_rejected_total",
}


def test_required_names_are_in_the_catalog() -> None:
    assert set(catalog.BY_NAME) >= REQUIRED


@pytest.mark.parametrize("spec", catalog.CATALOG, ids=lambda s: s.name)
def test_every_metric_follows_prometheus_naming(spec: MetricSpec) -> None:
    assert catalog.naming_problems(spec) == []


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (MetricSpec("fl_updates", "counter", "", (), "x"), "counters end in _total"),
        (MetricSpec("fl_lag_total", "gauge", "", (), "x"), "only counters"),
        (MetricSpec("fl_latency", "gauge", "seconds", (), "x"), "_seconds"),
        (MetricSpec("fl_Bad", "gauge", "", (), "x"), "must match"),
        (MetricSpec("fl_size_bytes", "gauge", "bytes", ("le",), "x"), "reserved"),
        (MetricSpec("fl_x", "gauge", "", ("Client",), "x"), "not a valid label"),
        (MetricSpec("fl_x", "gauge", "milliseconds", (), "x"), "not a base unit"),
        (MetricSpec("fl_h_seconds", "histogram", "seconds", (), "x"), "need buckets"),
    ],
)
def test_naming_rules_catch_bad_names(spec: MetricSpec, fragment: str) -> None:
    assert any(fragment in p for p in catalog.naming_problems(spec))


def test_names_are_unique() -> None:
    names = [s.name for s in catalog.CATALOG]
    assert len(names) == len(set(names))


def test_client_labels_use_the_shared_name() -> None:
    for spec in catalog.CATALOG:
        assert "node_id" not in spec.labels and "node" not in spec.labels, spec.name


def test_docs_metrics_md_is_generated_from_the_catalog() -> None:
    committed = (ROOT / "docs" / "metrics.md").read_text()
    assert committed == catalog.as_markdown(), (
        "stale: run `make render` (`flmon metrics --format markdown > docs/metrics.md`)"
    )


def test_cli_json_lists_every_metric(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metrics", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == [s.name for s in catalog.CATALOG]
    assert all({"name", "type", "unit", "labels", "help"} <= set(r) for r in rows)


def test_cli_table_has_a_row_per_metric(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metrics"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["NAME", "TYPE"]
    assert len(lines) == len(catalog.CATALOG) + 1


def test_cli_rejects_unknown_format() -> None:
    proc = subprocess.run([sys.executable, "-m", "flmon.cli.main", "metrics", "--format", "xml"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr and proc.stdout == ""


def test_unknown_metric_lookup_names_it() -> None:
    with pytest.raises(KeyError, match="fl_nope"):
        catalog.get("fl_nope")


def test_core_import_does_not_pull_flower_or_tensorflow() -> None:
    code = ("import sys, flmon, flmon.catalog, flmon.metrics, flmon.exporter, flmon.training,"
            " flmon.logs; bad=[m for m in ('flwr','tensorflow','keras') if m in sys.modules];"
            " print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
