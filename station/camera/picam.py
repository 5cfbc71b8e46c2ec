"""The Raspberry Pi camera through picamera2 (``picamera2`` or ``picamera2:N``).

The camera runs a video configuration with two streams, as Raspberry Pi's
``capture_motion.py`` example does: ``main`` (RGB888, full size, for stills) and
``lores`` (YUV420, small, for motion). Every read copies the lores Y plane (the
grayscale image); the main stream is copied only when asked for, and then together
with lores from the same request (``capture_arrays``) so the still shows the very
frame that motion saw.

Two details of the Pi hardware are handled here:

* A YUV420 buffer comes back as an array of ``height * 3 // 2`` rows of ``stride``
  bytes; the stride may exceed the width (rows are padded for the ISP), so the Y
  plane is ``array[:height, :width]``. picamera2 may also round the requested sizes
  (to even numbers, or to 64-pixel multiples when asked to align), so the sizes are
  read back from ``camera_configuration()`` after ``configure`` and frames are
  resized to the configured sizes if they differ.
* picamera2's ``RGB888`` is stored B, G, R in memory: exactly OpenCV's BGR, no swap.

Each capture is submitted with ``wait=False`` and awaited with a timeout: a camera
whose ribbon cable works loose can stall forever inside ``capture_array``. On a
timeout the pending job is cancelled (``cancel_all_and_flush``) so the camera can be
closed and reopened by the daemon's retry loop.

Timestamps are the wall clock when the frame reached us (``time.time()``), a frame
or two after the exposure.

With ``[events] video`` the camera records event clips itself: an H.264 encoder feeding
picamera2's ``CircularOutput`` (:mod:`station.camera.picam_video`), set up at each open.
"""

from __future__ import annotations

import time

import numpy as np

from station.camera.base import Camera, CameraError, ClipRecorder, Frame, VideoSettings
from station.camera.opencv_source import make_lores, scale_main
from station.log import get_logger

log = get_logger("camera")

Size = tuple[int, int]

INSTALL_HINT = ("On Raspberry Pi OS install it with `sudo apt install python3-picamera2` and make "
                "the venv with `python3 -m venv --system-site-packages` so the venv can see it.")


class Picamera2Camera(Camera):
    """Raspberry Pi camera number ``camera_num`` (0 for the first CSI camera)."""

    live = True

    def __init__(self, camera_num: int = 0, *, main_size: Size = (1280, 720),
                 lores_size: Size = (320, 180), fps: float = 10.0,
                 read_timeout_s: float = 5.0, uri: str | None = None):
        self.camera_num = int(camera_num)
        self.main_size = (int(main_size[0]), int(main_size[1]))
        self.lores_size = (int(lores_size[0]), int(lores_size[1]))
        self.fps = float(fps)
        self.read_timeout_s = read_timeout_s
        self.uri = uri or f"picamera2:{self.camera_num}"
        self._cam = None
        self._lores_wh: Size = self.lores_size
        self._index = 0
        self._clips = None

    def open(self) -> None:
        self.close()
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise CameraError(f"{self.uri}: the picamera2 module is not installed ({exc}). "
                              + INSTALL_HINT) from exc
        self._check_present(Picamera2)
        try:
            cam = Picamera2(self.camera_num)
        except Exception as exc:
            raise CameraError(f"{self.uri}: could not open Raspberry Pi camera {self.camera_num}: "
                              f"{exc}") from exc
        video = self._clips.plan(self.main_size) if self._clips is not None else None
        lores_size = video.size if video is not None and video.stream == "lores" else self.lores_size
        try:
            frame_us = int(round(1_000_000 / self.fps))
            config = cam.create_video_configuration(
                main={"size": self.main_size, "format": "RGB888"},
                lores={"size": lores_size, "format": "YUV420"},
                controls={"FrameDurationLimits": (frame_us, frame_us)},
            )
            cam.configure(config)
            actual = cam.camera_configuration() or config
            self._lores_wh = tuple(actual["lores"]["size"])
            main_wh = tuple(actual["main"]["size"])
            cam.start()
        except Exception as exc:
            self._shutdown(cam)
            raise CameraError(f"{self.uri}: could not configure and start the camera: {exc}") from exc
        if video is not None:
            self._clips.attach(cam, main_wh if video.stream == "main" else self._lores_wh)
        self._cam = cam
        self._index = 0
        log.info("picamera2 open", camera=self.uri, main=f"{main_wh[0]}x{main_wh[1]}",
                 lores=f"{self._lores_wh[0]}x{self._lores_wh[1]}", fps=self.fps)

    def enable_video(self, settings: VideoSettings) -> ClipRecorder | None:
        """Record event clips with picamera2's encoder and circular buffer, from the next open."""
        from station.camera.picam_video import PicameraClips

        self._clips = PicameraClips(settings, self.fps, self.uri)
        return self._clips

    def _check_present(self, picamera2_cls) -> None:
        """A clear message when libcamera sees no camera of that number (cable, config.txt)."""
        info = getattr(picamera2_cls, "global_camera_info", None)
        if info is None:
            return
        try:
            cameras = info()
        except Exception as exc:
            raise CameraError(f"{self.uri}: libcamera could not list cameras: {exc}") from exc
        if self.camera_num >= len(cameras):
            seen = ", ".join(str(c.get("Model", "?")) for c in cameras) or "none"
            raise CameraError(
                f"{self.uri}: no Raspberry Pi camera {self.camera_num} (libcamera sees "
                f"{len(cameras)}: {seen}); check the ribbon cable and `rpicam-hello --list-cameras`")

    def read(self, want_main: bool = False) -> Frame | None:
        cam = self._cam
        if cam is None:
            raise CameraError(f"{self.uri}: read() before open()")
        try:
            if want_main:
                job = cam.capture_arrays(["lores", "main"], wait=False)
                (yuv, main), _metadata = cam.wait(job, timeout=self.read_timeout_s)
            else:
                job = cam.capture_array("lores", wait=False)
                yuv, main = cam.wait(job, timeout=self.read_timeout_s), None
        except TimeoutError as exc:
            self._cancel(cam)
            raise CameraError(f"{self.uri}: no frame within {self.read_timeout_s:g} s "
                              "(camera stalled; is the ribbon cable seated?)") from exc
        except Exception as exc:
            raise CameraError(f"{self.uri}: capture failed: {exc}") from exc
        stamp = time.time()
        lores = self._y_plane(yuv)
        if main is not None:
            main = scale_main(np.asarray(main)[..., :3], self.main_size)
        frame = Frame(index=self._index, timestamp=stamp, lores=lores, main=main)
        self._index += 1
        return frame

    def _y_plane(self, yuv: np.ndarray) -> np.ndarray:
        w, h = self._lores_wh
        if yuv.ndim != 2 or yuv.shape[0] < h or yuv.shape[1] < w:
            raise CameraError(f"{self.uri}: lores buffer has shape {yuv.shape}, expected a "
                              f"YUV420 array of at least {h * 3 // 2} x {w}")
        gray = yuv[:h, :w].copy()   # drop the chroma rows and stride padding; free the buffer
        return make_lores(gray, self.lores_size)

    def _cancel(self, cam) -> None:
        cancel = getattr(cam, "cancel_all_and_flush", None)
        if cancel is None:
            return
        try:
            cancel()
        except Exception as exc:
            log.warning("could not cancel the stalled capture", camera=self.uri, error=str(exc))

    def _shutdown(self, cam) -> None:
        if self._clips is not None:
            self._clips.detach()
        for step in ("stop", "close"):
            try:
                getattr(cam, step)()
            except Exception as exc:
                log.warning(f"camera {step} failed", camera=self.uri, error=str(exc))

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            self._shutdown(cam)
