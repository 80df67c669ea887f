"""flmon.yaml validation: every problem named with its field, nothing written on error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from flmon.config import ConfigError, load_config, parse_config

from .conftest import EXAMPLE, example_data, flmon_main, minimal_data, run_flmon, with_changes


def test_example_config_loads_with_the_seed_thresholds() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.federation.name == "default"
    assert cfg.alerts.FLLowTrainingAccuracy.threshold == 0.85
    assert cfg.alerts.FLLowTrainingAccuracy.for_ == "5m"
    assert cfg.alerts.FLModelAccuracyDropped.threshold == 0.80
    assert cfg.alerts.FLModelAccuracyDropped.severity == "critical"
    assert cfg.scrape.metric_jobs == ("flmon-exporter", "flmon")


def test_partial_alert_entries_keep_the_other_defaults() -> None:
    cfg = parse_config(with_changes(minimal_data(),
                                    alerts__FLRoundStalled={"threshold": 600}))
    assert cfg.alerts.FLRoundStalled.threshold == 600
    assert cfg.alerts.FLRoundStalled.for_ == "1m"
    assert cfg.alerts.FLRoundStalled.severity == "warning"


def test_env_only_webhook_is_accepted() -> None:
    data = minimal_data()
    data["slack"] = {"webhook_url_env": "FLMON_SLACK_WEBHOOK_URL",
                     "channels": data["slack"]["channels"]}
    assert parse_config(data).slack.webhook_url_env == "FLMON_SLACK_WEBHOOK_URL"


def _problems(data: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return dict(info.value.problems)


HOSTILE: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown top-level key", {"colour": "blue"}, "colour", "unknown key"),
    ("unknown nested key", {"alerts__FLClientDropout__treshold": 3},
     "alerts.FLClientDropout.treshold", "unknown key"),
    ("wrong type", {"alerts__FLLowTrainingAccuracy__threshold": "high"},
     "alerts.FLLowTrainingAccuracy.threshold", "valid number"),
    ("threshold out of range", {"alerts__FLLowTrainingAccuracy__threshold": 85},
     "alerts.FLLowTrainingAccuracy.threshold", "within 0..1"),
    ("bad duration", {"alerts__FLRoundStalled__for": "5 minutes"},
     "alerts.FLRoundStalled.for", "Prometheus duration"),
    ("bad severity", {"alerts__FLRoundStalled__severity": "page"},
     "alerts.FLRoundStalled.severity", "critical"),
    ("empty channel", {"slack__channels__warning": ""}, "slack.channels.warning",
     "Slack channel"),
    ("channel with a template", {"slack__channels__info": "#{{ .Status }}"},
     "slack.channels.info", "Slack channel"),
    ("inline webhook", {"slack__webhook_url": "https://hooks.slack.com/services/T0/B0/XXXX"},
     "slack.webhook_url", "secret"),
    ("webhook URL given as a file", {"slack__webhook_url_file": "https://hooks.slack.com/x"},
     "slack.webhook_url_file", "URL"),
    ("Go template in the federation", {"federation__name": "{{ .Values.x }}"},
     "federation.name", "federation name"),
    ("Jinja in the federation", {"federation__name": "[[ header ]]"}, "federation.name",
     "federation name"),
    ("quote and brace in the federation", {"federation__name": 'x"}'}, "federation.name",
     "federation name"),
    ("newline in the federation", {"federation__name": "a\nb"}, "federation.name",
     "federation name"),
    ("YAML injection in a job", {"scrape__live__job": "x\n- job_name: evil"},
     "scrape.live.job", "job name"),
    ("PromQL injection in a job", {"scrape__pushgateway__pushed_job": 'flmon"} or vector(1'},
     "scrape.pushgateway.pushed_job", "job name"),
    ("brace in a Datadog tag", {"datadog__tags": ["env:{{x}}"]}, "datadog.tags.0",
     "Datadog tag"),
    ("quote in the Grafana URL", {"grafana__url": 'http://x"/>'}, "grafana.url", "URL"),
    ("critical above warning", {"alerts__FLModelAccuracyDropped__threshold": 0.9},
     "alerts.FLModelAccuracyDropped.threshold", "must not exceed"),
    ("threshold where none applies", {"alerts__FLExporterDown__threshold": 1},
     "alerts.FLExporterDown.threshold", "no threshold"),
    ("unknown alert", {"alerts__FLSomethingElse": {"enabled": True}},
     "alerts.FLSomethingElse", "unknown key"),
    ("stale_after not a duration", {"lifecycle__stale_after": "half an hour"},
     "lifecycle.stale_after", "Prometheus duration"),
    ("stale_after of zero", {"lifecycle__stale_after": "0s"}, "lifecycle.stale_after",
     "longer than 0s"),
    ("watch job equal to the live job",
     {"scrape__watch__job": "flmon-exporter", "scrape__watch__enabled": True},
     "scrape.watch.job", "must differ from live.job"),
    ("watch job equal to the pushed job",
     {"scrape__watch__job": "flmon", "scrape__watch__enabled": True},
     "scrape.watch.job", "must differ from pushgateway.pushed_job"),
    ("PromQL injection in the watch job", {"scrape__watch__job": 'w"} or vector(1'},
     "scrape.watch.job", "job name"),
    ("watch target with a path", {"scrape__watch__targets": ["127.0.0.1:9463/x"]},
     "scrape.watch.targets.0", "host:port"),
    ("watch basic auth without a password file", {"scrape__watch__auth": {"username": "u"}},
     "scrape.watch.auth", "go together"),
    ("FLRunFailed without a window", {"alerts__FLRunFailed__window": None},
     "alerts.FLRunFailed.window", "required"),
    ("FLPrivacyLeakage below chance", {"alerts__FLPrivacyLeakage__threshold": 0.4},
     "alerts.FLPrivacyLeakage.threshold", "within 0.5..1"),
    ("FLNodeOffline takes no threshold", {"alerts__FLNodeOffline__threshold": 1},
     "alerts.FLNodeOffline.threshold", "no threshold"),
]


@pytest.mark.parametrize(("change", "field", "words"),
                         [(c, f, w) for _, c, f, w in HOSTILE],
                         ids=[name for name, *_ in HOSTILE])
def test_hostile_values_are_refused_with_their_field(
        change: dict[str, Any], field: str, words: str) -> None:
    problems = _problems(with_changes(minimal_data(), **change))
    assert field in problems, problems
    assert words in problems[field]


def test_every_problem_is_listed_at_once() -> None:
    data = with_changes(minimal_data(), colour="blue", slack__channels__warning="",
                        alerts__FLClientDropout__window="soon")
    problems = _problems(data)
    assert {"colour", "slack.channels.warning", "alerts.FLClientDropout.window"} <= set(
        problems)


def test_missing_required_sections() -> None:
    problems = _problems({"federation": {"name": "x"}})
    assert "slack" in problems
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_config(["a", "list"])


@pytest.mark.parametrize("name", [n for n, *_ in HOSTILE[:12]])
def test_cli_writes_nothing_for_a_hostile_config(tmp_path: Path, name: str) -> None:
    change = next(c for n, c, *_ in HOSTILE if n == name)
    field = next(f for n, _, f, _ in HOSTILE if n == name)
    path = tmp_path / "flmon.yaml"
    path.write_text(yaml.safe_dump(with_changes(example_data(), **change)), encoding="utf-8")
    out = tmp_path / "out"
    result = flmon_main("render", "--config", str(path), "--out", str(out))
    assert result.returncode == 2
    assert result.stdout == ""
    assert field in result.stderr
    assert not out.exists()


def test_cli_leaves_an_existing_out_dir_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "rules").mkdir(parents=True)
    (out / "rules/flmon-rules.yaml").write_text("old", encoding="utf-8")
    path = tmp_path / "flmon.yaml"
    path.write_text(yaml.safe_dump(with_changes(example_data(),
                                                federation__name='a"}{{ x }}')),
                    encoding="utf-8")
    result = run_flmon("render", "--config", str(path), "--out", str(out))
    assert result.returncode == 2
    assert "federation.name" in result.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "rules", "rules/flmon-rules.yaml"]
    assert (out / "rules/flmon-rules.yaml").read_text(encoding="utf-8") == "old"


def test_cli_reports_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    missing = flmon_main("render", "--config", str(tmp_path / "nope.yaml"), "--out",
                         str(tmp_path / "o"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("federation: [unclosed\n", encoding="utf-8")
    result = flmon_main("render", "--config", str(broken), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "not valid YAML" in result.stderr
    assert not (tmp_path / "o").exists()


def test_cli_refuses_unknown_targets(tmp_path: Path) -> None:
    result = flmon_main("render", "--config", str(EXAMPLE), "--out", str(tmp_path / "o"),
                        "--only", "prometheus,nagios")
    assert result.returncode == 2 and "nagios" in result.stderr
    assert not (tmp_path / "o").exists()


def test_config_from_the_environment(tmp_path: Path) -> None:
    env = {**os.environ, "FLMON_CONFIG": str(EXAMPLE)}
    result = run_flmon("render", "--out", str(tmp_path / "o"), "--only", "elasticsearch",
                       cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o/elasticsearch/ilm-policy.json").is_file()
    no_config = run_flmon("render", "--out", str(tmp_path / "o2"), cwd=tmp_path,
                          env={k: v for k, v in os.environ.items() if k != "FLMON_CONFIG"})
    assert no_config.returncode == 2 and "--config" in no_config.stderr


@pytest.mark.parametrize(("change", "field"), [
    ({"alerts__FLRoundStalled": {"threshold": "60"}}, "alerts.FLRoundStalled.threshold"),
    ({"alerts__FLRoundStalled": {"enabled": "no"}}, "alerts.FLRoundStalled.enabled"),
    ({"scrape__live__targets": "127.0.0.1:9464"}, "scrape.live.targets"),
    ({"federation__name": 42}, "federation.name"),
])
def test_types_are_not_coerced(change: dict[str, Any], field: str) -> None:
    assert field in _problems(with_changes(minimal_data(), **change))


def test_lifecycle_and_watch_defaults() -> None:
    cfg = parse_config(minimal_data())
    assert cfg.lifecycle.stale_after == "30m"
    watch = cfg.scrape.watch
    # On by default, like the chart's watch: off only on purpose (docs/configuration.md).
    assert (watch.enabled, watch.job, watch.targets) == (True, "flmon-watch",
                                                         ["127.0.0.1:9463"])
    assert parse_config(example_data()).scrape.watch.enabled
    assert not parse_config(with_changes(minimal_data(),
                                         scrape__watch__enabled=False)).scrape.watch.enabled
    assert cfg.alerts.FLPrivacyLeakage.threshold == 0.6
    assert cfg.alerts.FLRunFailed.window == "15m"
    assert cfg.alerts.FLSuperLinkDown.severity == "critical"
    # the settings keep their defaults when a partial entry overrides one of them
    partial = parse_config(with_changes(minimal_data(), alerts__FLNodeOffline={"for": "5m"}))
    assert partial.alerts.FLNodeOffline.for_ == "5m"
    assert partial.alerts.FLNodeOffline.team == "platform"
