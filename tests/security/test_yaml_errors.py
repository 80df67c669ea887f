"""YAML syntax errors in a web configuration and in ``flmon.yaml``: line and column, no text.

Each broken document holds a secret on (or next to) the broken line; neither the error
message nor its formatted traceback may contain it.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from flmon.config import ConfigError, load_config
from flmon.webconfig import WebConfigError, load_web_config

SECRET = "S3CRET-hunter2-value"

# (document, line of the error, what the problem says)
BROKEN = [
    (f"federation:\n  name: x\npassword: {SECRET}: oops\n", 3, "mapping values are not allowed"),
    (f"federation:\n  name: x\npassword: !{SECRET} x\n", 3, "constructor for the tag '...'"),
    (f"federation:\n  name: x\npassword: *{SECRET}\n", 3, "undefined alias '...'"),
    (f"federation:\n  name: x\npassword: \"{SECRET}\x00\"\n", 3, "does not accept (#x0000)"),
    (f"federation:\n\tpassword: {SECRET}\n", 2, "found character '\\t'"),
    (f"federation: [{SECRET}, x\n", 2, "expected ',' or ']'"),
]


def _flmon_yaml(path: Path) -> Exception:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


def _web_config(path: Path) -> Exception:
    with pytest.raises(WebConfigError) as info:
        load_web_config(path)
    return info.value


@pytest.mark.parametrize("load", [_flmon_yaml, _web_config], ids=["flmon.yaml", "web.yml"])
@pytest.mark.parametrize(("text", "line", "problem"), BROKEN)
def test_yaml_errors_give_line_and_column_without_the_text(
        tmp_path: Path, load: Callable[[Path], Exception], text: str, line: int,
        problem: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    error = load(path)
    message = str(error)
    assert f"not valid YAML at line {line}, column " in message
    assert problem in message
    assert str(path) in message
    assert SECRET not in message
    assert SECRET not in "".join(traceback.format_exception(error))
