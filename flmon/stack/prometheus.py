"""A real Prometheus server on loopback, with a query API helper.

The configuration is written to the work directory with the rule files it names
rewritten to absolute paths of copies in ``WORKDIR/rules``, so the run does not depend
on where the caller keeps them. Scrape and evaluation intervals can be shortened for
tests; the configuration shipped to users is not touched.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from flmon.stack import http
from flmon.stack.ports import LOOPBACK
from flmon.stack.server import LoopbackServer

T = TypeVar("T")


class PrometheusQueryError(RuntimeError):
    """The query API answered with ``status: error``."""


def rule_files_in(path: Path) -> list[Path]:
    """Rule files of ``path``: the file itself, or the Prometheus rule files in a directory.

    In a directory, only top-level ``*.yml``/``*.yaml`` files with a ``groups`` key and no
    Kubernetes ``kind`` are taken (a rendered ``PrometheusRule`` object is not a rule file).
    """
    if path.is_file():
        return [path]
    found: list[Path] = []
    for candidate in sorted([*path.glob("*.yaml"), *path.glob("*.yml")]):
        doc = yaml.safe_load(candidate.read_text())
        if isinstance(doc, dict) and "groups" in doc and "kind" not in doc:
            found.append(candidate)
    return found


class Prometheus(LoopbackServer):
    """Prometheus on ``127.0.0.1:port`` with its TSDB in a work directory.

    Parameters
    ----------
    config
        The configuration, as a mapping or a YAML file. ``rule_files`` in it are
        replaced by ``rules``.
    rules
        Rule files, or directories of rule files (see :func:`rule_files_in`).
    workdir
        Where the configuration, rules, TSDB and log go; a fresh temporary directory
        (removed on stop) when omitted.
    port
        Listen port; a free one when omitted.
    scrape_interval, evaluation_interval
        Override the ``global`` intervals (e.g. ``"1s"`` in tests).
    binary
        The ``prometheus`` program.
    """

    process_name = "prometheus"
    display_name = "Prometheus"

    def __init__(
        self,
        config: Mapping[str, Any] | Path,
        *,
        rules: Sequence[Path] = (),
        workdir: Path | None = None,
        port: int | None = None,
        scrape_interval: str | None = None,
        evaluation_interval: str | None = None,
        binary: str = "prometheus",
        ready_timeout: float = 30.0,
    ) -> None:
        if isinstance(config, Path):
            loaded = yaml.safe_load(config.read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{config}: not a Prometheus configuration")
            config = loaded
        self._config: dict[str, Any] = dict(config)
        self._rules = [Path(r) for r in rules]
        super().__init__(workdir=workdir, port=port, binary=binary, ready_timeout=ready_timeout)
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.config_path = self.workdir / "prometheus.yml"

    @property
    def rule_files(self) -> list[Path]:
        """The rule files loaded (copies in the work directory), after :meth:`start`."""
        return sorted((self.workdir / "rules").glob("*"))

    def prepare(self) -> None:
        """Write the configuration and copy the rule files next to it."""
        super().prepare()
        rules_dir = self.workdir / "rules"
        rules_dir.mkdir(exist_ok=True)
        copied: list[str] = []
        for source in self._rules:
            for rule_file in rule_files_in(source):
                target = rules_dir / rule_file.name
                shutil.copyfile(rule_file, target)
                copied.append(str(target.resolve()))
        config = dict(self._config)
        config["rule_files"] = copied
        glob = dict(config.get("global") or {})
        if self.scrape_interval:
            glob["scrape_interval"] = self.scrape_interval
            glob["scrape_timeout"] = self.scrape_interval
        if self.evaluation_interval:
            glob["evaluation_interval"] = self.evaluation_interval
        config["global"] = glob
        if self.scrape_interval:
            for job in config.get("scrape_configs") or []:
                job.pop("scrape_interval", None)
                job.pop("scrape_timeout", None)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def argv(self, port: int) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--web.listen-address={LOOPBACK}:{port}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            "--storage.tsdb.retention.time=1d",
            f"--web.external-url=http://{LOOPBACK}:{port}",
            "--web.enable-lifecycle",
            "--log.level=info",
        ]

    def api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``; raise on ``status: error``."""
        payload = http.get_json(f"{self.url}/api/v1/{path}", params)
        if payload.get("status") != "success":
            raise PrometheusQueryError(f"{path} {params}: {payload}")
        return payload["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; the result vector as ``[{"metric": {...}, "value": [t, "v"]}]``."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", params)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_value(self, expr: str) -> float | None:
        """The single value of an instant query, ``None`` when empty; raise if several."""
        result = self.query(expr)
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusQueryError(f"{expr}: {len(result)} series, expected one")
        return float(result[0]["value"][1])

    def query_range(
        self, expr: str, start: float, end: float, step: float = 1.0
    ) -> list[dict[str, Any]]:
        """Range query; ``[{"metric": {...}, "values": [[t, "v"], ...]}]``."""
        data = self.api(
            "query_range",
            {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}"},
        )
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing) as ``/api/v1/alerts`` lists them."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def firing(self, alertname: str | None = None) -> list[dict[str, Any]]:
        """Firing alerts, optionally only those named ``alertname``."""
        return [
            a for a in self.alerts()
            if a.get("state") == "firing"
            and (alertname is None or a["labels"].get("alertname") == alertname)
        ]

    def rules(self) -> list[dict[str, Any]]:
        """Rule groups as ``/api/v1/rules`` lists them."""
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets."""
        targets: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return targets

    def wait_targets_up(self, timeout: float = 30.0) -> None:
        """Wait until every active target's last scrape succeeded."""
        self.wait_for(
            lambda: (t := self.targets()) and all(x["health"] == "up" for x in t),
            timeout,
            "all targets up",
        )

    def reload(self) -> None:
        """Ask Prometheus to reload its configuration and rules."""
        status, body = http.request("POST", f"{self.url}/-/reload")
        if status != 200:
            raise http.HTTPError(f"{self.url}/-/reload", status, body.decode(errors="replace"))
