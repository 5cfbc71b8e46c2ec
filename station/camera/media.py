"""Replays: a video file, or a folder of images, played through the camera interface.

Both carry their own clock (:class:`MediaClock`): a frame's timestamp is the clock's
start time plus its time in the media, and at ``speed="realtime"`` frames are handed
out no faster than they were recorded. ``read`` returns ``None`` at the end;
``open()`` (again) starts from the beginning.

Frames are resized to the configured ``main_size`` and to ``lores_size`` (grayscale)
without letterboxing: media of another aspect ratio is stretched. Set the sizes to the
media's aspect ratio to avoid that.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import cv2
import numpy as np

from station.camera.base import Camera, CameraError, Frame
from station.camera.opencv_source import make_lores, scale_main
from station.camera.pacing import MediaClock
from station.log import get_logger

log = get_logger("camera")

Size = tuple[int, int]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


def _frame(index: int, clock: MediaClock, media_s: float, image: np.ndarray, want_main: bool,
           main_size: Size, lores_size: Size, meta: dict) -> Frame:
    clock.wait_until(media_s)
    return Frame(index=index, timestamp=clock.timestamp(media_s),
                 lores=make_lores(image, lores_size),
                 main=scale_main(image, main_size) if want_main else None, meta=meta)


class VideoFileCamera(Camera):
    """Replays a video file (anything OpenCV/FFmpeg can decode), frame by frame.

    Media time comes from each frame's presentation time in the file (so variable
    frame-rate clips keep their timing), counted from the first frame; if the file
    gives none, from ``index / fps``. ``fps`` is the file's own rate when it states
    one, else the ``fps`` passed in. Every frame is returned: none are dropped to
    match the configured rate.
    """

    live = False

    def __init__(self, path: str | Path, *, main_size: Size = (1280, 720),
                 lores_size: Size = (320, 180), fps: float = 10.0,
                 clock: MediaClock | None = None, uri: str | None = None):
        self.path = Path(path)
        self.main_size = tuple(main_size)
        self.lores_size = tuple(lores_size)
        self.clock = clock or MediaClock()
        self.uri = uri or str(self.path)
        self._fallback_fps = float(fps)
        self.fps = self._probe_fps()
        self._cap: cv2.VideoCapture | None = None
        self._index = 0
        self._ended = False
        self._first_pos: float | None = None
        self._last_media_s = -math.inf
        self.frame_count = 0

    def _probe_fps(self) -> float:
        """The file's frame rate, known before ``open()`` (the daemon reads ``fps`` early)."""
        cap = cv2.VideoCapture(str(self.path))
        try:
            return self._file_fps(cap) if cap.isOpened() else self._fallback_fps
        finally:
            cap.release()

    def _file_fps(self, cap: cv2.VideoCapture) -> float:
        fps = cap.get(cv2.CAP_PROP_FPS)
        return float(fps) if math.isfinite(fps) and 0 < fps <= 1000 else self._fallback_fps

    def open(self) -> None:
        self.close()
        if not self.path.is_file():
            raise CameraError(f"{self.uri}: video file not found: {self.path}")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{self.uri}: OpenCV cannot read {self.path} as a video")
        self._cap = cap
        self.fps = self._file_fps(cap)
        self.frame_count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        self._index = 0
        self._ended = False
        self._first_pos = None
        self._last_media_s = -math.inf
        log.info("video open", camera=self.uri, fps=round(self.fps, 3), frames=self.frame_count,
                 size=f"{int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))}x{int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}")

    def _media_seconds(self) -> float:
        """Time of the frame just read: its presentation time if sane, else index / fps."""
        by_index = self._index / self.fps
        pos_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        if math.isfinite(pos_ms) and pos_ms >= 0:
            pos = pos_ms / 1000.0
            if self._first_pos is None:
                self._first_pos = pos
            media_s = pos - self._first_pos
            if media_s > self._last_media_s:
                return media_s
        return max(by_index, self._last_media_s + 1.0 / self.fps) if self._index else 0.0

    def read(self, want_main: bool = False) -> Frame | None:
        if self._cap is None:
            raise CameraError(f"{self.uri}: read() before open()")
        if self._ended:
            return None
        try:
            ok, image = self._cap.read()
        except cv2.error as exc:
            raise CameraError(f"{self.uri}: cannot decode frame {self._index}: {exc}") from exc
        if not ok or image is None:
            self._ended = True
            if self.frame_count and self._index < self.frame_count - 1:
                log.warning("video ended early", camera=self.uri, frames=self._index,
                            expected=self.frame_count)
            return None
        media_s = self._media_seconds()
        self._last_media_s = media_s
        frame = _frame(self._index, self.clock, media_s, image, want_main, self.main_size,
                       self.lores_size, {"media_s": media_s})
        self._index += 1
        return frame

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


def _natural_key(path: Path) -> list:
    """``img2.jpg`` before ``img10.jpg``; case-insensitive."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, in natural order; hidden files (``._x.jpg``) skipped."""
    return sorted((p for p in folder.iterdir()
                   if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()),
                  key=_natural_key)


class ImageFolderCamera(Camera):
    """Replays the images of a folder (jpg, jpeg, png, bmp, tif, tiff, webp), one per frame.

    Images play in natural name order at ``fps``; frame ``n`` is ``n / fps`` seconds
    into the media. A file that cannot be decoded is skipped with a warning naming it
    (it takes no time slot). ``Frame.meta["file"]`` names the image a frame came from.
    """

    live = False

    def __init__(self, folder: str | Path, *, main_size: Size = (1280, 720),
                 lores_size: Size = (320, 180), fps: float = 10.0,
                 clock: MediaClock | None = None, uri: str | None = None):
        self.folder = Path(folder)
        self.main_size = tuple(main_size)
        self.lores_size = tuple(lores_size)
        self.fps = float(fps)
        self.clock = clock or MediaClock()
        self.uri = uri or str(self.folder)
        self.files: list[Path] = []
        self.skipped: list[Path] = []
        self._pos = 0
        self._index = 0
        self._opened = False

    def open(self) -> None:
        if not self.folder.is_dir():
            raise CameraError(f"{self.uri}: image folder not found: {self.folder}")
        try:
            self.files = list_images(self.folder)
        except OSError as exc:
            raise CameraError(f"{self.uri}: cannot list {self.folder}: {exc}") from exc
        if not self.files:
            raise CameraError(f"{self.uri}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                              f"in folder {self.folder}")
        self.skipped = []
        self._pos = 0
        self._index = 0
        self._opened = True
        log.info("image folder open", camera=self.uri, images=len(self.files), fps=self.fps)

    def read(self, want_main: bool = False) -> Frame | None:
        if not self._opened:
            raise CameraError(f"{self.uri}: read() before open()")
        while self._pos < len(self.files):
            path = self.files[self._pos]
            self._pos += 1
            error = "not a readable image"
            try:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            except cv2.error as exc:
                image, error = None, str(exc)
            if image is None or image.size == 0:
                self.skipped.append(path)
                log.warning("unreadable image skipped", camera=self.uri, file=str(path), error=error)
                continue
            frame = _frame(self._index, self.clock, self._index / self.fps, image, want_main,
                           self.main_size, self.lores_size, {"file": path.name})
            self._index += 1
            return frame
        if self._index == 0:
            raise CameraError(f"{self.uri}: none of the {len(self.files)} images in {self.folder} "
                              "could be read")
        return None

    def close(self) -> None:
        self._opened = False
