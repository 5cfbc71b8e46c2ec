"""A stand-in for ``picamera2.encoders``: H.264 encoders that make real H.264.

picamera2's ``H264Encoder`` is the Pi's hardware encoder where there is one (Pi 4, Pi 3,
Zero 2 W) and its software ``LibavH264Encoder`` (libx264 through PyAV) where there is none
(Pi 5): its ``encoders`` package picks at import. Here both encode with PyAV's libx264
(``ultrafast``, ``zerolatency``, sequence headers before every keyframe, a keyframe every
``iperiod`` frames), so what reaches the outputs is a real H.264 elementary stream.

``use_board("pi5")`` makes ``H264Encoder`` the software one, as on a Pi 5;
``use_board("pi4")`` (the default) the hardware one. ``fail_start = "why"`` makes
``start()`` raise, as an encoder that cannot open does.
"""

from __future__ import annotations

import threading
from fractions import Fraction

__all__ = ["Encoder", "H264Encoder", "LibavH264Encoder", "Quality"]

fail_start: str | None = None


class Quality:
    VERY_LOW, LOW, MEDIUM, HIGH, VERY_HIGH = range(5)


class Encoder:
    def __init__(self):
        self._output = []
        self._running = False
        self._lock = threading.Lock()
        self.name = None
        self.width = self.height = self.stride = 0
        self.format = None
        self.frames_encoded = 0

    @property
    def running(self):
        return self._running

    @property
    def output(self):
        return self._output[0] if len(self._output) == 1 else self._output

    @output.setter
    def output(self, value):
        from picamera2.outputs import Output

        if isinstance(value, list):
            if not all(isinstance(out, Output) for out in value):
                raise RuntimeError("Must pass Output")
        elif isinstance(value, Output):
            value = [value]
        else:
            raise RuntimeError("Must pass Output")
        self._output = value

    def start(self, quality=None):
        with self._lock:
            if self._running:
                raise RuntimeError("Encoder already running")
            if fail_start is not None:
                raise RuntimeError(fail_start)
            self._start()
            self._running = True
            for out in self._output:
                out.start()

    def stop(self):
        with self._lock:
            if not self._running:
                raise RuntimeError("Encoder already stopped")
            self._running = False
            self._stop()
            for out in self._output:
                out.stop()

    def encode(self, array, timestamp_us):
        with self._lock:
            if self._running:
                self._encode(array, timestamp_us)

    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False):
        for out in self._output:
            out.outputframe(frame, keyframe, timestamp, packet, audio)

    def _start(self):
        pass

    def _stop(self):
        pass

    def _encode(self, array, timestamp_us):
        self.outputframe(array.tobytes(), True, timestamp_us)


class _X264(Encoder):
    def __init__(self, bitrate=None, repeat=True, iperiod=None, framerate=None, qp=None, profile=None):
        super().__init__()
        self.bitrate, self.repeat, self.iperiod = bitrate, repeat, iperiod
        self.framerate, self.qp, self.profile = framerate, qp, profile
        self._context = None
        self._first = None

    def _start(self):
        import av  # picamera2's own software encoder needs PyAV too

        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = self.width, self.height, "yuv420p"
        ctx.time_base = Fraction(1, 1_000_000)
        ctx.framerate = Fraction(self.framerate or 30).limit_denominator(1000)
        if self.bitrate:
            ctx.bit_rate = int(self.bitrate)
        ctx.gop_size = self.iperiod or 30
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency"}
        ctx.open()
        self._context = ctx
        self._first = None

    def _frame(self, array):
        import av

        if self.format == "YUV420":   # planar, rows padded to the stride
            rows = self.height * 3 // 2
            y = array[:self.height, :self.width]
            u = array[self.height:rows, :].reshape(-1)[: (self.width // 2) * (self.height // 2)]
            v = array[self.height:rows, :].reshape(-1)[(self.width // 2) * (self.height // 2):
                                                        2 * (self.width // 2) * (self.height // 2)]
            import numpy as np

            planar = np.concatenate([y.reshape(-1), u, v]).reshape(rows, self.width)
            return av.VideoFrame.from_ndarray(planar, format="yuv420p")
        return av.VideoFrame.from_ndarray(array[..., :3], format="bgr24").reformat(format="yuv420p")

    def _encode(self, array, timestamp_us):
        if self._first is None:
            self._first = timestamp_us
        frame = self._frame(array)
        frame.pts = timestamp_us - self._first
        for packet in self._context.encode(frame):
            self.frames_encoded += 1
            self.outputframe(bytes(packet), packet.is_keyframe, packet.pts, packet)

    def _stop(self):
        for packet in self._context.encode(None):
            self.frames_encoded += 1
            self.outputframe(bytes(packet), packet.is_keyframe, packet.pts, packet)
        self._context = None


class HardwareH264Encoder(_X264):
    """The Pi's V4L2 hardware encoder, as picamera2's ``H264Encoder`` on a Pi 4."""


HardwareH264Encoder.__name__ = "H264Encoder"
HardwareH264Encoder.__qualname__ = "H264Encoder"


class LibavH264Encoder(_X264):
    """libx264 through PyAV, as picamera2's ``LibavH264Encoder``."""


H264Encoder = HardwareH264Encoder


def use_board(board: str) -> None:
    """``"pi4"``: ``H264Encoder`` is the hardware encoder; ``"pi5"``: it is ``LibavH264Encoder``."""
    global H264Encoder
    H264Encoder = LibavH264Encoder if board == "pi5" else HardwareH264Encoder
