"""The IR illuminator and the PIR sensor on GPIO (gpiozero, with its MockFactory pins).

A mock pin is the real gpiozero device code on a simulated pin: the test drives a PIR
pin high or low and reads the IR pin's level, as a multimeter on the header would.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from station.camera.base import Camera, Frame
from station.camera.synthetic import build_schedule
from station.camera.synthetic.pir import pir_intervals, seen_chance
from station.config import parse_config
from station.daemon import StationDaemon
from station.events.store import EventStore
from station.events.trigger import TriggerGate
from station.feed.messages import health_message
from station.feed.schema import validate
from station.gpio.ir import IrSwitch
from station.gpio.pins import GpioError
from station.motion.types import MotionResult
from tests.conftest import minimal_toml

gpiozero = pytest.importorskip("gpiozero", reason="gpiozero drives the GPIO (pip install gpiozero)")
from gpiozero import Device, DigitalInputDevice  # noqa: E402
from gpiozero.pins.mock import MockFactory  # noqa: E402

T0 = 1_790_000_000.0


@pytest.fixture
def pins():
    """gpiozero's default pin factory is a MockFactory for the test (a Raspberry Pi 3B header)."""
    old = Device.pin_factory
    Device.pin_factory = factory = MockFactory()
    yield factory
    factory.reset()
    Device.pin_factory = old


def station(tmp_path: Path, uri: str = "synthetic:3", **sections):
    data = {"station": {"id": "t1", "deployment_id": "t1-d", "latitude": 43.0, "longitude": 131.0},
            "camera": {"uri": uri, "main_size": [320, 180], "lores_size": [160, 90], "speed": "max",
                       "scene_duration_s": 90.0, "retry_initial_s": 0.01},
            "storage": {"data_dir": str(tmp_path / "data"), "min_free_mb": 0}}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_config(data)


# -- the IR light -----------------------------------------------------------------------------

def test_the_ir_light_comes_on_at_dusk_and_never_flickers_with_its_own_glow():
    ir = IrSwitch(on_below=30, off_above=90, hold_s=20)
    t, switched = 0.0, []

    def feed(level: float, seconds: float) -> None:
        nonlocal t
        for _ in range(int(seconds * 10)):
            t += 0.1
            if (state := ir.update(level, t)) is not None:
                switched.append((round(t), state))

    feed(120, 60)                       # day
    feed(20, 5)                         # a dark cloud for five seconds: nothing
    feed(120, 30)
    assert switched == []
    feed(15, 60)                        # dusk: dark for good
    assert [s for _, s in switched] == [True]
    feed(60, 120)                       # the IR lights the scene: brighter, but inside the gap
    feed(200, 3)                        # a car's headlights sweep past
    feed(60, 60)
    assert [s for _, s in switched] == [True], "its own glow and a passing light never switch it off"
    feed(140, 60)                       # dawn
    assert [s for _, s in switched] == [True, False]


def dark_frames(level: int):
    class Dark(Camera):
        uri, fps, live = "dark:test", 10.0, False

        def __init__(self):
            self.index = 0

        def open(self):
            pass

        def close(self):
            pass

        def read(self, want_main=False):
            if self.index >= 100:
                return None
            i, self.index = self.index, self.index + 1
            lores = np.full((90, 160), level, np.uint8)
            main = cv2.cvtColor(cv2.resize(lores, (320, 180)), cv2.COLOR_GRAY2BGR) if want_main else None
            return Frame(i, T0 + i / 10, lores, main)

    return Dark()


def test_a_dark_scene_switches_the_ir_pin_on_and_health_says_so(pins, tmp_path):
    cfg = station(tmp_path, camera={"ir_light": 18, "ir_hold_s": 2.0})
    daemon = StationDaemon.build(cfg, camera=dark_frames(8))
    daemon.run()
    facts = daemon.facts().ir_light
    assert facts.on and facts.pin == 18 and facts.mode == "light" and facts.light_level < 30
    msg = health_message("t1", uptime_s=1, cpu_temperature_c=None, load=(0, 0, 0),
                         memory={"total_mb": 1, "available_mb": 1, "process_rss_mb": 1}, disk=daemon.facts().disk,
                         outbox={k: 0 for k in ("depth", "detections", "thumbnails", "bytes", "cap_mb",
                                                "thumbnails_dropped", "detections_dropped")}
                         | {"oldest_age_s": None, "full": False},
                         camera=daemon.facts().camera, events={"total": 0, "pending_classification": 0},
                         clock={"synchronized": None, "source": None, "offset_s": None}, ir_light=facts)
    assert msg["ir_light"]["on"] is True and msg["ir_light"]["pin"] == 18
    validate("health", msg)
    # The daemon released the pin at its stop, switched off.
    assert pins.pin(18).state is False
    DigitalInputDevice(18).close()


def test_a_bright_scene_leaves_the_ir_pin_off(pins, tmp_path):
    daemon = StationDaemon.build(station(tmp_path, camera={"ir_light": 18, "ir_hold_s": 2.0}),
                                 camera=dark_frames(150))
    seen = []
    real = daemon._light

    def watch(frame):
        real(frame)
        seen.append(pins.pin(18).state)

    daemon._light = watch
    daemon.run()
    assert seen and not any(seen) and daemon.facts().ir_light.on is False


def test_the_ir_light_on_the_schedule_is_on_at_night_and_off_by_day(pins, tmp_path):
    cfg = station(tmp_path, camera={"ir_light": 18, "ir_mode": "schedule"})
    daemon = StationDaemon.build(cfg, camera=dark_frames(150))
    midnight_vladivostok = 1_790_000_000 - 1_790_000_000 % 86400 + 15 * 3600   # 15:00 UTC = 01:00 local
    noon = midnight_vladivostok + 11 * 3600
    frame = Frame(0, midnight_vladivostok, np.zeros((90, 160), np.uint8))
    daemon._light(frame)
    assert pins.pin(18).state is True
    daemon._light(Frame(1, noon, frame.lores))
    assert pins.pin(18).state is False
    daemon._close_gpio()


# -- bad pins: the station refuses to start, naming the key ----------------------------------------

def test_a_pir_pin_already_in_use_stops_the_station_naming_trigger_pir_pin(pins, tmp_path):
    other = DigitalInputDevice(17)              # another program's button on GPIO17
    cfg = station(tmp_path, camera={"ir_light": 18}, trigger={"mode": "pir_and_motion", "pir_pin": 17})
    with pytest.raises(GpioError, match=r"^trigger\.pir_pin = 17: the pin is already in use"):
        StationDaemon.build(cfg)
    other.close()
    DigitalInputDevice(18).close()              # the IR pin opened first was let go again


def test_an_ir_pin_the_board_does_not_have_is_refused_before_anything_starts(tmp_path, station_cmd):
    config = tmp_path / "station.toml"
    config.write_text(minimal_toml(tmp_path / "data", extra="") .replace("[storage]", "ir_light = 40\n\n[storage]"))
    out = subprocess.run([*station_cmd, "run", "--config", str(config), "--duration", "1"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"})
    assert out.returncode == 2
    assert "camera.ir_light = 40: no such GPIO" in out.stderr


def test_a_machine_without_gpio_says_so_naming_the_key(tmp_path, station_cmd):
    config = tmp_path / "station.toml"
    config.write_text(minimal_toml(tmp_path / "data").replace("[storage]", "ir_light = 18\n\n[storage]"))
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    out = subprocess.run([*station_cmd, "run", "--config", str(config), "--duration", "1"],
                         capture_output=True, text=True, timeout=60, env=env)
    if "no GPIO on this machine" not in out.stderr and out.returncode == 0:
        pytest.skip("this machine has GPIO")
    assert out.returncode == 2
    assert "station: camera.ir_light = 18: no GPIO on this machine" in out.stderr


# -- the PIR and the trigger modes ----------------------------------------------------------------

class FakePir:
    source = "test"

    def __init__(self, high: set[int]):
        self.high = high

    def active(self, frame):
        return frame.index in self.high

    def wait(self, timeout):
        return False

    def close(self):
        pass


def test_with_pir_and_motion_moving_light_alone_opens_nothing():
    gate = TriggerGate("pir_and_motion", FakePir(high={50}), window_s=2.0)
    moving = MotionResult(motion=True, score=0.05, boxes=(), light_jump=False)
    said = [gate.gate(Frame(i, T0 + i / 10, np.zeros((2, 2), np.uint8)), moving).motion for i in range(80)]
    assert not any(said[:50]), "sunlit leaves move, the PIR sees no warm body"
    assert all(said[50:71]) and not any(said[71:]), "motion counts within 2 s of the PIR"


def test_the_simulated_pir_misses_some_small_or_slow_animals_and_fires_on_some_gusts():
    seen, missed, gusts = [], [], 0
    for seed in range(1, 9):
        schedule = build_schedule(seed, 1800)
        intervals = pir_intervals(schedule)
        assert intervals == pir_intervals(build_schedule(seed, 1800)), "the same seed, the same PIR"
        hit = {round(a, 3) for a, _, cause in intervals if cause != "gust"}
        gusts += sum(1 for *_, cause in intervals if cause == "gust")
        for c in schedule.crossings:
            (seen if any(c.start_s <= a <= c.end_s for a in hit) else missed).append(c)
    assert missed and all(seen_chance(c) < 1 for c in missed), "only animals it might miss are missed"
    assert min(seen_chance(c) for c in missed) < 0.6
    assert len(seen) > 5 * len(missed)
    assert gusts > 0


def test_pir_and_motion_records_its_trigger_source(tmp_path):
    cfg = station(tmp_path, trigger={"mode": "pir_and_motion"}, events={"post_motion_s": 1.0})
    StationDaemon.build(cfg).run()
    records = list(EventStore(tmp_path / "data").records())
    assert records and {r["trigger_source"] for r in records} == {"pir_and_motion"}


def test_pir_wake_has_no_pre_trigger_buffer_and_says_so_in_the_record(tmp_path):
    cfg = station(tmp_path, trigger={"mode": "pir_wake"})
    daemon = StationDaemon.build(cfg)
    daemon.run()
    records = list(EventStore(tmp_path / "data").records())
    assert records and all(r["trigger_source"] == "pir" for r in records)
    assert all(not f["pre_trigger"] for r in records for f in r["frames"])
    assert daemon.wake.wakes >= len(records)


class LiveCamera(Camera):
    """A live camera (it has no clock of its own): frames as fast as asked, a dark blob in view."""

    uri, fps, live = "live:test", 50.0, True

    def __init__(self):
        self.is_open, self.opens, self.index = False, 0, 0

    def open(self):
        self.is_open, self.opens = True, self.opens + 1

    def close(self):
        self.is_open = False

    def read(self, want_main=False):
        assert self.is_open, "read on a closed camera"
        time.sleep(0.005)
        i, self.index = self.index, self.index + 1
        lores = np.full((90, 160), 90, np.uint8)
        cv2.circle(lores, (20 + i % 120, 45), 12, 20, -1)
        main = cv2.cvtColor(cv2.resize(lores, (320, 180)), cv2.COLOR_GRAY2BGR) if want_main else None
        return Frame(i, time.time(), lores, main)


def wait_for(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the station did not get there"
        time.sleep(0.01)


def test_pir_wake_keeps_the_camera_closed_until_the_pir_fires(pins, tmp_path):
    cfg = station(tmp_path, camera={"uri": "live:test", "fps": 50.0},
                  trigger={"mode": "pir_wake", "pir_pin": 17, "pir_wake_timeout_s": 0.3},
                  events={"post_motion_s": 0.2, "cooldown_s": 0.0, "still_interval_s": 0.1})
    camera = LiveCamera()
    daemon = StationDaemon.build(cfg, camera=camera)
    daemon.sleep_poll_s = 0.05
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        time.sleep(0.5)
        assert camera.opens == 0, "no PIR, no camera"
        pins.pin(17).drive_high()                    # a leopard walks past the PIR
        wait_for(lambda: camera.is_open)
        time.sleep(0.5)
        pins.pin(17).drive_low()                     # gone
        wait_for(lambda: not camera.is_open and daemon.recorder.events_closed >= 1)
    finally:
        daemon.stop()
        runner.join(30)
    records = list(EventStore(tmp_path / "data").records())
    assert records and records[0]["trigger_source"] == "pir"
    assert camera.opens == 1
