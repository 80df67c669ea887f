"""What an operator reads when an alert of the default configuration fires.

The rules shipped in ``rules/flmon-rules.yaml`` (rendered from ``examples/flmon.yaml``)
are run by ``promtool test rules`` against series chosen here, and every alert's
labels, summary, description and runbook link are compared with text written out by
hand below: a figure printed wrongly (a ratio as 0.62%, a percentage x10, a count with
decimals, a duration in raw seconds) fails here even after a re-render.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from .conftest import REPO

RULES = REPO / "rules" / "flmon-rules.yaml"
J = 'job="flmon",instance="127.0.0.1:9091",federation="default"'


def _alert(name: str, at: str, series: list[tuple[str, str]], labels: dict[str, str],
           summary: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series],
        "alert_rule_test": [{
            "eval_time": at,
            "alertname": name,
            "exp_alerts": [{
                "exp_labels": labels,
                "exp_annotations": {
                    "summary": summary,
                    "description": description,
                    "runbook_url": f"docs/runbooks.md#{name.lower()}",
                },
            }],
        }],
    }


CASES = [
    _alert("FLLowTrainingAccuracy", "7m", [(f"fl_training_accuracy{{{J}}}", "0.62x12")],
           {"federation": "default", "instance": "127.0.0.1:9091", "job": "flmon",
            "severity": "warning", "team": "ml"},
           "Training accuracy is low",
           "Aggregated training accuracy of federation default is 62% (flmon), below the "
           "85% line or not a valid ratio (NaN)."),
    _alert("FLModelAccuracyDropped", "7m", [(f"fl_training_accuracy{{{J}}}", "0.62x12")],
           {"federation": "default", "instance": "127.0.0.1:9091", "job": "flmon",
            "severity": "critical", "team": "ml"},
           "Model accuracy dropped",
           "Aggregated training accuracy of federation default dropped to 62% (flmon), "
           "below the critical 80% line or not a valid ratio (NaN): the global model is "
           "not fit for use."),
    _alert("FLNoModelUpdates", "40m",
           [(f"fl_run_active{{{J}}}", "1x45"),
            (f"fl_run_start_timestamp_seconds{{{J}}}", "0x45"),
            (f'fl_model_updates_total{{{J},client="1"}}', "0x45")],
           {"federation": "default", "job": "flmon", "severity": "warning", "team": "ml"},
           "No model updates while a run is in progress",
           "Federation default has a run in progress (flmon) but received no model update "
           "from any client in the last 30m."),
    _alert("FLClientDropout", "10m",
           [(f'fl_client_failures_total{{{J},client="3",phase="train",error="no_reply"}}',
             "0 1 2 3 4 4 4 4 4 4 4 4")],
           {"client": "3", "federation": "default", "job": "flmon", "severity": "warning",
            "team": "platform"},
           "A client keeps failing",
           "Client 3 of federation default failed 4 times in the last 30m (threshold 3): "
           "unreachable node, timeout or ClientApp error."),
    _alert("FLRoundStalled", "45m",
           [(f"fl_round_start_timestamp_seconds{{{J}}}", "0x50"),
            (f"fl_round_in_progress{{{J}}}", "1x50")],
           {"federation": "default", "instance": "127.0.0.1:9091", "job": "flmon",
            "severity": "warning", "team": "platform"},
           "A round is stalled",
           "A round of federation default has been in progress for 45m 0s (flmon), longer "
           "than 30m."),
    _alert("FLClientUpdateAnomaly", "1m",
           [(f'fl_client_anomaly_score{{{J},client="6"}}', "7.25x5")],
           {"client": "6", "federation": "default", "job": "flmon", "severity": "warning",
            "team": "security"},
           "A client sent an anomalous model update",
           "Client 6 of federation default sent a model update with anomaly score 7.25 "
           "(threshold 3.5, or flagged by the server in the last 30m): possible poisoning "
           "or a broken client."),
    _alert("FLPrivacyBudgetNearlyExhausted", "2m",
           [(f"fl_dp_epsilon_spent{{{J}}}", "9x5"), (f"fl_dp_epsilon_budget{{{J}}}", "10x5")],
           {"federation": "default", "job": "flmon", "severity": "warning",
            "team": "security"},
           "Privacy budget nearly exhausted",
           "Federation default has spent 90% of its differential-privacy epsilon budget "
           "(flmon; warning at 80%)."),
    _alert("FLPrivacyBudgetExhausted", "2m",
           [(f"fl_dp_epsilon_spent{{{J}}}", "10.5x5"),
            (f"fl_dp_epsilon_budget{{{J}}}", "10x5")],
           {"federation": "default", "job": "flmon", "severity": "critical",
            "team": "security"},
           "Privacy budget exhausted",
           "Federation default has spent 105% of its differential-privacy epsilon budget "
           "(flmon): further rounds break the privacy guarantee."),
    _alert("FLTelemetryRejected", "4m",
           [(f'fl_telemetry_rejected_total{{{J},reason="non_integer"}}', "0 0 5 5 5 5")],
           {"federation": "default", "job": "flmon", "reason": "non_integer",
            "severity": "warning", "team": "security"},
           "Client telemetry was rejected",
           "Federation default rejected 5 client telemetry records or fields in the last "
           "15m (reason non_integer)."),
    _alert("FLExporterDown", "7m",
           [('up{job="flmon-pushgateway",instance="127.0.0.1:9091",federation="default"}',
             "0x10")],
           {"federation": "default", "instance": "127.0.0.1:9091", "job": "flmon-pushgateway",
            "severity": "critical", "team": "platform"},
           "flmon metrics cannot be scraped",
           "Prometheus cannot scrape flmon-pushgateway (127.0.0.1:9091) of federation "
           "default: alerts and dashboards of this federation are blind."),
]


def test_every_alert_of_the_default_configuration_has_a_hand_written_case() -> None:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    shipped = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert sorted(shipped) == sorted(case["name"] for case in CASES)


def test_alert_text_reads_as_written(promtool: str, tmp_path: Path) -> None:
    tests = tmp_path / "alert-text.yaml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(RULES)], "evaluation_interval": "1m",
                                     "tests": CASES}, sort_keys=False), encoding="utf-8")
    result = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
