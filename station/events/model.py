"""The things that travel: an event, its stills, and their JSON record on disk.

The record (``event.json``) is the hand-off point to the classifier and the feed, so
its shape is versioned (``schema``). Later stages add their own top-level keys
(``classification``, ``delivery``) without touching what capture wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

from station.motion.types import Box

RECORD_SCHEMA = 1


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Still:
    """One full-resolution frame kept for an event."""

    index: int
    timestamp: float
    boxes: tuple[Box, ...]
    score: float
    pre_trigger: bool
    file: str | None = None
    """File name inside the event folder; None if the frame could not be written."""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "file": self.file,
            "time": iso(self.timestamp),
            "timestamp": round(self.timestamp, 3),
            "pre_trigger": self.pre_trigger,
            "motion_score": round(self.score, 5),
            "boxes": [b.as_list() for b in self.boxes],
            **({"error": self.error} if self.error else {}),
        }


@dataclass(slots=True)
class Event:
    id: str
    station_id: str
    deployment_id: str
    trigger_time: float
    start_time: float
    end_time: float | None = None
    end_reason: str | None = None
    stills: list[Still] = field(default_factory=list)
    motion_frames: int = 0
    peak_score: float = 0.0
    frames_dropped: int = 0
    camera: str = ""
    trigger_source: str = "motion"
    """"motion", or "snapshot" for a still an operator asked for."""

    @property
    def is_open(self) -> bool:
        return self.end_time is None

    def to_record(self) -> dict[str, Any]:
        return {
            "schema": RECORD_SCHEMA,
            "id": self.id,
            "station_id": self.station_id,
            "deployment_id": self.deployment_id,
            "status": "open" if self.is_open else "closed",
            "camera": self.camera,
            "trigger_source": self.trigger_source,
            "start": iso(self.start_time),
            "trigger": iso(self.trigger_time),
            "end": iso(self.end_time),
            "start_timestamp": round(self.start_time, 3),
            "trigger_timestamp": round(self.trigger_time, 3),
            "end_timestamp": None if self.end_time is None else round(self.end_time, 3),
            "end_reason": self.end_reason,
            "pre_trigger_s": round(self.trigger_time - self.start_time, 3),
            "motion_frames": self.motion_frames,
            "peak_motion_score": round(self.peak_score, 5),
            "frames_dropped": self.frames_dropped,
            "frames": [s.to_dict() for s in self.stills],
        }


_NUMBER = (int, float)


def _is(value: Any, types: type | tuple[type, ...], none: bool = False) -> bool:
    if value is None:
        return none
    return isinstance(value, types) and not isinstance(value, bool)


def record_problem(record: Any) -> str | None:
    """What keeps a record from being used, naming the key (``frames[3].file is a number,
    not a file name``); None when it has the shape capture writes (docs/event-store.md).
    Only the keys later stages rely on are checked; keys they add are not."""
    if not isinstance(record, Mapping):
        return f"the record is {_shown(record)}, not an object"
    required: tuple[tuple[str, Any, bool, str], ...] = (
        ("id", str, False, "a string"), ("station_id", str, False, "a string"),
        ("deployment_id", str, False, "a string"), ("status", str, False, "a string"),
        ("start", str, False, "a time string"), ("trigger", str, False, "a time string"),
        ("end", str, True, "a time string or null"),
        ("start_timestamp", _NUMBER, False, "a number"), ("trigger_timestamp", _NUMBER, False, "a number"),
        ("end_timestamp", _NUMBER, True, "a number or null"),
    )
    for key, types, none, what in required:
        if key not in record:
            return f"{key} is missing"
        if not _is(record[key], types, none):
            return f"{key} is {_shown(record[key])}, not {what}"
    if record["status"] not in ("open", "closed"):
        return f"status is {record['status']!r}, not 'open' or 'closed'"
    frames = record.get("frames")
    if not isinstance(frames, list):
        return f"frames is {_shown(frames)}, not a list"
    for i, frame in enumerate(frames):
        if not isinstance(frame, Mapping):
            return f"frames[{i}] is {_shown(frame)}, not an object"
        for key, types, none, what in (("index", int, False, "a whole number"),
                                        ("file", str, True, "a file name or null"),
                                        ("time", str, False, "a time string"),
                                        ("timestamp", _NUMBER, False, "a number")):
            if key not in frame:
                return f"frames[{i}].{key} is missing"
            if not _is(frame[key], types, none):
                return f"frames[{i}].{key} is {_shown(frame[key])}, not {what}"
        boxes = frame.get("boxes", [])
        if not isinstance(boxes, list) or not all(isinstance(b, list) and len(b) == 4
                                                  and all(_is(x, _NUMBER) for x in b) for b in boxes):
            return f"frames[{i}].boxes is not a list of [x, y, w, h]"
    return None


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    kind = {str: "a string", bool: "a boolean", int: "a number", float: "a number", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)
    return f"{kind} {text[:40]}" if not isinstance(value, (list, dict)) else kind
