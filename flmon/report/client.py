"""Read-only clients of Prometheus' HTTP API and AlertManager's v2 API for ``flmon report``.

Plain ``urllib``, JSON in, one error type: a server that cannot be reached or answers
with an error raises :class:`ReportError` naming the URL, so the command can say what
went wrong and exit non-zero.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml


class ReportError(Exception):
    """Why a report cannot be written (unreachable server, bad answer, no data)."""


def check_url(url: str, what: str) -> str:
    """``url`` without a trailing slash; :class:`ReportError` unless it is http(s)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ReportError(f"{what}: {url!r} is not an http:// or https:// URL")
    return url.rstrip("/")


def _get_json(url: str, params: Mapping[str, str], what: str, timeout: float) -> Any:
    full = f"{url}?{urllib.parse.urlencode(params)}" if params else url
    req = urllib.request.Request(full, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", errors="replace")[:300]
        raise ReportError(f"{what} at {url} answered HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ReportError(f"cannot reach {what} at {url}: {reason}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise ReportError(f"{what} at {url} did not answer JSON") from None


@dataclass(frozen=True)
class RangeSeries:
    """One series of a range query: its labels and ``(unix time, value)`` points.

    Non-finite values (``NaN``, ``+Inf``) are dropped: they are gaps on a chart.
    """

    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]


class PrometheusClient:
    """Prometheus' query API (``/api/v1/query``, ``query_range``, ``rules``, ``status``).

    Parameters
    ----------
    url
        Base URL, e.g. ``http://127.0.0.1:9090``.
    timeout
        Seconds per request.
    """

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = check_url(url, "--prometheus")
        self.timeout = timeout
        self.requests = 0

    def api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """``data`` of ``GET /api/v1/<path>``; :class:`ReportError` unless ``success``."""
        self.requests += 1
        payload = _get_json(f"{self.url}/api/v1/{path}", params or {}, "Prometheus",
                            self.timeout)
        if not isinstance(payload, dict) or payload.get("status") != "success":
            error = payload.get("error") if isinstance(payload, dict) else payload
            raise ReportError(f"Prometheus at {self.url} refused {path}: {error}")
        return payload.get("data")

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[RangeSeries]:
        """A range query as :class:`RangeSeries`, finite points only."""
        data = self.api("query_range", {"query": expr, "start": f"{start:.3f}",
                                        "end": f"{end:.3f}", "step": f"{step:g}"})
        out: list[RangeSeries] = []
        for item in data.get("result", []):
            points: list[tuple[float, float]] = []
            for t, v in item.get("values", []):
                value = float(v)
                if math.isfinite(value):
                    points.append((float(t), value))
            out.append(RangeSeries(dict(item.get("metric", {})), tuple(points)))
        return out

    def query(self, expr: str, at: float) -> list[tuple[dict[str, str], float]]:
        """An instant query at ``at``: ``(labels, value)`` of each element of the vector."""
        data = self.api("query", {"query": expr, "time": f"{at:.3f}"})
        if data.get("resultType") == "scalar":
            return [({}, float(data["result"][1]))]
        return [(dict(item.get("metric", {})), float(item["value"][1]))
                for item in data.get("result", [])]

    def scrape_interval(self) -> float | None:
        """The global scrape interval of the loaded configuration, in seconds, if readable."""
        from flmon.config import duration_seconds

        try:
            text = self.api("status/config").get("yaml", "")
            doc = yaml.safe_load(text) or {}
            value = (doc.get("global") or {}).get("scrape_interval")
            return duration_seconds(str(value)) if value else None
        except (ReportError, ValueError, AttributeError, yaml.YAMLError):
            return None

    def alert_summaries(self) -> dict[str, str]:
        """Alert name -> the rule's static ``summary`` annotation, from ``/api/v1/rules``."""
        out: dict[str, str] = {}
        for group in self.api("rules", {"type": "alert"}).get("groups", []):
            for rule in group.get("rules", []):
                summary = (rule.get("annotations") or {}).get("summary")
                if rule.get("name") and summary:
                    out.setdefault(str(rule["name"]), str(summary))
        return out


class AlertmanagerClient:
    """AlertManager's ``GET /api/v2/alerts`` (active, silenced and inhibited alerts)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = check_url(url, "--alertmanager")
        self.timeout = timeout

    def alerts(self) -> list[dict[str, Any]]:
        params = {"active": "true", "silenced": "true", "inhibited": "true",
                  "unprocessed": "true"}
        data = _get_json(f"{self.url}/api/v2/alerts", params, "AlertManager", self.timeout)
        if not isinstance(data, list):
            raise ReportError(f"AlertManager at {self.url} answered something other than a "
                              "list of alerts")
        return [a for a in data if isinstance(a, dict)]
