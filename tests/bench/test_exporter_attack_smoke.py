"""The exporter-attack benchmark runs on a tiny size, so it cannot rot (no timing checks)."""

from __future__ import annotations

import math

from benchmarks import exporter_attack


def test_every_condition_is_measured_and_every_scrape_answers() -> None:
    result = exporter_attack.run(quick=True)
    for scheme in ("plain", "tls"):
        assert set(result[scheme]) == set(exporter_attack.CONDITIONS)
        for condition, row in result[scheme].items():
            assert row["failures"] == 0, (scheme, condition)
            assert math.isfinite(row["median_ms"]) and row["median_ms"] > 0
        # The 30 slow senders were still held when the scrapes ended.
        assert result[scheme]["slow_30"]["connections_held_at_end"] >= 30
