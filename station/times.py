"""RFC 3339 times: one strict parser and one formatter, and IANA time zone names.

    times.parse("2026-11-25T18:02:11.400Z")            # an aware datetime in UTC
    times.parse("2026-11-25T09:00:00+10:00")           # any offset; returned in UTC
    times.parse("2026-11-25", date_ok=True)            # a full-date: midnight UTC
    times.parse(text, window=True)                     # ... and inside the plausible years (WINDOW)
    times.parse_feed("2026-11-25T18:02:11.400Z")       # exactly the feed's form, inside WINDOW
    times.format(1_795_629_731.4)                      # "2026-11-25T18:02:11.400Z" (the feed's form)
    times.zone("Asia/Vladivostok")                     # a ZoneInfo, for IANA names only

Stricter than ``datetime.fromisoformat``, which also takes week dates, a missing offset,
a space for the ``T`` and times without seconds. What RFC 3339 (section 5.6) allows and
this refuses, each for a reason: a leap second (``:60``; Unix time, and so every station
clock, has none, and Python cannot hold one) and year 0000 (no such year in Python).
Fractions beyond microseconds are cut, never rounded, so order is kept. Every error is a
:class:`TimeError` whose text quotes the value and says what is wrong with it; callers
add the field or key.

The plausible window (:data:`EARLIEST` to :data:`LATEST`, the years 2000-2099) is the
range the feed's schemas accept: earlier is an unset clock (or no camera trap), later a
clock gone wrong.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)
"""The plausible window: ``EARLIEST <= t < LATEST`` (the feed's schemas: years 2000-2099)."""

MAX_ZONE_NAME = 64

_RFC3339 = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
                      r"(?:[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?([Zz]|[+-][0-9]{2}:[0-9]{2}))?")
_FEED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


class TimeError(ValueError):
    """A time that is not a strict RFC 3339 time (or not a usable one); the text says why."""


def _quote(text: object) -> str:
    shown = repr(text)
    return shown if len(shown) <= 48 else shown[:45] + "...'"


def _check_window(dt: datetime, text: object) -> datetime:
    if not EARLIEST <= dt < LATEST:
        raise TimeError(f"{_quote(text)} is outside the plausible years "
                        f"{EARLIEST.year}-{LATEST.year - 1}")
    return dt


def parse(text: str, *, date_ok: bool = False, window: bool = False) -> datetime:
    """An RFC 3339 date-time (``date_ok``: or a full-date, meaning midnight UTC) as an aware
    UTC datetime; ``window``: it must also lie in the plausible window."""
    if not isinstance(text, str):
        raise TimeError(f"{_quote(text)} is not a time (a string is needed)")
    match = _RFC3339.fullmatch(text)
    if match is None or (match.group(4) is None and not date_ok):
        example = "2026-11-25T18:02:11Z" + (" or 2026-11-25" if date_ok else "")
        raise TimeError(f"{_quote(text)} is not an RFC 3339 time (e.g. {example})")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        if hour is None:
            dt = datetime(int(year), int(month), int(day), tzinfo=timezone.utc)
        else:
            zone = timezone.utc
            if offset not in ("Z", "z"):
                off_h, off_m = int(offset[1:3]), int(offset[4:6])
                if off_h > 23 or off_m > 59:
                    raise ValueError(f"offset {offset} is not a real one")
                delta = timedelta(hours=off_h, minutes=off_m)
                zone = timezone(-delta if offset[0] == "-" else delta)
            micro = int((fraction or "0").ljust(6, "0")[:6])
            dt = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro,
                          tzinfo=zone).astimezone(timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise TimeError(f"{_quote(text)} is not a real date and time ({exc})") from None
    return _check_window(dt, text) if window else dt


def parse_feed(text: str) -> datetime:
    """A time exactly in the feed's form (``2026-11-25T18:02:11.400Z``: UTC, milliseconds,
    a capital ``Z``) that is a real date and time in the plausible window."""
    if not isinstance(text, str) or _FEED.fullmatch(text) is None:
        raise TimeError(f"{_quote(text)} is not a feed time (e.g. 2026-11-25T18:02:11.400Z)")
    try:  # the form is fixed above: fromisoformat only checks the calendar and the clock here
        dt = datetime.fromisoformat(text)  # "Z": UTC (Python 3.11)
    except ValueError as exc:
        raise TimeError(f"{_quote(text)} is not a real date and time ({exc})") from None
    return _check_window(dt, text)


def format(value: float | datetime | None) -> str | None:  # noqa: A001 - times.format reads well
    """The feed's form, RFC 3339 in UTC with milliseconds (cut, not rounded) and a ``Z``:
    ``2026-11-25T18:02:11.400Z``. Unix seconds or a datetime (naive means UTC); None gives None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    else:
        dt = datetime.fromtimestamp(value, timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    # "localtime" is this machine's own zone file, not an IANA name; posixrules, right/ and
    # posix/ are not in the list at all.
    return frozenset(available_timezones() - {"localtime"})


def zone(name: str) -> ZoneInfo:
    """The ZoneInfo of an IANA time zone name (``Asia/Vladivostok``, ``UTC``); TimeError for
    anything else, without ever using the name as a file path."""
    if not isinstance(name, str) or len(name) > MAX_ZONE_NAME or name not in _zone_names():
        raise TimeError(f"{_quote(name)} is not a known IANA time zone (e.g. Asia/Vladivostok, UTC)")
    return ZoneInfo(name)


iso = format
"""Unix seconds (or a datetime) in the feed's form; the name event records and messages use."""
