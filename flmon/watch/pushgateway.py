"""Delete the Pushgateway groups of runs that ended more than ``stale_after`` ago.

The ServerApp pushes into a group keyed by ``run_id`` (with ``job`` and any further
grouping labels). A group lives on in the Pushgateway after its run ended; the watch
deletes it once the run is over for ``stale_after``:

- a run the SuperLink reports as finished: ``stale_after`` after its ``finished_at``;
- a run the SuperLink does not know (another SuperLink's state, or a SuperLink restarted
  without persistent state): ``stale_after`` after the group's own
  ``fl_run_end_timestamp_seconds`` or, when the run never recorded an end (its ServerApp
  was killed), after the group's last push.

Groups without a ``run_id`` label and groups of unfinished runs are never touched. Every
HTTP call has a timeout; a Pushgateway that is down is counted, logged and retried at the
next sweep, and never delays a poll of the SuperLink beyond that timeout.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.exposition import basic_auth_handler, default_handler, delete_from_gateway

from flmon.watch.control import RunView

log = logging.getLogger("flmon.watch")

RUN_ID_LABEL = "run_id"


@dataclass(frozen=True)
class Group:
    """One Pushgateway group: its grouping labels and what flmon reads of it."""

    labels: dict[str, str]
    push_time: float | None
    run_active: float | None
    run_end: float | None


def _gauge_value(entry: Mapping[str, Any]) -> float | None:
    metrics = entry.get("metrics") or []
    for metric in metrics:
        try:
            return float(metric["value"])
        except (KeyError, TypeError, ValueError):
            continue
    return None


def parse_groups(payload: Mapping[str, Any]) -> list[Group]:
    """The groups of a ``GET /api/v1/metrics`` answer."""
    groups: list[Group] = []
    for item in payload.get("data") or []:
        if not isinstance(item, dict) or not isinstance(item.get("labels"), dict):
            continue
        labels = {str(k): str(v) for k, v in item["labels"].items()}
        groups.append(Group(
            labels=labels,
            push_time=_gauge_value(item.get("push_time_seconds") or {}),
            run_active=_gauge_value(item.get("fl_run_active") or {}),
            run_end=_gauge_value(item.get("fl_run_end_timestamp_seconds") or {}),
        ))
    return groups


def is_stale(group: Group, runs: Mapping[int, RunView], now: float, stale_after: float) -> bool:
    """Whether ``group`` belongs to a run that ended more than ``stale_after`` ago."""
    try:
        run_id = int(group.labels[RUN_ID_LABEL])
    except (KeyError, ValueError):
        return False
    run = runs.get(run_id)
    if run is not None:
        if not run.finished or run.finished_at is None:
            return False
        return now - run.finished_at > stale_after
    if group.run_active == 0 and group.run_end:
        return now - group.run_end > stale_after
    if group.push_time is not None:
        return now - group.push_time > stale_after
    return False


class PushgatewayJanitor:
    """Lists the Pushgateway's groups and deletes the stale ones.

    Parameters
    ----------
    url
        Base URL of the Pushgateway (``http://host:9091``); ``host:port`` means http.
    stale_after
        Seconds after a run's end before its group is deleted.
    timeout
        Seconds for each HTTP call.
    username, password
        HTTP basic credentials of a Pushgateway behind a web config (use ``https://``).
    """

    def __init__(self, url: str, stale_after: float, timeout: float = 5.0,
                 username: str | None = None, password: str | None = None) -> None:
        if stale_after < 0:
            raise ValueError("stale_after must be >= 0")
        self.url = url if "://" in url else f"http://{url}"
        self.url = self.url.rstrip("/")
        self.stale_after = stale_after
        self.timeout = timeout
        self._headers = {"Accept": "application/json"}
        self._handler: Callable[..., Callable[[], None]] = default_handler
        if username is not None:
            user, secret = username, password or ""
            token = base64.b64encode(f"{user}:{secret}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

            def handler(url: str, method: str, timeout: float | None,
                        headers: list[tuple[str, str]], data: bytes) -> Callable[[], None]:
                return basic_auth_handler(url, method, timeout, headers, data, user, secret)

            self._handler = handler

    def groups(self) -> list[Group]:
        request = urllib.request.Request(f"{self.url}/api/v1/metrics", headers=self._headers)
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            payload = json.loads(response.read(64 * 1024 * 1024))
        return parse_groups(payload if isinstance(payload, dict) else {})

    def sweep(self, runs: Mapping[int, RunView], now: float) -> tuple[int, int]:
        """Delete stale groups; return (deleted, errors). Never raises."""
        try:
            groups = self.groups()
        except Exception as exc:  # noqa: BLE001 - a sink that is down never blocks
            log.warning("cannot list the Pushgateway's groups at %s: %s", self.url, exc)
            return 0, 1
        deleted = errors = 0
        for group in groups:
            if not is_stale(group, runs, now, self.stale_after):
                continue
            key = {k: v for k, v in group.labels.items() if k != "job"}
            try:
                delete_from_gateway(self.url, job=group.labels.get("job", ""),
                                    grouping_key=key, timeout=self.timeout,
                                    handler=self._handler)
            except Exception as exc:  # noqa: BLE001
                errors += 1
                log.warning("cannot delete Pushgateway group %s: %s", group.labels, exc)
                continue
            deleted += 1
            log.info("deleted the Pushgateway group of ended run %s",
                     group.labels[RUN_ID_LABEL])
        return deleted, errors
