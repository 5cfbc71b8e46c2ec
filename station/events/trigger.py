"""What opens an event (``[trigger] mode``): software motion, a PIR sensor, or both.

:class:`TriggerGate` turns the motion detector's answer for a frame into the answer the
event recorder acts on, so the recorder's rules (``trigger_frames``, ``post_motion_s``,
``max_length_s``, cooldown) hold in every mode:

* ``motion``: unchanged (software motion only).
* ``pir_and_motion``: motion counts only within ``pir_window_s`` of the PIR's last signal.
  A PIR does not see light, so moving shadows, a cloud or swaying leaves in the sun no
  longer open events; an animal the PIR misses (small, far or slow) is missed too.
* ``pir_wake``: the PIR is the trigger. The camera is closed until the PIR fires (a live
  camera; the daemon handles that), so there is no background for motion detection and
  no pre-trigger buffer: the event starts when the camera has woken, after the animal came.
  The event lasts while the PIR's output stays high (it holds a few seconds after the last
  movement), then ``post_motion_s``.

Each event records its trigger source: ``motion``, ``pir_and_motion`` or ``pir``.
"""

from __future__ import annotations

import math
from dataclasses import replace

from station.camera.base import Frame
from station.gpio.pir import Pir
from station.motion.types import MotionResult

SOURCES = {"motion": "motion", "pir_and_motion": "pir_and_motion", "pir_wake": "pir"}
"""[trigger] mode -> the record's trigger_source."""


class TriggerGate:
    def __init__(self, mode: str, pir: Pir | None, window_s: float = 2.0):
        if mode != "motion" and pir is None:
            raise ValueError(f"trigger mode {mode!r} needs a PIR")
        self.mode = mode
        self.pir = pir
        self.window_s = window_s
        self.source = SOURCES[mode]
        self.last_pir = -math.inf
        """Frame time the PIR was last seen high."""
        self.pir_now = False
        """The PIR was high at the last frame gated."""

    def pir_seen(self, frame: Frame) -> bool:
        self.pir_now = self.pir is not None and self.pir.active(frame)
        if self.pir_now:
            self.last_pir = frame.timestamp
        return self.pir_now

    def gate(self, frame: Frame, result: MotionResult) -> MotionResult:
        if self.mode == "motion":
            return result
        pir = self.pir_seen(frame)
        if self.mode == "pir_wake":
            return result if result.motion == pir else replace(result, motion=pir)
        if result.motion and frame.timestamp - self.last_pir > self.window_s:
            return replace(result, motion=False)
        return result


class WakeState:
    """``pir_wake``: is the camera meant to be on? It wakes when the PIR fires and sleeps
    again once the PIR has been quiet ``timeout_s`` with no event open."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.awake = False
        self.wakes = 0
        self._last_pir = -math.inf

    def update(self, timestamp: float, pir: bool, event_open: bool) -> tuple[bool, bool]:
        """(awake, just woke) for a frame at ``timestamp``."""
        if pir:
            self._last_pir = timestamp
            if not self.awake:
                self.awake = True
                self.wakes += 1
                return True, True
        elif self.awake and not event_open and timestamp - self._last_pir > self.timeout_s:
            self.awake = False
        return self.awake, False
