"""What ``ConfigError`` tells the operator: the file, how many problems, each field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flmon.config import ConfigError, load_config, parse_config

from .conftest import minimal_data, with_changes


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


def test_a_missing_file_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    err = _error(path)
    assert err.source == str(path)
    assert err.problems == [("", "cannot read: No such file or directory")]
    assert str(err) == f"{path}: 1 problem(s)\n  cannot read: No such file or directory"


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("federation: [unclosed\n", encoding="utf-8")
    err = _error(path)
    assert err.source == str(path)
    assert len(err.problems) == 1 and err.problems[0][0] == ""
    assert err.problems[0][1].startswith("not valid YAML at line 2, column 1: ")
    assert "(the text of the line is not shown)" in err.problems[0][1]
    assert str(err).startswith(f"{path}: 1 problem(s)\n  not valid YAML at line 2")


def test_problems_of_a_file_are_listed_under_its_name(tmp_path: Path) -> None:
    path = tmp_path / "flmon.yaml"
    data = with_changes(minimal_data(), colour="blue", federation__name="Bad Name")
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    err = _error(path)
    assert err.source == str(path)
    assert dict(err.problems)["colour"] == "unknown key"
    lines = str(err).splitlines()
    assert lines[0] == f"{path}: 2 problem(s)"
    assert lines[1].startswith("  federation.name: 'Bad Name' is not a federation name")
    assert lines[2] == "  colour: unknown key"


def test_a_valid_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "flmon.yaml"
    path.write_text(yaml.safe_dump(minimal_data()) + "# é\n", encoding="utf-8")
    assert load_config(path).federation.name == "hospitals_eu"


def test_parsed_data_is_named_flmon_yaml_by_default() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"federation": {"name": "x"}})
    assert info.value.source == "flmon.yaml"
    assert str(info.value).startswith("flmon.yaml: 1 problem(s)\n  slack: ")
    with pytest.raises(ConfigError) as info:
        parse_config([], source="inline")
    assert str(info.value) == "inline: 1 problem(s)\n  the top level must be a mapping"


def test_alert_problems_and_the_problems_after_them_are_all_listed() -> None:
    one_alert = with_changes(minimal_data(), alerts__FLModelAccuracyDropped={"threshold": 0.9},
                             slack__channels__info="no-hash")
    with pytest.raises(ConfigError) as info:
        parse_config(one_alert)
    paths = [p for p, _ in info.value.problems]
    assert paths == ["alerts.FLModelAccuracyDropped.threshold", "slack.channels.info"]

    two_alerts = with_changes(one_alert, alerts__FLExporterDown={"window": "1m"})
    with pytest.raises(ConfigError) as info:
        parse_config(two_alerts)
    problems = info.value.problems
    assert [p for p, _ in problems] == ["alerts.FLExporterDown.window",
                                        "alerts.FLModelAccuracyDropped.threshold",
                                        "slack.channels.info"]
    assert problems[0][1] == "this alert takes no window"
    assert problems[1][1].startswith("must not exceed FLLowTrainingAccuracy.threshold")
