"""``[events]``: how motion becomes a camera-trap event."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from station.config.base import Pair, Section


class EventsSection(Section):
    pre_trigger_s: float = Field(default=2.0, ge=0, le=30)
    """Seconds of frames kept before the trigger, so the event starts before it."""
    still_interval_s: float = Field(default=0.5, gt=0, le=60)
    """A full-resolution still is kept every this many seconds while motion continues."""
    post_motion_s: float = Field(default=2.0, ge=0, le=60)
    """The event stays open until motion has been absent this long."""
    max_length_s: float = Field(default=30.0, gt=0, le=3600)
    cooldown_s: float = Field(default=3.0, ge=0, le=3600)
    """After an event closes, motion is ignored this long (a trap's re-arm time)."""
    trigger_frames: int = Field(default=2, ge=1, le=50)
    """Consecutive motion frames needed to start an event (rejects single-frame flicker)."""
    jpeg_quality: int = Field(default=90, ge=10, le=100)
    video: bool = False
    """Record a video clip of each motion event (``clip.mp4`` beside the stills), from
    ``pre_trigger_s`` before the trigger to the end of the event (docs/event-store.md)."""
    video_size: Pair | None = None
    """Clip size (width, height). Default per board and source: the main size with the Pi's
    hardware H.264 encoder (Pi 4, Pi 3, Zero 2 W); 640 wide on a Pi 5 (software encoder);
    the main size for OpenCV, file and synthetic cameras."""
    video_bitrate_kbps: int = Field(default=1500, ge=100, le=25000)
    """H.264 bitrate of a Raspberry Pi camera's clips (OpenCV's encoder has no bitrate setting)."""

    @model_validator(mode="after")
    def _fits(self) -> "EventsSection":
        if self.still_interval_s > self.max_length_s:
            raise ValueError("still_interval_s must not exceed max_length_s")
        return self

    @field_validator("video_size")
    @classmethod
    def _video_size(cls, v: Pair | None) -> Pair | None:
        if v is not None:
            w, h = v
            if not (64 <= w <= 1920 and 64 <= h <= 1080) or w % 2 or h % 2:
                raise ValueError("must be [width, height] in even numbers, from [64, 64] to [1920, 1080]")
        return v
