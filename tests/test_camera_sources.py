"""The real camera sources (picamera2, OpenCV devices and streams, replays) and the URI factory.

Everything these tests play is made by the tests: clips written with cv2.VideoWriter,
images written with cv2.imwrite, an MJPEG stream served from a thread, and a fake
picamera2 module (tests/fake_picamera2) standing in for the Raspberry Pi camera.
"""

from __future__ import annotations

import importlib
import logging
import socket
import sys
import threading
import time
import types
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from station.camera import (CameraError, CameraURIError, describe_uri, open_camera, parse_uri,
                            redact_uri)
from station.camera.media import ImageFolderCamera, VideoFileCamera
from station.camera.opencv_source import OpenCVCamera
from station.camera.pacing import MediaClock
from station.camera.picam import Picamera2Camera
from station.config.camera import CameraSection

FAKE_PICAMERA2 = Path(__file__).parent / "fake_picamera2"
REAL_CLIP = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "clips" / "zamba_small_cat_ir.mp4"
START = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def never_sleep(seconds: float) -> None:
    raise AssertionError(f"speed=max must not sleep (asked for {seconds} s)")


class FakeTime:
    """A monotonic clock that moves only when slept on; records every sleep."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def camera_log():
    """Records of the station.camera logger, whatever the station's logging set-up."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("station.camera")
    handler, old_level = Keep(level=logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def write_clip(path: Path, frames: int, fps: float, size=(96, 64)) -> Path:
    """An MJPG .avi whose frame i is flat gray 10 + 10 * i (so tests can tell frames apart)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened(), "opencv cannot write MJPG/avi here"
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 10 + 10 * i, np.uint8))
    writer.release()
    return path


def gray_level(index: int) -> int:
    return 10 + 10 * index


# -- the Raspberry Pi camera, through the fake picamera2 -----------------------------------

@pytest.fixture
def fake_picamera2(monkeypatch):
    monkeypatch.syspath_prepend(str(FAKE_PICAMERA2))
    for name in ("picamera2", "picamera2.encoders", "picamera2.outputs"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    module = importlib.import_module("picamera2")
    assert getattr(module, "FAKE", False), "the real picamera2 was imported instead of the fake"
    module.reset()
    yield module
    module.reset()
    for name in ("picamera2", "picamera2.encoders", "picamera2.outputs"):
        sys.modules.pop(name, None)


def test_pi_camera_is_driven_like_the_motion_example(fake_picamera2):
    cam = Picamera2Camera(0, main_size=(320, 240), lores_size=(100, 60), fps=5)
    cam.open()
    pi = fake_picamera2.Picamera2.instances[0]
    assert [c[0] for c in pi.calls] == ["__init__", "create_video_configuration", "configure", "start"]
    asked = pi.calls[1][1]
    assert asked["main"] == {"size": (320, 240), "format": "RGB888"}
    assert asked["lores"] == {"size": (100, 60), "format": "YUV420"}
    assert asked["controls"] == {"FrameDurationLimits": (200_000, 200_000)}

    del pi.calls[:]
    frames = [cam.read() for _ in range(3)]
    assert [c for c in pi.calls if c[0].startswith("capture")] == [("capture_array", "lores")] * 3
    assert all(c == ("wait", 5.0) for c in pi.calls if c[0] == "wait"), "every wait has a timeout"
    assert [f.index for f in frames] == [0, 1, 2]
    for f in frames:
        assert f.main is None
        assert f.lores.shape == (60, 100) and f.lores.dtype == np.uint8
        assert f.lores.max() < 200, "stride padding (255) or chroma rows leaked into the Y plane"
        assert abs(f.timestamp - time.time()) < 60
    expected_y = (np.arange(100)[None, :] + np.arange(60)[:, None] + 1) % 200
    assert np.array_equal(frames[1].lores, expected_y)

    del pi.calls[:]
    still = cam.read(want_main=True)
    assert [c for c in pi.calls if c[0].startswith("capture")] == [("capture_arrays", ["lores", "main"])]
    assert still.main.shape == (240, 320, 3) and still.main.dtype == np.uint8
    assert (still.main[..., 2] == 200).all() and (still.main[..., 1] == 60).all(), \
        "RGB888 from picamera2 is already BGR for OpenCV: red must stay in channel 2"
    assert still.lores.shape == (60, 100)

    cam.close()
    assert pi.calls[-2:] == [("stop",), ("close",)]


def test_pi_camera_rounds_odd_sizes_and_frames_still_come_at_the_configured_size(fake_picamera2):
    cam = Picamera2Camera(0, main_size=(321, 241), lores_size=(161, 91), fps=10)
    with cam:
        frame = cam.read(want_main=True)
    assert frame.lores.shape == (91, 161)
    assert frame.main.shape == (241, 321, 3)


def test_pi_camera_number_two_is_asked_for_by_number(fake_picamera2):
    fake_picamera2.Picamera2.cameras = [{"Model": "imx708"}, {"Model": "imx219"}]
    cam = open_camera("picamera2:1", CameraSection(main_size=(320, 240), lores_size=(160, 120)))
    assert isinstance(cam, Picamera2Camera) and cam.camera_num == 1
    with cam:
        cam.read()
    assert fake_picamera2.Picamera2.instances[0].calls[0] == ("__init__", 1)


def test_ribbon_cable_pulled_mid_run_raises_camera_error_naming_the_camera(fake_picamera2):
    fake_picamera2.Picamera2.fail_after_frames = 2
    cam = Picamera2Camera(0, main_size=(320, 240), lores_size=(160, 120), uri="picamera2")
    cam.open()
    cam.read()
    cam.read(want_main=True)
    with pytest.raises(CameraError, match=r"picamera2: capture failed: Camera frontend has timed out"):
        cam.read()
    cam.close()
    assert fake_picamera2.Picamera2.instances[0].calls[-2:] == [("stop",), ("close",)]
    fake_picamera2.Picamera2.fail_after_frames = None
    with cam:                                   # the daemon's retry: reopen and carry on
        assert cam.read().index == 0


def test_stalled_camera_times_out_instead_of_hanging_and_cancels_the_capture(fake_picamera2):
    fake_picamera2.Picamera2.stall_after_frames = 1
    cam = Picamera2Camera(0, main_size=(320, 240), lores_size=(160, 120), read_timeout_s=2.0)
    cam.open()
    cam.read()
    with pytest.raises(CameraError, match=r"picamera2:0: no frame within 2 s"):
        cam.read()
    pi = fake_picamera2.Picamera2.instances[0]
    assert ("cancel_all_and_flush",) in pi.calls and not pi.pending
    cam.close()


def test_no_pi_camera_attached_says_so_at_open(fake_picamera2):
    fake_picamera2.Picamera2.cameras = []
    with pytest.raises(CameraError, match=r"no Raspberry Pi camera 0 .*sees 0: none.*rpicam-hello"):
        Picamera2Camera(0).open()
    assert fake_picamera2.Picamera2.instances == []


def test_picamera2_not_installed_tells_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)      # import picamera2 -> ImportError
    cam = Picamera2Camera(0)                                  # building it imports nothing
    with pytest.raises(CameraError) as err:
        cam.open()
    assert "python3-picamera2" in str(err.value) and "--system-site-packages" in str(err.value)
    assert "picamera2:0" in str(err.value)


# -- video files ---------------------------------------------------------------------------

def test_video_file_replays_every_frame_on_its_own_clock(tmp_path):
    clip = write_clip(tmp_path / "night.avi", frames=12, fps=5)
    cam = VideoFileCamera(clip, main_size=(48, 32), lores_size=(24, 16), fps=10,
                          clock=MediaClock(START, realtime=False, sleep=never_sleep))
    assert cam.fps == 5 and not cam.live, "the file's own rate, known before open()"
    frames = []
    with cam:
        while (frame := cam.read(want_main=len(frames) % 2 == 0)) is not None:
            frames.append(frame)
        assert cam.read() is None, "stays at the end"
    assert len(frames) == 12
    assert [f.index for f in frames] == list(range(12))
    for i, f in enumerate(frames):
        assert f.timestamp == pytest.approx(START.timestamp() + i / 5, abs=1e-6)
        assert f.lores.shape == (16, 24) and f.lores.dtype == np.uint8
        assert abs(float(f.lores.mean()) - gray_level(i)) < 4, "frames in order"
        if i % 2 == 0:
            assert f.main.shape == (32, 48, 3)
        else:
            assert f.main is None


def test_video_at_real_speed_waits_for_each_frame(tmp_path):
    clip = write_clip(tmp_path / "dusk.avi", frames=6, fps=4)
    clock = FakeTime()
    cam = VideoFileCamera(clip, main_size=(48, 32), lores_size=(24, 16),
                          clock=MediaClock(START, realtime=True, sleep=clock.sleep,
                                           monotonic=clock.monotonic))
    with cam:
        stamps = [cam.read().timestamp for _ in range(6)]
        assert cam.read() is None
    assert clock.sleeps == pytest.approx([0.25] * 5)
    assert stamps == pytest.approx([START.timestamp() + i / 4 for i in range(6)])


def test_missing_or_broken_video_file_is_a_camera_error_naming_it(tmp_path):
    with pytest.raises(CameraError, match="gone.avi"):
        VideoFileCamera(tmp_path / "gone.avi").open()
    junk = tmp_path / "notes.mp4"
    junk.write_text("not a video")
    with pytest.raises(CameraError, match=r"notes\.mp4"):
        VideoFileCamera(junk).open()


@pytest.mark.skipif(not REAL_CLIP.exists(), reason="shared real clip not present")
def test_a_real_camera_trap_clip_replays_whole(tmp_path):
    cam = VideoFileCamera(REAL_CLIP, main_size=(640, 360), lores_size=(320, 180),
                          clock=MediaClock(START, realtime=False, sleep=never_sleep))
    count, last = 0, None
    with cam:
        expected = cam.frame_count
        while (frame := cam.read(want_main=count == 0)) is not None:
            if count == 0:
                assert frame.main.shape == (360, 640, 3)
            count, last = count + 1, frame
    assert count == expected > 0
    assert last.timestamp - START.timestamp() == pytest.approx((count - 1) / cam.fps, abs=0.05)


# -- image folders -------------------------------------------------------------------------

def test_image_folder_plays_in_name_order_skipping_a_corrupt_file(tmp_path, camera_log):
    folder = tmp_path / "sd_card"
    folder.mkdir()
    cv2.imwrite(str(folder / "IMG2.JPG"), np.full((120, 160, 3), 50, np.uint8))
    cv2.imwrite(str(folder / "IMG10.png"), np.full((177, 333, 3), 150, np.uint8))   # odd size
    cv2.imwrite(str(folder / "IMG1.jpg"), np.full((120, 160, 3), 100, np.uint8))
    (folder / "IMG3.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated by a dying SD card")
    (folder / "._IMG1.jpg").write_bytes(b"macOS resource fork")
    (folder / "notes.txt").write_text("deployment notes")
    cam = ImageFolderCamera(folder, main_size=(64, 48), lores_size=(32, 24), fps=2,
                            clock=MediaClock(START, realtime=False, sleep=never_sleep))
    frames = []
    with cam:
        while (frame := cam.read(want_main=True)) is not None:
            frames.append(frame)
    assert [f.meta["file"] for f in frames] == ["IMG1.jpg", "IMG2.JPG", "IMG10.png"]
    assert [f.timestamp - START.timestamp() for f in frames] == pytest.approx([0.0, 0.5, 1.0])
    for f, level in zip(frames, (100, 50, 150)):
        assert f.main.shape == (48, 64, 3) and f.lores.shape == (24, 32)
        assert abs(float(f.lores.mean()) - level) < 3
    assert cam.skipped == [folder / "IMG3.jpg"]
    warnings = [r for r in camera_log if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].fields["file"].endswith("IMG3.jpg")


def test_image_folder_at_real_speed_waits_one_frame_period_per_image(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((20, 20, 3), 40 * i, np.uint8))
    clock = FakeTime()
    cam = ImageFolderCamera(tmp_path, main_size=(20, 20), lores_size=(20, 20), fps=4,
                            clock=MediaClock(START, sleep=clock.sleep, monotonic=clock.monotonic))
    with cam:
        while cam.read() is not None:
            pass
    assert clock.sleeps == pytest.approx([0.25, 0.25])


def test_empty_or_unreadable_image_folders_are_camera_errors_naming_the_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CameraError, match="no images .* in folder .*empty"):
        ImageFolderCamera(empty).open()
    with pytest.raises(CameraError, match="image folder not found: .*nowhere"):
        ImageFolderCamera(tmp_path / "nowhere").open()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"garbage")
    cam = ImageFolderCamera(broken, clock=MediaClock(START, realtime=False))
    cam.open()
    with pytest.raises(CameraError, match="none of the 1 images"):
        cam.read()


# -- USB devices and network streams through OpenCV ------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_usb_camera_that_is_not_there_fails_at_once_naming_it():
    cam = open_camera("opencv:63", CameraSection())
    assert isinstance(cam, OpenCVCamera) and cam.live
    started = time.monotonic()
    with pytest.raises(CameraError, match=r"opencv:63: could not open the camera"):
        cam.open()
    assert time.monotonic() - started < 10, "must fail, not hang"
    by_id = open_camera("opencv:/dev/v4l/by-id/usb-trailcam-video-index0", CameraSection())
    with pytest.raises(CameraError, match=r"opencv:/dev/v4l/by-id/usb-trailcam-video-index0: could not open"):
        by_id.open()


def test_rtsp_camera_refusing_connections_fails_quickly():
    uri = f"rtsp://127.0.0.1:{free_port()}/x"
    cam = OpenCVCamera(uri, open_timeout_s=3, read_timeout_s=3)
    started = time.monotonic()
    with pytest.raises(CameraError, match=uri):
        cam.open()
    assert time.monotonic() - started < 10


def test_stream_that_accepts_but_never_answers_times_out_at_open():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)                                         # accepts TCP, never speaks
    try:
        uri = f"rtsp://127.0.0.1:{silent.getsockname()[1]}/stream1"
        cam = OpenCVCamera(uri, open_timeout_s=1, read_timeout_s=1)
        started = time.monotonic()
        with pytest.raises(CameraError, match="within 1 s"):
            cam.open()
        assert time.monotonic() - started < 10
    finally:
        silent.close()


class MjpegStream:
    """An HTTP MJPEG camera in a thread: ``frames`` frames at ``rate``/s, then silence."""

    def __init__(self, frames: int, rate: float = 20.0):
        self.sent = 0
        self.stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for i in range(frames):
                        ok, jpg = cv2.imencode(".jpg", np.full((120, 160, 3), gray_level(i), np.uint8))
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                         b"Content-Length: %d\r\n\r\n" % len(jpg))
                        self.wfile.write(jpg.tobytes() + b"\r\n")
                        self.wfile.flush()
                        outer.sent = i + 1
                        time.sleep(1 / rate)
                    outer.stop.wait(30)                       # the camera hangs, socket open
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.port = self.server.server_address[1]

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def test_network_stream_gives_the_newest_frame_then_fails_cleanly_when_the_camera_hangs():
    stream = MjpegStream(frames=24, rate=20)
    uri = f"http://ranger:s3cret@127.0.0.1:{stream.port}/video.mjpg"
    try:
        cam = open_camera(uri, CameraSection(main_size=(80, 60), lores_size=(40, 30), fps=2))
        cam.read_timeout_s = cam.open_timeout_s = 2
        assert "s3cret" not in cam.uri and "ranger" not in cam.uri and "***@" in cam.uri
        cam.open()
        first = cam.read(want_main=True)
        assert first.main.shape == (60, 80, 3) and first.lores.shape == (30, 40)
        time.sleep(0.6)                                       # the camera keeps sending meanwhile
        second = cam.read()
        assert second.index == 1 and second.timestamp > first.timestamp
        levels = [round((float(f.lores.mean()) - 10) / 10) for f in (first, second)]
        assert levels[1] - levels[0] >= 4, f"a stale buffered frame was returned: {levels}"
        while stream.sent < 24:
            time.sleep(0.05)
        with pytest.raises(CameraError) as err:               # drains the rest, then nothing comes
            for _ in range(30):
                cam.read()
        assert "s3cret" not in str(err.value) and "127.0.0.1" in str(err.value)
        cam.close()
    finally:
        stream.close()


# -- the URI factory -------------------------------------------------------------------------

@pytest.fixture
def media(tmp_path):
    folder = tmp_path / "stills"
    folder.mkdir()
    clip = write_clip(tmp_path / "clip.avi", frames=3, fps=5)
    return folder, clip


def test_every_uri_form_is_understood(media):
    folder, clip = media
    assert parse_uri("picamera2").kind == "picamera2" and parse_uri("picamera2").camera_num == 0
    assert parse_uri("picamera2:1").camera_num == 1
    assert parse_uri("opencv:0").device == 0 and parse_uri("opencv:0").kind == "device"
    by_id = "/dev/v4l/by-id/usb-cam-video-index0"
    assert parse_uri(f"opencv:{by_id}").device == by_id
    for url in ("rtsp://cam.local:554/stream1", "rtsps://cam.local/s", "http://10.0.0.5/mjpg",
                "https://cam.example.org/live.m3u8", "RTSP://CAM/x"):
        spec = parse_uri(url)
        assert spec.kind == "stream" and spec.url == url
    secret = parse_uri("rtsp://admin:hunter2@192.168.1.64:554/Streaming/Channels/101")
    assert secret.url.startswith("rtsp://admin:hunter2@")
    assert secret.uri == "rtsp://***@192.168.1.64:554/Streaming/Channels/101"
    assert parse_uri(str(folder)).kind == "folder" and parse_uri(str(folder)).path == folder.resolve()
    assert parse_uri(str(clip)).kind == "video" and parse_uri(str(clip)).path == clip.resolve()
    assert parse_uri("synthetic").seed is None
    assert parse_uri("synthetic:7").seed == 7
    spec = parse_uri(f"synthetic:7?pictures={folder}&duration=30")
    assert (spec.seed, spec.pictures, spec.duration_s) == (7, folder, 30.0)
    assert parse_uri("synthetic?duration=2.5").duration_s == 2.5


@pytest.mark.parametrize("uri, says", [
    ("", "empty"),
    ("webcam", "not a camera URI"),
    ("opencv:", "device index"),
    ("opencv:front", "device index must be a whole number"),
    ("opencv:-1", "0 or more"),
    ("picamera2:one", "camera number"),
    ("ftp://cam/x", "unknown scheme"),
    ("rtsp://", "no host"),
    ("synthetic:abc", "seed"),
    ("synthetic:1?speed=3", "unknown option 'speed'"),
    ("synthetic:1?duration=-1", "more than 0"),
    ("synthetic:1?pictures=/no/such/pictures", "pictures folder not found: /no/such/pictures"),
    ("/no/such/clip.mp4", "no such file or folder: /no/such/clip.mp4"),
    ("clips/missing.mp4", "no such file or folder: .*clips/missing.mp4"),
])
def test_bad_uris_are_refused_naming_the_uri_and_the_accepted_forms(uri, says):
    with pytest.raises(CameraURIError, match=says) as err:
        parse_uri(uri)
    message = str(err.value)
    assert repr(uri) in message and "accepted camera URIs" in message
    assert isinstance(err.value, ValueError) and not isinstance(err.value, CameraError), \
        "a typo is not retried like a camera failure"


def test_a_bad_uri_with_a_password_does_not_print_it():
    with pytest.raises(CameraURIError) as err:
        parse_uri("rtsp://admin:hunter2@/x")
    assert "hunter2" not in str(err.value)
    assert redact_uri("http://a:b@h:8080/p?q=1") == "http://***@h:8080/p?q=1"
    assert redact_uri("rtsp://h/p") == "rtsp://h/p"


def test_the_factory_builds_each_source_from_the_config(media, monkeypatch):
    folder, clip = media
    cfg = CameraSection(main_size=(320, 240), lores_size=(160, 120), fps=4, speed="max", start_time=START)

    video = open_camera(str(clip), cfg)
    assert isinstance(video, VideoFileCamera)
    assert (video.main_size, video.lores_size, video.fps) == ((320, 240), (160, 120), 5.0)
    assert video.clock.realtime is False and video.clock.start == START.timestamp()

    stills = open_camera(str(folder), cfg.model_copy(update={"speed": "realtime"}))
    assert isinstance(stills, ImageFolderCamera) and stills.fps == 4 and stills.clock.realtime

    usb = open_camera("opencv:2", cfg)
    assert isinstance(usb, OpenCVCamera) and usb.source == 2 and usb.uri == "opencv:2"
    net = open_camera("rtsp://u:p@cam/1", cfg)
    assert isinstance(net, OpenCVCamera) and net.source == "rtsp://u:p@cam/1"
    assert net.uri == "rtsp://***@cam/1"

    monkeypatch.setitem(sys.modules, "picamera2", None)     # building must not import it
    pi = open_camera("picamera2", cfg)
    assert isinstance(pi, Picamera2Camera) and pi.fps == 4 and pi.main_size == (320, 240)


def test_the_factory_hands_the_synthetic_scene_its_settings(media, monkeypatch):
    folder, _ = media
    made = []
    fake = types.ModuleType("station.camera.synthetic")
    fake.SyntheticCamera = lambda **kwargs: made.append(kwargs) or kwargs
    monkeypatch.setitem(sys.modules, "station.camera.synthetic", fake)
    cfg = CameraSection(main_size=(320, 240), lores_size=(160, 120), fps=4, speed="max",
                        start_time=START, scene_duration_s=60)
    open_camera("synthetic", cfg)
    open_camera(f"synthetic:9?pictures={folder}&duration=5", cfg)
    assert made[0] == dict(seed=0, main_size=(320, 240), lores_size=(160, 120), fps=4.0, realtime=False,
                           start_time=START, duration_s=60.0, pictures=None)
    assert (made[1]["seed"], made[1]["pictures"], made[1]["duration_s"]) == (9, folder, 5.0)


def test_describe_uri_says_what_will_be_opened(media):
    folder, clip = media
    assert describe_uri("picamera2:1") == "Raspberry Pi camera 1 (picamera2)"
    assert describe_uri("opencv:0") == "USB camera /dev/video0 (OpenCV)"
    assert describe_uri("rtsp://a:b@cam/1") == "network stream rtsp://***@cam/1 (OpenCV/FFmpeg)"
    assert describe_uri(str(clip)) == f"video file {clip} (replay)"
    assert describe_uri(str(folder)) == f"image folder {folder} (replay)"
    assert describe_uri("synthetic:3?duration=10") == "synthetic scene, seed 3, 10 s"
