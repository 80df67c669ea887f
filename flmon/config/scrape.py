"""The federation, how Prometheus scrapes flmon's metrics, and how long ended runs alert."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from flmon.alerts.spec import duration_seconds
from flmon.config.strings import (
    Duration,
    FederationName,
    FilePath,
    Identifier,
    JobName,
    StrictModel,
    Target,
)
from flmon.ports import LIVE_PORT, WATCH_PORT


class Federation(StrictModel):
    """The federation this configuration describes."""

    name: FederationName
    """Added as the ``federation`` target label and named in every alert."""


class ScrapeAuth(StrictModel):
    """How Prometheus authenticates to a hardened target (TLS, basic auth or a token).

    Only file paths go here, never the secrets themselves: Prometheus reads
    ``basic_auth.password_file`` and ``authorization.credentials_file`` at scrape time.
    """

    scheme: Literal["http", "https"] = "http"
    ca_file: FilePath | None = None
    """CA bundle that signed the target's certificate (``tls_config.ca_file``)."""
    cert_file: FilePath | None = None
    """Client certificate, for targets that require mutual TLS."""
    key_file: FilePath | None = None
    username: Identifier | None = None
    password_file: FilePath | None = None
    bearer_token_file: FilePath | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ScrapeAuth:
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and password_file go together")
        if self.username is not None and self.bearer_token_file is not None:
            raise ValueError("use basic auth (username, password_file) or "
                             "bearer_token_file, not both")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.scheme == "http" and any(
            v is not None for v in (self.ca_file, self.cert_file)
        ):
            raise ValueError("ca_file and cert_file need scheme: https")
        return self

    def metrics_url(self, target: str) -> str:
        """``target``'s ``/metrics`` URL with this scheme (how a checker other than
        Prometheus, such as the Datadog Agent, names the same endpoint)."""
        return f"{self.scheme}://{target}/metrics"

    def scrape_fields(self) -> dict[str, Any]:
        """The job-level keys of a Prometheus scrape config (empty for plain HTTP)."""
        fields: dict[str, Any] = {}
        if self.scheme == "https":
            fields["scheme"] = "https"
            tls: dict[str, str] = {}
            if self.ca_file is not None:
                tls["ca_file"] = self.ca_file
            if self.cert_file is not None and self.key_file is not None:
                tls["cert_file"] = self.cert_file
                tls["key_file"] = self.key_file
            if tls:
                fields["tls_config"] = tls
        if self.username is not None:
            fields["basic_auth"] = {"username": self.username,
                                    "password_file": self.password_file}
        if self.bearer_token_file is not None:
            fields["authorization"] = {"type": "Bearer",
                                       "credentials_file": self.bearer_token_file}
        return fields


class LiveScrape(StrictModel):
    """The ServerApp's ``/metrics`` exporter, scraped while a run is in progress."""

    enabled: bool = True
    job: JobName = "flmon-exporter"
    targets: list[Target] = Field(default_factory=lambda: [f"127.0.0.1:{LIVE_PORT}"],
                                  min_length=1)
    auth: ScrapeAuth = Field(default_factory=ScrapeAuth)


class PushgatewayScrape(StrictModel):
    """The Prometheus Pushgateway the instrumented strategy pushes to."""

    enabled: bool = True
    job: JobName = "flmon-pushgateway"
    pushed_job: JobName = "flmon"
    """``job`` label of the pushed series (kept by ``honor_labels: true``)."""
    targets: list[Target] = Field(default_factory=lambda: ["127.0.0.1:9091"], min_length=1)
    auth: ScrapeAuth = Field(default_factory=ScrapeAuth)

    @model_validator(mode="after")
    def _distinct_jobs(self) -> PushgatewayScrape:
        if self.job == self.pushed_job:
            raise ValueError("job and pushed_job must differ: the Pushgateway's own 'up' "
                             "series and the pushed fl_* series are told apart by job")
        return self


class WatchScrape(StrictModel):
    """``flmon watch``: the SuperLink's runs and nodes, scraped always (between runs too).

    On by default: the watch is the only part that sees the federation between runs, so a
    stack without it would be blind there without saying so. A watch that is not deployed
    (or not reachable) pages as FLSuperLinkDown; turn this off only on purpose.
    """

    enabled: bool = True
    job: JobName = "flmon-watch"
    targets: list[Target] = Field(default_factory=lambda: [f"127.0.0.1:{WATCH_PORT}"],
                                  min_length=1)
    auth: ScrapeAuth = Field(default_factory=ScrapeAuth)


class Scrape(StrictModel):
    """How Prometheus reaches flmon's metrics."""

    interval: Duration = "15s"
    live: LiveScrape = Field(default_factory=LiveScrape)
    pushgateway: PushgatewayScrape = Field(default_factory=PushgatewayScrape)
    watch: WatchScrape = Field(default_factory=WatchScrape)

    @model_validator(mode="after")
    def _one_source(self) -> Scrape:
        if not self.live.enabled and not self.pushgateway.enabled:
            raise ValueError("enable at least one of live and pushgateway")
        jobs: list[tuple[str, str]] = []
        if self.live.enabled:
            jobs.append(("live.job", self.live.job))
        if self.pushgateway.enabled:
            jobs += [("pushgateway.job", self.pushgateway.job),
                     ("pushgateway.pushed_job", self.pushgateway.pushed_job)]
        if self.watch.enabled:
            jobs.append(("watch.job", self.watch.job))
        seen: dict[str, str] = {}
        for where, job in jobs:
            if job in seen:
                raise ValueError(f"{where}: must differ from {seen[job]} (both are {job!r}): "
                                 "series of different sources would merge and sums double")
            seen[job] = where
        return self

    @property
    def metric_jobs(self) -> tuple[str, ...]:
        """``job`` values of the ServerApp's ``fl_*`` series (live exporter, then pushed)."""
        jobs: list[str] = []
        if self.live.enabled:
            jobs.append(self.live.job)
        if self.pushgateway.enabled:
            jobs.append(self.pushgateway.pushed_job)
        return tuple(jobs)


class Lifecycle(StrictModel):
    """How long the alerts of an ended run last."""

    stale_after: Duration = "30m"
    """Alerts of an ended run (other than those about a run in progress, which resolve at
    its end) resolve this long after it ended; ``flmon watch`` deletes the run's
    Pushgateway group then."""

    @field_validator("stale_after")
    @classmethod
    def _positive(cls, value: str) -> str:
        if duration_seconds(value) <= 0:
            raise ValueError("must be longer than 0s")
        return value
