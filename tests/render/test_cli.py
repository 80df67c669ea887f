"""`flmon render --help` and the import weight of the command."""

from __future__ import annotations

import subprocess
import sys

from .conftest import EXAMPLE, REPO, run_flmon


def test_help_is_complete() -> None:
    result = run_flmon("render", "--help")
    assert result.returncode == 0
    for word in ("--config", "--out", "--only", "--check", "prometheus", "alertmanager",
                 "grafana", "kibana", "datadog", "elasticsearch", "helm", "exit status",
                 "examples/flmon.yaml", "FLMON_CONFIG"):
        assert word in result.stdout, word
    top = run_flmon("--help")
    assert "render" in top.stdout


def test_render_imports_neither_flower_nor_tensorflow(tmp_path: object) -> None:
    code = (
        "import sys\n"
        "from flmon.cli.main import main\n"
        f"rc = main(['render', '--config', {str(EXAMPLE)!r}, '--out', {str(tmp_path)!r}, "
        "'--quiet'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'flwr', 'tensorflow', 'keras', 'torch', 'grpc'})\n"
        "print(rc, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0 []"
