"""The feed's messages, built as plain dicts that fit ``station/feed/schemas/`` (pure functions).

    msg = detection_message(record, cfg.station, thumbnail=True)   # from an event record
    payload = encode(msg)                                          # compact UTF-8 JSON bytes
    jpeg = make_thumbnail(store.event_dir(id) / thumbnail_source(record), 24 * 1024)
    thumb = thumbnail_message(record["id"], jpeg, station_id=cfg.station.id)
    cmd = parse_command(message.payload, topic_command="snapshot", station_id=cfg.station.id)

Times passed in are Unix seconds (``None``: now); times in messages are RFC 3339 UTC
strings with milliseconds. Builders raise :class:`MessageError` naming the key they
cannot use; :func:`parse_command` raises :class:`CommandError` naming the bad field.
docs/mqtt-feed.md describes every message.
"""

from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from station import __version__
from station.config.identity import StationSection
from station.record import EventRecord, record_problem
from station.times import iso
from station.feed.schema import PayloadError, load_schema, validate
from station.vocabulary import COMMANDS
from station.uris import redact_uri

THUMBNAIL_MAX_BYTES = 24 * 1024
"""Default cap on a thumbnail's JPEG (the schema allows at most 256 KiB)."""
THUMBNAIL_MAX_SIDE = 320
COMMAND_MAX_BYTES = 4096


class MessageError(ValueError):
    """A message cannot be built from what was given; the text names the key."""


class ThumbnailError(MessageError):
    """A picture that cannot be read, or a JPEG that must not be sent."""


class CommandError(ValueError):
    """A command payload that is not a valid command/1. ``field`` names the bad field;
    ``request_id`` and ``command`` are set when they could be read, so the station can
    still answer with a failed command_result."""

    def __init__(self, field: str, reason: str, request_id: str | None = None, command: str | None = None):
        self.field, self.reason = field, reason
        self.request_id, self.command = request_id, command
        super().__init__(f"command: {field}: {reason}")


def timestamp(ts: float | None = None) -> str:
    """RFC 3339 UTC with milliseconds (``2026-11-25T18:02:11.400Z``); None: now."""
    return iso(time.time() if ts is None else ts)  # type: ignore[return-value]


def encode(msg: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; NaN and infinity are refused (JSON has neither)."""
    try:
        return json.dumps(msg, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except ValueError as exc:
        raise MessageError(f"{msg.get('schema', 'message')}: cannot encode: {exc}") from None


# -- detection -------------------------------------------------------------------------

def _need(record: Mapping[str, Any], key: str, where: str) -> Any:
    if record.get(key) is None:
        raise MessageError(f"{where}: key {key!r} is missing or null")
    return record[key]


def _box(values: Sequence[float] | None) -> list[float] | None:
    if values is None:
        return None
    return [min(1.0, max(0.0, round(float(v), 4))) for v in values]


def detection_message(record: EventRecord, station: StationSection, *, thumbnail: bool = False,
                      sent_at: float | None = None, coordinate_uncertainty_m: float | None = None,
                      extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """detection/1 for a closed event record (docs/event-store.md) and the ``[station]``
    section. A record whose classification failed, or that has none (classifier off),
    gives ``classification_status: "failed"`` with tag ``unknown``."""
    where = f"event record {record.get('id', '?')}"
    event_id = _need(record, "id", where)
    if record.get("status") != "closed":
        raise MessageError(f"{where}: status is {record.get('status')!r}; only closed events are sent")
    if record.get("station_id") != station.id:
        raise MessageError(f"{where}: station_id {record.get('station_id')!r} is not this station's "
                           f"id {station.id!r}")
    frames = _need(record, "frames", where)
    start_ts, end_ts = float(_need(record, "start_timestamp", where)), float(_need(record, "end_timestamp", where))
    problem = record_problem(record)
    if problem is not None:
        raise MessageError(f"{where}: {problem}")
    c = record.get("classification") or {"status": "failed", "error": "not classified on the station"}
    if not isinstance(c, Mapping) or not isinstance(c.get("top_k") or [], list):
        raise MessageError(f"{where}: classification is not an object with a top_k list")
    ok = c.get("status") == "ok"
    files = {f.get("file"): f["index"] for f in frames if f.get("file")}
    model, taxonomy = c.get("model"), c.get("taxonomy")
    if coordinate_uncertainty_m is None:
        coordinate_uncertainty_m = getattr(station, "coordinate_uncertainty_m", None)
    msg: dict[str, Any] = {
        "schema": "detection/1",
        "message_id": event_id,
        "event_id": event_id,
        "station_id": station.id,
        "deployment_id": _need(record, "deployment_id", where),
        "start": _need(record, "start", where),
        "trigger": _need(record, "trigger", where),
        "end": _need(record, "end", where),
        "duration_s": round(max(0.0, end_ts - start_ts), 3),
        "tag": c.get("tag") if ok else "unknown",
        "species": c.get("species") if ok else None,
        "label": c.get("label") if ok else None,
        "confidence": c.get("confidence") if ok else None,
        "top_k": [{"label": k["label"], "tag": k["tag"], "p": k["p"]} for k in c.get("top_k") or []] if ok else [],
        "classification_status": "ok" if ok else "failed",
        "classification_error": None if ok else str(c.get("error") or "classification failed"),
        "best_box": _box(c.get("best_box")) if ok else None,
        "best_frame": files.get(c.get("best_frame")) if ok else None,
        "frames": [{"index": f["index"], "time": f["time"], "boxes": [_box(b) for b in f.get("boxes") or []],
                    "pre_trigger": bool(f.get("pre_trigger"))} for f in frames],
        "frame_count": len(frames),
        "model": None if not model else {"name": model.get("name") or "?", "sha256": model.get("sha256")},
        "taxonomy": None if not taxonomy else {"region": taxonomy.get("region")},
        "location": {"latitude": station.latitude, "longitude": station.longitude,
                     "coordinate_uncertainty_m": coordinate_uncertainty_m},
        "camera": {"height_m": station.camera_height_m, "heading_deg": station.camera_heading_deg,
                   "tilt_deg": station.camera_tilt_deg},
        "thumbnail": bool(thumbnail),
        "sent_at": timestamp(sent_at),
    }
    clip = _clip(record.get("clip"))
    if clip is not None:
        msg["clip"] = clip
    if extra is not None:
        msg["extra"] = dict(extra)
    return msg


def _clip(clip: Any) -> dict[str, Any] | None:
    """detection/1's optional ``clip``: the event's video kept on the station's card (never
    sent); None when the record has no clip file."""
    if not isinstance(clip, Mapping) or not isinstance(clip.get("file"), str):
        return None
    if not all(isinstance(clip.get(k), str) for k in ("start", "end")):
        return None
    duration = clip.get("duration_s")
    if not isinstance(duration, (int, float)) or isinstance(duration, bool) or not duration >= 0:
        return None
    return {"file": clip["file"], "mediatype": "video/mp4", "start": clip["start"], "end": clip["end"],
            "duration_s": round(float(duration), 3)}


# -- status ----------------------------------------------------------------------------

_REASONS = {"online": ("started",), "offline": ("stopping", "connection_lost")}


def status_message(station_id: str, state: str, reason: str, since: float, *,
                   software_version: str = __version__, sent_at: float | None = None,
                   will: bool = False) -> dict[str, Any]:
    """status/1. ``will=True`` leaves out ``sent_at`` (the broker sends the will later)."""
    if reason not in _REASONS.get(state, ()):
        raise MessageError(f"status: reason {reason!r} does not go with state {state!r} "
                           f"(online: started; offline: stopping, connection_lost)")
    msg: dict[str, Any] = {"schema": "status/1", "station_id": station_id, "state": state, "reason": reason,
                           "since": timestamp(since), "software_version": software_version}
    if not will:
        msg["sent_at"] = timestamp(sent_at)
    return msg


def will_message(station_id: str, connected_at: float, software_version: str = __version__) -> dict[str, Any]:
    """The MQTT will, composed at connect time: offline, connection_lost, since the connection."""
    return status_message(station_id, "offline", "connection_lost", connected_at,
                          software_version=software_version, will=True)


# -- health ----------------------------------------------------------------------------

HEALTH_SECTIONS: dict[str, tuple[str, ...]] = {
    "memory": ("total_mb", "available_mb", "process_rss_mb"),
    "disk": ("free_mb", "store_mb", "low"),
    "outbox": ("depth", "detections", "thumbnails", "oldest_age_s", "bytes", "cap_mb", "full",
               "thumbnails_dropped", "detections_dropped"),
    "camera": ("state", "uri", "fps", "failures"),
    "events": ("total", "pending_classification"),
    "clock": ("synchronized", "source", "offset_s"),
    "power": ("monitor", "battery_v", "current_a", "power_w", "wh_today", "wh_today_covered_s", "wh_yesterday",
              "day", "low_battery", "monitor_error", "undervoltage", "undervoltage_events", "throttled",
              "frequency_capped", "soft_temperature_limit"),
}


def _section(name: str, value: Any) -> dict[str, Any]:
    data = asdict(value) if is_dataclass(value) and not isinstance(value, type) else value
    if not isinstance(data, Mapping):
        data = {k: getattr(value, k) for k in HEALTH_SECTIONS[name] if hasattr(value, k)}
    missing = [k for k in HEALTH_SECTIONS[name] if k not in data]
    if missing:
        raise MessageError(f"health: {name}.{missing[0]} is missing")
    return {k: data[k] for k in HEALTH_SECTIONS[name]}


_POWER_DIGITS = {"battery_v": 3, "current_a": 4, "power_w": 3, "wh_today": 3, "wh_today_covered_s": 1,
                 "wh_yesterday": 3}


def _bounded(prop: Mapping[str, Any], value: Any, digits: int | None = None) -> Any:
    """A number as health/1 allows it: rounded; beyond the schema's bounds (or not finite)
    it becomes null where null is allowed, else the nearest bound. A sensor gone wrong
    (10,000 degrees C, a negative voltage) is never sent as a reading."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    value = float(value)
    lo, hi = prop.get("minimum", -math.inf), prop.get("maximum", math.inf)
    types = prop.get("type", ())
    types = [types] if isinstance(types, str) else list(types)
    nullable = "null" in types
    if not math.isfinite(value) or not lo <= value <= hi:
        if nullable or math.isnan(value):
            return None
        value = min(max(value, lo), hi)
    if types == ["integer"]:
        return int(value)
    return round(value, digits) if digits is not None else value


def _power_section(value: Any) -> dict[str, Any]:
    data = _section("power", value)
    props = load_schema("health")["properties"]["power"]["properties"]
    out = {k: _bounded(props[k], v, _POWER_DIGITS.get(k)) for k, v in data.items()}
    if isinstance(out["monitor_error"], str):
        out["monitor_error"] = out["monitor_error"][:props["monitor_error"]["maxLength"]]
    return out


def health_message(station_id: str, *, uptime_s: float, cpu_temperature_c: float | None,
                   load: Sequence[float], memory: Any, disk: Any, outbox: Any, camera: Any, events: Any,
                   clock: Any, sent_at: float | None = None, power: Any = None,
                   extra: Mapping[str, Any] | None = None, ir_light: Any = None) -> dict[str, Any]:
    """health/1. Each section is a mapping or an object (a dataclass) with the keys in
    :data:`HEALTH_SECTIONS`; keys beyond those are left out. The camera URI is redacted here.
    ``power`` (optional: None leaves the section out) has its numbers kept within the
    schema's bounds, as has the temperature (:func:`_bounded`)."""
    if len(load) != 3:
        raise MessageError(f"health: load must be the 1, 5 and 15 minute averages, got {len(load)} values")
    sections = {name: _section(name, value) for name, value in
                (("memory", memory), ("disk", disk), ("outbox", outbox), ("camera", camera),
                 ("events", events), ("clock", clock))}
    sections["camera"]["uri"] = redact_uri(sections["camera"]["uri"])
    temperature = load_schema("health")["properties"]["cpu_temperature_c"]
    msg: dict[str, Any] = {
        "schema": "health/1", "station_id": station_id, "sent_at": timestamp(sent_at),
        "uptime_s": round(float(uptime_s), 1),
        "cpu_temperature_c": _bounded(temperature, cpu_temperature_c, 1),
        "load_1m": round(float(load[0]), 2), "load_5m": round(float(load[1]), 2),
        "load_15m": round(float(load[2]), 2),
        **sections,
    }
    # -- optional sections: present only where the station has the part ------------------
    if power is not None:
        msg["power"] = _power_section(power)
    if ir_light is not None:
        data = asdict(ir_light) if is_dataclass(ir_light) else dict(ir_light)
        msg["ir_light"] = {k: data[k] for k in ("pin", "mode", "on", "switches", "light_level")}
    if extra is not None:
        msg["extra"] = dict(extra)
    return msg


# -- thumbnails ------------------------------------------------------------------------

_SOF = {m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC)}  # frame headers: the size
_TABLES = {0xC4, 0xDB, 0xDD}  # Huffman and quantisation tables, restart interval
_RST = range(0xD0, 0xD8)      # restart markers inside entropy-coded data
_JFIF = b"JFIF\x00"


def _marker_name(marker: int) -> str:
    if 0xE0 <= marker <= 0xEF:
        return f"APP{marker - 0xE0}" + (": EXIF or XMP" if marker == 0xE1 else "")
    return {0xFE: "COM: a comment"}.get(marker, "not a picture segment")


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG that carries nothing but the picture; :class:`ThumbnailError`
    otherwise. Every segment is walked, through the entropy-coded scans, to the end-of-image
    marker: only a plain JFIF APP0 (no embedded thumbnail), one frame header, Huffman and
    quantisation tables, restart intervals and scans may appear, anywhere; any metadata
    (EXIF/XMP, IPTC, ICC, comments, any other APPn), a second frame, a missing end or a
    single byte after it is refused."""
    def bad(why: str) -> ThumbnailError:
        return ThumbnailError(f"thumbnail: {why}")

    if data[:2] != b"\xff\xd8":
        raise bad("not a JPEG (no start-of-image marker)")
    n, pos, size, scans = len(data), 2, None, 0
    while True:
        if pos + 2 > n:
            raise bad("the JPEG ends without an end-of-image marker")
        if data[pos] != 0xFF:
            raise bad(f"corrupt JPEG: no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xD9:  # end of image
            if not scans:
                raise bad("the JPEG has no picture data (no scan)")
            if pos + 2 != n:
                raise bad(f"{n - pos - 2} bytes follow the end-of-image marker (hidden data?)")
            break
        if pos + 4 > n:
            raise bad(f"corrupt JPEG: segment 0x{marker:02X} cut short at byte {pos}")
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > n:
            raise bad(f"corrupt JPEG: segment 0x{marker:02X} at byte {pos} has a bad length")
        if marker == 0xE0:
            body = data[pos + 4:end]
            if pos != 2 or length != 16 or not body.startswith(_JFIF) or body[12:14] != b"\x00\x00":
                raise bad(f"JPEG carries an APP0 segment other than a plain JFIF header at byte {pos}; "
                          "re-encode it with make_thumbnail")
        elif marker in _SOF:
            if size is not None:
                raise bad(f"JPEG has a second frame header at byte {pos}")
            if length < 8:
                raise bad(f"corrupt JPEG: frame header at byte {pos} is too short")
            size = (int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big"))
        elif marker == 0xDA:  # start of scan: its header, then entropy-coded data up to the next marker
            if size is None:
                raise bad(f"JPEG scan at byte {pos} comes before any frame header")
            scans += 1
            pos = end
            while True:
                pos = data.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= n:
                    raise bad("the JPEG ends inside its picture data (no end-of-image marker)")
                following = data[pos + 1]
                if following == 0x00 or following in _RST:
                    pos += 2
                elif following == 0xFF:
                    pos += 1
                else:
                    break
            continue
        elif marker not in _TABLES:
            raise bad(f"JPEG carries a metadata segment (marker 0x{marker:02X}, {_marker_name(marker)}) "
                      f"at byte {pos}; re-encode it with make_thumbnail")
        pos = end
    if size is None or min(size) < 1:
        raise bad("JPEG has no frame header (width and height)")
    return size


def make_thumbnail(image: str | Path | np.ndarray, max_bytes: int = THUMBNAIL_MAX_BYTES,
                   max_side: int = THUMBNAIL_MAX_SIDE, min_side: int = 48) -> bytes | None:
    """A JPEG of at most ``max_bytes`` and ``max_side`` pixels on its longer side, re-encoded
    from the pixels so it carries no metadata. Quality goes down first, then the size;
    None when even ``min_side`` pixels at the lowest quality do not fit. Raises
    :class:`ThumbnailError` naming the file when the picture cannot be read."""
    if isinstance(image, np.ndarray):
        pixels = image
    else:
        pixels = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if pixels is None:
            raise ThumbnailError(f"{image}: cannot be read as a picture")
    h, w = pixels.shape[:2]
    side = min(max_side, max(h, w))
    while side >= min(min_side, max(h, w)):
        scale = side / max(h, w)
        small = pixels if scale >= 1 else cv2.resize(
            pixels, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        for quality in (80, 70, 60, 50, 40, 30, 20):
            params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 1]
            ok, buf = cv2.imencode(".jpg", small, params)
            if ok and buf.size <= max_bytes:
                return buf.tobytes()
        if side <= min_side:
            break
        side = max(min_side, int(side * 0.75))
    return None


def thumbnail_source(record: Mapping[str, Any]) -> str | None:
    """File name of the still to show: the classifier's best, else the first after the
    trigger, else any saved one; None when no still was saved."""
    saved = [f for f in record.get("frames") or [] if f.get("file")]
    best = (record.get("classification") or {}).get("best_frame")
    if best and any(f["file"] == best for f in saved):
        return best
    after = [f for f in saved if not f.get("pre_trigger")]
    return (after or saved)[0]["file"] if saved else None


def thumbnail_message(event_id: str, jpeg_bytes: bytes, *, station_id: str, sent_at: float | None = None,
                      max_bytes: int = THUMBNAIL_MAX_BYTES) -> dict[str, Any]:
    """thumbnail/1 for a JPEG from :func:`make_thumbnail` (refused if over ``max_bytes`` or
    carrying any metadata segment)."""
    if len(jpeg_bytes) > max_bytes:
        raise ThumbnailError(f"thumbnail: {len(jpeg_bytes)} bytes is over the cap of {max_bytes}")
    width, height = jpeg_size(jpeg_bytes)
    return {
        "schema": "thumbnail/1", "station_id": station_id, "event_id": event_id,
        "message_id": f"{event_id}:thumb", "content_type": "image/jpeg",
        "width": width, "height": height, "bytes": len(jpeg_bytes),
        "data": base64.b64encode(jpeg_bytes).decode("ascii"), "sent_at": timestamp(sent_at),
    }


# -- commands --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Command:
    command: str
    request_id: str
    sent_by: str | None = None
    sent_at: str | None = None


def parse_command(payload: bytes, *, topic_command: str | None = None, station_id: str | None = None) -> Command:
    """A command/1 payload as a :class:`Command`. ``topic_command`` (the topic's last level)
    and ``station_id`` (the topic's station), when given, must agree with the payload."""
    if len(payload) > COMMAND_MAX_BYTES:
        raise CommandError("(payload)", f"{len(payload)} bytes; a command is at most {COMMAND_MAX_BYTES}")
    try:
        data = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CommandError("(payload)", f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise CommandError("(payload)", f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, dict):
        raise CommandError("(payload)", f"a command is a JSON object, not {type(data).__name__}")
    rid = data.get("request_id") if isinstance(data.get("request_id"), str) else None
    name = data.get("command") if data.get("command") in COMMANDS else None
    try:
        validate("command", data)
    except PayloadError as exc:
        request_id = rid if rid and "request_id" not in {f for f, _ in exc.problems} else None
        raise CommandError(exc.field, exc.problems[0][1], request_id, name) from None
    if topic_command is not None and data["command"] != topic_command:
        raise CommandError("command", f"{data['command']!r} does not match the topic's {topic_command!r}",
                           rid, topic_command if topic_command in COMMANDS else None)
    if station_id is not None and data.get("station_id", station_id) != station_id:
        raise CommandError("station_id", f"{data['station_id']!r} is not this station ({station_id!r})", rid, name)
    return Command(data["command"], data["request_id"], data.get("sent_by"), data.get("sent_at"))


def command_result(station_id: str, request_id: str, command: str, ok: bool, message: str, *,
                   event_id: str | None = None, sent_at: float | None = None) -> dict[str, Any]:
    """command_result/1: the station's answer to ``request_id``."""
    if command not in COMMANDS:
        raise MessageError(f"command_result: command {command!r} is not one of {', '.join(COMMANDS)}")
    return {"schema": "command_result/1", "station_id": station_id, "request_id": request_id,
            "command": command, "ok": bool(ok), "message": message[:1024], "event_id": event_id,
            "sent_at": timestamp(sent_at)}
