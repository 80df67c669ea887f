"""The report of the recorded run opened in headless Chromium (Debian's ``chromium``).

Driven over the DevTools protocol: the page must log no console message, error or
exception, request nothing but its own file, draw its charts (SVG paths with points, laid
out with a size) and show the anomalous client and the fired alert.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.report.browser import Browser
from tests.e2e.report.federation import HOSTILE, POISONED

# No skip when chromium is missing: `make test` installs it (make system-deps), and a
# missing browser fails here with Browser's message rather than passing unseen.
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WIDTH = 1280


def test_report_renders_in_chromium_without_errors_or_requests(
        report_file: Path, tmp_path: Path) -> None:
    with Browser(width=WIDTH) as browser:
        browser.open(report_file)
        # Nothing logged, nothing thrown, nothing fetched but the file itself.
        assert browser.console == []
        assert [e for e in browser.log if e[0] in ("error", "warning")] == []
        assert browser.exceptions == []
        assert browser.requests == [report_file.resolve().as_uri()]

        drawn = browser.evaluate("""
            [...document.querySelectorAll('svg.chart')].map(svg => {
              const box = svg.getBoundingClientRect();
              const paths = [...svg.querySelectorAll('path')].filter(
                  p => (p.getAttribute('d').match(/[ML]/g) || []).length >= 2
                       && p.getTotalLength() > 0);
              return [box.width, box.height, paths.length];
            })""")
        assert len(drawn) >= 15
        assert all(w > 300 and h > 100 for w, h, _ in drawn)
        assert sum(1 for *_, n in drawn if n > 0) >= 15

        anomaly = browser.evaluate("""
            (() => {
              const h = [...document.querySelectorAll('h3')].find(
                  e => e.textContent === 'Anomaly score per client');
              const panel = h.parentElement;
              return [panel.querySelectorAll('svg path').length,
                      panel.querySelectorAll('svg line.ref').length,
                      [...panel.querySelectorAll('table.legend tr')].map(
                          tr => [...tr.cells].map(c => c.innerText.trim()))];
            })()""")
        paths, refs, legend = anomaly
        assert paths >= 3 and refs == 1
        # series, last, max: the poisoned client peaked at 36 and ended at 1.
        assert [str(POISONED), "1", "36"] in legend, legend

        body = browser.evaluate("document.body.innerText")
        assert f"Client {POISONED}: anomaly score 36" in body
        assert HOSTILE in body  # a hostile label is shown as text
        assert browser.evaluate("document.scripts.length") == 0

        lanes = browser.evaluate(
            "[...document.querySelectorAll('svg.timeline text.lane')].map(t => t.textContent)")
        assert f"FLClientUpdateAnomaly (client={POISONED})" in lanes
        bars = browser.evaluate(
            "[...document.querySelectorAll('svg.timeline rect.bar')].map("
            "r => r.getBoundingClientRect().width)")
        assert bars and all(w > 0 for w in bars)
        assert browser.evaluate(
            "[...document.querySelectorAll('.nodata')].some(e => e.innerText === 'no data')")

        height = int(browser.evaluate("document.documentElement.scrollHeight"))
        shot = tmp_path / "report.png"
        browser.screenshot(shot, WIDTH, min(height, 1100))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 20_000
    assert browser.proc.poll() is not None
