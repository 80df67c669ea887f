"""A ``for`` or window of years renders cases as small as one of minutes, and they pass.

promtool evaluates every rule at every step of a case and loads every sample: cases with
one step per minute of a ``for: 10y`` never finish. The step of each alert's test grows
with its longest duration, so the samples written stay bounded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from flmon.alerts.spec import duration_seconds
from flmon.config import ALERT_NAMES

from .conftest import example_data, run_tool, with_changes

BOUND = 200
"""Most samples of any input series, most evaluations of any case (short durations
take up to about 70 of either)."""


def samples(values: str) -> int:
    """How many samples (blanks included) promtool expands ``values`` into."""
    total = 0
    for item in values.split():
        if match := re.fullmatch(r"_x(\d+)", item):
            total += int(match.group(1))
        elif match := re.fullmatch(r".+x(\d+)", item):
            total += int(match.group(1)) + 1
        else:
            total += 1
    return total


def test_samples_counts_promtool_notation() -> None:
    assert samples("1x3 _ _x2 stale NaN+0x4 0+5x2 7") == 4 + 1 + 2 + 1 + 5 + 3 + 1


def long_data(duration: str) -> dict[str, Any]:
    data = example_data()
    for alert in data["alerts"].values():
        alert["for"] = duration
        if "window" in alert:
            alert["window"] = duration
    data["alerts"]["FLRoundStalled"]["threshold"] = 1e7
    return data


def _sizes(out: Path) -> dict[str, tuple[int, int]]:
    """Per alert: most samples of a series, most evaluations of a case."""
    sizes = {}
    for path in sorted(out.glob("rules/tests/*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        step = duration_seconds(doc["evaluation_interval"])
        most = max(samples(s["values"]) for t in doc["tests"] for s in t["input_series"])
        evals = max(duration_seconds(c["eval_time"]) / step
                    for t in doc["tests"] for c in t["alert_rule_test"])
        assert all(t["interval"] == doc["evaluation_interval"] for t in doc["tests"])
        sizes[path.stem] = (most, round(evals))
    return sizes


@pytest.mark.parametrize("duration", ["10y", "30d", "1h"])
def test_long_for_and_windows_give_bounded_cases(
        render_dir: Callable[[dict[str, Any]], Path], duration: str) -> None:
    out = render_dir(long_data(duration))
    rules_text = (out / "rules/flmon-rules.yaml").read_text(encoding="utf-8")
    assert f"for: {duration}" in rules_text and f"[{duration}]" in rules_text
    sizes = _sizes(out)
    assert set(sizes) == set(ALERT_NAMES)
    assert {name: size for name, size in sizes.items() if max(size) > BOUND} == {}


@pytest.mark.slow
def test_cases_of_a_10y_for_and_window_pass_promtool(
        promtool: str, render_dir: Callable[[dict[str, Any]], Path]) -> None:
    out = render_dir(long_data("10y"))
    tests = sorted(out.glob("rules/tests/*.yaml"))
    result = run_tool(promtool, "test", "rules", *map(str, tests), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_long_stale_after_and_for_with_short_windows_stay_bounded(
        render_dir: Callable[[dict[str, Any]], Path]) -> None:
    out = render_dir(with_changes(long_data("10y"), lifecycle__stale_after="20y"))
    sizes = _sizes(out)
    assert {name: s for name, s in sizes.items() if max(s) > BOUND} == {}


def test_nan_is_written_in_one_item_whatever_the_length(
        render_dir: Callable[[dict[str, Any]], Path]) -> None:
    out = render_dir(long_data("10y"))
    text = (out / "rules/tests/FLLowTrainingAccuracy.yaml").read_text(encoding="utf-8")
    assert re.search(r"NaN\+0x\d+", text)
    assert "NaN NaN" not in text
