"""Deciding what an incoming MQTT message is: an accepted payload, or a counted rejection.

    accepted_or_rejection = admit(topic, payload_bytes, prefix="camtrap/v1", max_bytes=512 * 1024)

Pure: no database, no broker, no clock. Checks, in order, each one naming what failed:
the topic fits the feed's tree (``{prefix}/{station}/{kind}``) and is a kind the
collector stores; the payload is not larger than the limit (checked before it is read);
it is UTF-8 and strict JSON (:mod:`station.feed.strict_json`: no NaN or Infinity, no
number beyond a double, no lone surrogate, so both engines, the API and the exports read
it alike), an object, of a schema the collector knows in a major version it knows; the
schema's message kind is the topic's kind; the payload's ``station_id`` is the topic's (a
station may only speak for itself, and the broker's ACL checks the topic); no string
holds a NUL (which PostgreSQL cannot store: refused on both engines alike); and it
validates against the feed's JSON Schema (:mod:`station.feed.schema`), which also checks
the rules a schema cannot state (real dates, times that agree, the size of ``extra``).
Nothing that fails is stored; only the reason is counted, per station.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from station.collector.db import Payload, Rejection, printable
from station.feed import strict_json
from station.feed.schema import KINDS as SCHEMA_KINDS
from station.feed.schema import MAJOR, PayloadError, validate
from station.feed.strict_json import MAX_DEPTH, StrictJsonError
from station.feed.topics import TopicError, parse_topic
from station.vocabulary import STORED_KINDS


REASONS = ("bad_topic", "too_large", "not_json", "not_object", "unknown_schema", "unknown_version",
           "kind_mismatch", "station_mismatch", "invalid", "bad_thumbnail", "storage_refused", "internal_error")
"""Every rejection reason, as counted (``rejections`` table, ``/api/collector``)."""


@dataclass(frozen=True, slots=True)
class Accepted:
    kind: str               # detection, thumbnail, status, health
    station_id: str
    payload: dict[str, Any]


def _station_of(topic: str, prefix: str) -> str:
    """The station level of a topic for counting a rejection ('' when there is none)."""
    head = prefix + "/"
    if topic.startswith(head):
        level = topic[len(head):].split("/", 1)[0]
        return level[:64]
    return ""


def admit(topic: str, payload: bytes, *, prefix: str, max_bytes: int) -> Accepted | Rejection:
    """An :class:`Accepted` payload, or a :class:`Rejection` naming why not."""
    station = _station_of(topic, prefix)

    def no(reason: str, detail: str) -> Rejection:
        return Rejection(reason, station, printable(f"{topic}: {detail}")[:500])

    try:
        parsed = parse_topic(topic, prefix)
    except TopicError as exc:
        return Rejection("bad_topic", "", str(exc)[:500])
    if parsed.kind not in STORED_KINDS:
        return no("bad_topic", f"kind {parsed.kind!r} is not stored by the collector")
    station = parsed.station_id
    if len(payload) > max_bytes:
        return no("too_large", f"payload of {len(payload)} bytes is over the limit of {max_bytes} "
                               f"(collector.max_payload_kb)")
    try:
        text = payload.decode("utf-8")
        message = strict_json.loads(text)
    except UnicodeDecodeError as exc:
        return no("not_json", f"payload is not UTF-8 (byte {exc.start})")
    except json.JSONDecodeError as exc:
        return no("not_json", f"payload is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except StrictJsonError as exc:
        return no("not_json", f"payload is not strict JSON: {exc}")
    if not isinstance(message, dict):
        return no("not_object", f"payload is a JSON {type(message).__name__}, not an object")
    name = message.get("schema")
    if not isinstance(name, str) or "/" not in name:
        return no("unknown_schema", f"field 'schema' is {name!r}, not '<message>/<major>' such as "
                                    f"'{parsed.kind}/{MAJOR}'")
    kind, _, major = name.partition("/")
    if kind not in SCHEMA_KINDS:
        return no("unknown_schema", f"field 'schema': unknown message {kind!r}")
    if major != str(MAJOR):
        return no("unknown_version", f"field 'schema': {name!r} is a version this collector does not "
                                     f"know (it reads {kind}/{MAJOR}); upgrade the collector")
    if kind != parsed.kind:
        return no("kind_mismatch", f"field 'schema' is {name!r} but the topic is a {parsed.kind} topic")
    claimed = message.get("station_id")
    if claimed != station:
        return no("station_mismatch", f"field 'station_id' is {claimed!r} but the topic is station "
                                      f"{station!r}")
    if "\\u0000" in text:  # NUL can only come escaped; a literal backslash-u0000 is no NUL
        where = strict_json.nul_at(message)
        if where is not None:
            return no("invalid", f"field {where}: holds a NUL character (U+0000), which no feed text may")
    try:
        validate(kind, message)
    except PayloadError as exc:
        return no("invalid", f"field {exc.field}: {str(exc)}")
    except RecursionError:
        return no("not_json", f"payload is nested more than {MAX_DEPTH} levels deep")
    return Accepted(kind, station, Payload(message, text))
