"""The camera boundary: one small interface that every source implements.

A source yields :class:`Frame` objects. Every frame carries the low-resolution
grayscale image that motion detection watches (``lores``); the full-resolution colour
image (``main``) is captured only when the caller asks for it, as picamera2's
main/lores split does, so a Pi never copies a 12-megapixel frame it will not keep.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

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

    def __enter__(self) -> "Camera":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
