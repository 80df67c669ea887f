"""Per-alert settings: one field per alert declared in :mod:`flmon.alerts`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field, create_model, field_validator, model_validator

import flmon.alerts as alerts_mod
from flmon.alerts.spec import Severity
from flmon.config.strings import Duration, Identifier, StrictModel

ALERT_NAMES: tuple[str, ...] = alerts_mod.ALERT_NAMES
"""Every alert flmon renders, in the order of the rules file (declared in flmon.alerts)."""


class AlertSettings(StrictModel):
    """Settings of one alert. ``threshold`` and ``window`` apply where the alert uses them."""

    enabled: bool = True
    severity: Severity
    for_: Duration = Field(alias="for")
    threshold: float | None = None
    window: Duration | None = None
    team: Identifier

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @field_validator("threshold")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and (value != value or value in (float("inf"), float("-inf"))):
            raise ValueError("must be a finite number")
        return value


_ALERT_DEFAULTS: dict[str, dict[str, Any]] = {a.name: a.defaults() for a in alerts_mod.ALERTS}


def _alert_field(name: str) -> Any:
    return Field(default_factory=lambda: AlertSettings.model_validate(_ALERT_DEFAULTS[name]))


class _AlertsBase(StrictModel):
    """Per-alert settings; an alert left out keeps its defaults (fields: one per alert)."""

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: Any) -> Any:
        # A partial entry (say only `threshold`) keeps the other defaults of that alert.
        if not isinstance(data, Mapping):
            return data
        merged: dict[str, Any] = {}
        for key, value in data.items():
            if key in _ALERT_DEFAULTS and isinstance(value, Mapping):
                merged[key] = {**_ALERT_DEFAULTS[key], **value}
            else:
                merged[key] = value
        return merged

    @model_validator(mode="after")
    def _check_values(self) -> _AlertsBase:
        problems: list[str] = []
        for alert in alerts_mod.ALERTS:
            name = alert.name
            settings: AlertSettings = getattr(self, name)
            bounds = alert.bounds
            if bounds is None and settings.threshold is not None:
                problems.append(f"{name}.threshold: this alert takes no threshold")
            elif bounds is not None:
                if settings.threshold is None:
                    problems.append(f"{name}.threshold: required")
                elif not bounds[0] <= settings.threshold <= bounds[1]:
                    problems.append(f"{name}.threshold: must be within {bounds[0]:g}.."
                                    f"{bounds[1]:g}, got {settings.threshold:g}")
            if alert.windowed and settings.window is None:
                problems.append(f"{name}.window: required")
            if not alert.windowed and settings.window is not None:
                problems.append(f"{name}.window: this alert takes no window")
        low, drop = self.get("FLLowTrainingAccuracy"), self.get("FLModelAccuracyDropped")
        if (low.threshold is not None and drop.threshold is not None
                and drop.threshold > low.threshold):
            problems.append("FLModelAccuracyDropped.threshold: must not exceed "
                            "FLLowTrainingAccuracy.threshold (the critical alert is the "
                            "lower line)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def get(self, name: str) -> AlertSettings:
        """Return the settings of alert ``name``."""
        value: AlertSettings = getattr(self, name)
        return value

    def enabled(self) -> tuple[str, ...]:
        """Names of the enabled alerts, in rules-file order."""
        return tuple(n for n in ALERT_NAMES if self.get(n).enabled)


if TYPE_CHECKING:
    Alerts = _AlertsBase
else:
    Alerts = create_model(
        "Alerts", __base__=_AlertsBase, __doc__=_AlertsBase.__doc__,
        **{name: (AlertSettings, _alert_field(name)) for name in ALERT_NAMES})
