"""Sunrise and sunset (and twilights) from NOAA's solar calculator equations, in pure Python.

The equations are those of NOAA's Global Monitoring Laboratory solar calculator
(after Jean Meeus, *Astronomical Algorithms*): good to about a minute between the polar
circles, which is plenty for deciding when a camera trap wakes up. Times are UTC.

``sun_times(day, lat, lon, depression)`` returns the solar noon and the times the sun's
centre crosses ``depression`` degrees below the horizon (0.833 for sunrise/sunset, which
counts refraction and the sun's radius; 6 civil, 12 nautical, 18 astronomical twilight),
or says that it never does that day (polar day, polar night).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

DEPRESSION = {"none": 0.833, "civil": 6.0, "nautical": 12.0, "astronomical": 18.0}

_J2000 = 2451545.0
_UNIX_EPOCH_JD = 2440587.5


@dataclass(frozen=True, slots=True)
class SunTimes:
    noon: datetime
    rise: datetime | None
    """The sun's centre rises above the depression angle; None on a polar day or night."""
    set: datetime | None
    always_up: bool = False
    """Above the depression angle all day (polar day, or white nights for twilight)."""
    always_down: bool = False
    """Below it all day (polar night)."""


def _julian_day(when: datetime) -> float:
    return when.timestamp() / 86400.0 + _UNIX_EPOCH_JD


def _solar(jd: float) -> tuple[float, float]:
    """(declination in radians, equation of time in minutes) at Julian day ``jd``."""
    t = (jd - _J2000) / 36525.0
    l0 = math.radians((280.46646 + t * (36000.76983 + t * 0.0003032)) % 360.0)
    m = math.radians(357.52911 + t * (35999.05029 - 0.0001537 * t))
    e = 0.016708634 - t * (0.000042037 + 0.0000001267 * t)
    c = math.radians(math.sin(m) * (1.914602 - t * (0.004817 + 0.000014 * t))
                     + math.sin(2 * m) * (0.019993 - 0.000101 * t) + math.sin(3 * m) * 0.000289)
    omega = math.radians(125.04 - 1934.136 * t)
    apparent = l0 + c - math.radians(0.00569 + 0.00478 * math.sin(omega))
    mean_obliquity = 23 + (26 + (21.448 - t * (46.815 + t * (0.00059 - t * 0.001813))) / 60) / 60
    obliquity = math.radians(mean_obliquity + 0.00256 * math.cos(omega))
    declination = math.asin(math.sin(obliquity) * math.sin(apparent))
    y = math.tan(obliquity / 2) ** 2
    eq_time = 4 * math.degrees(y * math.sin(2 * l0) - 2 * e * math.sin(m)
                               + 4 * e * y * math.sin(m) * math.cos(2 * l0)
                               - 0.5 * y * y * math.sin(4 * l0) - 1.25 * e * e * math.sin(2 * m))
    return declination, eq_time


def _hour_angle(lat: float, declination: float, depression: float) -> float | None | bool:
    """Half the time above the depression angle, in degrees; True: always above; False: never."""
    phi = math.radians(lat)
    cos_ha = (math.cos(math.radians(90.0 + depression)) / (math.cos(phi) * math.cos(declination))
              - math.tan(phi) * math.tan(declination))
    if cos_ha <= -1.0:
        return True
    if cos_ha >= 1.0:
        return False
    return math.degrees(math.acos(cos_ha))


def sun_times(day: date, lat: float, lon: float, depression: float = DEPRESSION["none"]) -> SunTimes:
    """Solar noon of the UTC date ``day`` at ``lon``, and the rise and set around it."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    # Solar noon, evaluated at the noon estimate itself (one refinement is enough).
    _, eq = _solar(_julian_day(midnight + timedelta(minutes=720 - 4 * lon)))
    noon_min = 720 - 4 * lon - eq
    _, eq = _solar(_julian_day(midnight + timedelta(minutes=noon_min)))
    noon_min = 720 - 4 * lon - eq
    noon = midnight + timedelta(minutes=noon_min)

    def event(sign: int) -> datetime | None | bool:
        when = noon
        for _ in range(3):  # the declination at the event itself, not at noon
            decl, eq_t = _solar(_julian_day(when))
            ha = _hour_angle(lat, decl, depression)
            if isinstance(ha, bool):
                return ha
            when = midnight + timedelta(minutes=720 - 4 * lon - eq_t + sign * 4 * ha)
        return when

    rise, set_ = event(-1), event(+1)
    if isinstance(rise, bool) or isinstance(set_, bool):
        decl, _ = _solar(_julian_day(noon))
        up = _hour_angle(lat, decl, depression)
        if isinstance(up, bool):
            return SunTimes(noon, None, None, always_up=up, always_down=not up)
        # The sun crosses the line at noon's declination but not at the event's: a day at
        # the edge of polar day/night. Treat it by what noon says.
        rise = rise if not isinstance(rise, bool) else noon - timedelta(minutes=4 * up)
        set_ = set_ if not isinstance(set_, bool) else noon + timedelta(minutes=4 * up)
    return SunTimes(noon, rise, set_)


def daylight(day: date, lat: float, lon: float, depression: float) -> tuple[datetime, datetime] | None:
    """The span the sun is above the depression angle around the solar noon of ``day``:
    (rise, set); a whole solar day on a polar day; None on a polar night."""
    s = sun_times(day, lat, lon, depression)
    if s.always_down:
        return None
    if s.always_up:
        # Slightly more than a day, so that consecutive polar days join without a gap.
        return s.noon - timedelta(hours=12, minutes=1), s.noon + timedelta(hours=12, minutes=1)
    assert s.rise is not None and s.set is not None
    return s.rise, s.set
