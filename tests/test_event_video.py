"""Event video (``[events] video``): a clip from before the trigger to the end of the event.

The station's own frames (the synthetic forest) are encoded by the writer thread with
OpenCV; the Raspberry Pi camera (the fake picamera2, whose encoders make real H.264 with
PyAV as picamera2's own software encoder does) records into picamera2's CircularOutput.
Every clip here is decoded and checked frame by frame.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from station.camera.base import VideoSettings
from station.camera.picam import Picamera2Camera
from station.camera.synthetic import SyntheticCamera
from station.config import parse_config
from station.daemon import StationDaemon
from station.events.clip_tap import CameraTap
from station.events.listing import listing
from station.events.model import Event, Still
from station.events.retention import DiskGuard
from station.events.store import EventStore
from station.events.writer import EventWriter
from station.feed.messages import detection_message
from station.feed.schema import validate
from tests.conftest import fill

FAKE_PICAMERA2 = Path(__file__).parent / "fake_picamera2"
START = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
MAIN, LORES = (320, 180), (160, 90)
T0 = 1_790_000_000.0
pytest.importorskip("av", reason="PyAV makes and reads the Raspberry Pi camera's H.264 (pip install av)")


def decode(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def station_config(data: Path, **events):
    return parse_config({
        "station": {"id": "t1", "deployment_id": "t1-d", "latitude": 43.0, "longitude": 131.0},
        "camera": {"uri": "synthetic:3", "main_size": list(MAIN), "lores_size": list(LORES), "speed": "max",
                   "scene_duration_s": 45.0, "start_time": START},
        "events": {"video": True, **events},
        "storage": {"data_dir": str(data), "min_free_mb": 0, "writer_queue": 4096},
    })


def blurred(image: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(image.astype(np.float32), (0, 0), 3)


def test_a_leopard_crossing_gets_a_clip_from_before_the_trigger_to_the_end_of_the_event(tmp_path):
    data = tmp_path / "data"
    StationDaemon.build(station_config(data)).run()
    store = EventStore(data)
    (record,) = list(store.records())
    clip = record["clip"]
    assert clip["file"] == "clip.mp4" and clip["mediatype"] == "video/mp4" and clip["source"] == "station"
    assert clip["start_timestamp"] == record["start_timestamp"] < record["trigger_timestamp"]
    assert clip["end_timestamp"] == record["end_timestamp"]
    frames = decode(store.event_dir(record["id"]) / "clip.mp4")
    expected = round((record["end_timestamp"] - record["start_timestamp"]) * 10) + 1
    assert len(frames) == clip["frames"] == expected, "one frame per camera frame, first still to last frame"
    assert clip["frames_repeated"] == 0

    # Frame j of the clip is the scene's frame at the clip's start + j/10 s: where the animal is
    # in view, the rendered frame at exactly that time fits best among all frames around it.
    scene = SyntheticCamera(seed=3, main_size=MAIN, lores_size=LORES, fps=10, realtime=False,
                            start_time=START, duration_s=45.0)
    scene.open()
    first = round((clip["start_timestamp"] - START.timestamp()) * 10)
    trigger = round((record["trigger_timestamp"] - START.timestamp()) * 10)
    assert first < trigger
    rendered = {k: blurred(scene.frame_at(k / 10, want_main=True).main) for k in range(first - 20, trigger + 40)}
    for j in (trigger - first + 5, trigger - first + 15, trigger - first + 25):
        error = {k: float(np.abs(blurred(frames[j]) - image).mean()) for k, image in rendered.items()}
        assert min(error, key=error.get) == first + j
    before = blurred(frames[0])
    assert np.abs(before - rendered[first]).mean() < np.abs(before - rendered[trigger + 25]).mean()

    lines, _, _ = listing(store)
    assert "clip" in lines[0] and f"{clip['duration_s']:.1f}s" in lines[1]

    msg = detection_message(record, station_config(data).station)
    assert msg["clip"] == {"file": "clip.mp4", "mediatype": "video/mp4", "start": clip["start"],
                           "end": clip["end"], "duration_s": clip["duration_s"]}
    validate("detection", msg)


def test_video_off_keeps_events_as_they_were(tmp_path):
    data = tmp_path / "data"
    StationDaemon.build(station_config(data, video=False)).run()
    (record,) = list(EventStore(data).records())
    assert "clip" not in record and not list((data / "events" / record["id"]).glob("*.mp4"))
    assert "clip" not in detection_message(record, station_config(data).station)


# -- the Raspberry Pi camera: picamera2's encoder and CircularOutput ---------------------------

@pytest.fixture
def fake_picamera2(monkeypatch):
    names = ("picamera2", "picamera2.encoders", "picamera2.outputs")
    monkeypatch.syspath_prepend(str(FAKE_PICAMERA2))
    for name in names:
        monkeypatch.delitem(sys.modules, name, raising=False)
    module = importlib.import_module("picamera2")
    assert getattr(module, "FAKE", False), "the real picamera2 was imported instead of the fake"
    module.reset()
    yield module
    module.reset()
    for name in names:
        sys.modules.pop(name, None)


def blue(frame: np.ndarray) -> int:
    """The fake camera paints frame n with blue = n."""
    return int(round(float(frame[..., 0].mean())))


def pi_event(store: EventStore, writer: EventWriter, cam: Picamera2Camera, tap: CameraTap,
             before: int, during: int) -> Event:
    for _ in range(before):
        cam.read()
    event = Event(id="019a8c1e-52f0-7a31-9c44-0f2b6d1e9a07", station_id="st", deployment_id="dep",
                  trigger_time=T0, start_time=T0 - 2)
    writer.opened(event)
    frame = cam.read(want_main=True)
    event.stills.append(Still(0, frame.timestamp, (), 0.0, False))
    writer.still(event, event.stills[0], frame.main)
    tap.opened(event)
    for _ in range(during - 1):
        cam.read()
    event.end_time, event.end_reason = T0 + 3, "motion_ended"
    tap.closed(event)
    writer.closed(event)
    assert writer.flush()
    return event


def test_the_pi_camera_records_the_clip_with_its_encoder_and_circular_output(fake_picamera2, tmp_path):
    cam = Picamera2Camera(0, main_size=MAIN, lores_size=LORES, fps=10)
    store = EventStore(tmp_path)
    writer = EventWriter(store).start()
    clips = cam.enable_video(VideoSettings(size=None, bitrate_kbps=800, pre_trigger_s=2.0))
    tap = CameraTap(writer, clips)
    cam.open()
    pi = fake_picamera2.Picamera2.instances[0]
    assert [c for c in pi.calls if c[0] == "start_encoder"] == [("start_encoder", "H264Encoder", "main")]
    (encoder,) = pi.encoders
    assert encoder.repeat and encoder.iperiod == 10 and encoder.bitrate == 800_000
    assert encoder.output.buffersize == 30, "2 s before the trigger, plus one keyframe interval"

    event = pi_event(store, writer, cam, tap, before=60, during=40)
    record = store.load(event.id)
    clip = record["clip"]
    assert clip["source"] == "camera" and clip["encoder"] == "H264Encoder (hardware)" and clip["start_estimated"]
    frames = decode(store.event_dir(event.id) / "clip.mp4")
    assert len(frames) == clip["frames"]
    # The event opened at frame 60; the ring then held frames 31-60, whose first keyframe
    # (one every 10 frames) is 40: the clip runs from frame 40, 2 s before the trigger, to the
    # last frame read (99). H.264 shifts the painted blue a little.
    assert len(frames) == 60
    assert abs(blue(frames[0]) - 40) <= 4 and abs(blue(frames[-1]) - 99) <= 4
    assert all(b - a >= 0 for a, b in zip(map(blue, frames), map(blue, frames[1:]))), "in order"
    assert record["frames"][0]["file"] == "000.jpg", "the still is kept beside the clip"

    cam.close()
    assert ("stop_encoder",) in pi.calls and not pi.encoders
    writer.stop()


def test_a_pi_5_encodes_in_software_on_a_smaller_stream_and_motion_still_sees_its_own_size(
        fake_picamera2, tmp_path):
    fake_picamera2.encoders.use_board("pi5")
    cam = Picamera2Camera(0, main_size=(1280, 720), lores_size=LORES, fps=10)
    clips = cam.enable_video(VideoSettings(size=None, bitrate_kbps=500, pre_trigger_s=1.0))
    cam.open()
    pi = fake_picamera2.Picamera2.instances[0]
    assert [c for c in pi.calls if c[0] == "start_encoder"] == [("start_encoder", "LibavH264Encoder", "lores")]
    assert pi.camera_config["lores"]["size"] == (640, 360)
    assert cam.read().lores.shape == (LORES[1], LORES[0])
    assert clips.start()
    for _ in range(12):
        cam.read()
    raw = clips.stop()
    assert raw.size == (640, 360) and raw.encoder == "LibavH264Encoder (software)" and raw.data
    cam.close()


def test_an_encoder_that_cannot_start_leaves_events_without_video_and_capture_running(fake_picamera2, caplog):
    fake_picamera2.encoders.fail_start = "Could not open /dev/video11"
    cam = Picamera2Camera(0, main_size=MAIN, lores_size=LORES, fps=10)
    clips = cam.enable_video(VideoSettings(size=None, bitrate_kbps=800, pre_trigger_s=2.0))
    with caplog.at_level(logging.WARNING, logger="station.camera"):
        cam.open()
    assert any("without video" in r.getMessage() and "/dev/video11" in r.fields["reason"] for r in caplog.records)
    assert [cam.read().index for _ in range(3)] == [0, 1, 2]
    assert clips.start() is False and clips.stop() is None
    cam.close()


def test_a_daemon_on_the_pi_camera_with_a_failing_encoder_records_events_without_video(fake_picamera2, tmp_path):
    fake_picamera2.encoders.fail_start = "no encoder"
    cfg = parse_config({
        "station": {"id": "t1", "deployment_id": "t1-d", "latitude": 43.0, "longitude": 131.0},
        "camera": {"uri": "picamera2", "main_size": list(MAIN), "lores_size": list(LORES)},
        "events": {"video": True}, "storage": {"data_dir": str(tmp_path), "min_free_mb": 0}})
    daemon = StationDaemon.build(cfg)
    assert isinstance(daemon.recorder.clip_tap, CameraTap)
    daemon.run(duration_s=0.5)
    assert daemon.stats.frames > 0 and daemon.stats.camera_state == "ok"


# -- retention: a full card keeps the stills and drops the clip first -----------------------------

def clip_event(writer: EventWriter, i: int, seconds: float = 4.0) -> Event:
    from station.events.ids import new_event_id

    start = T0 + 100 * i
    event = Event(id=new_event_id(start), station_id="st", deployment_id="dep", trigger_time=start + 1,
                  start_time=start)
    rng = np.random.default_rng(i)
    writer.opened(event)
    writer.clip_begin(event, 10.0, (320, 240))
    for k in range(int(seconds * 10) + 1):
        image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)   # noise: a clip of real size
        writer.clip_frame(event, start + k / 10, image)
        if k % 10 == 0:
            still = Still(len(event.stills), start + k / 10, (), 0.0, False)
            event.stills.append(still)
            writer.still(event, still, image[:120, :160])
    event.end_time, event.end_reason = start + seconds, "motion_ended"
    writer.closed(event)
    return event


def test_a_full_card_keeps_the_stills_and_drops_the_clip_first(tmpfs):
    card = tmpfs("12m")
    store = EventStore(card)
    writer = EventWriter(store, max_pending_clip_frames=100).start()
    events = [clip_event(writer, i) for i in range(3)]
    assert writer.flush()
    writer.stop()
    sizes = {e.id: store.load(e.id)["clip"]["bytes"] for e in events}
    assert all(size > 300_000 for size in sizes.values()), sizes
    stills_before = {e.id: sorted(p.name for p in store.event_dir(e.id).glob("*.jpg")) for e in events}

    fill(card, 200 * 1024)                      # the card is nearly full
    guard = DiskGuard(store, min_free_mb=0.6)
    report = guard.check()
    assert report.pruned == 0 and report.clips_dropped >= 1 and not report.low
    oldest = store.load(events[0].id)
    assert oldest["clip"]["file"] is None and "dropped: disk low" in oldest["clip"]["error"]
    assert not (store.event_dir(events[0].id) / "clip.mp4").exists()
    for event in events:                         # every event and every still is still there
        assert sorted(p.name for p in store.event_dir(event.id).glob("*.jpg")) == stills_before[event.id]
    assert (store.event_dir(events[-1].id) / "clip.mp4").exists(), "only as many clips as needed go"
    lines, _, _ = listing(store)
    assert "none" in lines[1]
    msg = detection_message(oldest | {"station_id": "st"}, parse_config({
        "station": {"id": "st", "deployment_id": "dep", "latitude": 43.0, "longitude": 131.0}}).station)
    assert "clip" not in msg


def test_no_clip_is_started_while_the_card_is_low_but_the_event_is_recorded(tmp_path):
    store = EventStore(tmp_path)
    guard = DiskGuard(store, min_free_mb=10**9)   # a floor no card can keep
    guard.low = True
    writer = EventWriter(store, guard=guard, check_interval_s=3600).start()
    event = clip_event(writer, 0, seconds=1.0)
    assert writer.flush()
    writer.stop()
    record = store.load(event.id)
    assert record["status"] == "closed" and record["clip"] == {"file": None, "error": "not saved: disk low"}
    assert not list(store.event_dir(event.id).glob("*.mp4"))
    assert json.loads((store.event_dir(event.id) / "event.json").read_text())["clip"]["file"] is None
