"""The ``flmon.yaml`` schema and its loader.

``flmon render`` reads one ``flmon.yaml`` per federation. Every string that ends up in a
generated file is checked against a narrow pattern here, so that no value can carry
template syntax (``{{``, ``[[``, ``{%``), quotes or newlines into Prometheus, AlertManager,
Helm or Datadog templates. Unknown keys are refused everywhere (``extra="forbid"``).

:func:`load_config` returns a :class:`FlmonConfig` or raises one :class:`ConfigError`
listing every problem with its field path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

import flmon.alerts as alerts_mod
from flmon.alerts.spec import SEVERITIES, Severity, duration_seconds
from flmon.ports import LIVE_PORT, WATCH_PORT
from flmon.yamlerrors import describe_yaml_error

__all__ = ["ALERT_NAMES", "SEVERITIES", "ConfigError", "FlmonConfig", "Severity",
           "duration_seconds", "load_config", "parse_config"]

ALERT_NAMES: tuple[str, ...] = alerts_mod.ALERT_NAMES
"""Every alert flmon renders, in the order of the rules file (declared in flmon.alerts)."""

# --- constrained strings -------------------------------------------------------------

_FEDERATION_RE = re.compile(r"^[a-z](?:[a-z0-9_-]{0,22}[a-z0-9])?$")
_IDENT_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_JOB_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.-]{0,62}$")
_CHANNEL_RE = re.compile(r"^#[a-z0-9][a-z0-9_-]{0,79}$")
_TARGET_RE = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]{0,251}[a-zA-Z0-9])?|\[[0-9a-fA-F:.]+\]):"
                        r"[0-9]{1,5}$")
_PATH_RE = re.compile(r"^[A-Za-z0-9_./-]{1,4096}$")
_ENV_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
_DD_NAMESPACE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_DD_TAG_RE = re.compile(r"^[a-z][a-z0-9_./:-]{0,199}$")
_INDEX_PATTERN_RE = re.compile(r"^[a-z0-9][a-z0-9._*-]{0,254}$")
_DATASOURCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
_URL_RE = re.compile(r"^(?:https?://[A-Za-z0-9.:\[\]-]+)?[A-Za-z0-9_./%~+-]*$")
_URL_LIKE_RE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def _matching(pattern: re.Pattern[str], what: str) -> Any:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not {what} (must match {pattern.pattern})")
        return value

    return AfterValidator(check)


def _check_duration(value: str) -> str:
    duration_seconds(value)
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]
FederationName = Annotated[
    str, _matching(_FEDERATION_RE, "a federation name: lowercase letters, digits, '_' or '-', "
                   "at most 24 characters, starting with a letter")
]
Identifier = Annotated[str, _matching(_IDENT_RE, "an identifier")]
JobName = Annotated[str, _matching(_JOB_RE, "a Prometheus job name")]
Channel = Annotated[str, _matching(_CHANNEL_RE, "a Slack channel such as '#fl-alerts'")]
Target = Annotated[str, _matching(_TARGET_RE, "a host:port target")]
FilePath = Annotated[str, _matching(_PATH_RE, "a file path")]
EnvName = Annotated[str, _matching(_ENV_RE, "an environment variable name")]
DatadogNamespace = Annotated[str, _matching(_DD_NAMESPACE_RE, "a Datadog metric namespace")]
DatadogTag = Annotated[str, _matching(_DD_TAG_RE, "a Datadog tag such as 'env:prod'")]
IndexPattern = Annotated[str, _matching(_INDEX_PATTERN_RE, "an Elasticsearch index pattern")]
DatasourceName = Annotated[str, _matching(_DATASOURCE_RE, "a Grafana datasource name")]
Url = Annotated[str, _matching(_URL_RE, "a plain http(s) URL or path without quotes or braces")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- federation and scraping ---------------------------------------------------------


class Federation(_Model):
    """The federation this configuration describes."""

    name: FederationName
    """Added as the ``federation`` target label and named in every alert."""


class ScrapeAuth(_Model):
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


class LiveScrape(_Model):
    """The ServerApp's ``/metrics`` exporter, scraped while a run is in progress."""

    enabled: bool = True
    job: JobName = "flmon-exporter"
    targets: list[Target] = Field(default_factory=lambda: [f"127.0.0.1:{LIVE_PORT}"],
                                  min_length=1)
    auth: ScrapeAuth = Field(default_factory=ScrapeAuth)


class PushgatewayScrape(_Model):
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


class WatchScrape(_Model):
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


class Scrape(_Model):
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


class Lifecycle(_Model):
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


# --- alerts --------------------------------------------------------------------------


class AlertSettings(_Model):
    """Settings of one alert. ``threshold`` and ``window`` apply where the alert uses them."""

    enabled: bool = True
    severity: Severity
    for_: Duration = Field(alias="for")
    threshold: float | None = None
    window: Duration | None = None
    team: Identifier

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @field_validator("threshold")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and (value != value or value in (float("inf"), float("-inf"))):
            raise ValueError("must be a finite number")
        return value


_ALERT_DEFAULTS: dict[str, dict[str, Any]] = {a.name: a.defaults() for a in alerts_mod.ALERTS}


def _alert_field(name: str) -> Any:
    return Field(default_factory=lambda: AlertSettings.model_validate(_ALERT_DEFAULTS[name]))


class _AlertsBase(_Model):
    """Per-alert settings; an alert left out keeps its defaults (fields: one per alert)."""

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: Any) -> Any:
        # A partial entry (say only `threshold`) keeps the other defaults of that alert.
        if not isinstance(data, Mapping):
            return data
        merged: dict[str, Any] = {}
        for key, value in data.items():
            if key in _ALERT_DEFAULTS and isinstance(value, Mapping):
                merged[key] = {**_ALERT_DEFAULTS[key], **value}
            else:
                merged[key] = value
        return merged

    @model_validator(mode="after")
    def _check_values(self) -> _AlertsBase:
        problems: list[str] = []
        for alert in alerts_mod.ALERTS:
            name = alert.name
            settings: AlertSettings = getattr(self, name)
            bounds = alert.bounds
            if bounds is None and settings.threshold is not None:
                problems.append(f"{name}.threshold: this alert takes no threshold")
            elif bounds is not None:
                if settings.threshold is None:
                    problems.append(f"{name}.threshold: required")
                elif not bounds[0] <= settings.threshold <= bounds[1]:
                    problems.append(f"{name}.threshold: must be within {bounds[0]:g}.."
                                    f"{bounds[1]:g}, got {settings.threshold:g}")
            if alert.windowed and settings.window is None:
                problems.append(f"{name}.window: required")
            if not alert.windowed and settings.window is not None:
                problems.append(f"{name}.window: this alert takes no window")
        low, drop = self.get("FLLowTrainingAccuracy"), self.get("FLModelAccuracyDropped")
        if (low.threshold is not None and drop.threshold is not None
                and drop.threshold > low.threshold):
            problems.append("FLModelAccuracyDropped.threshold: must not exceed "
                            "FLLowTrainingAccuracy.threshold (the critical alert is the "
                            "lower line)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def get(self, name: str) -> AlertSettings:
        """Return the settings of alert ``name``."""
        value: AlertSettings = getattr(self, name)
        return value

    def enabled(self) -> tuple[str, ...]:
        """Names of the enabled alerts, in rules-file order."""
        return tuple(n for n in ALERT_NAMES if self.get(n).enabled)


if TYPE_CHECKING:
    Alerts = _AlertsBase
else:
    Alerts = create_model(
        "Alerts", __base__=_AlertsBase, __doc__=_AlertsBase.__doc__,
        **{name: (AlertSettings, _alert_field(name)) for name in ALERT_NAMES})


# --- notifications -------------------------------------------------------------------


class Team(_Model):
    """A team's own Slack channel: alerts labelled ``team: <name>`` also go there."""

    channel: Channel
    severities: list[Severity] = Field(default_factory=lambda: list(SEVERITIES), min_length=1)


class SeverityChannels(_Model):
    """Slack channel per severity."""

    critical: Channel
    warning: Channel
    info: Channel


class Slack(_Model):
    """Slack notifications. The webhook URL is a secret: give a file or an env var name."""

    webhook_url_file: FilePath | None = None
    """File holding the webhook URL (AlertManager's ``api_url_file``)."""
    webhook_url_env: EnvName | None = None
    """Environment variable holding the webhook URL (for flmon's own Slack sink)."""
    channels: SeverityChannels
    teams: dict[Identifier, Team] = Field(default_factory=dict)

    webhook_url: Any = Field(default=None, exclude=True)
    """Refused: present only to explain why."""

    @field_validator("webhook_url")
    @classmethod
    def _refuse_inline_url(cls, value: Any) -> None:
        if value is not None:
            raise ValueError(
                "a webhook URL written in flmon.yaml is refused, because it is a secret and "
                "this file is committed and rendered; put the URL in a file and set "
                "webhook_url_file, or in an environment variable and set webhook_url_env")
        return None

    @field_validator("webhook_url_file", "webhook_url_env", mode="before")
    @classmethod
    def _refuse_url_as_source(cls, value: Any) -> Any:
        if isinstance(value, str) and (_URL_LIKE_RE.match(value) or "hooks." in value):
            raise ValueError(
                "looks like a URL; the webhook URL itself is a secret and is refused here: "
                "give the path of a file holding it (webhook_url_file) or the name of an "
                "environment variable (webhook_url_env)")
        return value

    @model_validator(mode="after")
    def _one_secret_source(self) -> Slack:
        if self.webhook_url_file is None and self.webhook_url_env is None:
            raise ValueError("set webhook_url_file (AlertManager reads the webhook only from a "
                             "file) or webhook_url_env")
        return self


class AlertmanagerSettings(_Model):
    """AlertManager routing and the address Prometheus sends alerts to."""

    targets: list[Target] = Field(default_factory=lambda: ["127.0.0.1:9093"], min_length=1)
    group_wait: Duration = "30s"
    group_interval: Duration = "5m"
    repeat_interval: Duration = "4h"
    resolve_timeout: Duration = "5m"


class PrometheusSettings(_Model):
    """The rendered ``prometheus.yml`` and links from alerts."""

    evaluation_interval: Duration = "15s"
    rule_files: list[FilePath] = Field(
        default_factory=lambda: ["../rules/flmon-rules.yaml"], min_length=1)
    """Rule files, relative to ``prometheus.yml``."""
    runbook_url: Url = "docs/runbooks.md"
    """Base of every alert's ``runbook_url`` (``#anchor`` is appended)."""
    rule_labels: dict[Identifier, Identifier] = Field(
        default_factory=lambda: {"release": "kube-prometheus-stack"})
    """Labels of the ``PrometheusRule`` object (a Prometheus Operator selects rules by them)."""


class Grafana(_Model):
    """Grafana dashboards."""

    datasource: DatasourceName = "Prometheus"
    url: Url = "http://127.0.0.1:3000"
    """Base URL for dashboard links in Slack messages."""
    refresh: Duration = "30s"


class Datadog(_Model):
    """Datadog Agent OpenMetrics check, monitors and dashboard."""

    namespace: DatadogNamespace = "flmon"
    tags: list[DatadogTag] = Field(default_factory=list)
    openmetrics_endpoint: Url = f"http://127.0.0.1:{LIVE_PORT}/metrics"
    notify: list[Annotated[str, _matching(re.compile(r"^@[a-z0-9][a-z0-9._#-]{0,99}$"),
                                          "a Datadog @-handle")]] = Field(default_factory=list)
    """Handles added to every monitor message (``@slack-fl-alerts``...)."""


class Elasticsearch(_Model):
    """Elasticsearch index template, ILM policy and Kibana data view."""

    index_pattern: IndexPattern = "flmon-logs-*"
    rollover_max_age: Duration = "7d"
    rollover_max_primary_shard_size_gb: int = Field(default=50, ge=1, le=1000)
    delete_after: Duration = "30d"
    shards: int = Field(default=1, ge=1, le=64)
    replicas: int = Field(default=1, ge=0, le=16)


class FlmonConfig(_Model):
    """The whole ``flmon.yaml``."""

    version: Literal[1] = 1
    federation: Federation
    scrape: Scrape = Field(default_factory=Scrape)
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    alerts: Alerts = Field(default_factory=Alerts)
    slack: Slack
    alertmanager: AlertmanagerSettings = Field(default_factory=AlertmanagerSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    grafana: Grafana = Field(default_factory=Grafana)
    datadog: Datadog = Field(default_factory=Datadog)
    elasticsearch: Elasticsearch = Field(default_factory=Elasticsearch)


# --- loading -------------------------------------------------------------------------


class ConfigError(Exception):
    """Every problem of a configuration file, each with its field path.

    Attributes
    ----------
    problems
        ``(field path, message)`` pairs, in document order.
    """

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s)"]
        lines += [f"  {path}: {message}" if path else f"  {message}" for path, message in problems]
        super().__init__("\n".join(lines))


def _loc(loc: tuple[int | str, ...], message: str) -> tuple[str, str]:
    parts = [str(p) for p in loc if p not in ("function-after", "function-before")]
    return ".".join(parts), message


_SCRAPE_FIELD_RE = re.compile(r"^((?:live|pushgateway|watch)\.[a-z_]+): ")


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        message = str(err["msg"]).removeprefix("Value error, ")
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        if err["type"] == "value_error" and "; " in message and loc[-1:] == ("alerts",):
            for part in message.split("; "):
                sub, _, text = part.partition(": ")
                out.append(_loc((*loc, *sub.split(".")), text))
            continue
        scrape_field = _SCRAPE_FIELD_RE.match(message)
        if err["type"] == "value_error" and loc[-1:] == ("scrape",) and scrape_field:
            out.append(_loc((*loc, *scrape_field.group(1).split(".")),
                            message[scrape_field.end():]))
            continue
        if err["type"] == "value_error" and message.split(".")[0] in ALERT_NAMES:
            sub, _, text = message.partition(": ")
            out.append(_loc((*loc, *sub.split(".")), text))
            continue
        out.append(_loc(loc, message))
    return out


def parse_config(data: Any, source: str = "flmon.yaml") -> FlmonConfig:
    """Validate already-parsed YAML data; raise :class:`ConfigError` on any problem."""
    if not isinstance(data, Mapping):
        raise ConfigError(source, [("", "the top level must be a mapping")])
    try:
        return FlmonConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc)) from None


def load_config(path: str | Path) -> FlmonConfig:
    """Load and validate ``flmon.yaml``.

    Raises
    ------
    ConfigError
        When the file cannot be read or parsed, or any field is invalid; the error lists
        every problem with its field path.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [("", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [("", describe_yaml_error(exc, text))]) from None
    return parse_config(data, source)
