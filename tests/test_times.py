"""station/times.py: the project's one strict RFC 3339 parser and formatter, and zone names."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from station import times
from station.events.model import iso

T0 = 1_795_629_731.4  # 2026-11-25T18:02:11.400Z


@pytest.mark.parametrize("text, expected", [
    ("2026-11-25T18:02:11.400Z", datetime(2026, 11, 25, 18, 2, 11, 400_000, tzinfo=timezone.utc)),
    ("2026-11-25T18:02:11Z", datetime(2026, 11, 25, 18, 2, 11, tzinfo=timezone.utc)),
    ("2026-11-26T04:02:11+10:00", datetime(2026, 11, 25, 18, 2, 11, tzinfo=timezone.utc)),
    ("2026-11-25t18:02:11z", datetime(2026, 11, 25, 18, 2, 11, tzinfo=timezone.utc)),
    ("2026-11-25T18:02:11-00:00", datetime(2026, 11, 25, 18, 2, 11, tzinfo=timezone.utc)),
    ("2026-11-25T18:02:11.123456789Z", datetime(2026, 11, 25, 18, 2, 11, 123_456, tzinfo=timezone.utc)),  # cut
    ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=timezone.utc)),  # a leap day
])
def test_a_ranger_reads_every_rfc_3339_form_as_the_same_utc_moment(text, expected):
    assert times.parse(text) == expected
    assert times.parse(text).tzinfo is timezone.utc


@pytest.mark.parametrize("text, words", [
    ("2026-02-31T10:00:00.000Z", "day is out of range"),
    ("2025-02-29T10:00:00.000Z", "day is out of range"),  # not a leap year
    ("2026-11-25T18:02:60.000Z", "second must be in 0..59"),  # leap seconds: no station clock has one
    ("2026-11-25T24:00:00.000Z", "hour must be in 0..23"),
    ("0000-01-01T00:00:00.000Z", "year 0 is out of range"),
    ("2026-13-01T00:00:00Z", "month must be in 1..12"),
    ("2026-11-25T18:02:11+24:00", "offset"),
    ("2026-11-25 18:02:11Z", "not an RFC 3339 time"),  # fromisoformat would take a space
    ("2026-11-25T18:02Z", "not an RFC 3339 time"),       # ... and no seconds
    ("2026-W48-3", "not an RFC 3339 time"),              # ... and a week date
    ("2026-11-25T18:02:11", "not an RFC 3339 time"),     # ... and no offset
    ("２０２６-11-25T18:02:11Z", "not an RFC 3339 time"),  # wide digits are digits to \d
    ("2026-11-25", "not an RFC 3339 time"),              # a date only where a time is needed
])
def test_an_impossible_or_loose_time_is_refused_saying_why(text, words):
    with pytest.raises(times.TimeError, match=words):
        times.parse(text)


def test_a_date_is_midnight_utc_where_dates_are_allowed():
    assert times.parse("2026-11-25", date_ok=True) == datetime(2026, 11, 25, tzinfo=timezone.utc)
    with pytest.raises(times.TimeError, match="e.g. 2026-11-25T18:02:11Z or 2026-11-25"):
        times.parse("yesterday", date_ok=True)


def test_the_plausible_window_is_the_years_2000_to_2099():
    assert times.parse("2000-01-01T00:00:00Z", window=True) == times.EARLIEST
    assert times.parse("2099-12-31T23:59:59.999Z", window=True) < times.LATEST
    for text in ("1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z"):
        assert times.parse(text)  # a real time ...
        with pytest.raises(times.TimeError, match="outside the plausible years 2000-2099"):
            times.parse(text, window=True)  # ... but no station's


def test_feed_times_are_exactly_the_feeds_form():
    assert times.parse_feed("2026-11-25T18:02:11.400Z") == times.parse("2026-11-25T18:02:11.400Z")
    for text in ("2026-11-25T18:02:11Z", "2026-11-25T18:02:11.400+00:00", "2026-11-25t18:02:11.400z",
                 "2026-02-30T00:00:00.000Z", "9999-01-01T00:00:00.000Z", None, 17):
        with pytest.raises(times.TimeError):
            times.parse_feed(text)


def test_format_is_the_feeds_form_and_agrees_with_the_event_store():
    for ts in (T0, T0 + 0.0004, T0 + 0.9999, 0.0, 4_102_444_799.999):
        assert times.format(ts) == iso(ts)
    assert times.parse_feed(times.format(T0 + 0.9999)) == times.parse("2026-11-25T18:02:12.399Z")
    assert times.format(datetime(2026, 11, 26, 4, 2, 11, 400_999, tzinfo=timezone(timedelta(hours=10)))) \
        == "2026-11-25T18:02:11.400Z"
    assert times.format(datetime(2026, 11, 25, 18, 2, 11)) == "2026-11-25T18:02:11.000Z"  # naive is UTC
    assert times.format(None) is None
    assert times.parse(times.format(T0)).timestamp() == pytest.approx(T0)


@pytest.mark.parametrize("name", ["posixrules", "right/UTC", "posix/UTC", "localtime", "../../etc/passwd",
                                  "Mars/Olympus_Mons", "A" * 3000, "", "UTC\x00"])
def test_only_iana_zone_names_are_time_zones(name):
    with pytest.raises(times.TimeError, match="not a known IANA time zone"):
        times.zone(name)


def test_iana_zones_give_their_local_time():
    assert times.zone("Asia/Vladivostok").utcoffset(datetime(2026, 11, 25)) == timedelta(hours=10)
    assert str(times.zone("UTC")) == "UTC"
