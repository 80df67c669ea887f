"""One list of render targets (flmon.render_targets): the renderers, --only and --help use it."""

from __future__ import annotations

import fnmatch
import re

import pytest

from flmon.config import load_config
from flmon.render import TARGETS, render
from flmon.render_targets import RENDER_TARGETS, TARGET_NAMES, target_of

from .conftest import EXAMPLE, REPO, run_flmon


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return render(load_config(EXAMPLE))


def test_every_target_renders_files_under_its_own_prefixes(files: dict[str, str]) -> None:
    assert TARGETS == TARGET_NAMES
    by_target: dict[str, list[str]] = {}
    for rel in files:
        by_target.setdefault(target_of(rel), []).append(rel)
    assert sorted(by_target) == sorted(TARGET_NAMES)
    for target in RENDER_TARGETS:
        assert all(rel.startswith(target.prefixes) for rel in by_target[target.name])
    for name in ("prometheus", "helm"):  # --only keeps a target's files, and only them
        assert render(load_config(EXAMPLE), only=[name]).keys() == set(by_target[name])
    with pytest.raises(ValueError, match="no target renders"):
        target_of("somewhere/else.yaml")


def test_the_help_names_each_target_and_files_it_writes(files: dict[str, str]) -> None:
    help_text = run_flmon("render", "--help").stdout
    for target in RENDER_TARGETS:
        assert re.search(rf"^  {target.name} +\S", help_text, re.MULTILINE), target.name
        if target.name == "helm":
            continue
        # Each pattern the help lists ("a/*.yaml", "b/{x,y}.json") matches a rendered file.
        for line in target.files:
            for pattern in filter(None, re.split(r",\s*(?![^{]*\})", line.strip())):
                braces = re.search(r"\{([^}]*)\}", pattern)
                names = [pattern] if braces is None else [
                    pattern.replace(braces.group(0), alt) for alt in braces.group(1).split(",")]
                for glob in names:
                    assert any(fnmatch.fnmatch(rel, glob) for rel in files), glob


def test_the_configuration_docs_name_exactly_the_targets() -> None:
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    line = next(row for row in text.splitlines() if row.startswith("| `--only"))
    assert re.findall(r"`([a-z]+)`", line.split("|")[2]) == list(TARGET_NAMES)
