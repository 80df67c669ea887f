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


@pytest.mark.parametrize(
    ("value", "reasons", "kept"),
    [
        (2.5, ["non_integer"], {}),
        (2.0, ["non_integer"], {}),  # an integer field takes integers, not floats
        (True, ["non_numeric"], {}),  # bool is not an int here
        (3, [], {"epochs": 3.0}),
        (math.inf, ["non_finite"], {}),
    ],
)
def test_integer_fields_take_integers_only(value: Any, reasons: list[str],
                                           kept: dict[str, float]) -> None:
    result = telemetry.validate({"v": 1, "epochs": value})
    assert result.rejected == reasons and result.values == kept and result.accepted


def test_float_fields_take_integers_too() -> None:
    result = telemetry.validate({"v": 1, "duration_s": 2, "loss": -3})
    assert result.rejected == [] and result.values == {"duration_s": 2.0, "loss": -3.0}


def test_thirty_two_keys_are_read_thirty_three_are_rejected_whole() -> None:
    at_limit = {"v": 1, "epochs": 2, **{f"k{i}": 1.0 for i in range(30)}}
    assert len(at_limit) == 32
    result = telemetry.validate(at_limit)
    assert result.accepted
    assert result.values == {"epochs": 2.0}
    assert result.rejected == ["unknown_key"] * 30
    over = {**at_limit, "k30": 1.0}
    assert len(over) == 33
    result = telemetry.validate(over)
    assert not result.accepted and result.rejected == ["oversized"] and result.values == {}


@pytest.mark.parametrize("spec", telemetry.FIELDS[1:], ids=lambda f: f.name)
def test_bounds_are_inclusive_and_exact(spec: telemetry.Field) -> None:
    low = int(spec.low) if spec.integer else spec.low
    high = int(spec.high) if spec.integer else spec.high
    assert telemetry.validate({"v": 1, spec.name: low}).values == {spec.name: spec.low}
    assert telemetry.validate({"v": 1, spec.name: high}).values == {spec.name: spec.high}
    below = low - 1 if spec.integer else math.nextafter(spec.low, -math.inf)
    above = high + 1 if spec.integer else math.nextafter(spec.high, math.inf)
    assert telemetry.validate({"v": 1, spec.name: below}).rejected == ["out_of_bounds"]
    assert telemetry.validate({"v": 1, spec.name: above}).rejected == ["out_of_bounds"]


def test_the_allow_list_bounds_are_what_the_schema_promises() -> None:
    by_name = {f.name: (f.low, f.high, f.integer) for f in telemetry.FIELDS}
    assert by_name == {
        "v": (1, 1, True),
        "round": (0, 1e9, True),
        "duration_s": (0, 86_400.0, False),
        "fit_duration_s": (0, 86_400.0, False),
        "epochs": (0, 1e6, True),
        "steps": (0, 1e12, True),
        "examples": (0, 1e12, True),
        "loss": (-1e12, 1e12, False),
        "accuracy": (0, 1, False),
        "errors": (0, 1e9, True),
        "dp_epsilon": (0, 1e6, False),
        "rss_bytes": (0, 1e13, True),
    }
    assert telemetry.MAX_KEYS == 32 and telemetry.SCHEMA_VERSION == 1
    assert telemetry.RECORD_KEY == "flmon.telemetry"


def test_a_non_string_key_is_unknown_and_the_rest_is_kept() -> None:
    result = telemetry.validate({"v": 1, 7: 1.0, "steps": 4})
    assert result.rejected == ["unknown_key"] and result.values == {"steps": 4.0}
    assert result.accepted


class _BadLength(dict):  # type: ignore[type-arg]
    def __len__(self) -> int:
        raise RuntimeError("hostile mapping")


def test_a_mapping_whose_length_raises_is_not_a_record() -> None:
    result = telemetry.validate(_BadLength(v=1))
    assert not result.accepted and result.rejected == ["not_a_record"] and result.values == {}


def test_an_accepted_record_with_no_fields_is_accepted_and_empty() -> None:
    result = telemetry.validate({"v": 1})
    assert result.accepted and result.rejected == [] and result.values == {}


def test_encode_clamps_truncates_and_never_takes_a_version_from_the_caller() -> None:
    record = telemetry.encode({"v": 7, "epochs": 3.9, "loss": -1e20, "accuracy": -0.5,
                               "steps": True, "examples": math.inf, "rss_bytes": 1e20,
                               "errors": 0})
    assert record == {"v": 1, "epochs": 3, "loss": -1e12, "accuracy": 0.0,
                      "rss_bytes": 10**13, "errors": 0}
    assert isinstance(record["epochs"], int) and isinstance(record["rss_bytes"], int)
    assert isinstance(record["accuracy"], float)
    assert telemetry.encode({}) == {"v": 1}


def test_every_field_is_judged_on_its_own() -> None:
    record = {"v": 1, "loss": "x", "steps": 1, "duration_s": math.nan, "examples": 2,
              "epochs": 2.5, "errors": 3, "accuracy": 7.0, "round": 4}
    result = telemetry.validate(record)
    assert result.accepted
    assert result.rejected == ["non_numeric", "non_finite", "non_integer", "out_of_bounds"]
    assert result.values == {"steps": 1.0, "examples": 2.0, "errors": 3.0, "round": 4.0}


@pytest.mark.parametrize("record", ["text", {"v": 2}, {f"k{i}": 1 for i in range(40)}])
def test_a_record_rejected_whole_is_not_accepted(record: Any) -> None:
    assert telemetry.validate(record).accepted is False
