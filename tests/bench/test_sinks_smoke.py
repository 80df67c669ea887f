"""The sinks benchmark runs and reports every case (figures are not asserted)."""

from __future__ import annotations

import threading

from benchmarks import sinks_bench


def test_bench_smoke() -> None:
    result = sinks_bench.run(repetitions=1, steps=30, work=1, slack_every=10,
                             close_timeout=0.2)
    # Sinks closed at their deadline may still be retrying a down endpoint: wait for
    # their workers, so that none is left to log at interpreter exit.
    for worker in [t for t in threading.enumerate() if t.name.startswith("flmon-sink-")]:
        worker.join(60.0)
        assert not worker.is_alive(), worker.name
    for table in ("ratios", "cpu_ratios", "overhead_us_per_step", "close_seconds", "dropped"):
        assert set(result[table]) == set(sinks_bench.SINKS)
        for sink in sinks_bench.SINKS:
            assert set(result[table][sink]) == set(sinks_bench.STATES)
    assert all(r > 0 for per in result["ratios"].values() for r in per.values())
    assert all(c >= 0 for per in result["close_seconds"].values() for c in per.values())
    for sink in sinks_bench.SINKS:  # a healthy endpoint drops nothing at this size
        assert result["dropped"][sink]["healthy"] == 0
    assert result["dropped"]["elasticsearch"]["down"] > 0
