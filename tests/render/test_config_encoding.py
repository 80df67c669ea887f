"""flmon.yaml is UTF-8, whatever the locale of the machine that renders it."""

from __future__ import annotations

import locale
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from flmon.config import load_config

from .conftest import example_data


@pytest.fixture()
def ascii_locale() -> Iterator[None]:
    """The C locale (ASCII), as in a bare container without LANG."""
    old = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        assert locale.getencoding().lower() in ("ascii", "ansi_x3.4-1968")
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, old)


def test_a_non_ascii_comment_is_read_in_an_ascii_locale(tmp_path: Path,
                                                        ascii_locale: None) -> None:
    path = tmp_path / "flmon.yaml"
    data = example_data()
    data["federation"]["name"] = "zurich_hospitals"
    path.write_text("# Universitätsspital Zürich, Hôpitaux universitaires de Genève\n"
                    + yaml.safe_dump(data), encoding="utf-8")
    cfg = load_config(path)
    assert cfg.federation.name == "zurich_hospitals"
