"""Every benchmark runs once on a tiny size, so the harness cannot rot.

No timing assertions: only the shape of the results and sane values (ratios positive
and finite, series bounded by the cap). The whole-run benchmark is covered twice: its
in-process variant (Flower's strategy loop over real ClientApps, flmon on and off) and
one real federation run pair (SuperLink and one SuperNode, one round, flmon on and
off). The load benchmark runs Locust for a few seconds against the ingest endpoint and
an exporter, without a federation.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks import exposition, hotpath, load, render_bench, run, wholerun
from benchmarks.common import finite_positive, loopback_url


def _finite_ratio(value: Any) -> bool:
    return finite_positive(value)


def test_hotpath_reports_ratios_for_every_subject() -> None:
    result = hotpath.run(quick=True, repeat=2)
    subjects = {"track_training", "track_training_with_result", "keras_batch", "client_mod",
                "client_mod_no_rss"}
    assert set(result["ratio_to_prom_histogram_observe"]) == subjects
    assert set(result["ratio_to_otel_counter_add"]) == subjects
    for name, ns in result["ns_per_call"].items():
        assert finite_positive(ns), name
    # Added costs are differences of two noisy figures: finite, not necessarily > 0.
    for value in result["ratio_to_prom_histogram_observe"].values():
        assert math.isfinite(value)
    assert _finite_ratio(result["gross_ratio_to_prom_histogram_observe"]["client_mod"])
    assert _finite_ratio(result["otel_counter_add_vs_prom_histogram_observe"])
    fit = result["keras_fit"]
    assert fit["batches_per_fit"] > 0 and _finite_ratio(fit["ratio"])


def test_telemetry_bytes_counts_the_record_flower_serializes() -> None:
    result = wholerun.telemetry_bytes()
    assert {"v", "round", "duration_s", "loss", "accuracy"} <= set(result["fields"])
    assert 0 < result["configrecord_deflate_bytes"] <= result["added_bytes_per_reply"] < 1024
    assert (result["reply_recorddict_proto_bytes_with"]
            == result["reply_recorddict_proto_bytes_without"] + result["added_bytes_per_reply"])


def test_inprocess_whole_run_compares_flmon_on_and_off() -> None:
    result = wholerun.inprocess(rounds=2, nodes=3, sizes=(8,), repeat=1)
    row = result["by_model_size"]["9"]
    assert _finite_ratio(row["ratio"]["median"])
    assert row["seconds_on"]["n"] == row["seconds_off"]["n"] == 1


@pytest.mark.e2e
def test_federation_whole_run_with_and_without_flmon() -> None:
    result = wholerun.federation(rounds=1, nodes=1, repeat=1, warmup=False, settle_s=0.5)
    assert result["failures"] == [], result["failures"]
    assert result["completed_pairs"] == 1
    assert _finite_ratio(result["ratio_wall"]["median"])
    assert _finite_ratio(result["ratio_strategy"]["median"])
    assert _finite_ratio(result["ratio_cpu"]["median"])
    assert result["cpu_seconds_on"]["median"] > 0
    assert result["round_seconds_on"]["n"] == result["round_seconds_off"]["n"] == 1


def test_exposition_series_stay_bounded_by_the_cap() -> None:
    result = exposition.run(sizes=(10, 120), scrapes=2)
    rows = {(r["clients"], r["cap"]): r for r in result["rows"]}
    assert set(rows) == {(10, 50), (10, 10), (120, 50), (120, 120)}
    for row in rows.values():
        assert "error" not in row, row.get("error")
        assert finite_positive(row["scrape_ms"]) and row["bytes"] > 0
        assert row["rss_after_scrapes_bytes"] > 0
        # Own label values: at most the cap, plus "_other" once clients are folded.
        assert row["client_label_values"] <= row["cap"] + 1
    folded = rows[(120, 50)]
    assert folded["client_label_values"] == 51
    per_client = (rows[(120, 120)]["series"] - folded["series"]) / 70
    assert folded["series"] <= 50 * per_client + 600  # cap x per-client series + constant
    assert result["series_bounded_by_cap"] is True


def test_load_runs_locust_headless_and_reports_every_endpoint() -> None:
    result = load.run(quick=True, users=2, duration_s=2)
    assert set(result["locust"]) >= {"/metrics", "/healthz", "/telemetry"}
    for name in ("/metrics", "/healthz", "/telemetry"):
        endpoint = result["locust"][name]
        assert endpoint["requests"] > 0, name
        assert endpoint["failures"] == 0, name
        assert finite_positive(endpoint["requests_per_s"])
    assert result["ingested"] > 0 and result["ingest_errors"] == 0


def test_load_targets_only_loopback() -> None:
    # The locustfile checks every target with this (importing it here would let
    # gevent patch the test process).
    assert loopback_url("http://127.0.0.1:9") == "http://127.0.0.1:9"
    with pytest.raises(ValueError, match="loopback"):
        loopback_url("http://example.com:80")


def test_render_runs_the_cli_as_a_process() -> None:
    result = render_bench.run(quick=True)
    if not result["available"]:
        pytest.skip(result["reason"])
    assert result["errors"] == {}
    assert finite_positive(result["seconds"]["all"]["median"])
    assert result["files_rendered_all"] > 0


def test_run_writes_results_and_prints_a_table(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.json"
    assert run.main(["--quick", "--only", "render", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["quick"] is True
    assert {"cpu_model", "cores", "python", "flwr", "prometheus_client", "date"} \
        <= set(results["environment"])
    assert set(results["sections"]) == {"render"}
    assert "== render" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        run.main(["--only", "nonsense", "--out", str(out)])


def test_watch_bench_polls_every_run_then_only_the_newest() -> None:
    from benchmarks import watch_bench

    result = watch_bench.run(quick=True)
    (row,) = result["rows"]
    assert row["nodes"] == 20 and row["runs"] == 100
    assert finite_positive(row["full_poll_wall_ms"]["median"])
    assert finite_positive(row["poll_cpu_ms"]["median"])
    assert row["steady_runs_read_per_poll"] == 100  # one first page, not every run twice
    assert row["series"] > 0 and row["wire_bytes_per_poll"] > 0
