"""A stand-in for Raspberry Pi's ``picamera2`` module, for tests on machines with no camera.

Tests put this folder's parent (``tests/fake_picamera2``) first on ``sys.path``; then
``from picamera2 import Picamera2`` finds this module. It mirrors the real calls and
signatures that the station uses, checks configurations the way the real
``check_camera_config`` does, and returns arrays of the real shapes and dtypes:

* ``lores`` (YUV420): ``(height * 3 // 2, stride)`` uint8; ``stride`` is the width
  rounded up to :attr:`Picamera2.stride_align` bytes, the padding filled with 255 and the
  chroma rows with 128, so a reader that forgets to crop them is caught.
* ``main`` (RGB888): ``(height, width, 3)`` uint8 in B, G, R byte order, as on a Pi.
  The scene is red: channel 2 (R) is 200, channel 1 (G) 60, channel 0 (B) the frame
  number, so a reader that swaps channels is caught.

Faults are set on the class before the camera is opened, and :func:`reset` clears them:

* ``Picamera2.cameras``: what libcamera sees (empty list: no camera attached).
* ``Picamera2.fail_after_frames = n``: capture ``n + 1`` raises, like a pulled cable.
* ``Picamera2.stall_after_frames = n``: capture ``n + 1`` never completes (a wait with a
  timeout raises ``TimeoutError``; a wait without one raises :class:`WouldHangForever`).

Every call is recorded in ``camera.calls`` as ``(name, args...)``; ``Picamera2.instances``
lists every camera made.

Video, as picamera2 does it: ``start_encoder(encoder, output, name=stream)`` starts an
encoder from :mod:`picamera2.encoders` (this fake's encoders make real H.264 with PyAV,
as picamera2's own ``LibavH264Encoder`` does) on a stream, and from then on every frame the
camera delivers goes through it to its outputs (:mod:`picamera2.outputs`, with
``CircularOutput``). ``encoders.use_board("pi5")`` makes ``H264Encoder`` the software
encoder, as picamera2 does on a board without a hardware encoder;
``encoders.fail_start = "why"`` makes every encoder refuse to start.
"""

from __future__ import annotations

import copy

import numpy as np

__all__ = ["Picamera2", "WouldHangForever", "reset"]

FAKE = True

_CONTROLS = {"FrameDurationLimits", "FrameRate", "ExposureTime", "AnalogueGain", "AeEnable",
             "AwbEnable", "Brightness", "Contrast", "NoiseReductionMode", "ScalerCrop"}
_RGB = {"RGB888", "BGR888", "XBGR8888", "XRGB8888"}
_YUV = {"YUV420", "YVU420", "NV12", "NV21", "YUYV", "UYVY"}


class WouldHangForever(AssertionError):
    """The real camera would block forever here (a stalled capture awaited with no timeout)."""


class Job:
    """Like picamera2's Job: the result of a call made with ``wait=False``."""

    def __init__(self, camera: "Picamera2", work):
        self._camera = camera
        self._work = work
        self.cancelled = False

    def get_result(self, timeout: float | None = None):
        if self._camera._stalled():
            if timeout is None:
                raise WouldHangForever("capture stalled and was awaited without a timeout")
            raise TimeoutError()
        return self._work()


class Picamera2:
    cameras: list[dict] = []
    fail_after_frames: int | None = None
    stall_after_frames: int | None = None
    stride_align = 64
    instances: list["Picamera2"] = []

    @staticmethod
    def global_camera_info() -> list[dict]:
        return [dict(c) for c in Picamera2.cameras]

    def __init__(self, camera_num: int = 0, verbose_console=None, tuning=None):
        if not 0 <= camera_num < len(Picamera2.cameras):
            raise RuntimeError("Camera __init__ sequence did not complete.")
        self.camera_num = camera_num
        self.calls: list[tuple] = [("__init__", camera_num)]
        self.camera_config: dict | None = None
        self.started = False
        self.is_open = True
        self.frames = 0
        self.pending: list[Job] = []
        self.encoders: set = set()
        Picamera2.instances.append(self)

    # -- configuration --------------------------------------------------------------------

    @staticmethod
    def _stream(defaults: dict, updates: dict | None) -> dict | None:
        if updates is None:
            return None
        stream = dict(defaults)
        for key, value in updates.items():
            if key not in ("format", "size"):
                raise ValueError(f"Bad key {key!r}: valid stream configuration keys are ('format', 'size')")
            stream[key] = value
        w, h = stream["size"]
        stream["size"] = (w - w % 2, h - h % 2)   # align_stream(optimal=False)
        return stream

    def create_video_configuration(self, main={}, lores=None, raw={}, transform=None,
                                   colour_space=None, buffer_count=6, controls={},
                                   display="main", encode="main", queue=True) -> dict:
        self.calls.append(("create_video_configuration", copy.deepcopy(
            {"main": main, "lores": lores, "controls": controls})))
        self._require_open()
        main_cfg = self._stream({"format": "XBGR8888", "size": (1280, 720)}, main)
        lores_cfg = self._stream({"format": "YUV420", "size": main_cfg["size"]}, lores)
        return {"use_case": "video", "transform": transform, "colour_space": colour_space,
                "buffer_count": buffer_count, "queue": queue, "main": main_cfg, "lores": lores_cfg,
                "raw": None, "controls": dict(controls), "display": display, "encode": encode}

    def configure(self, camera_config="preview") -> None:
        self.calls.append(("configure", copy.deepcopy(camera_config)))
        self._require_open()
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        if not isinstance(camera_config, dict):
            raise RuntimeError("the fake only takes configuration dicts")
        config = copy.deepcopy(camera_config)
        for name in ("main", "lores"):
            stream = config.get(name)
            if stream is None:
                continue
            size = stream["size"]
            if type(size) is not tuple or len(size) != 2:
                raise RuntimeError(f"size in {name} stream should be (width, height)")
            if size[0] % 2 or size[1] % 2:
                raise RuntimeError("width and height should be even")
            if stream["format"] not in _RGB | _YUV:
                raise RuntimeError(f"Bad format {stream['format']} in stream {name}")
        if config.get("lores") is not None:
            (mw, mh), (lw, lh) = config["main"]["size"], config["lores"]["size"]
            if lw > mw or lh > mh:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if config["lores"]["format"] not in _YUV:
                raise RuntimeError("lores stream must be YUV")
            config["lores"]["stride"] = -(-lw // self.stride_align) * self.stride_align
        for name in config.get("controls", {}):
            if name not in _CONTROLS:
                raise RuntimeError(f"Control {name} is not advertised by libcamera")
        mw, _ = config["main"]["size"]
        config["main"]["stride"] = mw * 3
        self.camera_config = config

    def camera_configuration(self) -> dict | None:
        return self.camera_config

    def start(self, config=None, show_preview=False) -> None:
        self.calls.append(("start",))
        if config is not None:
            self.configure(config)
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        self.started = True

    # -- capture --------------------------------------------------------------------------

    def _require_open(self) -> None:
        if not self.is_open:
            raise RuntimeError("Camera not opened")

    def _stalled(self) -> bool:
        n = Picamera2.stall_after_frames
        return n is not None and self.frames >= n

    def _array(self, name: str) -> np.ndarray:
        stream = (self.camera_config or {}).get(name)
        if stream is None:
            raise RuntimeError(f"Stream {name!r} is not defined")
        w, h = stream["size"]
        if name == "lores":
            buf = np.full((h * 3 // 2, stream["stride"]), 255, np.uint8)
            buf[h:, :] = 128
            ramp = np.arange(w)[None, :] + np.arange(h)[:, None] + self.frames
            buf[:h, :w] = (ramp % 200).astype(np.uint8)
            return buf
        image = np.empty((h, w, 3), np.uint8)
        image[..., 0] = self.frames % 256
        image[..., 1] = 60
        image[..., 2] = 200
        return image

    def _capture(self, names: list[str]):
        if not self.started:
            raise RuntimeError("Camera is not running")
        n = Picamera2.fail_after_frames
        if n is not None and self.frames >= n:
            raise RuntimeError("Camera frontend has timed out!")
        arrays = [self._array(name) for name in names]
        metadata = {"SensorTimestamp": 1_000_000_000 + self.frames * 100_000_000,
                    "ExposureTime": 20000, "AnalogueGain": 1.0}
        for encoder in list(self.encoders):   # the camera hands every frame to its encoders
            encoder.encode(self._array(encoder.name), metadata["SensorTimestamp"] // 1000)
        self.frames += 1
        return arrays, metadata

    def _dispatch(self, work, wait):
        job = Job(self, work)
        if wait is False:
            self.pending.append(job)
            return job
        return job.get_result()

    def capture_array(self, name="main", wait=None, signal_function=None):
        self.calls.append(("capture_array", name))
        return self._dispatch(lambda: self._capture([name])[0][0], wait)

    def capture_arrays(self, names=["main"], wait=None, signal_function=None):
        self.calls.append(("capture_arrays", list(names)))
        return self._dispatch(lambda: self._capture(list(names)), wait)

    def wait(self, job: Job, timeout=None):
        self.calls.append(("wait", timeout))
        if job in self.pending:
            self.pending.remove(job)
        return job.get_result(timeout=timeout)

    def cancel_all_and_flush(self) -> None:
        self.calls.append(("cancel_all_and_flush",))
        for job in self.pending:
            job.cancelled = True
        self.pending = []

    # -- video ----------------------------------------------------------------------------

    def start_encoder(self, encoder=None, output=None, pts=None, quality=None, name=None) -> None:
        self.calls.append(("start_encoder", type(encoder).__name__, name))
        from picamera2.outputs import FileOutput

        if encoder is None:
            raise RuntimeError("No encoder specified")
        if output is not None:
            encoder.output = FileOutput(output, pts=pts) if isinstance(output, str) else output
        name = name or (self.camera_config or {}).get("encode", "main")
        stream = (self.camera_config or {}).get(name)
        if stream is None:
            raise RuntimeError(f"Encode stream {name} was not defined")
        encoder.name = name
        encoder.width, encoder.height = stream["size"]
        encoder.format = stream["format"]
        encoder.stride = stream["stride"]
        encoder.start(quality=quality)
        self.encoders.add(encoder)

    def stop_encoder(self, encoders=None) -> None:
        self.calls.append(("stop_encoder",))
        chosen = list(self.encoders) if encoders is None else (
            [encoders] if not isinstance(encoders, (list, set)) else list(encoders))
        for encoder in chosen:
            encoder.stop()
            self.encoders.discard(encoder)

    def stop(self) -> None:
        self.calls.append(("stop",))
        self.started = False

    def close(self) -> None:
        self.calls.append(("close",))
        if self.started:
            self.stop()
        self.is_open = False


def reset() -> None:
    """One working camera, no faults, no history."""
    Picamera2.cameras = [{"Model": "imx708_noir", "Location": 2, "Rotation": 180,
                          "Id": "/base/soc/i2c0mux/i2c@1/imx708@1a"}]
    Picamera2.fail_after_frames = None
    Picamera2.stall_after_frames = None
    Picamera2.stride_align = 64
    Picamera2.instances = []
    from picamera2 import encoders

    encoders.use_board("pi4")
    encoders.fail_start = None


reset()
