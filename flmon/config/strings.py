"""Constrained strings of ``flmon.yaml`` and the strict base model of every section.

Every string that ends up in a generated file is checked against a narrow pattern here, so
that no value can carry template syntax (``{{``, ``[[``, ``{%``), quotes or newlines into
Prometheus, AlertManager, Helm or Datadog templates. Unknown keys are refused everywhere
(``extra="forbid"``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

from flmon.alerts.spec import duration_seconds

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
_ABSOLUTE_URL_RE = re.compile(
    r"^https?://[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?"
    r"(?:/[A-Za-z0-9_./%~+-]*)?$")
URL_LIKE_RE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def matching(pattern: re.Pattern[str], what: str) -> Any:
    """A validator refusing any value that does not fully match ``pattern``."""
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
    str, matching(_FEDERATION_RE, "a federation name: lowercase letters, digits, '_' or '-', "
                  "at most 24 characters, starting with a letter")
]
Identifier = Annotated[str, matching(_IDENT_RE, "an identifier")]
JobName = Annotated[str, matching(_JOB_RE, "a Prometheus job name")]
Channel = Annotated[str, matching(_CHANNEL_RE, "a Slack channel such as '#fl-alerts'")]
Target = Annotated[str, matching(_TARGET_RE, "a host:port target")]
FilePath = Annotated[str, matching(_PATH_RE, "a file path")]
EnvName = Annotated[str, matching(_ENV_RE, "an environment variable name")]
DatadogNamespace = Annotated[str, matching(_DD_NAMESPACE_RE, "a Datadog metric namespace")]
DatadogTag = Annotated[str, matching(_DD_TAG_RE, "a Datadog tag such as 'env:prod'")]
IndexPattern = Annotated[str, matching(_INDEX_PATTERN_RE, "an Elasticsearch index pattern")]
DatasourceName = Annotated[str, matching(_DATASOURCE_RE, "a Grafana datasource name")]
Url = Annotated[str, matching(_URL_RE, "a plain http(s) URL or path without quotes or braces")]
AbsoluteUrl = Annotated[str, matching(
    _ABSOLUTE_URL_RE, "an absolute http(s) URL such as https://docs.example.org/runbooks.md "
    "(scheme and host, no '#', query, quotes or braces)")]


class StrictModel(BaseModel):
    """Base of every section: unknown keys refused, values frozen, no type coercion."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
