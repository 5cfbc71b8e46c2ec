"""Camera sources, and the one place that maps a camera URI to a source class.

    from station.camera import open_camera
    camera = open_camera("opencv:0", cfg.camera)   # unopened; the caller opens it
    with camera:
        frame = camera.read(want_main=True)

Accepted URIs (see :data:`ACCEPTED_FORMS`): ``picamera2[:N]``, ``opencv:N``,
``rtsp://`` / ``rtsps://`` / ``http://`` / ``https://`` streams, a video file, a folder
of images, and ``synthetic[:SEED][?pictures=DIR&duration=S]``.

Sources are imported lazily, so importing this package costs nothing on a machine
without picamera2 and loads OpenCV only when an OpenCV source is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl, urlsplit

from station.camera.base import Camera, CameraError, Frame
from station.uris import redact_uri

if TYPE_CHECKING:
    from station.config.camera import CameraSection

__all__ = [
    "ACCEPTED_FORMS", "Camera", "CameraError", "CameraSpec", "CameraURIError", "Frame",
    "describe_uri", "open_camera", "parse_uri", "redact_uri",
]

ACCEPTED_FORMS = """\
accepted camera URIs:
  picamera2 | picamera2:N                    Raspberry Pi camera number N (default 0)
  opencv:N | opencv:/dev/videoN              USB (V4L2) camera by index or device path
  rtsp://... rtsps://... http://... https://...   network camera stream (OpenCV/FFmpeg)
  PATH/TO/CLIP.mp4                           replay a video file
  PATH/TO/FOLDER                             replay a folder of images (jpg, png, ...)
  synthetic | synthetic:SEED[?pictures=DIR&duration=S]   simulated scene"""

STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https")
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mts", ".m2ts",
                              ".ts", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".h264", ".mjpeg"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

Kind = Literal["picamera2", "device", "stream", "video", "folder", "synthetic"]


class CameraURIError(ValueError):
    """The camera URI cannot be understood, or names a file or folder that does not exist.

    Not a :class:`CameraError`: retrying will not fix a typo, so the daemon should stop
    and say so rather than back off and retry.
    """


@dataclass(frozen=True, slots=True)
class CameraSpec:
    """What a camera URI means, before anything is opened."""

    kind: Kind
    uri: str
    """The URI as given, with any password replaced by ``***`` (safe to log)."""
    camera_num: int | None = None
    """picamera2: the camera number."""
    device: int | str | None = None
    """device: a V4L2 index, or a device path such as ``/dev/v4l/by-id/...``."""
    url: str | None = None
    """stream: the full URL, credentials included (never log this one)."""
    path: Path | None = None
    """video / folder: the resolved path."""
    seed: int | None = None
    pictures: Path | None = None
    duration_s: float | None = None


def _bad(uri: str, why: str) -> CameraURIError:
    return CameraURIError(f"camera uri {redact_uri(uri)!r}: {why}\n{ACCEPTED_FORMS}")


def _number(uri: str, text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _bad(uri, f"{what} must be a whole number, got {text!r}") from None
    if value < 0:
        raise _bad(uri, f"{what} must be 0 or more, got {value}")
    return value


def _looks_like_path(uri: str) -> bool:
    suffix = Path(uri).suffix.lower()
    return (os.sep in uri or "/" in uri or uri.startswith((".", "~"))
            or suffix in VIDEO_EXTENSIONS or suffix in IMAGE_EXTENSIONS)


def _synthetic(uri: str, rest: str) -> CameraSpec:
    head, _, query = rest.partition("?")
    seed = None
    if head:
        if not head.startswith(":") or head == ":":
            raise _bad(uri, "write synthetic or synthetic:SEED")
        try:
            seed = int(head[1:])
        except ValueError:
            raise _bad(uri, f"the seed must be a whole number, got {head[1:]!r}") from None
    pictures = duration = None
    if query:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise _bad(uri, f"cannot read the options {query!r}; write ?pictures=DIR&duration=S") from None
        for key, value in pairs:
            if key == "pictures":
                pictures = Path(value).expanduser()
                if not pictures.is_dir():
                    raise _bad(uri, f"pictures folder not found: {pictures.resolve()}")
            elif key == "duration":
                try:
                    duration = float(value)
                except ValueError:
                    raise _bad(uri, f"duration must be seconds, got {value!r}") from None
                if not duration > 0:
                    raise _bad(uri, f"duration must be more than 0 seconds, got {value!r}")
            else:
                raise _bad(uri, f"unknown option {key!r}; synthetic takes pictures=DIR and duration=S")
    return CameraSpec("synthetic", uri, seed=seed, pictures=pictures, duration_s=duration)


def parse_uri(uri: str) -> CameraSpec:
    """Read a camera URI; raise :class:`CameraURIError` naming it if it makes no sense.

    Files and folders must exist (the error names the path); devices and network
    streams are only checked when opened, since they may come and go.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise _bad(str(uri), "empty camera uri")
    uri = uri.strip()
    safe = redact_uri(uri)
    lower = uri.lower()

    if lower == "picamera2" or lower.startswith("picamera2:"):
        num = _number(uri, uri.partition(":")[2], "the camera number") if ":" in uri else 0
        return CameraSpec("picamera2", safe, camera_num=num)

    if lower.startswith("opencv:"):
        target = uri.partition(":")[2]
        if target.startswith("/"):
            return CameraSpec("device", safe, device=target)
        return CameraSpec("device", safe, device=_number(uri, target, "the device index"))

    if lower == "synthetic" or lower.startswith(("synthetic:", "synthetic?")):
        return _synthetic(uri, uri[len("synthetic"):])

    scheme = lower.partition("://")[0] if "://" in lower else ""
    if scheme in STREAM_SCHEMES:
        try:
            host = urlsplit(uri).hostname
        except ValueError as exc:
            raise _bad(uri, f"not a valid URL ({exc})") from None
        if not host:
            raise _bad(uri, "the stream URL has no host")
        return CameraSpec("stream", safe, url=uri)
    if scheme:
        raise _bad(uri, f"unknown scheme {scheme + '://'!r}")

    path = Path(uri).expanduser()
    if path.is_dir():
        return CameraSpec("folder", safe, path=path.resolve())
    if path.is_file():
        return CameraSpec("video", safe, path=path.resolve())
    if path.exists():
        raise _bad(uri, f"{path.resolve()} is neither a video file nor a folder of images")
    if _looks_like_path(uri):
        raise _bad(uri, f"no such file or folder: {path.resolve()}")
    raise _bad(uri, "not a camera URI, and no file or folder of that name exists")


def describe_uri(uri: str) -> str:
    """One line saying what a URI will open, e.g. ``USB camera /dev/video0 (OpenCV)``."""
    spec = parse_uri(uri)
    if spec.kind == "picamera2":
        return f"Raspberry Pi camera {spec.camera_num} (picamera2)"
    if spec.kind == "device":
        dev = spec.device if isinstance(spec.device, str) else f"/dev/video{spec.device}"
        return f"USB camera {dev} (OpenCV)"
    if spec.kind == "stream":
        return f"network stream {spec.uri} (OpenCV/FFmpeg)"
    if spec.kind == "video":
        return f"video file {spec.path} (replay)"
    if spec.kind == "folder":
        return f"image folder {spec.path} (replay)"
    extras = "".join([f", pictures from {spec.pictures}" if spec.pictures else "",
                      f", {spec.duration_s:g} s" if spec.duration_s else ""])
    return f"synthetic scene, seed {spec.seed if spec.seed is not None else 0}{extras}"


def open_camera(uri: str, cfg: "CameraSection") -> Camera:
    """Build the source a URI names, sized and paced by ``cfg``; the caller calls ``open()``.

    Raises :class:`CameraURIError` for a URI that cannot work (typo, missing file);
    problems with devices and streams surface as :class:`CameraError` from ``open()``.
    """
    spec = parse_uri(uri)
    sizes = {"main_size": tuple(cfg.main_size), "lores_size": tuple(cfg.lores_size)}
    realtime = cfg.speed == "realtime"

    if spec.kind == "picamera2":
        from station.camera.picam import Picamera2Camera

        return Picamera2Camera(spec.camera_num or 0, fps=cfg.fps, uri=spec.uri, **sizes)
    if spec.kind in ("device", "stream"):
        from station.camera.opencv_source import OpenCVCamera

        source = spec.device if spec.kind == "device" else spec.url
        return OpenCVCamera(source, fps=cfg.fps, uri=spec.uri, **sizes)
    if spec.kind in ("video", "folder"):
        from station.camera.media import ImageFolderCamera, VideoFileCamera
        from station.camera.pacing import MediaClock

        clock = MediaClock(cfg.start_time, realtime=realtime)
        cls = VideoFileCamera if spec.kind == "video" else ImageFolderCamera
        return cls(spec.path, fps=cfg.fps, clock=clock, uri=spec.uri, **sizes)

    from station.camera.synthetic import SyntheticCamera

    return SyntheticCamera(
        seed=spec.seed if spec.seed is not None else 0,
        fps=cfg.fps,
        realtime=realtime,
        start_time=cfg.start_time,
        duration_s=spec.duration_s if spec.duration_s is not None else cfg.scene_duration_s,
        pictures=spec.pictures if spec.pictures is not None else cfg.scene_pictures,
        **sizes,
    )
