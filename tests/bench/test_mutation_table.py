"""``benchmarks.mutation`` turns mutmut's verdicts into the table of docs/testing.md."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import mutation


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
    rules = mutation.BY_KEY["rules"]
    _meta(mutants, rules.path, {
        "flmon.render.rules.x_percent__mutmut_1": 1,
        "flmon.render.rules.x_alert_rules__mutmut_1": 0})  # outside the selection
    telemetry = mutation.score(mutation.BY_KEY["telemetry"], mutants)
    assert telemetry == mutation.Score(mutants=5, killed=2, timeout=1, survived=1, not_run=1)
    assert telemetry.percent == 75.0
    assert mutation.score(rules, mutants) == mutation.Score(1, 1, 0, 0, 0)
    assert mutation.score(mutation.BY_KEY["labels"], mutants) is None

    doc = tmp_path / "testing.md"
    doc.write_text(f"intro\n{mutation.BEGIN}\nold table\n| x | y |\n{mutation.END}\nafter\n",
                   encoding="utf-8")
    mutation.write_table({"telemetry": telemetry}, doc)
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("intro\n") and text.endswith("\nafter\n")
    assert "| `flmon/telemetry.py` | 5 | 3 | 1 | 1 | 75.0 % |" in text
    assert "| `flmon/labels.py` | measured separately | | | | |" in text
    # a later run of another module keeps the telemetry row
    mutation.write_table({"rules": mutation.Score(4, 4, 0, 0, 0)}, doc)
    text = doc.read_text(encoding="utf-8")
    assert "| `flmon/telemetry.py` | 5 | 3 | 1 | 1 | 75.0 % |" in text
    assert "| 4 | 4 | 0 | 0 | 100.0 % |" in text
    assert text.count("| `flmon/") == len(mutation.MODULES)


def test_a_package_sums_the_verdicts_of_its_modules(tmp_path: Path) -> None:
    mutants = tmp_path / "mutants"
    config = mutation.BY_KEY["config"]
    assert config.path == "flmon/config/"
    assert config.patterns() == ["flmon.config.*"]
    _meta(mutants, "flmon/config/loader.py", {
        "flmon.config.loader.x_parse_config__mutmut_1": 1,
        "flmon.config.loader.x_parse_config__mutmut_2": 0})
    _meta(mutants, "flmon/config/scrape.py", {
        "flmon.config.scrape.xǁScrapeǁ_one_source__mutmut_1": 36})
    _meta(mutants, "flmon/configure.py", {"flmon.configure.x_f__mutmut_1": 0})  # not inside
    assert mutation.score(config, mutants) == mutation.Score(3, 1, 1, 1, 0)
