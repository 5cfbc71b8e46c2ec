"""``[schedule]``: when the station watches (active hours), to save battery.

    active = "always"                      # the default
    active = "dusk-dawn"                   # from sunset (minus margin) to sunrise (plus margin)
    active = "dawn-dusk"                   # daylight only
    active = ["18:00-08:00", "11:30-13:30"]  # daily windows in `timezone`; one may cross midnight

    low_battery_v = 11.8                   # below this battery voltage (needs [power] monitor) ...
    low_battery_active = "dusk-dawn"       # ... watch only by this schedule, until above
    low_battery_recover_v = 12.1           # this (default: low_battery_v + 0.3)

Dusk and dawn come from ``[station] latitude/longitude`` (NOAA's sunrise equations,
:mod:`station.schedule.sun`). Outside active hours the daemon closes the camera.
The low-battery switch itself (hysteresis, hold time) is :mod:`station.power.low_battery`.
"""

from __future__ import annotations

import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from station.config.base import Section

SUN_MODES = ("dusk-dawn", "dawn-dusk")
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_window(text: str) -> tuple[int, int]:
    """``"18:30-07:00"`` -> (1110, 420): minutes after local midnight; the end may be 24:00.
    An end before the start runs over midnight into the next day."""
    m = _WINDOW.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a window: write \"HH:MM-HH:MM\", e.g. \"18:00-07:30\"")
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    if h1 > 23 or m1 > 59:
        raise ValueError(f"{text!r}: the start must be a time from 00:00 to 23:59")
    if not (h2 <= 23 and m2 <= 59) and (h2, m2) != (24, 0):
        raise ValueError(f"{text!r}: the end must be a time from 00:00 to 24:00")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end % 1440:
        raise ValueError(f"{text!r}: start and end are the same time; for all day write active = \"always\"")
    return start, end


LOW_BATTERY_HYSTERESIS_V = 0.3
"""Default gap between ``low_battery_v`` and ``low_battery_recover_v``: a battery under
load reads lower than at rest, so closing the camera alone lifts it a little."""


def _check_active(v: object) -> str | list[str]:
    if isinstance(v, str):
        if v in ("always", *SUN_MODES):
            return v
        if "-" in v and ":" in v:
            parse_window(v)
            return [v]
        raise ValueError('use "always", "dusk-dawn", "dawn-dusk", or windows like ["18:00-07:00"]')
    if isinstance(v, list):
        if not v:
            raise ValueError('an empty list would never watch; use "always" or give windows')
        for item in v:
            if not isinstance(item, str):
                raise ValueError(f"{item!r}: each window is a string \"HH:MM-HH:MM\"")
            parse_window(item)
        return v
    raise ValueError('use "always", "dusk-dawn", "dawn-dusk", or a list of "HH:MM-HH:MM" windows')


class ScheduleSection(Section):
    active: str | list[str] = "always"
    """"always", "dusk-dawn", "dawn-dusk", or daily windows "HH:MM-HH:MM" (a string or a list)."""
    timezone: str | None = None
    """IANA zone (e.g. "Asia/Vladivostok") the windows are written in; required with windows.
    With dusk-dawn it only sets how times are shown (default UTC)."""
    twilight: Literal["none", "civil", "nautical", "astronomical"] = "none"
    """Sun modes: "none" = sunset and sunrise; "civil" = the sun 6 degrees below the horizon
    (darker, so a shorter night), "nautical" 12, "astronomical" 18."""
    margin_min: float = Field(default=30, ge=0, le=360)
    """Sun modes: widen the active period by this much at each end (leopards hunt at dusk)."""

    low_battery_v: float | None = Field(default=None, gt=0, le=100)
    """Below this battery voltage (from ``[power] monitor``) the station switches to
    ``low_battery_active``; None (the default) never switches."""
    low_battery_recover_v: float | None = Field(default=None, gt=0, le=100)
    """...and back to ``active`` above this; default ``low_battery_v`` + 0.3 V."""
    low_battery_active: str | list[str] = "dusk-dawn"
    """The reduced schedule, in the same forms as ``active``."""
    low_battery_hold_s: float = Field(default=120, ge=0, le=3600)
    """The voltage must stay beyond a threshold this long before the switch (an infrared
    illuminator or a modem sending pulls a battery down for seconds)."""

    @field_validator("active", "low_battery_active", mode="before")
    @classmethod
    def _active(cls, v: object) -> str | list[str]:
        return _check_active(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not a known IANA time zone (e.g. 'Asia/Vladivostok', 'UTC')") from None
        return v

    @model_validator(mode="after")
    def _windows_need_a_zone(self) -> "ScheduleSection":
        if isinstance(self.active, list) and self.timezone is None:
            raise ValueError("schedule.timezone: required with time windows, which are local times "
                             "(e.g. timezone = \"Asia/Vladivostok\")")
        if self.low_battery_v is not None:
            if isinstance(self.low_battery_active, list) and self.timezone is None:
                raise ValueError("schedule.timezone: required with low_battery_active time windows, which "
                                 "are local times (e.g. timezone = \"Asia/Vladivostok\")")
            if self.low_battery_recover_v is not None and self.low_battery_recover_v <= self.low_battery_v:
                raise ValueError(f"schedule.low_battery_recover_v: {self.low_battery_recover_v:g} V must be above "
                                 f"low_battery_v ({self.low_battery_v:g} V), or the station would switch back "
                                 "and forth")
        elif self.low_battery_recover_v is not None:
            raise ValueError("schedule.low_battery_recover_v: set low_battery_v too (the voltage that starts "
                             "the low-battery schedule)")
        return self

    @property
    def low_battery(self) -> tuple[float, float] | None:
        """(switch below, recover above) in volts; None without ``low_battery_v``."""
        if self.low_battery_v is None:
            return None
        recover = self.low_battery_recover_v
        return self.low_battery_v, round(self.low_battery_v + LOW_BATTERY_HYSTERESIS_V, 3) if recover is None else recover

    def reduced(self) -> "ScheduleSection":
        """This schedule with ``low_battery_active`` as its active hours (zone, twilight and
        margin kept): what the station follows while its battery is low."""
        return self.model_copy(update={"active": self.low_battery_active})

    @property
    def mode(self) -> str:
        """"always", "dusk-dawn", "dawn-dusk" or "windows"."""
        return "windows" if isinstance(self.active, list) else self.active

    @property
    def windows(self) -> list[tuple[int, int]]:
        return [parse_window(w) for w in self.active] if isinstance(self.active, list) else []

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone or "UTC")

    def describe(self) -> str:
        if self.mode == "windows":
            return ", ".join(self.active) + f" ({self.timezone})"
        if self.mode in SUN_MODES:
            sun = "" if self.twilight == "none" else f", {self.twilight} twilight"
            return f"{self.mode}{sun}, margin {self.margin_min:g} min"
        return "always"
