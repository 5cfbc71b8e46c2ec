"""Hostile feed messages, by category, each with the outcome the collector owes it.

    for case in cases("numbers", 200, random.Random(15), now=time.time()):
        publish(case.topic, case.payload)       # then: case.expect is the rejection reason, or "stored"

Every case starts from a valid message built by the station's own builders
(:mod:`station.feed.messages`) and breaks one thing, so its fate is known by
construction: the rejection reason the collector must count (``not_json``, ``invalid``,
``bad_thumbnail``, ...) or ``stored``. The categories are what an adversarial test of the
collector (issue 15) tried, and then some:

=============  ===========================================================================
not_json       bytes that are not UTF-8, JSON cut short, a byte-order mark, non-objects
numbers        NaN, Infinity, numbers that overflow a double, integers of 400 and 5,000 digits
text           lone surrogate escapes and NUL, in values and in keys
times          31 February, second 60, hour 24, years 0000/1999/2100/9999, times that disagree
extra          ``extra`` too large, too deep, not an object (and small ones, which are stored)
schema         missing, unknown and mistyped keys, unknown schemas and versions, broken rules
topics         a payload on another station's topic; station levels no station can have
thumbnails     metadata after the scan, bytes after the end, no end, a wrong size (and clean ones)
future         status, health and detections from a clock up to decades ahead: stored, flagged
=============  ===========================================================================
"""

from __future__ import annotations

import base64
import random
import re
from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np

from station.bench.collector import synthetic_detections
from station.events.ids import new_event_id
from station.feed import messages as m
from station.feed.schema import load_schema

CATEGORIES = ("not_json", "numbers", "text", "times", "extra", "schema", "topics", "thumbnails", "future")
PREFIX = "camtrap/v1"
STATIONS = tuple(f"fuzz-{k:02d}" for k in range(6))
CLOCK_STATIONS = tuple(f"fuzz-clock-{k:02d}" for k in range(4))
_STATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class Case:
    category: str
    kind: str        # the message kind its topic names (detection, status, health, thumbnail)
    topic: str
    payload: bytes
    expect: str      # the rejection reason, or "stored"
    note: str        # what was broken, for a report


def topic(station_id: str, kind: str) -> str:
    return f"{PREFIX}/{station_id}/{kind}"


# -- valid messages, from the station's own builders ---------------------------------------

class Messages:
    """Fresh valid messages (new event ids every time), dated in the last month before ``now``."""

    def __init__(self, rng: random.Random, now: float):
        self.rng, self.now = rng, now

    def when(self) -> float:
        return self.now - self.rng.uniform(3600, 30 * 86400)

    def detection(self, station_id: str | None = None, at: float | None = None) -> dict[str, Any]:
        station_id = station_id or self.rng.choice(STATIONS)
        t = self.when() if at is None else at
        (msg,) = synthetic_detections(1, stations=1, start=t, frames=self.rng.randint(1, 6),
                                      name=station_id.rsplit("-", 1)[0])
        if msg["station_id"] != station_id:  # the builder numbers its stations from 00
            msg = _restation(msg, station_id)
        msg["sent_at"] = m.timestamp(t + 5)
        return msg

    def status(self, station_id: str | None = None, at: float | None = None) -> dict[str, Any]:
        t = self.when() if at is None else at
        state, reason = self.rng.choice([("online", "started"), ("offline", "stopping")])
        return m.status_message(station_id or self.rng.choice(STATIONS), state, reason, t, sent_at=t)

    def health(self, station_id: str | None = None, at: float | None = None) -> dict[str, Any]:
        t = self.when() if at is None else at
        return m.health_message(
            station_id or self.rng.choice(STATIONS), uptime_s=self.rng.uniform(0, 1e6),
            cpu_temperature_c=self.rng.choice([None, round(self.rng.uniform(-20, 80), 1)]),
            load=(0.5, 0.4, 0.3), memory={"total_mb": 3794, "available_mb": 2900.5, "process_rss_mb": 140.2},
            disk={"free_mb": 51000.0, "store_mb": 800.0, "low": False},
            outbox={"depth": 0, "detections": 0, "thumbnails": 0, "oldest_age_s": None, "bytes": 0,
                    "cap_mb": 64.0, "full": False, "thumbnails_dropped": 0, "detections_dropped": 0},
            camera={"state": "ok", "uri": "picamera2:0", "fps": 9.8, "failures": 0},
            events={"total": 12, "pending_classification": 0},
            clock={"synchronized": True, "source": "timedatectl", "offset_s": None}, sent_at=t)

    def jpeg(self) -> bytes:
        h, w = self.rng.randint(24, 120), self.rng.randint(24, 160)
        pixels = np.random.default_rng(self.rng.randrange(2**32)).integers(0, 255, (h, w, 3), dtype=np.uint8)
        cv2.circle(pixels, (w // 2, h // 2), min(h, w) // 3, (20, 120, 200), -1)
        jpeg = m.make_thumbnail(pixels)
        assert jpeg is not None
        return jpeg

    def thumbnail(self, station_id: str | None = None, jpeg: bytes | None = None) -> dict[str, Any]:
        jpeg = self.jpeg() if jpeg is None else jpeg
        return m.thumbnail_message(new_event_id(self.when()), jpeg, station_id=station_id or self.rng.choice(STATIONS),
                                   sent_at=self.when())

    def any(self, kinds: tuple[str, ...] = ("detection", "status", "health", "thumbnail")) -> dict[str, Any]:
        return getattr(self, self.rng.choice(kinds))()


def _restation(msg: dict[str, Any], station_id: str) -> dict[str, Any]:
    return msg | {"station_id": station_id, "deployment_id": f"{station_id}-2026"}


def _kind(msg: dict[str, Any]) -> str:
    return msg["schema"].split("/")[0]


def _case(category: str, msg: dict[str, Any], payload: bytes | str, expect: str, note: str,
          topic_: str | None = None) -> Case:
    kind = _kind(msg)
    raw = payload.encode("utf-8") if isinstance(payload, str) else payload
    return Case(category, kind, topic_ or topic(msg["station_id"], kind), raw, expect, note)


def _text(msg: dict[str, Any]) -> str:
    return m.encode(msg).decode("utf-8")


# -- the categories -------------------------------------------------------------------------

def _not_json(g: Messages) -> Case:
    msg = g.any()
    text = _text(msg)
    how = g.rng.randrange(6)
    if how == 0:
        cut = g.rng.randrange(1, len(text))
        return _case("not_json", msg, text[:cut], "not_json", f"cut at {cut} of {len(text)}")
    if how == 1:
        junk = bytes(g.rng.randrange(256) for _ in range(g.rng.randint(0, 64)))
        return _case("not_json", msg, b"\xff" + junk, "not_json", "random bytes, not UTF-8")
    if how == 2:
        at = g.rng.randrange(len(text))
        bad = g.rng.choice([b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"])
        raw = text.encode()
        return _case("not_json", msg, raw[:at] + bad + raw[at:], "not_json", f"invalid UTF-8 {bad!r} at {at}")
    if how == 3:
        return _case("not_json", msg, "\ufeff" + text, "not_json", "a byte-order mark")
    if how == 4:
        return _case("not_json", msg, g.rng.choice(["", " ", "{", "}", "{'schema': 1}", "nul", "tru", "{\"a\":}"]),
                     "not_json", "not JSON at all")
    value = g.rng.choice(["[1,2]", "42", "\"detection/1\"", "null", "true", "[" + text + "]"])
    return _case("not_json", msg, value, "not_object", "JSON, but not an object")


_NUMBER = re.compile(r'"([a-z_0-9]+)":(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)')
_BAD_NUMBERS = ("NaN", "Infinity", "-Infinity", "1e309", "-1e309", "1.5e99999", "9" * 400, "-" + "9" * 400,
                "9" * 5000)


def _numbers(g: Messages) -> Case:
    msg = g.any(("detection", "health", "thumbnail"))
    text = _text(msg)
    found = list(_NUMBER.finditer(text))
    hit = g.rng.choice(found)
    bad = g.rng.choice(_BAD_NUMBERS)
    out = text[:hit.start(2)] + bad + text[hit.end(2):]
    return _case("numbers", msg, out, "not_json", f"{hit.group(1)} = {bad[:12]}")


_STRING = re.compile(r'"([a-z_0-9]+)":"([^"\\]*)"')
_UNTOUCHED = ("schema", "station_id")  # breaking these is another rejection (unknown_schema, station_mismatch)


def _text_case(g: Messages) -> Case:
    msg = g.any()
    text = _text(msg)
    surrogate = g.rng.random() < 0.5
    escape = f"\\u{g.rng.randrange(0xD800, 0xE000):04x}" if surrogate else "\\u0000"
    expect, what = ("not_json", "a lone surrogate") if surrogate else ("invalid", "NUL")
    strings = [s for s in _STRING.finditer(text) if s.group(1) not in _UNTOUCHED]
    if g.rng.random() < 0.3 or not strings:  # in a key
        keys = [k for k in re.finditer(r'"([a-z_0-9]+)":', text) if k.group(1) not in _UNTOUCHED]
        k = g.rng.choice(keys)
        at = g.rng.randint(k.start(1), k.end(1))
        return _case("text", msg, text[:at] + escape + text[at:], expect, f"{what} in key {k.group(1)}")
    s = g.rng.choice(strings)
    at = g.rng.randint(s.start(2), s.end(2))
    return _case("text", msg, text[:at] + escape + text[at:], expect, f"{what} in {s.group(1)}")


def _impossible_time(g: Messages) -> str:
    y, mo, d, h, mi, s = g.rng.randint(2001, 2098), g.rng.randint(1, 12), g.rng.randint(1, 28), \
        g.rng.randint(0, 23), g.rng.randint(0, 59), g.rng.randint(0, 59)
    how = g.rng.randrange(7)
    if how == 0:
        mo, d = g.rng.choice([(2, 30), (2, 31), (4, 31), (6, 31), (9, 31), (11, 31)])
    elif how == 1:
        y, mo, d = g.rng.choice([2025, 2026, 2027, 2100 - 1]), 2, 29  # not leap years
    elif how == 2:
        s = 60
    elif how == 3:
        h = 24
    elif how == 4:
        y = g.rng.choice([0, 1, 1970, 1999, 2100, 9999])
    elif how == 5:
        mo = g.rng.choice([0, 13])
    else:
        d = g.rng.choice([0, 32])
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{g.rng.randrange(1000):03d}Z"


def _times(g: Messages) -> Case:
    msg = g.any(("detection", "detection", "status", "health", "thumbnail"))
    kind = _kind(msg)
    fields = {"detection": ["start", "trigger", "end", "sent_at", "frame"], "status": ["since", "sent_at"],
              "health": ["sent_at"], "thumbnail": ["sent_at"]}[kind]
    if kind == "detection" and g.rng.random() < 0.4:  # real times that disagree
        rule = g.rng.randrange(4)
        if rule == 0:
            msg = msg | {"end": msg["start"], "start": msg["end"]} if msg["start"] != msg["end"] else \
                msg | {"end": m.timestamp(_ts(msg["start"]) - 1)}
            note = "end before start"
        elif rule == 1:
            msg = msg | {"trigger": m.timestamp(_ts(msg["end"]) + g.rng.uniform(0.1, 1e6))}
            note = "trigger after end"
        elif rule == 2:
            msg = msg | {"duration_s": msg["duration_s"] + g.rng.choice([-1, 1]) * g.rng.uniform(0.02, 1e5)}
            if msg["duration_s"] < 0:
                msg["duration_s"] = msg["duration_s"] + 2e5
            note = "duration that disagrees"
        else:
            frames = [dict(f) for f in msg["frames"]]
            frames[-1]["time"] = m.timestamp(_ts(msg["end"]) + g.rng.uniform(0.02, 3600))
            msg = msg | {"frames": frames}
            note = "a still after the end"
        return _case("times", msg, _text(msg), "invalid", note)
    field = g.rng.choice(fields)
    bad = _impossible_time(g)
    if field == "frame":
        frames = [dict(f) for f in msg["frames"]]
        frames[g.rng.randrange(len(frames))]["time"] = bad
        msg = msg | {"frames": frames}
    else:
        msg = msg | {field: bad}
    return _case("times", msg, _text(msg), "invalid", f"{field} = {bad}")


def _ts(text: str) -> float:
    from station import times
    return times.parse(text).timestamp()


def _nest(depth: int) -> Any:
    node: Any = 1
    for _ in range(depth):
        node = [node]
    return node


def _extra(g: Messages) -> Case:
    msg = g.any(("detection", "status", "health", "thumbnail"))
    how = g.rng.randrange(6)
    if how == 0:  # fits: stored
        extra = {"schedule": "active", "n": g.rng.randint(0, 10**6), "list": _nest(g.rng.randint(0, 5))}
        return _case("extra", msg | {"extra": extra}, _text(msg | {"extra": extra}), "stored", "a small extra")
    if how == 1:
        size = g.rng.randint(8300, 400_000)
        extra = {"blob": "x" * size}
        return _case("extra", msg, _text(msg | {"extra": extra}), "invalid", f"extra of {size} bytes")
    if how == 2:
        size = g.rng.randint(600_000, 700_000)
        return _case("extra", msg, _text(msg | {"extra": {"blob": "y" * size}}), "too_large",
                     f"extra of {size} bytes, over max_payload_kb")
    if how == 3:
        depth = g.rng.randint(8, 400)
        return _case("extra", msg, _text(msg | {"extra": {"deep": _nest(depth)}}), "invalid",
                     f"extra {depth + 2} levels deep")
    if how == 4:
        depth = g.rng.randint(3000, 20000)
        text = _text(msg)
        payload = text[:-1] + ',"extra":{"deep":' + "[" * depth + "]" * depth + "}}"
        return _case("extra", msg, payload, "not_json", f"extra {depth} levels deep (beyond any reader)")
    extra = g.rng.choice([[1, 2], "text", 7, None, True])
    return _case("extra", msg, _text(msg | {"extra": extra}), "invalid", f"extra is {type(extra).__name__}")


def _schema(g: Messages) -> Case:
    msg = g.any()
    kind = _kind(msg)
    how = g.rng.randrange(9)
    if how == 0:
        required = [k for k in load_schema(kind)["required"] if k not in _UNTOUCHED]
        key = g.rng.choice(required)
        out = {k: v for k, v in msg.items() if k != key}
        return _case("schema", msg, _text(out), "invalid", f"{key} missing")
    if how == 1:
        key = g.rng.choice(["confidnce", "gps", "latitude", "note", "Tag", "x" * 40])
        return _case("schema", msg, _text(msg | {key: 1}), "invalid", f"unknown key {key}")
    if how == 2:
        keys = [k for k in msg if k not in _UNTOUCHED]
        key = g.rng.choice(keys)
        return _case("schema", msg, _text(msg | {key: {"fuzz": [1, "two"]}}), "invalid", f"{key} of the wrong type")
    if how == 3:
        value = g.rng.choice([None, 1, "detection", "sighting/1", "/1", ["detection/1"], ""])
        out = msg | {"schema": value} if value is not None else {k: v for k, v in msg.items() if k != "schema"}
        return _case("schema", msg, _text(out), "unknown_schema", f"schema = {value!r}")
    if how == 4:
        return _case("schema", msg, _text(msg | {"schema": f"{kind}/{g.rng.choice([0, 2, 10, 'x'])}"}),
                     "unknown_version", "another major version")
    if how == 5:
        other = g.any(tuple(k for k in ("detection", "status", "health", "thumbnail") if k != kind))
        other = other | {"station_id": msg["station_id"]} if "station_id" in other else other
        return _case("schema", msg, _text(other), "kind_mismatch", f"a {_kind(other)} on a {kind} topic",
                     topic(msg["station_id"], kind))
    if kind == "detection":
        rule = g.rng.randrange(3)
        if rule == 0:
            out = msg | {"frame_count": msg["frame_count"] + g.rng.randint(1, 5)}
        elif rule == 1:
            out = msg | {"best_frame": 999}
        else:
            out = msg | {"message_id": new_event_id(g.when())}
        return _case("schema", msg, _text(out), "invalid", ["frame_count", "best_frame", "message_id"][rule])
    if kind == "thumbnail":
        return _case("schema", msg, _text(msg | {"bytes": msg["bytes"] + 1}), "invalid", "bytes disagree")
    if kind == "status":
        return _case("schema", msg, _text(msg | {"reason": "connection_lost" if msg["state"] == "online"
                                                 else "started"}), "invalid", "state and reason disagree")
    return _case("schema", msg, _text(msg | {"load_1m": -1}), "invalid", "a negative load")


# Only what a broker delivers: Mosquitto drops a client whose topic holds a control character.
_BAD_STATION_LEVELS = ("", "-lead", "_lead", ".lead", "a" * 65, "sp ace", "ünïcode", "semi;colon", "quote'd",
                       "dollar$", "ask?", "percent%20")


def _topics(g: Messages) -> Case:
    msg = g.any()
    kind = _kind(msg)
    if g.rng.random() < 0.5:
        other = g.rng.choice([s for s in STATIONS if s != msg["station_id"]])
        return _case("topics", msg, _text(msg), "station_mismatch", f"sent on {other}'s topic", topic(other, kind))
    level = g.rng.choice(_BAD_STATION_LEVELS)
    assert not _STATION_ID.fullmatch(level)
    return _case("topics", msg, _text(msg), "bad_topic", f"station level {level!r}", topic(level, kind))


_EXIF = b"\xff\xe1\x00\x1aExif\x00\x00GPS 43.2412N 133.8857E"
_COM = b"\xff\xfe\x00\x0eGPS 43.2412N"
_XMP = b"\xff\xe1\x00\x24http://ns.adobe.com/xap/1.0/\x00<x/>"


def _thumbnails(g: Messages) -> Case:
    jpeg = g.jpeg()
    eoi = len(jpeg) - 2
    how = g.rng.randrange(8)
    if how == 0:
        msg = g.thumbnail(jpeg=jpeg)
        return _case("thumbnails", msg, _text(msg), "stored", "a clean JPEG")
    if how == 1:
        bad, note = jpeg[:eoi] + g.rng.choice([_EXIF, _XMP]) + jpeg[eoi:], "EXIF/XMP after the scan"
    elif how == 2:
        bad, note = jpeg[:eoi] + _COM + jpeg[eoi:], "a comment after the scan"
    elif how == 3:
        bad, note = jpeg + g.rng.choice([b"GPS 43.2412N", b"\x00", b"\xff\xd8" + jpeg]), "bytes after the end"
    elif how == 4:
        bad, note = jpeg[:g.rng.randint(eoi - 200 if eoi > 300 else 4, eoi)], "no end-of-image"
    elif how == 5:
        bad, note = jpeg[:2] + _EXIF + jpeg[2:], "EXIF before the frame"
    elif how == 6:
        bad, note = b"\x89PNG\r\n\x1a\n" + jpeg[8:], "not a JPEG"
    else:
        msg = g.thumbnail(jpeg=jpeg)
        msg = msg | {"width": msg["width"] + g.rng.randint(1, 50)}
        return _case("thumbnails", msg, _text(msg), "bad_thumbnail", "a size the JPEG is not")
    msg = g.thumbnail()
    msg = msg | {"data": base64.b64encode(bad).decode("ascii"), "bytes": len(bad)}
    return _case("thumbnails", msg, _text(msg), "bad_thumbnail", note)


def _future(g: Messages) -> Case:
    station_id = g.rng.choice(CLOCK_STATIONS)
    ahead = g.rng.choice([g.rng.uniform(400, 86400), g.rng.uniform(86400, 2 * 365 * 86400),
                          g.rng.uniform(2 * 365 * 86400, 60 * 365 * 86400)])
    at = g.now + ahead
    kind = g.rng.choice(["status", "health", "detection"])
    msg = getattr(g, kind)(station_id, at=at)
    if kind == "status":
        msg = m.status_message(station_id, "online", "started", at, sent_at=at)
    return _case("future", msg, _text(msg), "stored", f"{kind} {ahead / 86400:.1f} days ahead")


_MAKERS: dict[str, Callable[[Messages], Case]] = {
    "not_json": _not_json, "numbers": _numbers, "text": _text_case, "times": _times, "extra": _extra,
    "schema": _schema, "topics": _topics, "thumbnails": _thumbnails, "future": _future}


def cases(category: str, n: int, rng: random.Random, *, now: float) -> list[Case]:
    """``n`` cases of ``category`` (one of :data:`CATEGORIES`), deterministic for ``rng``'s seed
    (event ids aside); messages dated before ``now`` unless the category says otherwise."""
    maker = _MAKERS[category]
    g = Messages(rng, now)
    return [maker(g) for _ in range(n)]


def valid_messages(rng: random.Random, now: float, stations: tuple[str, ...]) -> list[dict[str, Any]]:
    """One of each kind per station, all valid and sent ``now``: what must be stored after the
    storm. Each station stops (offline), which must win over any status from a clock ahead."""
    g = Messages(rng, now)
    out = []
    for station_id in stations:
        det = g.detection(station_id, at=now - 120)
        out += [det, m.thumbnail_message(det["event_id"], g.jpeg(), station_id=station_id, sent_at=now),
                m.status_message(station_id, "offline", "stopping", now, sent_at=now), g.health(station_id, at=now)]
    return out
