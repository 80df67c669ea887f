"""The built wheel, installed into a fresh virtualenv, runs ``flmon demo`` in an empty
directory: nothing the demo needs (reference apps, templates) comes from the checkout, and
no test fake ships.

The wheel is built from a copy of the package sources (``pip wheel``, build isolation as
a user's build). The fresh venv gets the wheel with ``--no-deps``; its dependencies come
from the venv running the tests through a ``.pth`` line (a plain path line: that venv's
own ``.pth`` files, among them the editable install of the checkout, are not read). The
Flower programs the demo starts get this venv's interpreter, so the SuperLink's ServerApp
and the SuperNodes' ClientApps import the installed flmon too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
FLOWER_PROGRAMS = ("flwr", "flower-superlink", "flower-supernode", "flower-superexec",
                   "flwr-serverapp", "flwr-clientapp", "flwr-simulation")


def _build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "flmon", src / "flmon",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp / "dist"
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "-w", str(dist), str(src)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    [wheel] = dist.glob("flmon-*.whl")
    return wheel


def _fresh_venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                           "-q", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True, timeout=60).stdout.strip())
    (site / "zz_shared_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # The Flower programs with this venv's interpreter (pip's console scripts: a shebang,
    # then the import of their entry point).
    here = Path(sys.executable).parent
    for name in FLOWER_PROGRAMS:
        script = here / name
        if script.is_file():
            body = script.read_text().split("\n", 1)[1]
            (venv / "bin" / name).write_text(f"#!{python}\n{body}")
            (venv / "bin" / name).chmod(0o755)
    return venv


def test_the_installed_wheel_runs_the_demo_in_an_empty_directory(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("tests/") or "/fakes/" in n
                or n.endswith("loopback.py")], "test code in the wheel"
    for shipped in ("flmon/reference/healthcare/pyproject.toml",
                    "flmon/reference/healthcare/healthcare/server_app.py",
                    "flmon/reference/fraud/pyproject.toml",
                    "flmon/reference/fraud/fraud/client_app.py",
                    "flmon/templates/prometheus/prometheus.yml"):
        assert shipped in names

    venv = _fresh_venv(tmp_path, wheel)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import flmon.reference as r; print(r.__file__, r.APPS_DIR)"],
                           cwd=empty, env=env, capture_output=True, text=True, timeout=60,
                           check=True).stdout
    assert where.startswith(str(venv)) and str(REPO) not in where, where

    demo = subprocess.run([str(venv / "bin" / "flmon"), "demo", "--rounds", "2"], cwd=empty,
                          env=env, capture_output=True, text=True, timeout=900, check=False)
    (tmp_path / "demo.out").write_text(demo.stdout + demo.stderr)  # kept for a failure
    summary = demo.stdout[demo.stdout.find("=== summary"):]
    assert demo.returncode == 0, (summary, demo.stderr[-4000:])
    assert re.search(r"^rounds +2/2 completed", demo.stdout, re.M), demo.stdout[-4000:]
    assert (empty / ".flmon-demo" / "report.html").is_file()
