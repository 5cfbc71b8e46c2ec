"""The event record (``event.json``): the hand-off between capture, classifier and feed.

Capture writes its part when an event opens and closes (:class:`CaptureRecord`); the
classifier adds ``classification`` (:class:`ClassificationRecord`); the feed adds
``delivery`` (:class:`DeliveryRecord`). Each stage adds its own top-level key and never
rewrites another's. docs/event-store.md describes every field.

These are types for reading code and for type checkers; a record read back from a card
may still be damaged, so readers check what they use.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

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
    trigger_source: str       # motion, snapshot
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

    classification: ClassificationRecord
    delivery: DeliveryRecord
