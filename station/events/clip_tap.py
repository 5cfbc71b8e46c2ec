"""The capture side of event clips: what the recorder tells about frames and events.

The recorder calls a tap at every frame and when an event opens and closes; the tap
does nothing slow (capture never waits for an encoder or the disk):

* :class:`RingTap` (OpenCV, file and synthetic cameras) keeps references to the last
  ``pre_trigger_s`` of full-resolution frames (no copy, no resize) and, once an event
  opens, hands them and every later frame to the writer thread, which encodes them
  (:class:`station.events.clip.ClipFile`). Memory: ``pre_trigger_s x fps`` main frames
  (2 s at 10 fps and 1280x720: 55 MB).
* :class:`CameraTap` (picamera2) starts and stops the camera's own circular-buffer
  recording (:mod:`station.camera.picam_video`) and hands the encoded clip to the writer.

:func:`make_tap` picks one for a camera.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Protocol

import numpy as np

from station.camera.base import Camera, ClipRecorder, Frame, RawClip, VideoSettings
from station.log import get_logger

if TYPE_CHECKING:
    from station.config.events import EventsSection
    from station.events.model import Event

log = get_logger("clip")


class ClipSink(Protocol):
    """Where taps send clips (the event writer)."""

    def clip_begin(self, event: "Event", fps: float, size: tuple[int, int]) -> None: ...

    def clip_frame(self, event: "Event", timestamp: float, image: np.ndarray) -> None: ...

    def clip_raw(self, event: "Event", raw: RawClip) -> None: ...


class ClipTap(Protocol):
    needs_every_main: bool
    """The daemon must read a full-resolution frame every time (the ring needs them)."""

    def frame(self, frame: Frame, event: "Event | None") -> None: ...

    def opened(self, event: "Event") -> None: ...

    def closed(self, event: "Event") -> None: ...


class RingTap:
    needs_every_main = True

    def __init__(self, sink: ClipSink, pre_trigger_s: float, fps: float, size: tuple[int, int]):
        self.sink = sink
        self.pre_trigger_s = pre_trigger_s
        self.fps = fps
        self.size = size
        self._ring: deque[tuple[float, np.ndarray]] = deque()

    def frame(self, frame: Frame, event: "Event | None") -> None:
        if frame.main is None:
            return
        if event is not None:
            self.sink.clip_frame(event, frame.timestamp, frame.main)
            return
        self._ring.append((frame.timestamp, frame.main))
        horizon = frame.timestamp - self.pre_trigger_s - 1e-6
        while self._ring and self._ring[0][0] < horizon:
            self._ring.popleft()

    def opened(self, event: "Event") -> None:
        """The clip begins with the event's first still (its start): the ring's frames from then on."""
        self.sink.clip_begin(event, self.fps, self.size)
        for timestamp, image in self._ring:
            if timestamp >= event.start_time - 1e-6:
                self.sink.clip_frame(event, timestamp, image)
        self._ring.clear()

    def closed(self, event: "Event") -> None:
        self._ring.clear()  # the writer closes the clip with the event


class CameraTap:
    needs_every_main = False

    def __init__(self, sink: ClipSink, recorder: ClipRecorder):
        self.sink = sink
        self.recorder = recorder
        self._recording: str | None = None

    def frame(self, frame: Frame, event: "Event | None") -> None:
        pass

    def opened(self, event: "Event") -> None:
        try:
            started = self.recorder.start()
        except Exception as exc:  # noqa: BLE001 - a broken encoder must never stop capture
            log.warning("the camera's clip could not start; event without video", id=event.id, error=str(exc))
            started = False
        self._recording = event.id if started else None

    def closed(self, event: "Event") -> None:
        if self._recording != event.id:
            return
        self._recording = None
        try:
            raw = self.recorder.stop()
        except Exception as exc:  # noqa: BLE001 - a broken encoder must never stop capture
            log.warning("the camera's clip could not be finished; event without video", id=event.id,
                        error=str(exc))
            return
        if raw is not None and raw.data:
            self.sink.clip_raw(event, raw)


def default_ring_size(main_size: tuple[int, int]) -> tuple[int, int]:
    return (int(main_size[0]), int(main_size[1]))


def make_tap(camera: Camera, sink: ClipSink, cfg: "EventsSection", main_size: tuple[int, int]) -> ClipTap | None:
    """The tap for ``camera`` when ``[events] video`` is on (None when off). Call before
    the camera opens: a Raspberry Pi camera sets up its encoder when it opens."""
    if not cfg.video:
        return None
    recorder = camera.enable_video(VideoSettings(size=tuple(cfg.video_size) if cfg.video_size else None,
                                                 bitrate_kbps=cfg.video_bitrate_kbps,
                                                 pre_trigger_s=cfg.pre_trigger_s))
    if recorder is not None:
        return CameraTap(sink, recorder)
    size = tuple(cfg.video_size) if cfg.video_size else default_ring_size(main_size)
    return RingTap(sink, cfg.pre_trigger_s, camera.fps, size)
