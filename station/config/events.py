"""``[events]``: how motion becomes a camera-trap event."""

from __future__ import annotations

from pydantic import Field, model_validator

from station.config.base import Section


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

    @model_validator(mode="after")
    def _fits(self) -> "EventsSection":
        if self.still_interval_s > self.max_length_s:
            raise ValueError("still_interval_s must not exceed max_length_s")
        return self
