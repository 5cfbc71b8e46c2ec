"""Event clips on a Raspberry Pi camera: an H.264 encoder feeding picamera2's ``CircularOutput``.

The picamera2 way (its ``capture_circular.py`` example): the encoder runs all the time on
one stream and writes into a ring of the last few seconds of encoded frames; when an
event opens, the output is given a file and started, and it writes the ring (from its
first keyframe) and every later frame; when the event closes, ``stop()`` writes what the
ring still holds. The clip therefore begins ``pre_trigger_s`` (up to one keyframe
interval more) before the trigger and ends with the event.

The file here is an in-memory buffer (``io.BytesIO``), so starting and stopping a clip on
the capture thread touches no disk; the writer thread puts the stream into ``clip.mp4``
(:func:`station.events.clip.remux_h264`).

Per board (picamera2 itself picks the encoder: its ``H264Encoder`` is the hardware
encoder where there is one and libav's software x264 where there is none):

==========================  ==========================  ================================
board                       encoder                     stream and default size
==========================  ==========================  ================================
Pi 4, Pi 400, CM4, Pi 3,    hardware H.264 (V4L2)       ``main`` at the main size (at
Zero 2 W                                                most 1920x1080)
Pi 5, Pi 500, CM5           software H.264 (libx264,    ``lores`` raised to 640 wide (the
                            ``ultrafast``)              main size's aspect); motion still
                                                        sees the configured lores size
==========================  ==========================  ================================

``[events] video_size`` overrides the size: the main size encodes ``main``, any other
size encodes ``lores`` at that size. Keyframes come once a second, so a clip starts at
most a second earlier than asked. An encoder that cannot start leaves the camera running
without video, with a warning: capture never depends on it.
"""

from __future__ import annotations

import importlib.util
import io
import math
import time
from dataclasses import dataclass

from station.camera.base import RawClip, VideoSettings
from station.log import get_logger

log = get_logger("camera")

Size = tuple[int, int]

HARDWARE_MAX: Size = (1920, 1080)
"""The largest frame the Pi's hardware H.264 encoder takes."""
SOFTWARE_WIDTH = 640
"""Default clip width where H.264 is encoded in software (Pi 5)."""


@dataclass(frozen=True, slots=True)
class VideoPlan:
    stream: str
    """"main" or "lores"."""
    size: Size
    hardware: bool
    encoder: str


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def plan_video(main_size: Size, requested: Size | None, hardware: bool) -> VideoPlan:
    """Which stream to encode, at what size, for this board (see the table above)."""
    mw, mh = main_size
    if requested is not None:
        size = (min(requested[0], mw), min(requested[1], mh))
    elif hardware:
        scale = min(1.0, HARDWARE_MAX[0] / mw, HARDWARE_MAX[1] / mh)
        size = (mw, mh) if scale >= 1.0 else (_even(mw * scale), _even(mh * scale))
    else:
        width = min(SOFTWARE_WIDTH, mw)
        size = (_even(width), _even(width * mh / mw))
    stream = "main" if size == (mw, mh) else "lores"
    name = "H264Encoder (hardware)" if hardware else "LibavH264Encoder (software)"
    return VideoPlan(stream, size, hardware, name)


class PicameraClips:
    """The encoder and circular output of one camera (a :class:`~station.camera.base.ClipRecorder`).

    :meth:`plan` before configuring (it may raise the lores stream), :meth:`attach` after
    the camera started, :meth:`detach` before it stops; :meth:`start` and :meth:`stop` on the
    capture thread."""

    def __init__(self, settings: VideoSettings, fps: float, uri: str):
        self.settings = settings
        self.fps = float(fps)
        self.uri = uri
        self.iperiod = max(1, round(self.fps))
        self.buffer_frames = math.ceil(settings.pre_trigger_s * self.fps) + self.iperiod
        self.video_plan: VideoPlan | None = None
        self._cam = None
        self._encoder = None
        self._output = None
        self._buffer: io.BytesIO | None = None
        self.failure: str | None = None

    # -- set-up -------------------------------------------------------------------------
    def plan(self, main_size: Size) -> VideoPlan | None:
        """The plan for this board, or None (with a warning) when picamera2 cannot encode here."""
        self.video_plan = None
        try:
            from picamera2 import encoders
        except Exception as exc:  # noqa: BLE001 - a missing v4l2/av module must not stop the camera
            return self._off(f"picamera2's encoders cannot be loaded: {exc}")
        if importlib.util.find_spec("av") is None:
            return self._off("PyAV (python3-av) is not installed, so clips cannot be put into MP4")
        software = getattr(encoders, "LibavH264Encoder", None)
        hardware = software is None or encoders.H264Encoder is not software
        self.video_plan = plan_video(main_size, self.settings.size, hardware)
        return self.video_plan

    def attach(self, cam, actual_size: Size) -> bool:
        """Start the encoder on the running camera; False (with a warning) when it cannot."""
        plan = self.video_plan
        if plan is None:
            return False
        try:
            from picamera2.encoders import H264Encoder
            from picamera2.outputs import CircularOutput

            kwargs = {"bitrate": self.settings.bitrate_kbps * 1000, "repeat": True, "iperiod": self.iperiod}
            if not plan.hardware:
                kwargs["framerate"] = self.fps
            encoder = H264Encoder(**kwargs)
            output = CircularOutput(buffersize=self.buffer_frames)
            cam.start_encoder(encoder, output, name=plan.stream)
        except Exception as exc:  # noqa: BLE001 - an encoder that cannot start never stops capture
            self._off(f"the {plan.encoder} on the {plan.stream} stream could not start: {exc}")
            return False
        self._cam, self._encoder, self._output = cam, encoder, output
        self.video_plan = VideoPlan(plan.stream, tuple(actual_size), plan.hardware, plan.encoder)
        self.failure = None
        log.info("event video on", camera=self.uri, encoder=plan.encoder, stream=plan.stream,
                 size=f"{actual_size[0]}x{actual_size[1]}", buffer_frames=self.buffer_frames,
                 bitrate_kbps=self.settings.bitrate_kbps)
        return True

    def detach(self) -> None:
        """Stop the encoder (the camera is closing); a clip in progress is dropped."""
        cam, encoder = self._cam, self._encoder
        self._cam = self._encoder = self._output = self._buffer = None
        if cam is not None and encoder is not None:
            try:
                cam.stop_encoder(encoder)
            except Exception as exc:  # noqa: BLE001 - the camera is closing anyway
                log.warning("the video encoder did not stop cleanly", camera=self.uri, error=str(exc))

    def _off(self, why: str) -> None:
        self.failure = why
        log.warning("events are recorded without video", camera=self.uri, reason=why)
        return None

    # -- ClipRecorder ---------------------------------------------------------------------
    def start(self) -> bool:
        output = self._output
        if output is None:
            return False
        self._buffer = io.BytesIO()
        output.fileoutput = self._buffer   # also rewinds to "wait for a keyframe"
        output.start()
        return True

    def stop(self) -> RawClip | None:
        output, buffer = self._output, self._buffer
        self._buffer = None
        if output is None or buffer is None:
            return None
        output.stop()                      # writes what the ring still holds
        data = buffer.getvalue()
        plan = self.video_plan
        assert plan is not None
        return RawClip(data=data, codec="h264", fps=self.fps, size=plan.size, end_timestamp=time.time(),
                       encoder=plan.encoder)
