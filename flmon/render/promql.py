"""Find the metric names a PromQL expression reads, and check them against the catalog.

This is a tokenizer, not a parser: ``promtool`` proves that expressions parse, this module
proves they name only metrics that exist. It removes string literals, label matchers,
range and subquery brackets, grouping clauses and durations, then keeps every identifier
that is not a function call, keyword or number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from flmon import catalog

_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES_RE = re.compile(r"\{[^{}]*\}")
_BRACKETS_RE = re.compile(r"\[[^\[\]]*\]")
_GROUPING_RE = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
_OFFSET_RE = re.compile(r"\boffset\s+-?[0-9a-z]+", re.IGNORECASE)
_AT_RE = re.compile(r"@\s*(?:start\(\)|end\(\)|[0-9.]+)")
_IDENT_RE = re.compile(r"(?<![A-Za-z0-9_:.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_KEYWORDS = frozenset({
    "and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left",
    "group_right", "offset", "inf", "nan", "atan2",
})
_GRAFANA_VARS_RE = re.compile(r"\$\{?__[a-z_]+\}?|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")

PROMETHEUS_SERIES = frozenset({"up"})
"""Series Prometheus writes itself that flmon's rules may read."""


def metric_names(expr: str) -> set[str]:
    """Return every metric (or recording rule) name ``expr`` selects."""
    text = _STRING_RE.sub('""', expr)
    text = _GRAFANA_VARS_RE.sub("1", text)
    while True:  # nested braces cannot occur in PromQL, but be thorough
        new = _BRACES_RE.sub(" ", text)
        if new == text:
            break
        text = new
    while True:
        new = _BRACKETS_RE.sub(" ", text)
        if new == text:
            break
        text = new
    text = _GROUPING_RE.sub(" ", text)
    text = _OFFSET_RE.sub(" ", text)
    text = _AT_RE.sub(" ", text)
    names: set[str] = set()
    for match in _IDENT_RE.finditer(text):
        ident, call = match.group(1), match.group(2)
        if call or ident.lower() in _KEYWORDS:
            continue
        names.add(ident)
    return names


def unknown_metrics(expr: str, allowed: Iterable[str] = ()) -> set[str]:
    """Names in ``expr`` that are neither catalog series, Prometheus' own, nor ``allowed``."""
    known = catalog.sample_names() | PROMETHEUS_SERIES | frozenset(allowed)
    return {name for name in metric_names(expr) if name not in known}


_SELECTOR_RE = re.compile(
    r"(?<![A-Za-z0-9_:.$])([A-Za-z_:][A-Za-z0-9_:]*)?\s*"
    r"\{((?:[^{}\"'`]|\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`)*)\}")
_MATCHER_RE = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"
    r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*(?:,|$)")


@dataclass(frozen=True)
class Matcher:
    """One label matcher of a selector: ``metric{label op "value"}``."""

    metric: str | None
    """The selector's metric name (``None`` for a selector of matchers only)."""
    label: str
    op: str
    value: str


def matchers(expr: str) -> list[Matcher]:
    """Every label matcher of every selector in ``expr``, in order.

    Raises
    ------
    ValueError
        When a selector's braces hold something that is not a list of matchers.
    """
    out: list[Matcher] = []
    for sel in _SELECTOR_RE.finditer(expr):
        metric, body = sel.group(1), sel.group(2)
        pos = 0
        while body[pos:].strip():
            m = _MATCHER_RE.match(body, pos)
            if m is None:
                raise ValueError(f"not a label matcher list: {{{body}}}")
            label, op, quoted = m.groups()
            value = quoted[1:-1]
            if quoted[0] != "`":
                value = re.sub(r"\\(.)", r"\1", value)
            out.append(Matcher(metric, label, op, value))
            pos = m.end()
    return out
