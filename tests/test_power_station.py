"""Power on the station: the low-battery schedule (hysteresis, hold time, the daemon closing
its camera and opening it again), the power section of health/1, the selftest's power,
supply and temperature lines, and the config keys."""

from __future__ import annotations

import logging
import sys
import threading
import time

import pytest

from station.config import ConfigError, parse_config
from station.config.check import check_station
from station.daemon import StationDaemon
from station.feed import messages as m
from station.feed.control import PowerFacts
from station.feed.schema import PayloadError, validate
from station.feed.service import FeedService
from station.events.store import EventStore
from station.power.energy import ENERGY_FILE, EnergyLedger
from station.power.ina219 import INA219
from station.power.low_battery import LowBatteryGate
from station.power.pi import PiFlagsReader
from station.power.sampler import PowerSampler
from station.selftest import FAIL, OK, WARN, check_power, check_schedule, check_supply, check_temperature
from tests.power_fakes import FakeINA219Bus, pi4_sys, pi5_sys
from tests.test_schedule import VLAD, PacedCamera, daemon_config, local, until

STATION = {"id": "t1", "deployment_id": "t1-d", "latitude": 43.1155, "longitude": 131.8855}


def cfg(schedule=None, power=None, **extra):
    return parse_config({"station": STATION, "schedule": schedule or {}, "power": power or {}, **extra})


# -- the switch ------------------------------------------------------------------------------------
def test_the_low_battery_switch_waits_out_dips_and_does_not_flap_between_the_thresholds():
    s = cfg({"low_battery_v": 11.8, "low_battery_hold_s": 60}, {"monitor": "ina219"}).schedule
    assert s.low_battery == (11.8, 12.1), "recovery 0.3 V above by default"
    gate = LowBatteryGate()
    story = [(0, 12.5, False), (10, 11.7, False), (40, 11.9, False),     # an illuminator's dip: not held
             (50, 11.7, False), (100, 11.6, False), (110, 11.7, True),   # below for 60 s: low
             (120, 12.0, True), (200, 12.05, True),                      # between the thresholds: stays low
             (210, 12.2, True), (260, 12.0, True),                       # above, but not for 60 s
             (270, 12.2, True), (300, None, True), (330, 12.3, False)]   # a missing reading changes nothing
    for t, volts, low in story:
        gate.update(volts, t, s)
        assert gate.low is low, (t, volts)
    gate.update(11.0, 400, s)
    assert gate.update(11.0, 460, s) is True and gate.low
    assert gate.update(None, 470, cfg().schedule) is True and not gate.low, "no low_battery_v: never low"


# -- the daemon ------------------------------------------------------------------------------------
@pytest.fixture
def battery_station(tmp_path):
    """A live camera at noon in Vladivostok, watching "always", with an INA219 on a fake
    bus whose battery the test sets; the low-battery schedule is 22:00-06:00."""
    chip = FakeINA219Bus()
    chip.set(12.6, 0.3)
    c = daemon_config(tmp_path, power={"monitor": "ina219"}, schedule={
        "active": "always", "timezone": "Asia/Vladivostok", "low_battery_v": 11.8,
        "low_battery_active": "22:00-06:00", "low_battery_hold_s": 0})
    noon = local("2026-06-21 12:00").timestamp()
    sampler = PowerSampler(open_monitor=lambda: INA219(chip, 0x40, 0.1, bus_number=1), monitor_name="ina219",
                           flags=PiFlagsReader(pi4_sys(tmp_path / "sys"), vcgencmd=None),
                           ledger=EnergyLedger(tmp_path / "data" / ENERGY_FILE, VLAD, max_gap_s=60),
                           interval_s=0.02, clock=lambda: noon + time.monotonic())
    camera = PacedCamera()
    daemon = StationDaemon.build(c, camera=camera, power=sampler)
    daemon.clock = lambda: noon
    daemon.sleep_poll_s = 0.02
    thread = threading.Thread(target=daemon.run)
    yield daemon, camera, chip, thread
    daemon.stop()
    if thread.is_alive():
        thread.join(20)
    assert not thread.is_alive()


def samples_after(sampler: PowerSampler, n: int):
    """Wait for ``n`` more samples of the sampler."""
    seen = []
    return until(lambda: seen.append(sampler.state().at) or len(set(seen)) > n)


def test_a_sinking_battery_switches_to_the_night_schedule_and_back_with_hysteresis(battery_station, tmp_path,
                                                                                    caplog):
    daemon, camera, chip, thread = battery_station
    caplog.set_level(logging.INFO, logger="station")
    thread.start()
    assert until(lambda: daemon.stats.frames > 10), "a good battery: watching, always"
    assert daemon.stats.schedule_state == "active" and daemon.facts().power.low_battery is False

    chip.set(11.6, 0.3)
    assert until(lambda: daemon.stats.schedule_state.startswith("sleeping"))
    assert daemon.stats.schedule_state == "sleeping until 22:00 (low battery: 22:00-06:00 (Asia/Vladivostok))"
    assert until(lambda: not camera.is_open), "noon is outside the low-battery schedule: the camera is closed"
    power = daemon.facts().power
    assert power.low_battery is True and power.battery_v == pytest.approx(11.6, abs=0.004)
    assert any(r.getMessage().startswith("power: battery low") for r in caplog.records)

    chip.set(11.95, 0.3)                                      # above 11.8 but below 12.1: stays low
    assert until(lambda: daemon.facts().power.battery_v > 11.9) and samples_after(daemon.power, 10)
    frames = daemon.stats.frames
    assert daemon.stats.schedule_state.startswith("sleeping") and not camera.is_open
    assert daemon.stats.frames == frames

    chip.set(12.3, 0.3)
    assert until(lambda: daemon.stats.schedule_state == "active"), daemon.stats.schedule_state
    assert until(lambda: daemon.stats.frames > frames + 10) and camera.is_open
    assert daemon.facts().power.low_battery is False
    assert any(r.getMessage().startswith("power: battery recovered") for r in caplog.records)

    # The heartbeat the feed would send says all of it, and fits health/1.
    chip.set(11.5, 0.3)
    assert until(lambda: daemon.stats.schedule_state.startswith("sleeping"))
    feed = FeedService(daemon_config(tmp_path, mqtt={"enabled": True, "host": "127.0.0.1", "port": 1},
                                     power={"monitor": "ina219"}), EventStore(tmp_path / "data"))
    feed.control = daemon
    health = feed.health()
    validate("health", health)
    assert "low battery" in health["extra"]["schedule"]
    p = health["power"]
    assert p["monitor"] == "ina219" and p["low_battery"] is True and p["battery_v"] == pytest.approx(11.5, abs=0.004)
    assert p["wh_today"] > 0 and p["day"] == "2026-06-21" and p["undervoltage"] is False
    assert p["throttled"] is False and p["monitor_error"] is None


def test_the_watt_hours_survive_the_daemons_restart(battery_station, tmp_path):
    daemon, camera, chip, thread = battery_station
    thread.start()
    assert until(lambda: (daemon.facts().power.wh_today or 0) > 0)
    daemon.stop()
    thread.join(20)
    wh = daemon.power.state().energy.wh_today
    book = EnergyLedger(tmp_path / "data" / ENERGY_FILE, VLAD, max_gap_s=60)
    book.load()
    assert book.totals(daemon.power.state().at).wh_today == pytest.approx(wh)


# -- health/1 ----------------------------------------------------------------------------------------
def health(**overrides) -> dict:
    args = dict(uptime_s=60, cpu_temperature_c=51.2, load=(0.5, 0.4, 0.3),
                memory={"total_mb": 3794.0, "available_mb": 2911.5, "process_rss_mb": 141.2},
                disk={"free_mb": 5000.0, "store_mb": 12.0, "low": False},
                outbox={"depth": 0, "detections": 0, "thumbnails": 0, "oldest_age_s": None, "bytes": 0,
                        "cap_mb": 50.0, "full": False, "thumbnails_dropped": 0, "detections_dropped": 0},
                camera={"state": "ok", "uri": "picamera2", "fps": 10.0, "failures": 0},
                events={"total": 3, "pending_classification": 0},
                clock={"synchronized": True, "source": "timedatectl", "offset_s": None})
    return m.health_message("lazovsky-07", **(args | overrides))


def test_the_power_section_is_optional_and_validates_with_a_monitor_or_on_a_bare_pi():
    validate("health", health())                       # an older station: no power section
    full = health(power=PowerFacts(monitor="ina219", battery_v=12.43, current_a=0.2123, power_w=2.61,
                                   wh_today=31.4, wh_today_covered_s=41230.0, wh_yesterday=59.8, day="2026-11-25",
                                   low_battery=False, undervoltage=False, undervoltage_events=2, throttled=False,
                                   frequency_capped=False, soft_temperature_limit=False))
    validate("health", full)
    assert full["power"]["battery_v"] == 12.43 and full["power"]["wh_today"] == 31.4
    bare_pi = health(power=PowerFacts(undervoltage=True, undervoltage_events=1))
    validate("health", bare_pi)
    assert bare_pi["power"]["monitor"] is None and bare_pi["power"]["wh_today"] is None


def test_impossible_readings_are_never_sent():
    msg = health(cpu_temperature_c=10_000.0, power=PowerFacts(
        monitor="ina219", battery_v=-3.0, current_a=float("nan"), power_w=1e9, wh_today=10**7,
        wh_today_covered_s=10**9, undervoltage_events=10**12, monitor_error="x" * 2000))
    validate("health", msg)
    p = msg["power"]
    assert msg["cpu_temperature_c"] is None
    assert (p["battery_v"], p["current_a"], p["power_w"], p["wh_today"]) == (None, None, None, None)
    assert p["wh_today_covered_s"] == 90000 and p["undervoltage_events"] == 1_000_000
    assert len(p["monitor_error"]) == 512
    # and a station that sent them anyway is refused by the schema
    for key, bad in (("battery_v", -0.5), ("power_w", 5000), ("undervoltage_events", 10**9), ("day", "2026-13-01")):
        sent = health(power=PowerFacts(monitor="ina219"))
        sent["power"][key] = bad
        with pytest.raises(PayloadError) as err:
            validate("health", sent)
        assert err.value.field == f"power.{key}"


# -- selftest ----------------------------------------------------------------------------------------
def test_selftest_reads_the_battery_and_warns_naming_low_battery_v(tmp_path):
    chip = FakeINA219Bus()
    chip.set(12.61, 0.214)
    c = cfg({"low_battery_v": 11.8}, {"monitor": "ina219"})
    check = check_power(c, opener=lambda: INA219(chip, 0x40, 0.1, bus_number=1))
    assert check.level == OK and "12.61 V" in check.message and "0.214 A" in check.message
    assert chip.closed, "the bus is closed again"
    chip = FakeINA219Bus()
    chip.set(11.5, 0.2)
    check = check_power(c, opener=lambda: INA219(chip, 0x40, 0.1, bus_number=1))
    assert check.level == WARN and check.key == "schedule.low_battery_v" and "dusk-dawn" in check.message
    chip.present = False
    check = check_power(c, opener=lambda: INA219(chip, 0x40, 0.1, bus_number=1))
    assert check.level == FAIL and check.key == "power.i2c_address" and "i2c-1 at 0x40" in check.message
    assert check_power(cfg()).level == OK and "power.monitor" in check_power(cfg()).message
    assert "below 11.8 V on the battery: dusk-dawn, margin 30 min" in check_schedule(c).message


def test_selftest_on_a_pi_names_undervoltage_and_heat(tmp_path):
    c = cfg()
    under = check_supply(c, PiFlagsReader(pi4_sys(tmp_path / "pi4", undervoltage=True), vcgencmd=None))
    assert under.level == WARN and "under-voltage now" in under.message and "rpi_volt hwmon" in under.message
    assert check_supply(c, PiFlagsReader(pi5_sys(tmp_path / "pi5"), vcgencmd=None)).level == OK
    off_pi = check_supply(c, PiFlagsReader(tmp_path / "laptop", vcgencmd=None))
    assert off_pi.level == OK and "not a Raspberry Pi" in off_pi.message

    hot = check_temperature(c, read=lambda: 83.4)
    assert hot.level == WARN and hot.key == "power.warn_temperature_c" and "83.4" in hot.message
    cool = check_temperature(cfg(power={"warn_temperature_c": 85}), read=lambda: 83.4)
    assert cool.level == OK and "warns at 85" in cool.message
    soft = check_temperature(c, read=lambda: 61.0,
                             flags=PiFlagsReader(pi4_sys(tmp_path / "soft", throttled_word=0x8), vcgencmd=None))
    assert soft.level == WARN and "soft temperature limit" in soft.message
    assert check_temperature(c, read=lambda: None).level == OK


# -- the config ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule,power,key,words", [
    ({"low_battery_v": 11.8}, {}, "schedule.low_battery_v", "[power] monitor"),
    ({"low_battery_v": 11.8, "low_battery_recover_v": 11.8}, {"monitor": "ina219"}, "schedule.low_battery_recover_v",
     "must be above"),
    ({"low_battery_recover_v": 12.0}, {"monitor": "ina219"}, "schedule.low_battery_recover_v", "set low_battery_v"),
    ({"low_battery_v": 11.8, "low_battery_active": "22:00-06:00"}, {"monitor": "ina219"}, "schedule.timezone",
     "low_battery_active"),
    ({"low_battery_v": 11.8, "low_battery_active": "sometimes"}, {"monitor": "ina219"},
     "schedule.low_battery_active", "dusk-dawn"),
    ({"low_battery_v": -1.0}, {"monitor": "ina219"}, "schedule.low_battery_v", "greater than 0"),
    ({}, {"monitor": "ina260"}, "power.monitor", "ina219"),
    ({}, {"monitor": "ina219", "i2c_address": 0x70}, "power.i2c_address", "less than or equal to 79"),
    ({}, {"monitor": "ina219", "shunt_ohms": 0}, "power.shunt_ohms", "greater than or equal to 0.01"),
])
def test_a_bad_power_setting_is_refused_naming_the_key(schedule, power, key, words):
    with pytest.raises(ConfigError) as err:
        cfg(schedule, power)
    (problem,) = err.value.problems
    assert problem.startswith(key) and words in problem, problem


def test_config_check_names_a_monitor_whose_driver_is_not_installed(tmp_path, monkeypatch):
    c = cfg(power={"monitor": "ina219"}, storage={"data_dir": str(tmp_path)}, classifier={"enabled": False})
    pytest.importorskip("smbus2")
    assert check_station(c) == []
    monkeypatch.setitem(sys.modules, "smbus2", None)
    (problem,) = check_station(c)
    assert problem.startswith("power.monitor = 'ina219'") and "python3-smbus2" in problem
