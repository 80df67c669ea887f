"""``make bench``: run every benchmark, print a table, write ``benchmarks/results.json``.

    python -m benchmarks.run                      # everything, full sizes (about 30 min)
    python -m benchmarks.run --quick              # tiny sizes, a minute or two
    python -m benchmarks.run --only hotpath,exposition
    python -m benchmarks.run --out /tmp/r.json    # write elsewhere

Sections: hotpath, exposition, render, sinks (when ``benchmarks/sinks_bench.py`` is
present), wholerun, load, watch, aggregate (``instrument(FedAvg())`` vs ``FedAvg()`` at
1M to 100M parameters), simulation (a 1,000-client simulation run, flmon on and off;
needs the ``simulation`` extra). Every comparison is measured side by side in the same run;
the method is in docs/performance.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, environment

SECTIONS = ("hotpath", "exposition", "render", "sinks", "wholerun", "load", "watch",
            "aggregate", "simulation")
RESULTS = Path(ROOT) / "benchmarks" / "results.json"


def _sinks(quick: bool) -> dict[str, Any]:
    try:
        module = importlib.import_module("benchmarks.sinks_bench")
    except ImportError:
        return {"available": False, "reason": "benchmarks/sinks_bench.py is not in this tree"}
    result: dict[str, Any] = module.run(1 if quick else 5)
    return {"available": True, **result}


def _runner(name: str) -> Callable[[bool], dict[str, Any]]:
    if name == "sinks":
        return _sinks
    module = importlib.import_module(
        {"render": "benchmarks.render_bench", "watch": "benchmarks.watch_bench"}.get(
            name, f"benchmarks.{name}"))
    run: Callable[..., dict[str, Any]] = module.run
    return lambda quick: run(quick=quick)


# -- table -------------------------------------------------------------------------------
def _f(value: Any, fmt: str = ".3g", unit: str = "") -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return "nan"
        return f"{value:{fmt}}{unit}"
    return str(value)


def _med(d: Any) -> Any:
    return d.get("median") if isinstance(d, dict) else d


def _rows(name: str, r: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    if "error" in r:
        return [(name, "ERROR", r["error"].strip().splitlines()[-1][:60])]
    if name == "hotpath":
        ns = r["ns_per_call"]
        rows.append(("prometheus Histogram.observe", _f(ns["prom_histogram_observe"], ".0f",
                                                         " ns"), "baseline"))
        rows.append(("OpenTelemetry SDK counter.add", _f(ns["otel_counter_add"], ".0f", " ns"),
                     f"{_f(r['otel_counter_add_vs_prom_histogram_observe'])}x observe"))
        for case in ("track_training", "track_training_with_result", "keras_batch",
                     "client_mod", "client_mod_no_rss"):
            ratio = r["ratio_to_prom_histogram_observe"][case]
            rows.append((f"{case} (added)", _f(r["added_ns"][case], ".0f", " ns"),
                         f"{_f(ratio)}x observe, {_f(r['ratio_to_otel_counter_add'][case])}x "
                         f"otel (goal <= 2x observe: {'met' if ratio <= 2 else 'MISSED'})"))
        fit = r["keras_fit"]
        rows.append(("keras model.fit with callback", _f(fit["ratio"], ".3f", "x"),
                     f"{_f(fit['per_batch_us_with_callback'], '.0f')} vs "
                     f"{_f(fit['per_batch_us_without'], '.0f')} us/batch"))
    elif name == "exposition":
        for row in r["rows"]:
            if "error" in row:
                rows.append((f"{row['clients']} clients, cap {row['cap']}", "ERROR", ""))
                continue
            rows.append((f"/metrics {row['clients']:>6} clients, cap {row['cap']:>5}",
                         _f(row["scrape_ms"], ".1f", " ms"),
                         f"{row['bytes'] / 1024:.0f} KiB, {row['series']} series, "
                         f"RSS +{row['rss_added_bytes'] / 2**20:.0f} MiB"))
        rows.append(("series bounded by default cap", str(r["series_bounded_by_cap"]),
                     f"max {r['series_with_default_cap_max']} series"))
        at = r.get("scrape_ms_at_1000_default_cap")
        if at is not None:
            rows.append(("/metrics at 1,000 clients", _f(at, ".1f", " ms"),
                         f"goal < 50 ms: {'met' if at < 50 else 'MISSED'}"))
    elif name == "render":
        if not r.get("available"):
            rows.append(("flmon render", "n/a", r.get("reason", "")))
        else:
            for target, s in r["seconds"].items():
                rows.append((f"flmon render {target}", _f(_med(s), ".2f", " s"),
                             f"n={s.get('n')}, python start-up "
                             f"{_f(_med(r['python_startup_seconds']), '.2f', ' s')}"))
    elif name == "sinks":
        if not r.get("available"):
            rows.append(("sinks", "n/a", r.get("reason", "")))
        else:
            for sink, states in r.get("ratios", {}).items():
                for state, ratio in states.items():
                    cpu = r.get("cpu_ratios", {}).get(sink, {}).get(state)
                    rows.append((f"sink {sink} {state}", _f(ratio, ".3f", "x"),
                                 f"cpu {_f(cpu, '.3f', 'x')} vs no sink"))
    elif name == "wholerun":
        b = r["telemetry_bytes"]
        rows.append(("telemetry bytes per reply", str(b["added_bytes_per_reply"]),
                     f"ConfigRecord.deflate() {b['configrecord_deflate_bytes']} B"))
        for size, s in r["inprocess"]["by_model_size"].items():
            rows.append((f"in-process loop, {size} params", _f(_med(s["ratio"]), ".3f", "x"),
                         f"+{_f(s['added_us_per_client_round'], '.0f')} us CPU per client "
                         "per round"))
        fed = r["federation"]
        ratio = _med(fed["ratio_wall"])
        rows.append(("federation wall, flmon on/off", _f(ratio, ".3f", "x"),
                     f"[{_f(fed['ratio_wall'].get('min'), '.3f')}, "
                     f"{_f(fed['ratio_wall'].get('max'), '.3f')}] over "
                     f"{fed['completed_pairs']} pairs (goal <= 1.01)"))
        rows.append(("federation CPU (all processes), on/off",
                     _f(_med(fed.get("ratio_cpu")), ".3f", "x"),
                     f"[{_f(fed.get('ratio_cpu', {}).get('min'), '.3f')}, "
                     f"{_f(fed.get('ratio_cpu', {}).get('max'), '.3f')}], "
                     f"{_f(fed.get('cpu_ms_added_per_client_round'), '+.0f')} ms CPU per "
                     "client per round"))
        rows.append(("federation strategy time, on/off",
                     _f(_med(fed["ratio_strategy"]), ".3f", "x"),
                     f"[{_f(fed['ratio_strategy'].get('min'), '.3f')}, "
                     f"{_f(fed['ratio_strategy'].get('max'), '.3f')}]"))
    elif name == "simulation":
        if not r.get("available"):
            rows.append(("simulation", "n/a", r.get("reason", "")))
        else:
            rows.append((f"simulation {r['clients']} clients, wall on/off",
                         _f(_med(r["ratio_wall"]), ".3f", "x"),
                         f"{_f(_med(r['wall_seconds_on']), '.0f')} s vs "
                         f"{_f(_med(r['wall_seconds_off']), '.0f')} s"))
            rows.append((f"simulation {r['clients']} clients, CPU on/off",
                         _f(_med(r["ratio_cpu"]), ".3f", "x"),
                         f"{_f(_med(r['cpu_seconds_on']), '.0f')} s vs "
                         f"{_f(_med(r['cpu_seconds_off']), '.0f')} s"))
    elif name == "load":
        for endpoint, e in r["locust"].items():
            if endpoint == "Aggregated":
                continue
            rows.append((f"locust {endpoint}", _f(e["requests_per_s"], ".0f", " req/s"),
                         f"p50 {_f(e['p50_ms'])} ms, p99 {_f(e['p99_ms'])} ms, "
                         f"{int(e['failures'])} failures / {int(e['requests'])}"))
        if r.get("round_ratio_with_load") is not None:
            rows.append(("round time with/without load",
                         _f(r["round_ratio_with_load"], ".3f", "x"),
                         f"{_f(_med(r['round_seconds_with_load']), '.2f')} s vs "
                         f"{_f(_med(r['round_seconds_without_load']), '.2f')} s"))
    elif name == "watch":
        for row in r["rows"]:
            rows.append((f"watch full poll {row['nodes']} nodes, {row['runs']} runs",
                         _f(_med(row["full_poll_wall_ms"]), ".1f", " ms"),
                         f"CPU {_f(_med(row['full_poll_cpu_ms']), '.1f')} ms, aggregate "
                         f"{_f(_med(row['aggregate_cpu_ms']), '.1f')} ms, "
                         f"{row['wire_bytes_per_poll'] / 2**20:.1f} MiB on the wire"))
            rows.append((f"watch steady poll {row['nodes']} nodes, {row['runs']} runs",
                         _f(_med(row["poll_wall_ms"]), ".1f", " ms"),
                         f"CPU {_f(_med(row['poll_cpu_ms']), '.1f')} ms, "
                         f"{_f(row['steady_runs_read_per_poll'], '.0f')} runs read"))
            rows.append((f"watch scrape {row['nodes']} nodes, {row['runs']} runs",
                         _f(_med(row["scrape_cpu_ms"]), ".1f", " ms"),
                         f"{row['series']} series, {row['scrape_bytes'] / 1024:.0f} KiB"))
    elif name == "aggregate":
        for row in r["rows"]:
            size = f"aggregate_train {row['parameters'] / 1e6:g}M x {row['clients']}"
            if "skipped" in row:
                rows.append((size, "skipped", row["skipped"]))
                continue
            rows.append((size, _f(row["cpu_ratio"], ".2f", "x CPU"),
                         f"memory {_f(row['memory_ratio'], '.2f')}x, wall "
                         f"{_f(row['wall_ratio'], '.2f')}x; plain "
                         f"{_f(row['plain']['cpu_seconds'], '.3f')} s, "
                         f"{row['plain']['extra_peak_bytes'] / 2**20:.0f} MiB"))
    return rows


def table(sections: dict[str, dict[str, Any]]) -> str:
    lines: list[str] = []
    for name, result in sections.items():
        lines.append(f"== {name}")
        for label, value, note in _rows(name, result):
            lines.append(f"  {label:<42} {value:>14}  {note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run flmon's benchmarks.")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke)")
    parser.add_argument("--only", default="",
                        help=f"comma-separated sections: {','.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON path")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or list(SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    results: dict[str, Any] = {"environment": environment(), "quick": args.quick,
                               "sections": {}, "section_seconds": {}}
    failed = False
    for name in chosen:
        print(f"-- {name} ...", file=sys.stderr, flush=True)
        start = time.monotonic()
        try:
            results["sections"][name] = _runner(name)(args.quick)
        except Exception:  # noqa: BLE001 - one broken section must not lose the others
            failed = True
            results["sections"][name] = {"error": traceback.format_exc()}
        results["section_seconds"][name] = round(time.monotonic() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n")
    print(table(results["sections"]))
    print(f"results: {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
