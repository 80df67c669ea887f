"""Shared helpers of the render tests: configs, renders into tmp dirs, the real tools."""

from __future__ import annotations

import contextlib
import copy
import io
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from flmon.config import FlmonConfig, parse_config
from flmon.render import render, write

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "flmon.yaml"


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:  # a missing tool is a broken setup (`make setup`), not a skip
        pytest.fail(f"{name} is not installed: run `make system-deps`")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return require_tool("amtool")


def example_data() -> dict[str, Any]:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def minimal_data() -> dict[str, Any]:
    return {
        "federation": {"name": "hospitals_eu"},
        "slack": {"webhook_url_file": "/run/secrets/slack-webhook",
                  "channels": {"critical": "#fl-critical", "warning": "#fl-alerts",
                               "info": "#fl-info"}},
    }


def demo_data() -> dict[str, Any]:
    """Short `for:` durations and windows, as demos and end-to-end tests use."""
    data = copy.deepcopy(example_data())
    data["federation"]["name"] = "demo"
    for alert in data["alerts"].values():
        alert["for"] = "30s" if alert["for"] != "0m" else "0m"
        if "window" in alert:
            alert["window"] = "2m"
    data["alerts"]["FLRoundStalled"]["threshold"] = 90
    return data


def with_changes(data: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Deep-copy ``data`` and set dotted keys (``alerts.FLRoundStalled.threshold=60``)."""
    out = copy.deepcopy(data)
    for dotted, value in changes.items():
        node = out
        *parents, last = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return out


def render_into(out: Path, data: dict[str, Any]) -> dict[str, str]:
    cfg: FlmonConfig = parse_config(data)
    files = render(cfg)
    write(files, out)
    return files


def run_flmon(*args: str, cwd: Path = REPO,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flmon.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, env=env, check=False)


def flmon_main(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``flmon`` CLI in this process (faster than a subprocess), capturing output."""
    from flmon.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def run_tool(*args: str, cwd: Path | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          check=False)


def am_config(out: Path, tmp_path: Path, url: str = "http://127.0.0.1:9/hook") -> Path:
    """The rendered alertmanager.yml, its api_url_file pointed at a file that exists."""
    hook = tmp_path / "slack-webhook-url"
    hook.write_text(url + "\n", encoding="utf-8")
    text = (out / "alertmanager/alertmanager.yml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    files = {c["api_url_file"] for r in doc["receivers"] for c in r["slack_configs"]}
    assert files == {"/etc/alertmanager/secrets/slack-webhook-url"}
    path = out / "alertmanager/alertmanager-test.yml"
    path.write_text(text.replace("/etc/alertmanager/secrets/slack-webhook-url", str(hook)),
                    encoding="utf-8")
    return path
