"""The things that travel: an event, its stills, and their JSON record on disk.

The record (``event.json``) is the hand-off point to the classifier and the feed, so
its shape is versioned (``schema``). Later stages add their own top-level keys
(``classification``, ``delivery``) without touching what capture wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from station.motion.types import Box
from station.record import RECORD_SCHEMA, CaptureRecord, FrameRecord
from station.times import iso



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

    def to_dict(self) -> FrameRecord:
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

    def to_record(self) -> CaptureRecord:
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
