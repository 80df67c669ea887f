"""Durations are accepted exactly as Prometheus accepts them, and nothing longer.

Prometheus parses durations into Go ``time.Duration`` (int64 nanoseconds) and refuses a
longer one with "duration out of range"; its grammar takes units largest first, each once.
A ``flmon.yaml`` duration Prometheus would refuse is refused by ``flmon render`` with the
field's path, before any file is written.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from flmon.alerts.spec import MAX_DURATION, MAX_DURATION_MS
from flmon.config import ConfigError, duration_seconds, parse_config

from .conftest import example_data, flmon_main, minimal_data, with_changes

ONE_MS_MORE = "292y24w3d23h47m16s855ms"


def _promtool_accepts_for(promtool: str, tmp_path: Path, value: str) -> tuple[bool, str]:
    rules = tmp_path / f"for-{value}.yaml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"alert": "Probe", "expr": "vector(1)", "for": value}]}]}), encoding="utf-8")
    done = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True,
                          text=True, timeout=60, check=False)
    return done.returncode == 0, done.stdout + done.stderr


def test_the_longest_duration_is_prometheus_longest(promtool: str, tmp_path: Path) -> None:
    assert MAX_DURATION == "292y24w3d23h47m16s854ms"
    assert duration_seconds(MAX_DURATION) == MAX_DURATION_MS / 1000
    ok, out = _promtool_accepts_for(promtool, tmp_path, MAX_DURATION)
    assert ok, out
    ok, out = _promtool_accepts_for(promtool, tmp_path, ONE_MS_MORE)
    assert not ok and "duration out of range" in out
    with pytest.raises(ValueError, match="longer than Prometheus can represent"):
        duration_seconds(ONE_MS_MORE)


@pytest.mark.parametrize("value", ["293y", "15251w", "106752d", "2562048h",
                                   "153722868m", "9223372037s", "9223372036855ms",
                                   "292y25w", "99999999999999999999y"])
def test_what_prometheus_finds_out_of_range_is_refused(
        value: str, promtool: str, tmp_path: Path) -> None:
    ok, out = _promtool_accepts_for(promtool, tmp_path, value)
    assert not ok and "duration out of range" in out
    with pytest.raises(ValueError, match="longer than Prometheus can represent"):
        duration_seconds(value)


@pytest.mark.parametrize("value", ["30m1h", "1h1h", "5s5m", "1ms1s"])
def test_units_out_of_prometheus_order_are_refused(
        value: str, promtool: str, tmp_path: Path) -> None:
    ok, out = _promtool_accepts_for(promtool, tmp_path, value)
    assert not ok and "not a valid duration string" in out
    with pytest.raises(ValueError, match="largest first, each once"):
        duration_seconds(value)


@pytest.mark.parametrize(("field", "path"), [
    ("alerts__FLRoundStalled__for", "alerts.FLRoundStalled.for"),
    ("alerts__FLNoModelUpdates__window", "alerts.FLNoModelUpdates.window"),
    ("lifecycle__stale_after", "lifecycle.stale_after"),
    ("scrape__interval", "scrape.interval"),
    ("prometheus__evaluation_interval", "prometheus.evaluation_interval"),
    ("alertmanager__repeat_interval", "alertmanager.repeat_interval"),
])
def test_a_too_long_duration_is_refused_naming_its_field(field: str, path: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(with_changes(minimal_data(), **{field: "300y"}))
    assert [p for p, _ in err.value.problems] == [path]
    assert "longer than Prometheus can represent" in err.value.problems[0][1]


def test_flmon_render_refuses_it_before_writing_anything(tmp_path: Path) -> None:
    config = tmp_path / "flmon.yaml"
    config.write_text(yaml.safe_dump(with_changes(
        example_data(), alerts__FLRunFailed__window="1000y")), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    result = flmon_main("render", "--config", str(config), "--out", str(out))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "alerts.FLRunFailed.window: '1000y' is longer than Prometheus can represent" in (
        result.stderr)
    assert list(out.iterdir()) == []
