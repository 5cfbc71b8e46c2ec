"""Active hours: dusk to dawn over the Primorye forest, windows over midnight, polar days and nights,
and a daemon that closes its camera while it sleeps but still answers a ranger.

Reference sun times are from an independent implementation (the astral package, NOAA's
equations too) for Vladivostok, 43.1155 N 131.8855 E, Asia/Vladivostok (UTC+10, no DST).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from station.config import ConfigError, parse_config
from station.daemon import StationDaemon
from station.events.store import EventStore
from station.schedule import ScheduleClock, format_change, is_active
from station.schedule.sun import DEPRESSION, sun_times
from station.sdnotify import Notifier
from tests.broker import Subscriber, make_broker
from tests.test_daemon import LORES, MAIN, ScriptedCamera
from tests.test_sdnotify import Systemd

VLAD = ZoneInfo("Asia/Vladivostok")
TOLERANCE = timedelta(minutes=3)


def cfg(lat=43.1155, lon=131.8855, **schedule):
    return parse_config({"station": {"id": "t1", "deployment_id": "t1-d", "latitude": lat, "longitude": lon},
                         "schedule": schedule})


def local(text: str, zone=VLAD) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def near(got: datetime | None, want: str, zone=VLAD) -> bool:
    return got is not None and abs(got - local(want, zone)) <= TOLERANCE


# -- the pure function -------------------------------------------------------------------------
def test_dusk_to_dawn_in_vladivostok_in_june_runs_from_sunset_to_sunrise():
    c = cfg(active="dusk-dawn", timezone="Asia/Vladivostok", margin_min=0)
    active, change = is_active(c, local("2026-06-21 12:00"))
    assert not active and near(change, "2026-06-21 20:55:14")          # sunset
    active, change = is_active(c, local("2026-06-21 23:30"))
    assert active and near(change, "2026-06-22 05:33:22")              # sunrise
    assert change.tzinfo == VLAD, "the next change is told in the station's zone"
    assert is_active(c, local("2026-06-22 05:20"))[0] and not is_active(c, local("2026-06-22 05:45"))[0]


def test_december_nights_are_long_and_the_margin_widens_them_at_both_ends():
    c = cfg(active="dusk-dawn", timezone="Asia/Vladivostok", margin_min=45)
    active, change = is_active(c, local("2026-12-21 12:00"))
    assert not active and near(change, "2026-12-21 16:54:47")          # sunset 17:39:47 - 45 min
    active, change = is_active(c, local("2026-12-21 17:00"))
    assert active and near(change, "2026-12-22 09:26:24")              # sunrise 08:41:24 + 45 min


def test_civil_twilight_makes_a_shorter_night_and_dawn_to_dusk_is_the_day():
    civil = cfg(active="dusk-dawn", timezone="Asia/Vladivostok", twilight="civil", margin_min=0)
    active, change = is_active(civil, local("2026-06-21 21:00"))
    assert not active and near(change, "2026-06-21 21:31:26")          # end of civil twilight
    day = cfg(active="dawn-dusk", timezone="Asia/Vladivostok", margin_min=0)
    active, change = is_active(day, local("2026-12-21 12:00"))
    assert active and near(change, "2026-12-21 17:39:47")
    assert not is_active(day, local("2026-12-21 23:00"))[0]


def test_a_window_over_midnight_and_a_second_one_at_noon():
    c = cfg(active=["22:00-06:00", "11:30-13:30"], timezone="Asia/Vladivostok")
    assert is_active(c, local("2026-06-21 10:00")) == (False, local("2026-06-21 11:30"))
    assert is_active(c, local("2026-06-21 11:30")) == (True, local("2026-06-21 13:30"))
    assert is_active(c, local("2026-06-21 23:59")) == (True, local("2026-06-22 06:00"))
    assert is_active(c, local("2026-06-22 05:59")) == (True, local("2026-06-22 06:00"))
    assert is_active(c, local("2026-06-22 06:00")) == (False, local("2026-06-22 11:30"))
    assert is_active(c, local("2026-06-21 14:00").astimezone(timezone.utc).timestamp())[0] is False


def test_windows_follow_local_time_across_a_daylight_saving_change():
    berlin = ZoneInfo("Europe/Berlin")
    c = cfg(52.5, 13.4, active="22:00-06:00", timezone="Europe/Berlin")
    # The night of 28/29 March 2026 is an hour shorter: 06:00 CEST is 04:00 UTC, not 05:00.
    active, change = is_active(c, local("2026-03-29 01:00", berlin))
    assert active and change == local("2026-03-29 06:00", berlin)
    assert change.astimezone(timezone.utc).hour == 4


@pytest.mark.parametrize("place,lat,lon,zone", [("Tromso", 69.65, 18.96, "Europe/Oslo"),
                                                ("Murmansk", 68.97, 33.07, "Europe/Moscow")])
def test_polar_day_and_night_under_dusk_to_dawn(place, lat, lon, zone):
    z = ZoneInfo(zone)
    c = cfg(lat, lon, active="dusk-dawn", timezone=zone)
    active, change = is_active(c, local("2026-06-21 12:00", z))
    assert not active, f"{place}: midnight sun, no dusk at all"
    assert local("2026-07-15 00:00", z) < change < local("2026-08-05 00:00", z)
    active, change = is_active(c, local("2026-12-21 12:00", z))
    assert active, f"{place}: polar night, dark all day"
    assert local("2027-01-05 00:00", z) < change < local("2027-01-25 00:00", z)


def test_poles_and_the_southern_hemisphere_have_answers_too():
    south = cfg(-77.85, 166.67, active="dawn-dusk", timezone="Antarctica/McMurdo")
    assert is_active(south, datetime(2026, 6, 21, tzinfo=timezone.utc))[0] is False
    assert is_active(south, datetime(2026, 12, 21, tzinfo=timezone.utc))[0] is True
    pole = cfg(90.0, 0.0, active="dusk-dawn")
    active, change = is_active(pole, datetime(2026, 6, 21, tzinfo=timezone.utc))
    assert active is False and change is not None and change.month == 9   # one sunset a year
    assert sun_times(datetime(2026, 6, 21).date(), 90.0, 0.0, DEPRESSION["none"]).always_up


def test_always_is_always():
    assert is_active(cfg(), datetime(2026, 6, 21, tzinfo=timezone.utc)) == (True, None)


def test_the_daemons_cache_asks_again_when_the_change_is_due_or_the_clock_steps_back():
    c = cfg(active="22:00-06:00", timezone="Asia/Vladivostok")
    clock = ScheduleClock()
    noon = local("2026-06-21 12:00").timestamp()
    assert clock.check(c, noon)[0] is False
    assert clock.check(c, noon + 10 * 3600)[0] is True                 # 22:00: the change was due
    assert clock.check(c, noon)[0] is False, "NTP set the clock back: asked again"
    assert format_change(local("2026-06-21 22:00"), noon) == "22:00"
    assert format_change(local("2026-06-23 22:00"), noon) == "Tue 22:00"


@pytest.mark.parametrize("schedule,key,words", [
    ({"active": "25:00-06:00", "timezone": "UTC"}, "schedule.active", "start must be"),
    ({"active": ["22:00-22:00"], "timezone": "UTC"}, "schedule.active", "same time"),
    ({"active": "sometimes"}, "schedule.active", "dusk-dawn"),
    ({"active": []}, "schedule.active", "never watch"),
    ({"active": "22:00-06:00"}, "schedule.timezone", "required with time windows"),
    ({"active": "dusk-dawn", "timezone": "Asia/Vladivostock"}, "schedule.timezone", "IANA"),
    ({"margin_min": -5}, "schedule.margin_min", "greater than or equal"),
    ({"twilight": "dim"}, "schedule.twilight", "civil"),
])
def test_a_bad_schedule_is_refused_naming_the_key(schedule, key, words):
    with pytest.raises(ConfigError) as err:
        cfg(**schedule)
    (problem,) = err.value.problems
    assert key in problem and words in problem, problem


# -- the daemon ----------------------------------------------------------------------------------
def daemon_config(tmp_path, **extra):
    return parse_config({
        "station": {"id": "t1", "deployment_id": "t1-d", "latitude": 43.1155, "longitude": 131.8855},
        "camera": {"uri": "scripted:test", "main_size": list(MAIN), "lores_size": list(LORES)},
        "events": {"post_motion_s": 1.0, "cooldown_s": 1.0, "max_length_s": 600},
        "storage": {"data_dir": str(tmp_path / "data"), "min_free_mb": 0},
        "classifier": {"enabled": False},
        "schedule": {"active": "22:00-06:00", "timezone": "Asia/Vladivostok"},
        **extra,
    })


class PacedCamera(ScriptedCamera):
    """A live camera (a Pi camera, say) at 100 frames a second, with an animal that stays."""

    def __init__(self):
        super().__init__(frames=10**9, walk=(3, 60), endless=True, fps=100.0)
        self.live = True

    def read(self, want_main=False):
        time.sleep(0.01)
        return super().read(want_main)


def until(predicate, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def sleepy(tmp_path):
    """A daemon whose wall clock the test sets: noon in Vladivostok, outside 22:00-06:00."""
    camera = PacedCamera()
    daemon = StationDaemon.build(daemon_config(tmp_path), camera=camera)
    now = [local("2026-06-21 12:00").timestamp()]
    daemon.clock = lambda: now[0]
    daemon.sleep_poll_s = 0.02
    thread = threading.Thread(target=daemon.run)
    yield daemon, camera, now, thread
    daemon.stop()
    if thread.is_alive():
        thread.join(20)
    assert not thread.is_alive()


def test_outside_active_hours_the_camera_stays_closed_and_an_open_event_is_closed(sleepy, tmp_path):
    daemon, camera, now, thread = sleepy
    systemd = Systemd(str(tmp_path / "notify.sock"))
    try:
        daemon.notifier = Notifier(systemd.address, 400_000)
        thread.start()
        assert until(lambda: daemon.stats.schedule_state.startswith("sleeping"))
        time.sleep(0.3)
        assert daemon.stats.schedule_state == "sleeping until 22:00"
        assert camera.open_calls == 0 and daemon.stats.frames == 0, "asleep: the camera was never opened"
        assert len(systemd.times("WATCHDOG=1")) >= 2, "a sleeping daemon is healthy: the watchdog is fed"
        assert any("sleeping until 22:00" in s for s in systemd.statuses())

        now[0] = local("2026-06-21 22:00").timestamp()
        assert until(lambda: daemon.recorder.current is not None), "awake: the camera sees the animal"
        assert camera.is_open and daemon.stats.schedule_state == "active"

        now[0] = local("2026-06-22 06:00").timestamp()
        assert until(lambda: not camera.is_open)
        frames = daemon.stats.frames
        time.sleep(0.3)
        assert daemon.stats.frames == frames and daemon.stats.schedule_state == "sleeping until 22:00"
    finally:
        systemd.close()
    daemon.stop()
    thread.join(20)
    (record,) = EventStore(tmp_path / "data").records()
    assert record["end_reason"] == "schedule"


def test_a_snapshot_asked_for_while_asleep_opens_the_camera_just_for_it(sleepy, tmp_path):
    daemon, camera, now, thread = sleepy
    thread.start()
    assert until(lambda: daemon.stats.schedule_state.startswith("sleeping"))
    answers = []
    daemon.request_snapshot(lambda event_id, message: answers.append((event_id, message)))
    assert until(lambda: answers)
    ((event_id, message),) = answers
    assert event_id and message == "snapshot taken"
    assert camera.open_calls == 1 and not camera.is_open, "closed again right after"
    daemon.stop()
    thread.join(20)
    assert EventStore(tmp_path / "data").load(event_id)["trigger_source"] == "snapshot"


def test_a_reload_while_asleep_can_wake_the_station(sleepy, tmp_path):
    daemon, camera, now, thread = sleepy
    daemon.reloader = lambda: daemon_config(tmp_path, schedule={"active": "always"})
    thread.start()
    assert until(lambda: daemon.stats.schedule_state.startswith("sleeping"))
    answers = []
    daemon.request_reload(lambda ok, message: answers.append((ok, message)))
    assert until(lambda: answers) and answers[0][0] is True
    assert until(lambda: daemon.stats.frames > 10) and daemon.stats.schedule_state == "active"


@pytest.mark.slow
def test_a_sleeping_station_answers_mqtt_commands(tmp_path):
    """The feed's remote commands (docs/mqtt-feed.md) work outside active hours too."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from station.feed.schema import validate_message

    broker = make_broker(tmp_path / "broker").start()
    sub = Subscriber(broker, ["camtrap/v1/+/command_result", "camtrap/v1/+/status"])
    camera = PacedCamera()
    cfg_ = daemon_config(tmp_path, mqtt={"enabled": True, "host": broker.host, "port": broker.port,
                                         "reconnect_min_s": 0.2, "reconnect_max_s": 1.0})
    daemon = StationDaemon.build(cfg_, camera=camera)
    daemon.clock = lambda: local("2026-06-21 12:00").timestamp()
    daemon.sleep_poll_s = 0.05
    thread = threading.Thread(target=daemon.run)
    operator = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="operator")
    try:
        thread.start()
        assert until(lambda: daemon.stats.schedule_state != "active", 30)
        # The station subscribes to its commands before it says it is online.
        assert sub.wait_for(lambda ps: any(json.loads(p).get("state") == "online" for p in ps), timeout=30)
        operator.connect(broker.host, broker.port)
        operator.loop_start()
        operator.publish("camtrap/v1/t1/command/snapshot", json.dumps(
            {"schema": "command/1", "command": "snapshot", "request_id": "night-1", "sent_by": "ranger"}),
            qos=1).wait_for_publish(5)
        assert sub.wait_for(lambda ps: any(json.loads(p).get("request_id") == "night-1" for p in ps), timeout=30)
        (result,) = [json.loads(p) for p in sub.payloads("camtrap/v1/t1/command_result")]
        validate_message(result)
        assert result["ok"] is True and result["event_id"] and not camera.is_open
    finally:
        operator.loop_stop()
        daemon.stop()
        thread.join(30)
        sub.close()
        broker.stop()
