"""The event record (``event.json``): the hand-off between capture, classifier and feed.

Capture writes its part when an event opens and closes (:class:`CaptureRecord`); the
classifier adds ``classification`` (:class:`ClassificationRecord`); the feed adds
``delivery`` (:class:`DeliveryRecord`). Each stage adds its own top-level key and never
rewrites another's. docs/event-store.md describes every field.

These are types for reading code and for type checkers; a record read back from a card
may still be damaged, so readers check what they use.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, TypedDict

RECORD_SCHEMA = 1


class FrameRecord(TypedDict, total=False):
    """One still of an event."""

    index: int
    file: str | None          # file name in the event folder; None if it could not be written
    time: str                 # RFC 3339 UTC
    timestamp: float          # Unix seconds
    pre_trigger: bool
    motion_score: float
    boxes: list[list[float]]  # motion boxes, normalised [x, y, w, h]
    error: str


class CaptureRecord(TypedDict):
    """What capture writes (:meth:`station.events.model.Event.to_record`)."""

    schema: int
    id: str
    station_id: str
    deployment_id: str
    status: Literal["open", "closed"]
    camera: str
    trigger_source: str       # motion, pir_and_motion, pir, snapshot
    start: str
    trigger: str
    end: str | None
    start_timestamp: float
    trigger_timestamp: float
    end_timestamp: float | None
    end_reason: str | None
    pre_trigger_s: float
    motion_frames: int
    peak_motion_score: float
    frames_dropped: int
    frames: list[FrameRecord]


class ClassificationRecord(TypedDict, total=False):
    """What the classifier adds (:meth:`station.classifier.classify.Classifier.classify_event`)."""

    status: Literal["ok", "failed"]
    error: str | None
    tag: str | None
    species: str | None
    label: str | None
    confidence: float | None
    top_k: list[dict[str, Any]]
    tag_scores: dict[str, float]
    best_frame: str | None
    best_box: list[float] | None
    frames: list[str]
    frame_errors: list[dict[str, str]]
    model: dict[str, Any] | None
    taxonomy: dict[str, Any] | None
    threshold: float | None
    attempted_at: float
    attempts: int
    elapsed_ms: float


class DeliveryRecord(TypedDict, total=False):
    """What the feed adds (:class:`station.feed.service.FeedService`)."""

    status: Literal["queued", "delivered"]
    queued_at: float
    delivered_at: float


class EventRecord(CaptureRecord, total=False):
    """A whole record as the store holds it."""

    clip: dict[str, Any]      # the event's video ([events] video), or why there is none
    classification: ClassificationRecord
    delivery: DeliveryRecord


# -- checking a record read back from a card ------------------------------------------------
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
