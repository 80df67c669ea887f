"""flmon.yaml checks across fields: each refused with the field an operator must fix,
and the values just inside each limit accepted."""

from __future__ import annotations

import math
from typing import Any

import pytest

from flmon.config import ConfigError, parse_config

from .conftest import minimal_data, with_changes

WINDOWED = ("FLNoModelUpdates", "FLClientDropout", "FLClientUpdateAnomaly", "FLTelemetryRejected")
UNWINDOWED = ("FLLowTrainingAccuracy", "FLModelAccuracyDropped", "FLRoundStalled",
              "FLPrivacyBudgetNearlyExhausted", "FLPrivacyBudgetExhausted", "FLExporterDown")
# (alert, lowest accepted, highest accepted), as docs/configuration.md states them
BOUNDS = (
    ("FLLowTrainingAccuracy", 0.0, 1.0),
    ("FLModelAccuracyDropped", 0.0, 0.85),  # at most FLLowTrainingAccuracy's 0.85
    ("FLClientDropout", 1.0, 1e6),
    ("FLRoundStalled", 1.0, 1e7),
    ("FLClientUpdateAnomaly", 0.0, 1e6),
    ("FLPrivacyBudgetNearlyExhausted", 0.0, 1.0),
    ("FLTelemetryRejected", 0.0, 1e9),
)


def _problems(**changes: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(with_changes(minimal_data(), **changes))
    return dict(info.value.problems)


# -- scrape sources and jobs ----------------------------------------------------------
def test_the_pushgateway_job_must_differ_from_the_pushed_job() -> None:
    problems = _problems(scrape__pushgateway__job="flmon")  # pushed_job defaults to flmon
    assert problems == {"scrape.pushgateway": problems["scrape.pushgateway"]}
    assert "job and pushed_job must differ" in problems["scrape.pushgateway"]
    problems = _problems(scrape__pushgateway__pushed_job="flmon-pushgateway")
    assert "job and pushed_job must differ" in problems["scrape.pushgateway"]


def test_distinct_pushgateway_jobs_are_accepted() -> None:
    cfg = parse_config(with_changes(minimal_data(), scrape__pushgateway__job="pgw",
                                    scrape__pushgateway__pushed_job="fl"))
    assert cfg.scrape.pushgateway.job == "pgw"
    assert cfg.scrape.metric_jobs == ("flmon-exporter", "fl")


def test_both_scrape_sources_off_is_refused() -> None:
    problems = _problems(scrape__live__enabled=False, scrape__pushgateway__enabled=False)
    assert list(problems) == ["scrape"]
    assert "enable at least one of live and pushgateway" in problems["scrape"]


@pytest.mark.parametrize(("live", "pushed", "jobs"),
                         [(True, False, ("flmon-exporter",)), (False, True, ("flmon",))])
def test_either_scrape_source_alone_is_accepted(live: bool, pushed: bool,
                                                jobs: tuple[str, ...]) -> None:
    cfg = parse_config(with_changes(minimal_data(), scrape__live__enabled=live,
                                    scrape__pushgateway__enabled=pushed))
    assert cfg.scrape.metric_jobs == jobs


@pytest.mark.parametrize("job", ["flmon", "flmon-pushgateway"])
def test_the_live_job_must_differ_from_both_pushgateway_jobs(job: str) -> None:
    problems = _problems(scrape__live__job=job)
    [(field, message)] = problems.items()
    assert field in {"scrape.pushgateway.pushed_job", "scrape.pushgateway.job"}
    assert message.startswith("must differ from live.job")
    # with the Pushgateway off there is nothing to double
    cfg = parse_config(with_changes(minimal_data(), scrape__live__job=job,
                                    scrape__pushgateway__enabled=False))
    assert cfg.scrape.metric_jobs == (job,)


# -- windows and thresholds -------------------------------------------------------------
@pytest.mark.parametrize("alert", WINDOWED)
def test_a_windowed_alert_needs_its_window(alert: str) -> None:
    problems = _problems(**{f"alerts__{alert}": {"window": None}})
    assert problems == {f"alerts.{alert}.window": "required"}


@pytest.mark.parametrize("alert", UNWINDOWED)
def test_an_alert_without_a_window_refuses_one(alert: str) -> None:
    problems = _problems(**{f"alerts__{alert}": {"window": "10m"}})
    assert problems == {f"alerts.{alert}.window": "this alert takes no window"}


@pytest.mark.parametrize("alert", [b[0] for b in BOUNDS])
def test_a_thresholded_alert_needs_its_threshold(alert: str) -> None:
    problems = _problems(**{f"alerts__{alert}": {"threshold": None}})
    assert problems[f"alerts.{alert}.threshold"] == "required"


@pytest.mark.parametrize(("alert", "low", "high"), BOUNDS)
def test_threshold_limits_are_inclusive(alert: str, low: float, high: float) -> None:
    for value in (low, high):
        changes: dict[str, Any] = {f"alerts__{alert}": {"threshold": value}}
        if alert == "FLLowTrainingAccuracy":  # the critical line stays below it
            changes["alerts__FLModelAccuracyDropped"] = {"threshold": 0.0}
        cfg = parse_config(with_changes(minimal_data(), **changes))
        assert cfg.alerts.get(alert).threshold == value


@pytest.mark.parametrize(("alert", "low", "high", "text"), [
    ("FLLowTrainingAccuracy", 0.0, 1.0, "must be within 0..1"),
    ("FLClientDropout", 1.0, 1e6, "must be within 1..1e+06"),
    ("FLRoundStalled", 1.0, 1e7, "must be within 1..1e+07"),
    ("FLClientUpdateAnomaly", 0.0, 1e6, "must be within 0..1e+06"),
    ("FLPrivacyBudgetNearlyExhausted", 0.0, 1.0, "must be within 0..1"),
    ("FLTelemetryRejected", 0.0, 1e9, "must be within 0..1e+09"),
])
def test_a_threshold_just_outside_its_limits_is_refused(alert: str, low: float, high: float,
                                                        text: str) -> None:
    for value in (math.nextafter(low, -math.inf), math.nextafter(high, math.inf)):
        problems = _problems(**{f"alerts__{alert}": {"threshold": value}})
        assert problems[f"alerts.{alert}.threshold"].startswith(text), problems


def test_the_dropout_threshold_counts_clients_from_one() -> None:
    problems = _problems(alerts__FLClientDropout={"threshold": 0.5})
    assert problems == {
        "alerts.FLClientDropout.threshold": "must be within 1..1e+06, got 0.5"}
    problems = _problems(alerts__FLClientDropout={"threshold": 0})
    assert problems == {"alerts.FLClientDropout.threshold": "must be within 1..1e+06, got 0"}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_threshold_is_refused(value: float) -> None:
    problems = _problems(alerts__FLRoundStalled={"threshold": value})
    assert problems["alerts.FLRoundStalled.threshold"] == "must be a finite number"


def test_the_critical_accuracy_line_may_equal_the_warning_line() -> None:
    cfg = parse_config(with_changes(minimal_data(), alerts__FLLowTrainingAccuracy={
        "threshold": 0.7}, alerts__FLModelAccuracyDropped={"threshold": 0.7}))
    assert cfg.alerts.FLModelAccuracyDropped.threshold == 0.7
    problems = _problems(alerts__FLLowTrainingAccuracy={"threshold": 0.7},
                         alerts__FLModelAccuracyDropped={"threshold": 0.71})
    assert "must not exceed FLLowTrainingAccuracy.threshold" in problems[
        "alerts.FLModelAccuracyDropped.threshold"]


def test_several_alert_problems_are_each_named() -> None:
    problems = _problems(alerts__FLClientDropout={"window": None, "threshold": 0},
                         alerts__FLExporterDown={"window": "1m"})
    assert problems == {
        "alerts.FLClientDropout.threshold": "must be within 1..1e+06, got 0",
        "alerts.FLClientDropout.window": "required",
        "alerts.FLExporterDown.window": "this alert takes no window",
    }


# -- the federation name ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a", "ab", "hospitals_eu", "site-1", "a" * 24,
                                  "x" + "0" * 22 + "y"])
def test_plain_federation_names_are_accepted(name: str) -> None:
    assert parse_config(with_changes(minimal_data(), federation__name=name)
                        ).federation.name == name


@pytest.mark.parametrize("name", ["", "a" * 25, "1site", "_site", "-site", "site-", "site_",
                                  "Site", "si te", "site.eu", "sité", "site\n"])
def test_other_federation_names_are_refused(name: str) -> None:
    problems = _problems(federation__name=name)
    assert "is not a federation name" in problems["federation.name"]
    assert "at most 24 characters, starting with a letter" in problems["federation.name"]
