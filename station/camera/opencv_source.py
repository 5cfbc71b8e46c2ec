"""USB cameras and network streams through OpenCV (``opencv:N``, ``rtsp://``, ``http://``).

A background thread keeps draining the device or stream (``grab()`` only, no colour
conversion), so ``read()`` always gets the newest frame rather than one that waited in
FFmpeg's buffer; ``read()`` hands out at most ``fps`` frames a second and converts only
the frame it returns. Opening and reading are bounded by timeouts, so a dead network
camera raises :class:`CameraError` instead of hanging the station.

Frames are resized to the configured ``main_size`` and ``lores_size`` (the aspect ratio
is not preserved if the device delivers another shape; set the sizes to match it).
RTSP goes over TCP unless ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` says otherwise (OpenCV's
default ``rtsp_flags=prefer_tcp``), which survives lossy Wi-Fi links better than UDP.
"""

from __future__ import annotations

import glob
import sys
import threading
import time

import cv2
import numpy as np

from station.camera.base import Camera, CameraError, Frame
from station.log import get_logger

log = get_logger("camera")

Size = tuple[int, int]


def scale_main(bgr: np.ndarray, size: Size) -> np.ndarray:
    """``bgr`` at ``size`` (width, height); unchanged if it already is."""
    h, w = bgr.shape[:2]
    if (w, h) == tuple(size):
        return bgr
    interp = cv2.INTER_AREA if w >= size[0] and h >= size[1] else cv2.INTER_LINEAR
    return cv2.resize(bgr, tuple(size), interpolation=interp)


def make_lores(image: np.ndarray, size: Size) -> np.ndarray:
    """Grayscale uint8 at ``size`` from a BGR (or already gray) image: resize first, it is cheaper."""
    small = scale_main(image, size)
    if small.ndim == 3:
        small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    return np.ascontiguousarray(small)


class OpenCVCamera(Camera):
    """A USB camera (V4L2 index or device path) or a network stream, read with OpenCV.

    ``source`` is an ``int`` (``/dev/videoN``), a device path such as
    ``/dev/v4l/by-id/usb-...-video-index0`` (stable across reboots and replugging), or
    a ``rtsp://``/``rtsps://``/``http(s)://`` URL. ``uri`` is the name used in messages;
    pass a redacted one for URLs with passwords (the factory does).
    """

    live = True

    def __init__(self, source: int | str, *, main_size: Size = (1280, 720),
                 lores_size: Size = (320, 180), fps: float = 10.0,
                 open_timeout_s: float = 10.0, read_timeout_s: float = 10.0,
                 uri: str | None = None):
        self.source = source
        self.main_size = tuple(main_size)
        self.lores_size = tuple(lores_size)
        self.fps = float(fps)
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.uri = uri or (f"opencv:{source}" if self.is_device else str(source))
        self._cap: cv2.VideoCapture | None = None
        self._thread: threading.Thread | None = None
        self._cv = threading.Condition()
        self._reset_state()

    @property
    def is_device(self) -> bool:
        return isinstance(self.source, int) or str(self.source).startswith("/dev/")

    def _reset_state(self) -> None:
        self._seq = 0               # frames grabbed by the drain thread
        self._grab_time = 0.0       # wall clock of the newest grab
        self._grabbing = False      # drain thread is inside cap.grab()
        self._want = False          # read() is waiting to retrieve: drain thread parks
        self._stopping = False
        self._failed: str | None = None
        self._delivered_seq = 0
        self._index = 0
        self._next_due = 0.0

    # -- opening --------------------------------------------------------------------------

    def open(self) -> None:
        self.close()
        self._reset_state()
        cap = self._open_device() if self.is_device else self._open_stream()
        self._cap = cap
        self._thread = threading.Thread(target=self._drain, name=f"grab {self.uri}", daemon=True)
        self._thread.start()

    def _open_device(self) -> cv2.VideoCapture:
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        try:
            cap = cv2.VideoCapture(self.source, api)
        except cv2.error as exc:
            raise CameraError(f"{self.uri}: could not open the camera: {exc}") from exc
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{self.uri}: could not open the camera ({self._device_hint()})")
        w, h = self.main_size
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, w), (cv2.CAP_PROP_FRAME_HEIGHT, h),
                            (cv2.CAP_PROP_FPS, self.fps), (cv2.CAP_PROP_BUFFERSIZE, 1),
                            (cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.read_timeout_s * 1000)):
            cap.set(prop, value)  # hints: a device keeps the nearest mode it supports
        got = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        log.info("usb camera open", camera=self.uri, size=f"{got[0]}x{got[1]}",
                 fps=round(cap.get(cv2.CAP_PROP_FPS), 2))
        if got != (w, h):
            log.warning("camera size differs from main_size; frames will be resized",
                        camera=self.uri, device=f"{got[0]}x{got[1]}", main_size=f"{w}x{h}")
        return cap

    def _device_hint(self) -> str:
        if sys.platform.startswith("linux"):
            path = self.source if isinstance(self.source, str) else f"/dev/video{self.source}"
            present = sorted(glob.glob("/dev/video*"))
            listed = ", ".join(present) if present else "none"
            if path not in present and not isinstance(self.source, str):
                return f"no {path}; video devices present: {listed}"
            return f"{path} missing, busy or not a capture device; video devices present: {listed}"
        return "no such device, or it is busy"

    def _open_stream(self) -> cv2.VideoCapture:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000)]
        try:
            cap = cv2.VideoCapture(str(self.source), cv2.CAP_FFMPEG, params)
        except cv2.error as exc:
            raise CameraError(f"{self.uri}: could not open the stream: {exc}") from exc
        if not cap.isOpened():
            cap.release()
            raise CameraError(
                f"{self.uri}: could not open the stream within {self.open_timeout_s:g} s "
                "(refused, unreachable, wrong path or credentials, or not a video stream)")
        log.info("stream open", camera=self.uri,
                 size=f"{int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))}x{int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}",
                 stream_fps=round(cap.get(cv2.CAP_PROP_FPS), 2))
        return cap

    # -- the drain thread -----------------------------------------------------------------

    def _drain(self) -> None:
        cap = self._cap
        while True:
            with self._cv:
                while self._want and not self._stopping:
                    self._cv.wait()          # read() is retrieving the newest frame
                if self._stopping:
                    return
                self._grabbing = True
            try:
                ok = cap.grab()              # blocks until the next frame (or the read timeout)
                error = None if ok else "the stream ended or no frame came within the read timeout"
            except cv2.error as exc:
                ok, error = False, str(exc)
            now = time.time()
            with self._cv:
                self._grabbing = False
                if ok:
                    self._seq += 1
                    self._grab_time = now
                else:
                    self._failed = error
                self._cv.notify_all()
                if not ok:
                    return

    # -- reading --------------------------------------------------------------------------

    def read(self, want_main: bool = False) -> Frame | None:
        if self._cap is None:
            raise CameraError(f"{self.uri}: read() before open()")
        delay = self._next_due - time.monotonic()
        if delay > 0:
            time.sleep(delay)                # hand out at most fps frames a second
        deadline = time.monotonic() + self.read_timeout_s
        with self._cv:
            while True:
                if self._seq > self._delivered_seq and not self._grabbing:
                    break
                if self._failed is not None:
                    self._want = False
                    raise CameraError(f"{self.uri}: {self._failed}")
                if self._seq > self._delivered_seq:
                    self._want = True        # a newer frame is being grabbed: take that one
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._want = False
                    self._cv.notify_all()
                    raise CameraError(f"{self.uri}: no frame within {self.read_timeout_s:g} s")
                self._cv.wait(remaining)
            try:
                ok, image = self._cap.retrieve()
            except cv2.error as exc:
                ok, image = False, None
                log.warning("retrieve failed", camera=self.uri, error=str(exc))
            seq, stamp = self._seq, self._grab_time
            self._want = False
            self._cv.notify_all()
        if not ok or image is None or image.size == 0:
            raise CameraError(f"{self.uri}: could not decode frame {seq}")
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        self._delivered_seq = seq
        self._next_due = time.monotonic() + 1.0 / self.fps
        frame = Frame(index=self._index, timestamp=stamp, lores=make_lores(image, self.lores_size),
                      main=scale_main(image, self.main_size) if want_main else None)
        self._index += 1
        return frame

    def close(self) -> None:
        thread, cap = self._thread, self._cap
        self._thread = self._cap = None
        if thread is not None:
            with self._cv:
                self._stopping = True
                self._want = False
                self._cv.notify_all()
            thread.join(timeout=self.read_timeout_s + 2.0)
            if thread.is_alive():
                # cap.grab() is stuck past its timeout; releasing under it could crash.
                log.warning("grab thread did not stop; leaving the capture to it", camera=self.uri)
                return
        if cap is not None:
            cap.release()
