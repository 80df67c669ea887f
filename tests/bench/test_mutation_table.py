"""``benchmarks.mutation`` turns mutmut's verdicts into the table of docs/testing.md."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import tomllib

from benchmarks import mutation

ROOT = Path(__file__).resolve().parents[2]


def _meta(root: Path, path: str, verdicts: dict[str, int | None]) -> None:
    meta = root / f"{path}.meta"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"exit_code_by_key": verdicts}), encoding="utf-8")


def test_verdicts_are_counted_and_only_the_run_rows_change(tmp_path: Path) -> None:
    mutants = tmp_path / "mutants"
    _meta(mutants, "flmon/telemetry.py", {
        "flmon.telemetry.x_encode__mutmut_1": 1, "flmon.telemetry.x_encode__mutmut_2": 1,
        "flmon.telemetry.x_encode__mutmut_3": 36, "flmon.telemetry.x_validate__mutmut_1": 0,
        "flmon.telemetry.x_validate__mutmut_2": None})
    rules = mutation.BY_KEY["rules"][0]
    assert rules.path == "flmon/render/rules.py" and rules.functions == ()
    _meta(mutants, rules.path, {
        "flmon.render.rules.x_percent__mutmut_1": 1,
        "flmon.render.rules.x_alert_rules__mutmut_1": 0})
    text = next(m for m in mutation.BY_KEY["rules"] if m.path == "flmon/alerts/text.py")
    _meta(mutants, text.path, {
        "flmon.alerts.text.x_percent__mutmut_1": 1,
        "flmon.alerts.text.x_humanize_percentage__mutmut_1": 0})  # outside the selection
    (telemetry_module,) = mutation.BY_KEY["telemetry"]
    telemetry = mutation.score(telemetry_module, mutants)
    assert telemetry == mutation.Score(mutants=5, killed=2, timeout=1, survived=1, not_run=1)
    assert telemetry.percent == 75.0
    assert mutation.score(rules, mutants) == mutation.Score(2, 1, 0, 1, 0)
    assert mutation.score(text, mutants) == mutation.Score(1, 1, 0, 0, 0)
    assert mutation.score(mutation.BY_KEY["labels"][0], mutants) is None

    doc = tmp_path / "testing.md"
    doc.write_text(f"intro\n{mutation.BEGIN}\nold table\n| x | y |\n{mutation.END}\nafter\n",
                   encoding="utf-8")
    mutation.write_table({telemetry_module: telemetry}, doc)
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("intro\n") and text.endswith("\nafter\n")
    assert "| `flmon/telemetry.py` | 5 | 3 | 1 | 1 | 75.0 % |" in text
    assert "| `flmon/labels.py` | measured separately | | | | |" in text
    # a later run of another module keeps the telemetry row
    mutation.write_table({rules: mutation.Score(4, 4, 0, 0, 0)}, doc)
    text = doc.read_text(encoding="utf-8")
    assert "| `flmon/telemetry.py` | 5 | 3 | 1 | 1 | 75.0 % |" in text
    assert "| 4 | 4 | 0 | 0 | 100.0 % |" in text
    assert text.count("| `flmon/") == len(mutation.MODULES)


def test_mutmut_mutates_exactly_the_files_of_the_table() -> None:
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    only = settings["tool"]["mutmut"]["only_mutate"]
    paths = [m.path for m in mutation.MODULES]
    assert [p for p in paths if not any(fnmatch.fnmatch(p, pattern) for pattern in only)] == []
    assert [pattern for pattern in only
            if not any(fnmatch.fnmatch(p, pattern) for p in paths)] == []
    assert all((ROOT / p).is_file() for p in paths)


def test_one_key_measures_several_files() -> None:
    rules = mutation.BY_KEY["rules"]
    assert [m.path for m in rules][:2] == ["flmon/render/rules.py", "flmon/alerts/text.py"]
    assert {m.key for m in mutation.BY_KEY["config"]} == {"config"}
    assert [m.path for m in mutation.BY_KEY["config"]] == list(mutation.CONFIG_FILES)
    spec = next(m for m in rules if m.path == "flmon/alerts/spec.py")
    assert "flmon.alerts.spec.x\u01c1Ctx\u01c1sel__mutmut_*" in spec.patterns()
    assert spec.selected("flmon.alerts.spec.x\u01c1Ctx\u01c1sel__mutmut_3")
    assert not spec.selected("flmon.alerts.spec.x\u01c1TestCtx\u01c1run__mutmut_3")


def test_mutants_of_code_run_at_import_count_as_not_run(tmp_path: Path) -> None:
    (config,) = [m for m in mutation.BY_KEY["config"] if m.path == "flmon/config/alerts.py"]
    dotted = config.path.removesuffix(".py").replace("/", ".")
    _meta(tmp_path, config.path, {
        f"{dotted}.x_matching__mutmut_1": 0, f"{dotted}.x__alert_field__mutmut_2": 1,
        f"{dotted}.x_load_config__mutmut_1": 1, f"{dotted}.x_load_config__mutmut_2": 0})
    assert mutation.score(config, tmp_path) == mutation.Score(4, 1, 0, 1, 2)


def test_a_file_with_nothing_to_mutate_says_so_not_zero_percent(tmp_path: Path) -> None:
    mutants = tmp_path / "mutants"
    schema = next(m for m in mutation.BY_KEY["config"] if m.path == "flmon/config/schema.py")
    _meta(mutants, schema.path, {})
    found = mutation.score(schema, mutants)
    assert found == mutation.Score(0, 0, 0, 0, 0)
    assert mutation.row(schema, found) == (
        "| `flmon/config/schema.py` | 0 | | | | nothing mutmut mutates |")
