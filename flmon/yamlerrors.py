"""YAML syntax errors reported by line and column, never with the offending text.

PyYAML's own message quotes the broken line (with a caret under it), and some problems
quote a tag, an anchor or a token's text. A configuration file may hold a secret on that
very line (a password pasted where a file path belongs), and the message ends up on a
terminal, in CI logs or in a pod's events. :func:`describe_yaml_error` keeps the position
and the kind of problem, and drops everything taken from the document.
"""

from __future__ import annotations

import re

import yaml

# A quoted segment of PyYAML's problem text: kept only when it is a token name such as
# '<block end>' or one (escaped) character such as '\t'; anything else came from the file.
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")
_HARMLESS = re.compile(r"<[a-z ]+>|\\?.|\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}", re.DOTALL)


def _scrub(problem: str) -> str:
    def keep_or_drop(match: re.Match[str]) -> str:
        content = match.group(1) if match.group(1) is not None else match.group(2)
        return match.group(0) if _HARMLESS.fullmatch(content) else "'...'"

    return _QUOTED.sub(keep_or_drop, problem)


def describe_yaml_error(exc: yaml.YAMLError, text: str = "") -> str:
    """``not valid YAML at line L, column C: <problem>``, without the document's text.

    Parameters
    ----------
    exc
        The error PyYAML raised.
    text
        The document; used to place errors PyYAML reports by offset only.
    """
    problem = "cannot be parsed"
    line = column = None
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            line, column = mark.line + 1, mark.column + 1
        if exc.problem:
            problem = _scrub(exc.problem)
    elif isinstance(exc, yaml.reader.ReaderError):
        before = text[:exc.position]
        line = before.count("\n") + 1
        column = exc.position - (before.rfind("\n") + 1) + 1
        problem = f"a character that YAML does not accept (#x{exc.character:04x})" \
            if isinstance(exc.character, int) else "bytes that are not valid text"
    where = f" at line {line}, column {column}" if line is not None else ""
    return f"not valid YAML{where}: {problem} (the text of the line is not shown)"
