"""``[trigger]``: what opens an event: software motion, a PIR sensor, or both.

    mode = "motion"           # software motion detection only (the default)
    mode = "pir_and_motion"   # motion counts only while the PIR sees warm movement
    mode = "pir_wake"         # the camera is off until the PIR fires (no pre-trigger buffer)
    pir_pin = 17              # GPIO (BCM) the PIR's output is wired to

A synthetic scene has a simulated PIR of its own, so ``pir_pin`` may be left out there.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from station.config.base import Section, check_gpio

TRIGGER_MODES = ("motion", "pir_and_motion", "pir_wake")


class TriggerSection(Section):
    mode: Literal["motion", "pir_and_motion", "pir_wake"] = "motion"
    pir_pin: int | None = None
    """GPIO (BCM number, 0-27 on the 40-pin header) of the PIR sensor's output."""
    pir_window_s: float = Field(default=2.0, ge=0, le=60)
    """"pir_and_motion": motion counts within this many seconds of the PIR's last signal."""
    pir_wake_timeout_s: float = Field(default=10.0, gt=0, le=600)
    """"pir_wake": the camera closes again once the PIR has been quiet this long and no event is open."""

    @field_validator("pir_pin")
    @classmethod
    def _gpio(cls, v: int | None) -> int | None:
        return check_gpio(v)
