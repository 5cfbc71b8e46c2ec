"""Motion becomes camera-trap events: pre-trigger buffer, burst of stills, cooldown.

The recorder is a pure state machine driven by frame timestamps, so replays and tests
run it at any speed. It never touches the disk: finished stills and events go to an
:class:`EventSink` (the writer thread in the daemon, a list in tests).

    idle ──(trigger_frames consecutive motion frames, not in cooldown)──► open
    open ──(no motion for post_motion_s, or max_length_s reached)──► closed ─► cooldown ─► idle

While idle, a full-resolution still is kept every ``still_interval_s`` in a ring buffer
covering ``pre_trigger_s``: when an event opens, those stills become its first frames,
so the event begins *before* the trigger instead of losing its first second as a PIR
trap does.

With ``[events] video`` a clip tap (:mod:`station.events.clip_tap`) sees every frame and
each event's opening and closing, so the event's clip runs from its first still to its
last frame.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Callable, Protocol

import numpy as np

from station.camera.base import Frame
from station.config.events import EventsSection
from station.events.clip_tap import ClipTap
from station.events.ids import new_event_id
from station.events.model import Event, Still
from station.log import get_logger
from station.motion.types import Box, MotionResult

log = get_logger("events")

# A still without boxes of its own borrows the last motion boxes seen this recently.
_BOX_MEMORY_S = 1.0


class EventSink(Protocol):
    def opened(self, event: Event) -> None: ...

    def still(self, event: Event, still: Still, image: np.ndarray) -> None: ...

    def closed(self, event: Event) -> None: ...


class EventRecorder:
    def __init__(self, cfg: EventsSection, station_id: str, deployment_id: str, sink: EventSink,
                 frame_period_s: float = 0.1, camera: str = "",
                 id_factory: Callable[[float], str] = new_event_id):
        self.cfg = cfg
        self.station_id = station_id
        self.deployment_id = deployment_id
        self.sink = sink
        self.camera = camera
        self._tolerance = frame_period_s / 2
        self._new_id = id_factory
        self._buffer: deque[tuple[Frame, MotionResult]] = deque()
        self._event: Event | None = None
        self._last_still_ts = -math.inf
        self._last_ts: float | None = None
        self._streak = 0
        self._streak_start: float | None = None
        self._last_motion_ts = -math.inf
        self._cooldown_until = -math.inf
        self._recent_boxes: tuple[float, tuple[Box, ...]] = (-math.inf, ())
        self._keep = False
        self.events_closed = 0
        self.clip_tap: ClipTap | None = None
        """Sees every frame and each motion event's opening and closing (``[events] video``)."""
        self.trigger_source = "motion"
        """What opens events: "motion", "pir_and_motion" or "pir" (``[trigger] mode``)."""

    def reconfigure(self, cfg: EventsSection, station_id: str, deployment_id: str) -> None:
        """Take new [events] settings and identity (a config reload); the next frame uses them.
        The event in hand keeps its id, station and deployment."""
        self.cfg = cfg
        self.station_id, self.deployment_id = station_id, deployment_id

    def use_camera(self, camera: str) -> None:
        """A new camera (a reload that changed ``camera.uri``): events say which one saw them."""
        self.interrupt("reload")
        self.camera = camera

    @property
    def current(self) -> Event | None:
        return self._event

    def still_due(self, next_ts: float) -> bool:
        """Should the frame expected at ``next_ts`` be captured at full resolution?"""
        if self._event is None and self._streak > 0:
            return True  # motion is building up: have a still ready for the trigger
        return next_ts - self._last_still_ts >= self.cfg.still_interval_s - self._tolerance

    def feed(self, frame: Frame, result: MotionResult, still: bool | None = None) -> None:
        """One frame and its motion. ``still``: keep its full-resolution image as a still
        (default: whenever it has one); False when the image is there for the clip only."""
        ts = frame.timestamp
        self._last_ts = ts
        if self.clip_tap is not None:
            self.clip_tap.frame(frame, self._event)
        self._keep = frame.main is not None if still is None else (still and frame.main is not None)
        cooling = self._event is None and ts < self._cooldown_until
        if result.motion and not cooling:
            if self._streak == 0:
                self._streak_start = ts
            self._streak += 1
            if result.boxes:
                self._recent_boxes = (ts, result.boxes)
        else:
            self._streak = 0
            self._streak_start = None

        if self._event is None:
            self._idle(frame, result)
        else:
            self._active(frame, result)

    def _idle(self, frame: Frame, result: MotionResult) -> None:
        ts = frame.timestamp
        if self._keep:
            self._last_still_ts = ts
            self._buffer.append((frame, result))
        horizon = ts - self.cfg.pre_trigger_s - 1e-6
        while self._buffer and self._buffer[0][0].timestamp < horizon:
            self._buffer.popleft()
        if result.motion and self._streak >= self.cfg.trigger_frames:
            self._open(trigger_time=self._streak_start if self._streak_start is not None else ts)

    def _open(self, trigger_time: float) -> None:
        start = min([trigger_time] + [f.timestamp for f, _ in self._buffer])
        event = Event(
            id=self._new_id(start), station_id=self.station_id, deployment_id=self.deployment_id,
            trigger_time=trigger_time, start_time=start, motion_frames=self._streak,
            camera=self.camera, trigger_source=self.trigger_source,
        )
        self._event = event
        self._last_motion_ts = self._last_ts if self._last_ts is not None else trigger_time
        log.info("event opened", id=event.id, trigger=f"{trigger_time:.3f}",
                 pre_trigger_s=f"{trigger_time - start:.2f}")
        self.sink.opened(event)
        buffered, self._buffer = list(self._buffer), deque()
        for frame, result in buffered:
            self._add_still(frame, result)
        if self.clip_tap is not None:
            self.clip_tap.opened(event)

    def _active(self, frame: Frame, result: MotionResult) -> None:
        event = self._event
        assert event is not None
        ts = frame.timestamp
        if result.motion:
            event.motion_frames += 1
            self._last_motion_ts = ts
        if self._keep:
            self._last_still_ts = ts
            self._add_still(frame, result)
        if ts - self._last_motion_ts >= self.cfg.post_motion_s:
            self._close("motion_ended", ts)
        elif ts - event.start_time >= self.cfg.max_length_s:
            self._close("max_length", ts)

    def _add_still(self, frame: Frame, result: MotionResult) -> None:
        event = self._event
        assert event is not None and frame.main is not None
        boxes = result.boxes
        seen_at, recent = self._recent_boxes
        if not boxes and 0 <= frame.timestamp - seen_at <= _BOX_MEMORY_S:
            boxes = recent
        event.peak_score = max(event.peak_score, result.score)
        still = Still(index=len(event.stills), timestamp=frame.timestamp, boxes=boxes,
                      score=result.score, pre_trigger=frame.timestamp < event.trigger_time)
        event.stills.append(still)
        self.sink.still(event, still, frame.main)

    def _close(self, reason: str, end_ts: float) -> None:
        event = self._event
        assert event is not None
        event.end_time = max(end_ts, event.start_time)
        event.end_reason = reason
        self._event = None
        self._buffer.clear()
        self._streak = 0
        self._streak_start = None
        self._cooldown_until = event.end_time + self.cfg.cooldown_s
        self.events_closed += 1
        log.info("event closed", id=event.id, reason=reason, stills=len(event.stills),
                 duration_s=f"{event.end_time - event.start_time:.2f}",
                 motion_frames=event.motion_frames)
        if self.clip_tap is not None:
            self.clip_tap.closed(event)
        self.sink.closed(event)

    def snapshot(self, frame: Frame) -> Event:
        """A one-still event an operator asked for ("take a snapshot now").

        It stands apart from motion events: an open motion event goes on untouched.
        """
        if frame.main is None:
            raise ValueError("a snapshot needs a full-resolution frame")
        ts = frame.timestamp
        event = Event(id=self._new_id(ts), station_id=self.station_id, deployment_id=self.deployment_id,
                      trigger_time=ts, start_time=ts, camera=self.camera, trigger_source="snapshot")
        self.sink.opened(event)
        still = Still(index=0, timestamp=ts, boxes=(), score=0.0, pre_trigger=False)
        event.stills.append(still)
        self.sink.still(event, still, frame.main)
        event.end_time, event.end_reason = ts, "snapshot"
        self.events_closed += 1
        log.info("snapshot taken", id=event.id)
        self.sink.closed(event)
        return event

    def interrupt(self, reason: str) -> None:
        """Close the open event now (shutdown, camera lost, end of media)."""
        if self._event is not None:
            self._close(reason, self._last_ts if self._last_ts is not None else self._event.start_time)
        self._buffer.clear()
        self._streak = 0
        self._streak_start = None
