"""Reading flmon.yaml: UTF-8 whatever the locale; every problem reported."""

from __future__ import annotations

import locale
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from flmon.config import ConfigError, load_config, parse_config

from .conftest import example_data, minimal_data, with_changes


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


def test_a_scrape_cross_check_does_not_hide_the_problems_after_it() -> None:
    data = with_changes(minimal_data(), scrape__watch={"enabled": True, "job": "flmon-exporter"},
                        slack__channels__info="fl-info")
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert [path for path, _ in info.value.problems] == ["scrape.watch.job",
                                                         "slack.channels.info"]
    assert info.value.problems[0][1].startswith("must differ from live.job (both are "
                                                "'flmon-exporter')")
