"""``flmon report``: one run as a self-contained HTML page, from Prometheus and AlertManager.

:func:`collect` queries (the Grafana dashboards' own PromQL, see :mod:`flmon.report.collect`),
:func:`render_html` draws, :func:`write_report` does both and writes the file whole or not
at all.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from flmon.report.client import ReportError
from flmon.report.collect import ReportRequest, collect
from flmon.report.model import Report
from flmon.report.page import render_html

__all__ = ["Report", "ReportError", "ReportRequest", "collect", "render_html", "write_report"]


def write_report(req: ReportRequest, out: Path) -> Report:
    """Collect the report and write it to ``out`` atomically; return what was drawn.

    Raises
    ------
    ReportError
        Prometheus (or AlertManager) unreachable or refusing a query, or no data for the
        run; ``out`` is left untouched.
    """
    report = collect(req)
    text = render_html(report)
    out = Path(out)
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise ReportError(f"--out {out}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return report
