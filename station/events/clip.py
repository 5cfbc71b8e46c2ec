"""The disk side of event clips: ``clip.mp4`` beside the stills, written by the writer thread.

Two ways in, one file out:

* **From the station's own frames** (OpenCV, file and synthetic cameras): frames arrive
  one by one and :class:`ClipFile` encodes them with OpenCV's ``VideoWriter`` into an MP4,
  H.264 (``avc1``) where OpenCV's FFmpeg has an H.264 encoder, else MPEG-4 Part 2
  (``mp4v``, what the opencv-python-headless wheels write). An MP4 has one frame rate, so
  a frame missing from the stream (dropped because the writer fell behind, or never
  delivered by the camera) is filled with the one before it: the clip keeps the event's
  clock, and ``frames_repeated`` says how many were filled.
* **From a camera that encodes itself** (picamera2: H.264 from its circular buffer, see
  :mod:`station.camera.picam_video`): :func:`remux_h264` puts the elementary stream into an
  MP4 with PyAV (which picamera2 itself depends on) without re-encoding; the frames are
  spaced at the camera's fixed frame rate.

Files are written under a temporary name (``.clip.part.mp4``), flushed and renamed, so a
power cut leaves the whole clip or none (recovery deletes leftovers). A clip that cannot
be written (disk low, a full card, no codec) leaves the event as it is, without video:
the record's ``clip`` says why.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from station.camera.base import RawClip
from station.files import fsync_dir
from station.log import get_logger
from station.times import iso

log = get_logger("clip")

CLIP_NAME = "clip.mp4"
PART_SUFFIX = ".part.mp4"
"""Clips being written are ``.clip.part.mp4``: safe to delete at start-up."""
FOURCCS = (("avc1", "h264"), ("mp4v", "mpeg4"))
"""OpenCV codecs tried in order: H.264 where OpenCV's FFmpeg can encode it, else MPEG-4 Part 2."""

_TICK = Fraction(1, 90000)
_chosen: tuple[str, str] | None = None


class ClipError(RuntimeError):
    """A clip could not be made; the message says why (the event goes on without video)."""


def part_path(folder: Path, name: str = CLIP_NAME) -> Path:
    return folder / f".{Path(name).stem}{PART_SUFFIX}"


_PROBE = """
import sys, tempfile, os, cv2
with tempfile.TemporaryDirectory() as tmp:
    for fourcc in sys.argv[1:]:
        w = cv2.VideoWriter(os.path.join(tmp, "probe.mp4"), cv2.VideoWriter_fourcc(*fourcc), 10.0, (64, 64))
        if w.isOpened():
            w.release()
            print(fourcc)
            break
"""


def _probe() -> tuple[str, str]:
    """The first codec OpenCV can write here, tried in a child process: FFmpeg prints its
    complaints about a missing encoder straight to stderr, which the station's log is."""
    res = subprocess.run([sys.executable, "-c", _PROBE, *(f for f, _ in FOURCCS)], capture_output=True,
                         text=True, timeout=120)
    found = res.stdout.strip().splitlines()[-1:] if res.returncode == 0 else []
    for fourcc, codec in FOURCCS:
        if found == [fourcc]:
            return fourcc, codec
    raise ClipError(f"OpenCV cannot write an MP4 here (tried {', '.join(f for f, _ in FOURCCS)})")


def _open_writer(path: Path, fps: float, size: tuple[int, int]) -> tuple[cv2.VideoWriter, str]:
    """A VideoWriter on ``path`` with the codec found once per process."""
    global _chosen
    if _chosen is None:
        _chosen = _probe()
    fourcc, codec = _chosen
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), tuple(size))
    if not writer.isOpened():
        writer.release()
        path.unlink(missing_ok=True)
        raise ClipError(f"OpenCV could not open {path.name} for writing ({fourcc})")
    return writer, codec


def finish_file(part: Path, final: Path) -> int:
    """fsync ``part``, rename it to ``final`` and make the rename durable; its size in bytes."""
    fd = os.open(part, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(part, final)
    fsync_dir(final.parent)
    return final.stat().st_size


def clip_info(*, file: str | None, codec: str, source: str, fps: float, size: tuple[int, int],
              start: float | None, end: float | None, frames: int, nbytes: int = 0,
              error: str | None = None, **more: Any) -> dict[str, Any]:
    """The record's ``clip`` key (docs/event-store.md)."""
    info: dict[str, Any] = {
        "file": file,
        "mediatype": "video/mp4" if file else None,
        "codec": codec, "source": source, "fps": round(float(fps), 3), "size": [int(size[0]), int(size[1])],
        "start": iso(start) if start is not None else None,
        "end": iso(end) if end is not None else None,
        "start_timestamp": round(start, 3) if start is not None else None,
        "end_timestamp": round(end, 3) if end is not None else None,
        "duration_s": round(frames / fps, 3),
        "frames": int(frames), "bytes": int(nbytes),
    }
    info.update(more)
    if error is not None:
        info["error"] = error
    return info


class ClipFile:
    """One clip being encoded from the station's frames (the writer thread owns it)."""

    def __init__(self, folder: Path, fps: float, size: tuple[int, int]):
        self.folder = folder
        self.fps = float(fps)
        self.size = (int(size[0]), int(size[1]))
        self.part = part_path(folder)
        self._writer: cv2.VideoWriter | None = None
        self.codec = ""
        self.start: float | None = None
        self.last: float | None = None
        self.frames = 0
        self.repeated = 0
        self.dropped = 0
        """Frames the capture side could not hand over (the writer behind); filled in."""
        self._previous: np.ndarray | None = None

    def add(self, timestamp: float, image: np.ndarray) -> None:
        """Append the frame taken at ``timestamp``; frames missing before it repeat the last one."""
        if self._writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._writer, self.codec = _open_writer(self.part, self.fps, self.size)
            self.start = timestamp
        assert self.start is not None
        slot = round((timestamp - self.start) * self.fps)
        if slot < self.frames:
            return  # not later than the frame before (a clock step back): keep time moving forward
        if image.shape[1] != self.size[0] or image.shape[0] != self.size[1]:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        while self.frames < slot and self._previous is not None:
            self._writer.write(self._previous)
            self.frames += 1
            self.repeated += 1
        self._writer.write(image)
        self.frames += 1
        self.last = timestamp
        self._previous = image

    def finish(self, end: float | None = None) -> dict[str, Any]:
        """Close the file and put it in place as ``clip.mp4``; the record's ``clip``. Frames
        missing before ``end`` (the event's last frame) repeat the last one."""
        if self._writer is None or self.start is None:
            raise ClipError("no frame reached the clip")
        if end is not None and self._previous is not None:
            last_slot = round((end - self.start) * self.fps)
            while self.frames <= last_slot:
                self._writer.write(self._previous)
                self.frames += 1
                self.repeated += 1
        self._writer.release()
        self._writer = None
        check = cv2.VideoCapture(str(self.part))
        try:
            readable = check.isOpened() and check.get(cv2.CAP_PROP_FRAME_COUNT) >= 1
        finally:
            check.release()
        if not readable:
            raise ClipError("the clip file came out unreadable (the card full while it was written?)")
        nbytes = finish_file(self.part, self.folder / CLIP_NAME)
        end = self.start + (self.frames - 1) / self.fps
        return clip_info(file=CLIP_NAME, codec=self.codec, source="station", fps=self.fps, size=self.size,
                         start=self.start, end=end, frames=self.frames, nbytes=nbytes,
                         frames_repeated=self.repeated)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self.part.unlink(missing_ok=True)


def _add_stream_like(out, template):
    add = getattr(out, "add_stream_from_template", None)   # PyAV >= 14
    return add(template) if add is not None else out.add_stream(template=template)


def remux_h264(raw: RawClip, folder: Path) -> dict[str, Any]:
    """Put a camera's H.264 stream into ``clip.mp4`` (no re-encoding); the record's ``clip``.

    The stream carries no times: frame n is ``n / fps`` after the first, the last one at
    ``raw.end_timestamp`` (the camera runs at a fixed frame rate), so the clip's start is
    estimated from its length (``start_estimated``)."""
    try:
        import av
    except ImportError:
        raise ClipError("PyAV is not installed (sudo apt install python3-av), so the camera's H.264 "
                        "cannot be put into an MP4") from None
    folder.mkdir(parents=True, exist_ok=True)
    part = part_path(folder)
    frames = 0
    try:
        with av.open(io.BytesIO(raw.data), format="h264") as source:
            stream = source.streams.video[0]
            with av.open(str(part), "w", format="mp4") as out:
                target = _add_stream_like(out, stream)
                for packet in source.demux(stream):
                    if packet.size == 0:
                        continue  # the demuxer's end-of-stream marker
                    packet.pts = packet.dts = round(frames * 90000 / raw.fps)
                    packet.time_base = _TICK
                    packet.stream = target
                    out.mux(packet)
                    frames += 1
    except Exception as exc:  # noqa: BLE001 - PyAV's error classes differ between its versions
        part.unlink(missing_ok=True)
        raise ClipError(f"the camera's H.264 stream could not be put into an MP4: {exc}") from exc
    if not frames:
        part.unlink(missing_ok=True)
        raise ClipError("the camera's H.264 stream held no frame")
    nbytes = finish_file(part, folder / CLIP_NAME)
    return _camera_info(raw, CLIP_NAME, frames, nbytes)


def _camera_info(raw: RawClip, name: str, frames: int, nbytes: int) -> dict[str, Any]:
    start = raw.end_timestamp - (frames - 1) / raw.fps
    return clip_info(file=name, codec=raw.codec, source="camera", fps=raw.fps, size=raw.size, start=start,
                     end=raw.end_timestamp, frames=frames, nbytes=nbytes, start_estimated=True,
                     encoder=raw.encoder)


def failed_clip(error: str, **known: Any) -> dict[str, Any]:
    """The record's ``clip`` when there is no file (``file`` null, ``error`` says why)."""
    return {"file": None, "error": error, **known}
