"""The telemetry allow-list: encode on the client, validate on the server."""

from __future__ import annotations

import math
from typing import Any

import pytest

from flmon import telemetry


def test_encode_keeps_only_allow_listed_finite_numbers() -> None:
    record = telemetry.encode({"duration_s": 1.5, "epochs": 2.7, "loss": math.nan,
                               "secret": 3, "accuracy": 1.7, "round": None})
    assert record == {"v": 1, "duration_s": 1.5, "epochs": 2, "accuracy": 1.0}


def test_encoded_records_always_validate() -> None:
    record = telemetry.encode({f.name: f.high * 2 for f in telemetry.FIELDS})
    result = telemetry.validate(record)
    assert result.accepted and result.rejected == []
    assert set(result.values) == {f.name for f in telemetry.FIELDS} - {"v"}


@pytest.mark.parametrize(
    ("record", "reasons", "kept"),
    [
        ("not a mapping", ["not_a_record"], {}),
        ({f"k{i}": 1.0 for i in range(10_000)}, ["oversized"], {}),
        ({"duration_s": 1.0}, ["bad_version"], {}),
        ({"v": 2, "duration_s": 1.0}, ["bad_version"], {}),
        ({"v": True, "duration_s": 1.0}, ["bad_version"], {}),
        ({"v": 1, "duration_s": math.nan}, ["non_finite"], {}),
        ({"v": 1, "duration_s": math.inf, "epochs": 3}, ["non_finite"], {"epochs": 3.0}),
        ({"v": 1, "loss": "0.3"}, ["non_numeric"], {}),
        ({"v": 1, "loss": True}, ["non_numeric"], {}),
        ({"v": 1, "accuracy": 7.0}, ["out_of_bounds"], {}),
        ({"v": 1, "epochs": -1}, ["out_of_bounds"], {}),
        ({"v": 1, 'x"} 1\nfl_injected 1': 1.0, "steps": 5},
         ["unknown_key"], {"steps": 5.0}),
        ({"v": 1, "x" * 1_000_000: 1.0}, ["unknown_key"], {}),
    ],
)
def test_validate_rejects_and_names_the_reason(record: Any, reasons: list[str],
                                               kept: dict[str, float]) -> None:
    result = telemetry.validate(record)
    assert result.rejected == reasons
    assert result.values == kept
    assert set(result.rejected) <= set(telemetry.REJECT_REASONS)


class _Exploding(dict):  # type: ignore[type-arg]
    def items(self):  # type: ignore[no-untyped-def, override]
        raise RuntimeError("hostile mapping")


def test_validate_never_raises_on_a_hostile_mapping() -> None:
    result = telemetry.validate(_Exploding(v=1))
    assert not result.accepted and result.rejected == ["not_a_record"]
