"""Active hours: is the station meant to be watching at a given moment, and until when?

    active, next_change = is_active(cfg, datetime.now(timezone.utc))

A pure function of the config (``[schedule]`` and the station's latitude/longitude) and
the moment: no clock is read here, so tests pin dates. The active periods are built as
intervals around the moment (daily windows in the station's zone; or daylight from
:mod:`station.schedule.sun`, widened or narrowed by ``margin_min`` and, for dusk-dawn,
inverted), merged, and looked up. A polar night under "dusk-dawn" is one long active
period; its end is found by looking further ahead, up to a year.

:class:`ScheduleClock` is the daemon's cache of that answer: it asks again only when the
next change is due, the config changed, or the clock jumped.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from station.schedule.sun import DEPRESSION, daylight

if TYPE_CHECKING:
    from station.config import StationConfig
    from station.config.schedule import ScheduleSection

__all__ = ["ScheduleClock", "active_intervals", "format_change", "is_active"]

Interval = tuple[datetime, datetime]
_HORIZONS_DAYS = (3, 12, 60, 400)
_EDGE = timedelta(days=1)


def _utc(when: datetime | float) -> datetime:
    if isinstance(when, (int, float)):
        return datetime.fromtimestamp(when, timezone.utc)
    if when.tzinfo is None:
        raise ValueError("give an aware datetime (with a time zone), or a Unix time")
    return when.astimezone(timezone.utc)


def _merge(intervals: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _days(lo: datetime, hi: datetime) -> list[date]:
    first, last = (lo - timedelta(days=2)).date(), (hi + timedelta(days=2)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _window_intervals(s: "ScheduleSection", lo: datetime, hi: datetime) -> list[Interval]:
    zone, out = s.zone, []
    for day in _days(lo.astimezone(zone), hi.astimezone(zone)):
        midnight = datetime(day.year, day.month, day.day)
        for start, end in s.windows:
            if end <= start:
                end += 1440
            a = (midnight + timedelta(minutes=start)).replace(tzinfo=zone)
            b = (midnight + timedelta(minutes=end)).replace(tzinfo=zone)
            out.append((a.astimezone(timezone.utc), b.astimezone(timezone.utc)))
    return _merge(out)


def _sun_intervals(s: "ScheduleSection", lat: float, lon: float, lo: datetime, hi: datetime) -> list[Interval]:
    light = _merge([span for day in _days(lo, hi)
                    if (span := daylight(day, lat, lon, DEPRESSION[s.twilight])) is not None])
    margin = timedelta(minutes=s.margin_min)
    if s.mode == "dawn-dusk":
        return _merge([(a - margin, b + margin) for a, b in light])
    # dusk-dawn: the dark between the (shortened) light spans
    shrunk = [(a + margin, b - margin) for a, b in light if b - a > 2 * margin]
    start = datetime.combine(_days(lo, hi)[0], datetime.min.time(), timezone.utc)
    end = datetime.combine(_days(lo, hi)[-1] + timedelta(days=1), datetime.min.time(), timezone.utc)
    out, cursor = [], start
    for a, b in shrunk:
        if a > cursor:
            out.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < end:
        out.append((cursor, end))
    return out


def active_intervals(cfg: "StationConfig", lo: datetime, hi: datetime) -> list[Interval]:
    """Merged active periods (UTC) covering at least ``lo``..``hi``; the first and last may
    be cut off by the computation's edges, a day or two outside that span."""
    s = cfg.schedule
    lo, hi = _utc(lo), _utc(hi)
    if s.mode == "always":
        return [(lo - _EDGE, hi + _EDGE)]
    if s.mode == "windows":
        return _window_intervals(s, lo, hi)
    return _sun_intervals(s, cfg.station.latitude, cfg.station.longitude, lo, hi)


def is_active(cfg: "StationConfig", when: datetime | float) -> tuple[bool, datetime | None]:
    """(active at ``when``, the next moment that changes) - in the schedule's zone; None when
    it does not change within a year (always; polar day or night)."""
    if cfg.schedule.mode == "always":
        return True, None
    t = _utc(when)
    zone = cfg.schedule.zone
    active = False
    for days in _HORIZONS_DAYS:
        lo, hi = t - timedelta(days=days), t + timedelta(days=days)
        intervals = active_intervals(cfg, lo, hi)
        limit = hi - _EDGE  # a boundary beyond this may be the computation's edge, not a real one
        active = any(a <= t < b for a, b in intervals)
        change = next((x for a, b in intervals for x in (a, b) if x > t), None)
        if change is not None and change <= limit:
            return active, change.astimezone(zone)
    return active, None


def format_change(when: datetime | None, now: datetime | float | None = None) -> str:
    """``19:42``, ``Tue 19:42`` more than a day ahead, ``2027-01-15 11:02`` beyond a week."""
    if when is None:
        return "no change within a year"
    ref = _utc(now if now is not None else time.time()).astimezone(when.tzinfo)
    ahead = when - ref
    if ahead < timedelta(hours=20):
        return when.strftime("%H:%M")
    if ahead < timedelta(days=6):
        return when.strftime("%a %H:%M")
    return when.strftime("%Y-%m-%d %H:%M")


class ScheduleClock:
    """The daemon's view of the schedule: ``check(now)`` -> (active, next change), cached
    until the change is due. The answer is asked for again at least every
    ``recheck_s`` and whenever the clock steps back (NTP setting a Pi's clock at boot)."""

    def __init__(self, recheck_s: float = 600.0):
        self.recheck_s = recheck_s
        self._key: object = None
        self._answer: tuple[bool, datetime | None] = (True, None)
        self._asked_at = float("-inf")
        self._valid_until = float("-inf")

    def check(self, cfg: "StationConfig", now: float) -> tuple[bool, datetime | None]:
        key = (cfg.schedule, cfg.station.latitude, cfg.station.longitude)
        if key != self._key or now >= self._valid_until or now < self._asked_at:
            self._key, self._asked_at = key, now
            self._answer = is_active(cfg, now)
            change = self._answer[1]
            self._valid_until = min(now + self.recheck_s, change.timestamp() if change else float("inf"))
        return self._answer
