"""Loading ``flmon.yaml``: one :class:`ConfigError` listing every problem with its path."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from flmon.config.alerts import ALERT_NAMES
from flmon.config.schema import FlmonConfig
from flmon.yamlerrors import describe_yaml_error


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
_ROOT_FIELD_RE = re.compile(r"^(datadog\.[a-z_]+): ")


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
        root_field = _ROOT_FIELD_RE.match(message)
        if err["type"] == "value_error" and loc == () and root_field:
            out.append(_loc(tuple(root_field.group(1).split(".")), message[root_field.end():]))
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
