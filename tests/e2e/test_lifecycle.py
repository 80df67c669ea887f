"""A run's alerts over its life, in a real Prometheus and AlertManager.

flmon's own registry feeds both paths at once: the live exporter (``start_exporter``) and
the Pushgateway (``Pusher``). One low-accuracy problem must be one alert in AlertManager,
and after the run ended it must resolve once ``lifecycle.stale_after`` has passed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from flmon.config import parse_config
from flmon.exporter import start_exporter
from flmon.metrics import FlmonMetrics
from flmon.push import Pusher
from flmon.render import render, write
from flmon.stack.alertmanager import AlertManager
from flmon.stack.ports import free_ports
from flmon.stack.prometheus import Prometheus
from flmon.stack.pushgateway import Pushgateway
from tests.e2e.support import silent_alertmanager_config, wait_until

STALE_AFTER = 20.0




def _config(live: int, pushgateway: int, alertmanager: int) -> dict[str, Any]:
    return {
        "federation": {"name": "lifecycle"},
        "scrape": {"interval": "1s",
                   "live": {"targets": [f"127.0.0.1:{live}"]},
                   "pushgateway": {"targets": [f"127.0.0.1:{pushgateway}"]},
                   "watch": {"enabled": False}},  # no watch here: no FLSuperLinkDown
        "lifecycle": {"stale_after": f"{int(STALE_AFTER)}s"},
        "alerts": {"FLLowTrainingAccuracy": {"for": "0s"}},
        "prometheus": {"evaluation_interval": "1s"},
        "alertmanager": {"targets": [f"127.0.0.1:{alertmanager}"]},
        "slack": {"webhook_url_file": "/run/secrets/slack-webhook",
                  "channels": {"critical": "#c", "warning": "#w", "info": "#i"}},
    }


@pytest.mark.slow
def test_one_problem_on_both_paths_is_one_alert_and_resolves_after_stale_after(
        tmp_path: Path) -> None:
    live_port, am_port = free_ports(2)
    registry = CollectorRegistry()
    metrics = FlmonMetrics(registry)
    metrics.gauge("fl_run_active").set(1)
    metrics.gauge("fl_run_start_timestamp_seconds").set(time.time())
    metrics.gauge("fl_run_end_timestamp_seconds").set(0)
    metrics.gauge("fl_training_accuracy").set(0.82)  # below 0.85, above the critical 0.80

    with Pushgateway(workdir=tmp_path / "pg") as pushgateway:
        pg_port = int(pushgateway.address.rsplit(":", 1)[1])
        out = tmp_path / "render"
        write(render(parse_config(_config(live_port, pg_port, am_port))), out)
        am_config = silent_alertmanager_config(out)
        pusher = Pusher(pushgateway.address, registry, job="flmon")
        exporter = start_exporter(live_port, registry=registry)
        try:
            pusher.request()
            wait_until("the first push", lambda: pusher.pushes >= 1, 10)
            with AlertManager(am_config, workdir=tmp_path / "am", port=am_port) as am, \
                    Prometheus(out / "prometheus/prometheus.yml",
                               rules=[out / "rules/flmon-rules.yaml"],
                               workdir=tmp_path / "prom") as prom:

                def firing() -> list[dict[str, Any]]:
                    return am.alerts(active=True, alertname="FLLowTrainingAccuracy")

                # both paths carry the accuracy...
                def jobs() -> list[str]:
                    return sorted(s["metric"]["job"] for s in prom.query(
                        'fl_training_accuracy{federation="lifecycle"}'))

                wait_until("both paths scraped", lambda: jobs() == ["flmon", "flmon-exporter"])
                wait_until("an evaluation with both paths", lambda: prom.query(
                    'count(ALERTS{alertname="FLLowTrainingAccuracy"}) and on () '
                    'count(fl_training_accuracy{federation="lifecycle"}) == 2'), 15)
                alerts = wait_until("FLLowTrainingAccuracy in AlertManager", firing)
                # ...and Prometheus evaluates it to one alert, which AlertManager holds once
                rule_alerts = [a for a in prom.api("alerts")["alerts"]
                               if a["labels"]["alertname"] == "FLLowTrainingAccuracy"]
                assert len(rule_alerts) == 1 and rule_alerts[0]["state"] == "firing"
                assert len(alerts) == 1
                assert "job" not in alerts[0]["labels"]
                assert alerts[0]["labels"]["federation"] == "lifecycle"
                description = alerts[0]["annotations"]["description"]
                assert description.startswith("Aggregated training accuracy of run ")
                assert description.endswith("of federation lifecycle is 82%, below the 85% "
                                            "line or not a valid ratio (NaN).")

                # The run ends: the final push, and the ServerApp's exporter goes away.
                ended_at = time.time()
                metrics.gauge("fl_run_active").set(0)
                metrics.gauge("fl_run_end_timestamp_seconds").set(ended_at)
                assert pusher.close()
                exporter.close()
                wait_until("FLLowTrainingAccuracy to resolve", lambda: not firing() or None, 90)

                # Looking back: halfway to stale_after the live exporter was gone and the
                # Pushgateway alone kept the ended run's alert, still one alert...
                halfway = ended_at + STALE_AFTER / 2
                live_up = prom.query('up{job="flmon-exporter",federation="lifecycle"}',
                                     at=halfway)
                assert [s["value"][1] for s in live_up] == ["0"]
                count = 'count(ALERTS{alertname="FLLowTrainingAccuracy",alertstate="firing"})'
                assert [s["value"][1] for s in prom.query(count, at=halfway)] == ["1"]
                # ...and it resolved because the run ended stale_after ago, not for lack of
                # data: the Pushgateway still serves the low accuracy.
                assert prom.query('fl_training_accuracy{job="flmon",federation="lifecycle"} '
                                  "< 0.85")
                ended_for = prom.query_value(
                    'time() - fl_run_end_timestamp_seconds{federation="lifecycle"}')
                assert ended_for is not None and ended_for > STALE_AFTER
                assert prom.query(count) == []
        finally:
            exporter.close()
            pusher.close(timeout=1)
