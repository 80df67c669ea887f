"""Run identity of a real legacy-API run: both metric paths carry the Flower run id.

flower-superlink and 2 flower-supernode processes run the legacy app (tests/apps/legacyfl:
``ServerApp(server_fn=...)``, a legacy ``FedAvg`` wrapped by ``instrument``) for one
round. Its ServerApp serves ``/metrics`` live and pushes to a real Pushgateway; a real
Prometheus scrapes both, as rendered from flmon.yaml. Every series of the run must carry
``run_id`` = the id Flower gave the run, on both paths, in one Pushgateway group of its
own (the group the watch deletes ``lifecycle.stale_after`` after the run ended).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flmon.config import parse_config
from flmon.render import render, write
from flmon.stack.flower import FlowerFederation
from flmon.stack.ports import free_ports
from flmon.stack.prometheus import Prometheus
from flmon.stack.pushgateway import Pushgateway
from tests.e2e.support import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APP = Path(__file__).resolve().parents[1] / "apps" / "legacyfl"




def test_a_legacy_run_carries_its_run_id_on_both_paths(tmp_path: Path) -> None:
    live_port, = free_ports(1)
    with Pushgateway(workdir=tmp_path / "pg") as gateway, FlowerFederation(
            2, workdir=tmp_path / "flower") as fed:
        pg_port = int(gateway.address.rsplit(":", 1)[1])
        config = {
            "federation": {"name": "legacy"},
            "scrape": {"interval": "1s", "live": {"targets": [f"127.0.0.1:{live_port}"]},
                       "pushgateway": {"targets": [f"127.0.0.1:{pg_port}"]},
                       "watch": {"enabled": False}},
            "slack": {"webhook_url_file": "/run/secrets/slack-webhook",
                      "channels": {"critical": "#c", "warning": "#w", "info": "#i"}},
        }
        out = tmp_path / "render"
        write(render(parse_config(config)), out)
        with Prometheus(out / "prometheus/prometheus.yml", workdir=tmp_path / "prom") as prom:
            result = fed.run(APP, {"num-server-rounds": 1, "num-nodes": 2,
                                   "pushgateway": gateway.address, "job": "flmon",
                                   "secagg": False, "evaluate": True,
                                   "exporter-port": live_port}, timeout=300)
            assert result.returncode == 0, result.output[-4000:] + fed.logs()
            found = re.search(r"Successfully started run (\d+)", result.output)
            assert found, result.output[-2000:]
            run_id = found.group(1)

            # The Pushgateway: one group, keyed by the run's id, every series in it.
            pushed = [(s.name, s.labels) for f in text_string_to_metric_families(
                gateway.metrics_text()) for s in f.samples if s.labels.get("job") == "flmon"]
            assert pushed
            assert {labels.get("run_id") for _, labels in pushed} == {run_id}
            assert ("fl_rounds_completed_total", {"job": "flmon", "run_id": run_id}) in [
                (n, {k: v for k, v in lab.items() if k in ("job", "run_id")})
                for n, lab in pushed]

            # Prometheus: the run's series under its run_id from both jobs (the live
            # exporter only lived while the run was in progress).
            def jobs_with_run() -> list[str] | None:
                rows = prom.query(
                    f'count by (job) (last_over_time(fl_run_active{{run_id="{run_id}",'
                    f'federation="legacy"}}[10m]))')
                found_jobs = sorted(r["metric"]["job"] for r in rows)
                return found_jobs if len(found_jobs) == 2 else None

            jobs = wait_until("the run's series on both paths", jobs_with_run, 30)
            assert jobs == ["flmon", "flmon-exporter"]
            active_live = prom.query(
                f'max_over_time(fl_run_active{{job="flmon-exporter",run_id="{run_id}"}}[10m])')
            assert [r["value"][1] for r in active_live] == ["1"]  # scraped mid-run
            rounds = prom.query(f'fl_rounds_completed_total{{job="flmon",run_id="{run_id}"}}')
            assert [r["value"][1] for r in rounds] == ["1"]
