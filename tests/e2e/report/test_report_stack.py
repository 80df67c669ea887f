"""``flmon report`` against a real Prometheus and AlertManager holding a recorded run.

The run (see :mod:`tests.e2e.report.federation`) was recorded by flmon's ServerRecorder,
exposed by its exporter and pushed to a real Pushgateway; Prometheus evaluated the
rendered rules and AlertManager routed FLClientUpdateAnomaly to the Slack receiver.
"""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from flmon import __version__
from flmon.cli.main import main
from flmon.demo.app import Printer, write_run_report
from flmon.render import grafana
from flmon.stack.ports import free_port
from tests.e2e.report.conftest import StackWithRun
from tests.e2e.report.federation import HOSTILE, POISONED, ROUNDS, RUN_ID

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _text(path: Path) -> tuple[str, list[str]]:
    p = _Text()
    p.feed(path.read_text())
    return " ".join(p.parts), p.tags


def _panel(page: str, title: str) -> str:
    start = page.index(f"<h3>{title}</h3>")
    end = page.find('<div class="panel">', start)
    return page[start:end if end > 0 else None]


def test_header_names_the_run_as_the_series_recorded_it(report_file: Path) -> None:
    text, _ = _text(report_file)
    for field, value in (("Federation", "hospitals"), ("Run id", RUN_ID),
                         ("Strategy", "FedAvg"), ("Flower", "1.42.0"),
                         ("flmon", __version__), ("Result", "completed"),
                         ("Rounds completed", f"{ROUNDS} of {ROUNDS}")):
        assert re.search(rf"{field}\s+{re.escape(value)}", text), (field, value)
    assert re.search(r"Start\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", text)
    assert re.search(r"End\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", text)


def test_rounds_table_has_each_round_with_the_accuracy_recorded_for_it(
        report_file: Path) -> None:
    page = report_file.read_text()
    table = page[page.index("<h3>Rounds</h3>"):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr><td>(\d+)</td><td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td>"
                      r"<td>([^<]*)</td><td>([^<]*)</td></tr>", table)
    # The recorder aggregated 0.71 + 0.04 r (training), 0.72 + 0.04 r (evaluation) and
    # 0.73 + 0.04 r (centralized) in round r.
    assert rows == [(str(n), f"{71 + 4 * n:.1f}%", f"{72 + 4 * n:.1f}%", f"{73 + 4 * n:.1f}%")
                    for n in range(1, ROUNDS + 1)]


def test_every_dashboard_panel_is_in_the_report(report_file: Path,
                                                recorded: StackWithRun) -> None:
    page = report_file.read_text()
    assert recorded.stack.config is not None
    for name in grafana.DASHBOARDS:
        for panel in grafana.panels(recorded.stack.config, name):
            assert f">{panel.title}<" in page, panel.title


def test_the_poisoned_client_and_its_alert_are_shown(report_file: Path) -> None:
    page = report_file.read_text()
    text, _ = _text(report_file)
    assert f"Client {POISONED}: anomaly score 36 at" in text
    anomaly = _panel(page, "Anomaly score per client")
    assert "<svg" in anomaly and 'class="ref"' in anomaly
    rows = re.findall(r"<tr><td><span[^>]*></span>([^<]*)</td><td class=\"n\">([^<]*)</td>"
                      r"<td class=\"n\">([^<]*)</td>", anomaly)
    assert (str(POISONED), "1", "36") in rows, rows
    timeline = page[page.index('id="alerts"'):]
    assert f"FLClientUpdateAnomaly (client={POISONED})" in timeline
    # One problem seen through both metric paths is one row, resolved.
    row = re.findall(r"<tr><td>FLClientUpdateAnomaly</td>.*?</tr>", timeline)
    assert len(row) == 1 and "still firing" not in row[0] and "warning" in row[0]
    assert "A client sent an anomalous model update" in row[0]


def test_signals_without_data_say_so(report_file: Path) -> None:
    page = report_file.read_text()
    # The run had no DP: its panels are "no data", not empty axes.
    for title in ("Epsilon spent and budget", "DP noise and clipping"):
        panel = _panel(page, title)
        assert "no data" in panel and "<svg" not in panel


def test_a_hostile_client_label_reaches_the_page_as_text(report_file: Path) -> None:
    page = report_file.read_text()
    text, tags = _text(report_file)
    assert HOSTILE in text  # shown, as text
    assert "script" not in tags
    assert "<script" not in page


def test_without_config_the_federation_is_found_and_defaults_apply(
        recorded: StackWithRun, tmp_path: Path) -> None:
    assert recorded.stack.prometheus is not None
    out = tmp_path / "r.html"
    assert main(["report", "--prometheus", recorded.stack.prometheus.url, "--run", RUN_ID,
                 "--out", str(out)]) == 0
    text, _ = _text(out)
    assert "Federation hospitals" in text
    # flmon's default anomaly line (3.5), not the demo's 10, is the reference here.
    assert "FLClientUpdateAnomaly threshold 3.5" in text


def test_an_unknown_run_is_an_error_and_writes_nothing(
        recorded: StackWithRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert recorded.stack.prometheus is not None
    out = tmp_path / "r.html"
    code = main(["report", "--prometheus", recorded.stack.prometheus.url,
                 "--federation", "hospitals", "--run", "999", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "no data for run '999'" in err and RUN_ID in err
    assert not out.exists()


def test_an_unknown_federation_is_no_data(
        recorded: StackWithRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert recorded.stack.prometheus is not None
    code = main(["report", "--prometheus", recorded.stack.prometheus.url,
                 "--federation", "clinics", "--out", str(tmp_path / "r.html")])
    assert code == 1
    assert "no data: no run of federation 'clinics'" in capsys.readouterr().err


def test_the_demo_writes_report_html_into_its_work_directory(
        recorded: StackWithRun) -> None:
    import io

    stack = recorded.stack
    path = write_run_report(stack, Printer(io.StringIO()))
    assert path == stack.workdir / "report.html"
    text, _ = _text(path)
    assert f"Run id {RUN_ID}" in text


def test_unreachable_prometheus_is_an_error_on_stderr(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run([sys.executable, "-m", "flmon.cli.main", "report", "--prometheus",
                           url, "--out", str(tmp_path / "r.html")],
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 1
    assert f"cannot reach Prometheus at {url}" in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "ten minutes"], "--since"),
    (["--until", "yesterday"], "--until"),
    (["--run", 'x"}'], "--run"),
    (["--alertmanager", "file:///etc/passwd"], "--alertmanager"),
    (["--out", "/nonexistent-dir/r.html"], "--out"),
])
def test_bad_arguments_name_the_option(args: list[str], message: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code = main(["report", "--prometheus", url, "--out", str(tmp_path / "r.html"), *args])
    assert code == 2
    assert f"flmon report: error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_help_describes_every_option() -> None:
    done = subprocess.run([sys.executable, "-m", "flmon.cli.main", "report", "--help"],
                          capture_output=True, text=True, check=True, timeout=60)
    for option in ("--prometheus", "--alertmanager", "--federation", "--config", "--run",
                   "--since", "--until", "--out", "Exit codes", "self-contained"):
        assert option in done.stdout, option


def test_alerts_alertmanager_holds_are_listed_with_state_and_receivers(
        recorded: StackWithRun, tmp_path: Path) -> None:
    import datetime

    stack = recorded.stack
    assert stack.prometheus is not None and stack.alertmanager is not None
    now = datetime.datetime.now(datetime.timezone.utc)
    stack.alertmanager.post_alerts([{
        "labels": {"alertname": "FLNodeOffline", "federation": "hospitals",
                   "severity": "warning", "team": "platform", "client": "42"},
        "annotations": {"summary": "A SuperNode is <b>offline</b>"},
        "startsAt": now.isoformat(),
        "endsAt": (now + datetime.timedelta(minutes=10)).isoformat(),
    }])
    am = stack.alertmanager
    am.wait_for(lambda: [a for a in am.alerts(alertname="FLNodeOffline")
                         if a["receivers"]], 30, "FLNodeOffline routed")
    out = tmp_path / "r.html"
    assert main(["report", "--prometheus", stack.prometheus.url, "--alertmanager", am.url,
                 "--config", str(stack.workdir / "flmon.yaml"), "--out", str(out)]) == 0
    page = out.read_text()
    held = page[page.index("AlertManager at report time"):]
    row = re.findall(r"<tr><td>FLNodeOffline</td>.*?</tr>", held)
    assert len(row) == 1
    assert "<td>active</td>" in row[0]
    assert "A SuperNode is &lt;b&gt;offline&lt;/b&gt;" in row[0]
    receivers = {r["name"] for a in am.alerts(alertname="FLNodeOffline") for r in a["receivers"]}
    assert receivers and all(name in row[0] for name in receivers)
