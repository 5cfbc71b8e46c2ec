"""The camera boundary: one small interface that every source implements.

A source yields :class:`Frame` objects. Every frame carries the low-resolution
grayscale image that motion detection watches (``lores``); the full-resolution colour
image (``main``) is captured only when the caller asks for it, as picamera2's
main/lores split does, so a Pi never copies a 12-megapixel frame it will not keep.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class CameraError(RuntimeError):
    """The camera failed (could not open, disconnected, returned garbage).

    The daemon retries with backoff; the message names the camera URI.
    """


@dataclass(slots=True)
class Frame:
    index: int
    """Sequence number from the source, starting at 0 for each open()."""
    timestamp: float
    """Seconds since the Unix epoch: wall clock for live cameras, media clock for replays."""
    lores: np.ndarray
    """Grayscale uint8 image at the motion resolution (height, width)."""
    main: np.ndarray | None = None
    """BGR uint8 full-resolution image, present when requested from read()."""
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VideoSettings:
    """What an event clip should be, for a camera that records its own (picamera2)."""

    size: tuple[int, int] | None
    """Clip size; None: the camera's default for its board."""
    bitrate_kbps: int
    pre_trigger_s: float


@dataclass(frozen=True, slots=True)
class RawClip:
    """An encoded clip as the camera's encoder made it (an H.264 elementary stream), in memory."""

    data: bytes
    codec: str
    """"h264"."""
    fps: float
    size: tuple[int, int]
    end_timestamp: float
    """Wall clock when recording stopped: the clip's last frame (within a frame)."""
    encoder: str
    """The encoder that made it (e.g. "H264Encoder (hardware)")."""


class ClipRecorder(Protocol):
    """A camera's own event recorder (an encoder feeding a circular buffer).

    Called from the capture thread; both calls are quick and touch no disk."""

    def start(self) -> bool:
        """Begin a clip with what the buffer holds (the seconds before now); False when
        the encoder is not running."""

    def stop(self) -> RawClip | None:
        """End the clip now and hand it over; None when there was none."""


class Camera(abc.ABC):
    """A frame source. Not thread-safe: one capture thread owns it.

    ``read(want_main)`` blocks until the next frame is due. Live sources block on the
    device; replayed and synthetic sources pace themselves to their own clock unless
    made to run as fast as possible (``speed="max"``). ``read`` returns ``None`` when a
    finite source (file, folder, scene of set duration) is exhausted and raises
    :class:`CameraError` when the device fails.
    """

    uri: str = ""
    fps: float = 10.0
    live: bool = True
    """True for devices (picamera2, USB, RTSP); False for replays and simulations."""

    @abc.abstractmethod
    def open(self) -> None: ...

    @abc.abstractmethod
    def read(self, want_main: bool = False) -> Frame | None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def enable_video(self, settings: VideoSettings) -> ClipRecorder | None:
        """Ask the camera to record event clips itself (call before ``open()``). A camera
        that cannot (every source but picamera2) returns None, and the station cuts clips
        from its own frames instead."""
        return None

    def __enter__(self) -> "Camera":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
