"""The daemon's capture loop: events end to end, camera failures, shutdown, a stalled card."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from station.camera.base import Camera, CameraError, Frame
from station.config import parse_config
from station.daemon import StationDaemon
from station.events.store import EventStore

T0 = 1_790_000_000.0
LORES = (160, 90)
MAIN = (320, 180)


def background() -> np.ndarray:
    rng = np.random.default_rng(7)
    noise = rng.integers(60, 120, (MAIN[1] // 8, MAIN[0] // 8), dtype=np.uint8)
    base = cv2.resize(noise, MAIN, interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(base, cv2.COLOR_GRAY2BGR)


class ScriptedCamera(Camera):
    """Plays a scene where a dark animal walks across from ``walk[0]`` to ``walk[1]``.

    ``fail_opens`` opens fail first; ``fail_reads`` are frame indices where the cable
    comes loose (the read raises and the camera must be reopened).
    """

    live = False

    def __init__(self, frames=200, walk=(60, 100), fail_opens=0, fail_reads=(), fps=10.0, endless=False):
        self.uri = "scripted:test"
        self.fps = fps
        self.frames, self.walk, self.endless = frames, walk, endless
        self.fail_opens, self.fail_reads = fail_opens, set(fail_reads)
        self.open_calls = self.close_calls = 0
        self.index = 0
        self.mains = 0
        self.bg = background()
        self.is_open = False

    def open(self):
        self.open_calls += 1
        if self.open_calls <= self.fail_opens:
            raise CameraError(f"{self.uri}: no camera detected")
        self.is_open = True

    def close(self):
        self.close_calls += 1
        self.is_open = False

    def image(self, i: int) -> np.ndarray:
        img = self.bg.copy()
        a, b = self.walk
        if a <= i < b or (self.endless and i >= a):
            x = int((i - a) % (b - a) / (b - a) * (MAIN[0] - 60))
            cv2.ellipse(img, (x + 30, 120), (30, 16), 0, 0, 360, (20, 40, 70), -1)
        return img

    def read(self, want_main=False):
        assert self.is_open, "read on a closed camera"
        i = self.index
        if i in self.fail_reads:
            self.fail_reads.discard(i)
            raise CameraError(f"{self.uri}: frame timeout")
        if i >= self.frames and not self.endless:
            return None
        self.index += 1
        img = self.image(i)
        lores = cv2.cvtColor(cv2.resize(img, LORES, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        self.mains += want_main
        return Frame(i, T0 + i / self.fps, lores, img if want_main else None)


def config(tmp_path: Path, **events):
    return parse_config({
        "station": {"id": "t1", "deployment_id": "t1-d", "latitude": 43.0, "longitude": 131.0},
        "camera": {"uri": "scripted:test", "main_size": list(MAIN), "lores_size": list(LORES),
                   "retry_initial_s": 0.01, "retry_max_s": 0.05},
        "events": {"post_motion_s": 1.0, "cooldown_s": 1.0, **events},
        "storage": {"data_dir": str(tmp_path / "data"), "min_free_mb": 0},
    })


def run(tmp_path: Path, camera: Camera, duration=None, **events) -> tuple[StationDaemon, list[dict]]:
    daemon = StationDaemon.build(config(tmp_path, **events), camera=camera)
    daemon.run(duration_s=duration)
    return daemon, list(EventStore(tmp_path / "data").records())


def test_an_animal_walking_past_becomes_one_event_with_stills_before_the_trigger(tmp_path):
    camera = ScriptedCamera()
    daemon, records = run(tmp_path, camera)
    assert len(records) == 1
    (r,) = records
    assert r["status"] == "closed" and r["end_reason"] == "motion_ended"
    assert r["start_timestamp"] < T0 + 60 / 10, "the event starts before the animal appeared"
    assert r["trigger_timestamp"] <= T0 + 62 / 10
    assert r["end_timestamp"] >= T0 + 99 / 10
    assert any(f["pre_trigger"] for f in r["frames"])
    for f in r["frames"]:
        assert (tmp_path / "data" / "events" / r["id"] / f["file"]).is_file()
    assert camera.mains < camera.frames / 2, "full-resolution frames only when a still is due"
    assert daemon.stats.camera_state == "ended"


def test_a_camera_that_is_not_there_yet_is_retried_with_backoff(tmp_path):
    camera = ScriptedCamera(fail_opens=3)
    camera.live = True  # a device may appear later (USB plugged in, Pi camera reseated)
    daemon, records = run(tmp_path, camera)
    assert camera.open_calls == 4
    assert daemon.stats.camera_failures == 3
    assert len(records) == 1, "once the camera came up, the crossing was recorded"


def test_a_loose_cable_mid_event_closes_the_event_and_capture_resumes(tmp_path):
    camera = ScriptedCamera(frames=300, walk=(60, 140), fail_reads={80})
    daemon, records = run(tmp_path, camera)
    reasons = [r["end_reason"] for r in records]
    assert reasons[0] == "camera_failed"
    assert camera.open_calls == 2
    assert daemon.stats.frames == 300, "every frame after the reconnect was watched"
    assert len(records) == 2, "motion after the reconnect starts a new event"


def test_stop_closes_and_writes_the_open_event(tmp_path):
    camera = ScriptedCamera(frames=10**9, walk=(30, 60), endless=True)
    cfg = config(tmp_path, max_length_s=600)
    daemon = StationDaemon.build(cfg, camera=camera)
    thread = threading.Thread(target=daemon.run)
    thread.start()
    while daemon.recorder.current is None and thread.is_alive():
        threading.Event().wait(0.01)
    daemon.stop()
    thread.join(10)
    assert not thread.is_alive()
    (r,) = EventStore(tmp_path / "data").records()
    assert r["status"] == "closed" and r["end_reason"] == "shutdown"
    assert camera.close_calls >= 1


def test_duration_counts_on_the_media_clock_for_replays(tmp_path):
    camera = ScriptedCamera(frames=10**6, walk=(10**6, 10**6 + 1))
    daemon, _ = run(tmp_path, camera, duration=5.0)
    assert daemon.stats.frames == pytest.approx(51, abs=1)


def test_capture_never_waits_for_a_stalled_card(tmp_path):
    gate = threading.Event()
    camera = ScriptedCamera(frames=400, walk=(20, 380))
    daemon = StationDaemon.build(config(tmp_path, still_interval_s=0.1, max_length_s=600), camera=camera)
    real_write = daemon.store.write_still

    def stalled(*args, **kwargs):
        gate.wait(30)
        return real_write(*args, **kwargs)

    daemon.store.write_still = stalled
    thread = threading.Thread(target=daemon.run)
    thread.start()
    deadline = threading.Event()
    for _ in range(1000):
        if camera.index >= 400:
            break
        deadline.wait(0.01)
    frames_while_stalled = camera.index
    gate.set()
    thread.join(30)
    assert frames_while_stalled == 400, "capture went on while the card was stalled"
    (r,) = EventStore(tmp_path / "data").records()
    assert r["frames_dropped"] > 0
    assert r["frames_dropped"] + sum(1 for f in r["frames"] if f["file"]) == len(r["frames"])


def test_a_replay_that_cannot_be_read_ends_the_run_with_its_name(tmp_path):
    camera = ScriptedCamera(fail_opens=100)
    camera.live = False
    daemon, records = run(tmp_path, camera)
    assert camera.open_calls == 1
    assert "no camera detected" in daemon.failure
    assert records == []


def test_run_command_names_a_missing_video_file(tmp_path, config_file, station_cmd):
    import subprocess

    missing = tmp_path / "nope.mp4"
    out = subprocess.run([*station_cmd, "run", "--config", str(config_file), "--camera", str(missing)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "nope.mp4" in out.stderr


def test_an_operator_snapshot_is_its_own_event_and_leaves_motion_events_alone(tmp_path):
    camera = ScriptedCamera(frames=200, walk=(60, 100))
    daemon = StationDaemon.build(config(tmp_path), camera=camera)
    answers = []
    daemon.request_snapshot(lambda event_id, msg: answers.append((event_id, msg)))
    daemon.run()
    ((event_id, msg),) = answers
    assert event_id is not None and msg == "snapshot taken"
    records = {r["id"]: r for r in EventStore(tmp_path / "data").records()}
    snap = records[event_id]
    assert snap["trigger_source"] == "snapshot" and snap["end_reason"] == "snapshot"
    assert len(snap["frames"]) == 1 and snap["frames"][0]["file"]
    motion = [r for r in records.values() if r["trigger_source"] == "motion"]
    assert len(motion) == 1, "the crossing still made its own event"


def test_reload_applies_a_good_config_and_refuses_a_bad_one(tmp_path):
    from station.config import ConfigError

    camera = ScriptedCamera(frames=300, walk=(200, 260))
    cfg = config(tmp_path)
    daemon = StationDaemon.build(cfg, camera=camera)
    files = iter([cfg.model_copy(update={"events": cfg.events.model_copy(update={"post_motion_s": 5.0})}),
                  ConfigError("station.toml", ["motion.threshold = 300: Input should be less than or equal to 255"])])

    def reloader():
        item = next(files)
        if isinstance(item, Exception):
            raise item
        return item

    daemon.reloader = reloader
    answers = []
    daemon.request_reload(lambda ok, msg: answers.append((ok, msg)))
    daemon.request_reload(lambda ok, msg: answers.append((ok, msg)))
    daemon.run()
    assert answers[0] == (True, "reloaded")
    assert answers[1][0] is False and "motion.threshold = 300" in answers[1][1]
    assert daemon.recorder.cfg.post_motion_s == 5.0, "the good config is in force, the bad one changed nothing"
    (r,) = [r for r in EventStore(tmp_path / "data").records()]
    assert r["end_timestamp"] - r["start_timestamp"] > 8.0


def test_a_reload_naming_a_missing_camera_is_refused_and_nothing_changes(tmp_path):
    camera = ScriptedCamera(frames=200, walk=(60, 100))
    cfg = config(tmp_path)
    daemon = StationDaemon.build(cfg, camera=camera)
    bad = cfg.model_copy(update={"camera": cfg.camera.model_copy(update={"uri": str(tmp_path / "nope.mp4")}),
                                 "events": cfg.events.model_copy(update={"post_motion_s": 9.0})})
    daemon.reloader = lambda: bad
    answers = []
    daemon.request_reload(lambda ok, msg: answers.append((ok, msg)))
    daemon.run()
    ((ok, msg),) = answers
    assert ok is False and msg.startswith("camera.uri:") and "nope.mp4" in msg
    assert daemon.camera is camera and daemon.cfg is cfg and daemon.recorder.cfg.post_motion_s == 1.0
    assert daemon.stats.frames == 200, "the station kept watching"


def test_requests_still_waiting_at_shutdown_are_answered(tmp_path):
    camera = ScriptedCamera(frames=0)
    daemon = StationDaemon.build(config(tmp_path), camera=camera)
    daemon.stop()
    answers = []
    daemon.request_snapshot(lambda event_id, msg: answers.append((event_id, msg)))
    daemon.run()
    assert answers == [(None, "the station is stopping")]


def test_an_unwritable_data_dir_is_named(tmp_path, station_cmd):
    import subprocess

    from tests.conftest import minimal_toml

    cfg = tmp_path / "station.toml"
    cfg.write_text(minimal_toml(Path("/proc/no-such-dir/data")))
    out = subprocess.run([*station_cmd, "run", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "storage.data_dir" in out.stderr and "/proc/no-such-dir/data" in out.stderr


# -- hardening (issue 15) ------------------------------------------------------------------

def test_a_run_with_a_duration_ends_even_when_the_camera_never_comes_up(tmp_path):
    camera = ScriptedCamera(fail_opens=10**9)
    camera.live = True
    daemon = StationDaemon.build(config(tmp_path), camera=camera)
    thread = threading.Thread(target=daemon.run, kwargs={"duration_s": 0.5})
    thread.start()
    thread.join(20)
    stuck = thread.is_alive()
    daemon.stop()
    thread.join(10)
    assert not stuck, "--duration counts wall time for a live camera, failing or not"
    assert camera.open_calls >= 2


@pytest.mark.parametrize("bad", ["nan", "-5", "0", "inf"])
def test_a_duration_that_could_never_end_or_is_negative_is_refused(tmp_path, config_file, station_cmd, bad):
    import subprocess

    out = subprocess.run([*station_cmd, "run", "--config", str(config_file), f"--duration={bad}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"argument --duration: must be a number of seconds above 0, got '{bad}'" in out.stderr
    assert not (tmp_path / "data").exists()
    with pytest.raises(ValueError, match="duration_s"):
        StationDaemon.build(config(tmp_path), camera=ScriptedCamera()).run(duration_s=float(bad))


def test_a_relative_data_dir_keeps_the_outbox_beside_the_events(tmp_path, station_cmd):
    import subprocess

    from tests.conftest import minimal_toml

    cfg = tmp_path / "station.toml"
    cfg.write_text(minimal_toml(tmp_path / "unused", extra='[classifier]\nenabled = false\n'
                                "[mqtt]\nenabled = true\nhost = \"127.0.0.1\"\nport = 9\n"))
    out = subprocess.run([*station_cmd, "run", "--config", str(cfg), "--data-dir", "ev", "--duration", "1"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "ev" / "outbox.sqlite3").is_file()
    assert not (tmp_path / "ev" / "ev").exists()


def test_a_simulation_ending_on_a_full_card_says_so_in_one_line(tmpfs):
    from station.camera.synthetic import SyntheticCamera
    from station.daemon import SceneTruthError, write_truth_if_simulated
    from tests.conftest import fill

    disk = tmpfs("1m")
    camera = SyntheticCamera(seed=1, duration_s=60, realtime=False)
    fill(disk)
    with pytest.raises(SceneTruthError) as info:
        write_truth_if_simulated(camera, disk)
    assert str(info.value) == f"{disk / 'scene_truth.json'}: the scene's ground truth was not written: " \
                              "No space left on device"
    assert sorted(p.name for p in disk.iterdir() if not p.name.startswith("filler")) == [], "no half file"
