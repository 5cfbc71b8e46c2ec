"""Station alerts (silent, gone, trouble, power, reported problems, the daily digest) through
real Apprise to a local HTTP endpoint, over a real database (SQLite and PostgreSQL).

Rounds run on a clock each test moves by hand (``watch.check()``); heartbeats and statuses
are real health/1 and status/1 payloads stored as the ingest stores them, arriving at the
time the test says. The timer thread and a restart with retained messages are tested
against the real collector service and a real Mosquitto at the end.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from station.collector.alerts import load_targets
from station.collector.db import Database
from station.collector.station_watch import StationWatch
from station.config.collector import parse_collector_config
from station.feed.messages import encode
from station.feed.topics import Topics
from tests.broker import broker  # noqa: F401 (fixture)
from tests.collector_data import T0, db_url, health, pg_url, pytest_generate_tests, status  # noqa: F401 (fixtures)
from tests.test_collector_alerts import COORDINATES, Clock, Rangers, dead_url, wait_for

ZONE = "Asia/Vladivostok"


@pytest.fixture
def rangers():
    server = Rangers()
    yield server
    server.close()


class Field:
    """A database, a clock, and helpers that make stations speak at the clock's time."""

    def __init__(self, url: str, start: float):
        self.url, self.clock = url, Clock(start)
        self.db = Database.open(url)
        self.db.migrate()
        self.listening_since: float | None = start - 86400  # the collector has listened all along

    def beat(self, station: str = "lazovsky-07", lag_s: float = 0.5, **changes: Any) -> dict:
        """A heartbeat arriving now (by the clock), sent ``lag_s`` before; ``changes`` are merged
        into its sections (``disk={"low": True}``) or set (``extra=...``)."""
        msg = health(self.clock.now - lag_s, station_id=station)
        for key, value in changes.items():
            msg[key] = msg[key] | value if isinstance(msg.get(key), dict) and isinstance(value, dict) else value
        self.db.store_batch([], [], [msg], received_at=self.clock.now)
        return msg

    def beats(self, n: int, every_s: float, station: str = "lazovsky-07", **changes: Any) -> None:
        for _ in range(n):
            self.beat(station, **changes)
            self.clock.now += every_s

    def status(self, state: str, reason: str, station: str = "lazovsky-07") -> None:
        msg = status(state, reason, self.clock.now, None if reason == "connection_lost" else self.clock.now,
                     station_id=station)
        self.db.store_batch([], [msg], [], received_at=self.clock.now)

    def watch(self, rangers_url: str, collector: str = "collector-a", **alerts: Any) -> StationWatch:
        cfg = parse_collector_config({
            "collector": {"id": collector, "database_url": self.url},
            "alerts": {"urls": [rangers_url], "timeout_s": 5, "min_interval_s": 0, "digest": False} | alerts,
            "http": {"timezone": ZONE}})
        return StationWatch.from_config(cfg, load_targets(cfg.alerts), lambda: Database.open(self.url),
                                        clock=self.clock, listening=lambda: self.listening_since,
                                        retry_delay_s=0.05)

    def close(self) -> None:
        self.db.close()


@pytest.fixture
def field(db_url):
    f = Field(db_url, T0)
    yield f
    f.close()


def no_coordinates(rangers: Rangers) -> None:
    for body in rangers.bodies:
        assert not COORDINATES.search(body.decode()), body


# -- silent ------------------------------------------------------------------------------------

def test_a_station_that_falls_silent_is_told_once_and_again_when_it_is_heard(field, rangers):
    field.beats(10, 60)                     # a heartbeat a minute, then nothing
    watch = field.watch(rangers.url)
    field.clock.now += 60                   # two minutes after the last one: late, not silent
    assert watch.check() and rangers.titles == []
    field.clock.now += 3 * 60               # five minutes: three missed
    watch.check()
    assert rangers.titles == ["lazovsky-07 silent"]
    body = rangers.messages[0]["message"]
    assert "no heartbeat or status for 5 min" in body and "it sends one every 60 s" in body
    field.clock.now += 600
    watch.check()                           # still silent: nothing more
    assert len(rangers.bodies) == 1
    field.beat()
    watch.check()
    assert rangers.titles == ["lazovsky-07 silent", "lazovsky-07 heard again"]
    assert "no longer after 10 min" in rangers.messages[1]["message"]
    assert watch.stats()["raised"] == 1 and watch.stats()["cleared"] == 1 and watch.stats()["sent"] == 2
    no_coordinates(rangers)


def test_each_station_is_silent_after_a_few_of_its_own_heartbeats(field, rangers):
    for _ in range(6):                      # lazovsky-07 beats every minute, bars-03 every ten
        field.beat("bars-03")
        for _ in range(10):
            field.beat("lazovsky-07")
            field.clock.now += 60
    field.clock.now += 5 * 60               # 6 min after lazovsky's last, 16 min after bars'
    watch = field.watch(rangers.url)
    watch.check()
    assert rangers.titles == ["lazovsky-07 silent"]
    field.clock.now += 20 * 60
    watch.check()
    assert rangers.titles == ["lazovsky-07 silent", "bars-03 silent"]
    assert "it sends one every 10 min" in rangers.messages[1]["message"]


def test_a_set_silent_time_overrides_the_learned_one(field, rangers):
    field.beats(5, 60)
    watch = field.watch(rangers.url, silent_after_s=3600)
    field.clock.now += 1800
    watch.check()
    assert rangers.titles == []
    field.clock.now += 1900
    watch.check()
    assert rangers.titles == ["lazovsky-07 silent"]


def test_a_restarted_collector_neither_repeats_nor_clears_what_it_told(field, rangers):
    field.beats(5, 60)
    field.beat("bars-03")
    field.clock.now += 600
    first = field.watch(rangers.url)
    first.check()
    assert sorted(rangers.titles) == ["bars-03 silent", "lazovsky-07 silent"]
    first.stop()
    # The collector restarts: it has listened for a few seconds only, and heard nothing yet.
    field.clock.now += 3600
    field.listening_since = field.clock.now - 5
    second = field.watch(rangers.url)
    second.check()
    assert len(rangers.bodies) == 2         # no "heard again" because it has not listened yet
    field.clock.now += 600                  # listened for ten minutes: still silent, already told
    second.check()
    assert len(rangers.bodies) == 2
    field.beat()
    second.check()
    assert rangers.titles[2:] == ["lazovsky-07 heard again"]


def test_a_retained_heartbeat_replayed_to_a_restarted_collector_is_not_a_sign_of_life(field, rangers):
    field.beats(5, 60)
    field.clock.now += 600
    watch = field.watch(rangers.url)
    watch.check()
    assert rangers.titles == ["lazovsky-07 silent"]
    last = health(field.clock.now - 600 - 60)  # the station's last heartbeat, retained on the broker
    field.db.store_batch([], [], [last], received_at=field.clock.now, heard=set())  # as the ingest stores a replay
    field.clock.now += 60
    watch.check()
    assert rangers.titles == ["lazovsky-07 silent"]


# -- gone ---------------------------------------------------------------------------------------

def test_a_lost_link_is_told_after_the_grace_and_its_return(field, rangers):
    field.status("online", "started")
    field.beats(5, 60)
    field.status("offline", "connection_lost")  # the will
    watch = field.watch(rangers.url, gone_after_s=300)
    field.clock.now += 120
    watch.check()
    assert rangers.titles == []                 # a short drop says nothing
    field.clock.now += 240
    watch.check()
    assert rangers.titles == ["lazovsky-07 offline"]  # gone, and not silent as well
    assert "the broker reports its link lost 6 min ago" in rangers.messages[0]["message"]
    field.clock.now += 3600
    watch.check()
    assert len(rangers.bodies) == 1
    field.status("online", "started")
    field.beat()
    watch.check()
    assert rangers.titles == ["lazovsky-07 offline", "lazovsky-07 back online"]


def test_a_clean_stop_is_not_an_alarm(field, rangers):
    field.beats(5, 60)
    field.status("offline", "stopping")
    field.clock.now += 3 * 3600
    watch = field.watch(rangers.url)
    watch.check()
    assert rangers.titles == []


# -- trouble, power, problems ------------------------------------------------------------------------

def test_camera_disk_outbox_and_clock_trouble_each_raise_and_clear(field, rangers):
    field.beats(3, 60)
    watch = field.watch(rangers.url)
    watch.check()
    assert rangers.titles == []
    field.beat(camera={"state": "failed", "failures": 4}, disk={"free_mb": 300.0, "low": True},
               outbox={"depth": 40, "detections": 40, "oldest_age_s": 7200.0, "full": False},
               clock={"synchronized": False, "source": "timedatectl", "offset_s": -900.0})
    watch.check()
    assert sorted(rangers.titles) == ["Camera failing at lazovsky-07", "Clock wrong at lazovsky-07",
                                      "Detections held up at lazovsky-07", "Disk nearly full at lazovsky-07"]
    text = " ".join(m["message"] for m in rangers.messages)
    assert "4 failure(s)" in text and "300 MB free" in text and "40 message(s) waiting" in text
    assert "off by 15 min" in text
    field.clock.now += 60
    field.beat()
    watch.check()
    assert sorted(rangers.titles[4:]) == ["Camera working again at lazovsky-07", "Clock right again at lazovsky-07",
                                          "Detections flowing again at lazovsky-07", "Disk space back at lazovsky-07"]
    no_coordinates(rangers)


def test_a_draining_outbox_is_no_trouble_but_a_full_one_is(field, rangers):
    field.beats(3, 60)
    field.beats(40, 60, outbox={"depth": 500, "detections": 500, "oldest_age_s": 1000.0})
    field.beat(outbox={"depth": 200, "detections": 200, "oldest_age_s": 4000.0})  # old, but shrinking
    watch = field.watch(rangers.url, outbox_age_s=1800)
    watch.check()
    assert rangers.titles == []
    field.clock.now += 60
    field.beat(outbox={"depth": 900, "detections": 900, "oldest_age_s": 100.0, "full": True})
    watch.check()
    assert rangers.titles == ["Detections held up at lazovsky-07"]
    assert "full" in rangers.messages[0]["message"]


def test_a_clock_behind_shows_in_heartbeats_that_arrive_late_and_a_replayed_one_does_not(field, rangers):
    for _ in range(3):
        field.beat("bars-03", lag_s=1200)                # its clock runs 20 min behind
        field.beat()
        field.clock.now += 60
    field.beat(lag_s=3000)                               # lazovsky's own, sent 50 min ago, arriving now
    watch = field.watch(rangers.url)
    watch.check()
    assert rangers.titles == ["Clock wrong at bars-03"]
    assert "about 20 min behind (its heartbeats arrive that late)" in rangers.messages[0]["message"]


def test_a_clock_ahead_flagged_by_the_collector_is_trouble(field, rangers):
    field.beats(3, 60)
    field.db.store_batch([], [], [health(field.clock.now + 3600)], received_at=field.clock.now)  # an hour ahead
    watch = field.watch(rangers.url)
    watch.check()
    assert rangers.titles == ["Clock wrong at lazovsky-07"]
    assert "its clock runs 60 min ahead" in rangers.messages[0]["message"]


def test_low_battery_and_undervoltage_raise_a_power_alert_and_impossible_voltages_do_not(field, rangers):
    field.beats(3, 60, extra={"power": {"battery_v": 12.6, "undervoltage": False}})
    watch = field.watch(rangers.url, battery_low_v=11.8)
    watch.check()
    assert rangers.titles == []
    field.beat(extra={"power": {"battery_v": -3.0, "low_battery": False}})  # a broken sensor: not believed
    watch.check()
    assert rangers.titles == []
    field.clock.now += 60
    field.beat(extra={"power": {"battery_v": 11.52, "undervoltage": True}})
    watch.check()
    assert rangers.titles == ["Power low at lazovsky-07"]
    assert "battery at 11.52 V (below 11.8 V)" in rangers.messages[0]["message"]
    assert "under-voltage" in rangers.messages[0]["message"]
    field.clock.now += 60
    field.beat(power={"battery_v": 12.9, "undervoltage": False})  # a later schema's top-level section
    watch.check()
    assert rangers.titles[1:] == ["Power back at lazovsky-07"]


def test_a_station_reporting_a_covered_lens_or_a_problem_of_its_own_is_heard(field, rangers):
    field.beats(3, 60)
    watch = field.watch(rangers.url)
    field.beat(extra={"view": {"state": "covered", "detail": "lens covered: a dark, flat frame in daylight"},
                      "problems": [{"code": "ir-illuminator dead", "message": "IR illuminator dead at night",
                                    "tamper": True}]})
    watch.check()
    assert sorted(rangers.titles) == ["lazovsky-07 reports a problem: ir illuminator dead",
                                      "lazovsky-07 reports a problem: view covered"]
    assert "lens covered: a dark, flat frame in daylight" in " ".join(m["message"] for m in rangers.messages)
    field.clock.now += 60
    field.beat(extra={"view": {"state": "ok"}, "problems": []})
    watch.check()
    assert sorted(rangers.titles[2:]) == ["lazovsky-07: problem cleared: ir illuminator dead",
                                          "lazovsky-07: problem cleared: view covered"]


def test_trouble_in_an_old_heartbeat_neither_raises_nor_clears(field, rangers):
    field.beats(3, 60, camera={"state": "failed"})
    watch = field.watch(rangers.url)
    watch.check()
    assert rangers.titles == ["Camera failing at lazovsky-07"]
    field.clock.now += 3600                 # silent now: the camera's state is unknown, not fixed
    watch.check()
    assert rangers.titles == ["Camera failing at lazovsky-07", "lazovsky-07 silent"]


# -- the rate limit --------------------------------------------------------------------------------

def test_a_flapping_link_gives_one_message_and_then_a_summary(field, rangers):
    field.beats(3, 60)
    watch = field.watch(rangers.url, min_interval_s=900, gone_after_s=0)
    field.status("offline", "connection_lost")
    watch.check()
    assert rangers.titles == ["lazovsky-07 offline"]
    for _ in range(3):                      # back, lost, back, lost ... within the 15 minutes
        field.clock.now += 60
        field.status("online", "started")
        field.beat()
        watch.check()
        field.clock.now += 60
        field.status("offline", "connection_lost")
        watch.check()
    assert len(rangers.bodies) == 1 and watch.stats()["held"] == 6
    field.clock.now += 60
    field.status("online", "started")
    field.beat()
    field.clock.now += 900
    field.beat()
    watch.check()                           # the window ended: where things stand, with the count
    assert rangers.titles[1] == "lazovsky-07 back online (+7 change(s) since 18:05 UTC)"
    assert "changed 7 more time(s)" in rangers.messages[1]["message"]
    assert watch.stats()["summaries"] == 1


# -- the daily digest ------------------------------------------------------------------------------

def test_the_daily_digest_counts_each_stations_tags_and_names_the_stations_to_visit(field, rangers):
    from tests.collector_data import detection
    field.clock.now = T0 + 2 * 3600          # 20:02 UTC, 06:02 in Vladivostok
    field.db.store_batch([detection(field.clock.now - 3600, "leopard", "leopard"),
                          detection(field.clock.now - 3000, "leopard", "leopard"),
                          detection(field.clock.now - 2000, "prey", "sika deer"),
                          detection(field.clock.now - 1000, "prey", "wild boar", station_id="bars-03")],
                         [], [], received_at=field.clock.now)
    field.beats(3, 60)
    field.beats(3, 60, station="bars-03", disk={"free_mb": 200.0, "low": True})
    field.status("offline", "stopping", station="kedrovaya-01")
    watch = field.watch(rangers.url, digest=True, digest_at="07:00")
    field.clock.now -= 23 * 3600
    watch.check()                            # the collector's first round, yesterday at 07:08
    field.clock.now += 23 * 3600
    assert [t for t in rangers.titles if t.startswith("Daily")] == []  # no digest at a first start
    watch.check()
    assert [t for t in rangers.titles if t.startswith("Daily")] == []  # before 07:00 local
    field.clock.now += 3600
    field.beat()
    field.beat("bars-03", disk={"free_mb": 200.0, "low": True})
    watch.check()
    digest = next(m for m in rangers.messages if m["title"].startswith("Daily digest"))
    assert digest["title"] == "Daily digest 2026-11-26: 2 station(s) need a visit"
    body = digest["message"]
    assert "  lazovsky-07: leopard 2, prey 1" in body and "  bars-03: prey 1" in body
    assert "  kedrovaya-01: none" in body
    assert "bars-03: disk (the disk is nearly full (200 MB free)" in body
    assert "kedrovaya-01: stopped (a clean shutdown)" in body
    watch.stop()
    again = field.watch(rangers.url, digest=True, digest_at="07:00")  # a restart the same morning
    field.clock.now += 600
    again.check()
    assert sum(t.startswith("Daily digest") for t in rangers.titles) == 1
    field.clock.now += 86400
    field.beat()
    again.check()
    assert sum(t.startswith("Daily digest") for t in rangers.titles) == 2
    no_coordinates(rangers)


# -- failures ------------------------------------------------------------------------------------

def test_an_alert_url_that_fails_is_retried_and_counted_and_the_others_still_hear(field, rangers):
    field.beats(5, 60)
    field.clock.now += 600
    cfg = parse_collector_config({"collector": {"id": "c", "database_url": field.url},
                                  "alerts": {"urls": [dead_url(), rangers.url], "timeout_s": 5, "digest": False}})
    watch = StationWatch.from_config(cfg, load_targets(cfg.alerts), lambda: Database.open(field.url),
                                     clock=field.clock, listening=lambda: field.listening_since, retry_delay_s=0.05)
    watch.check()
    assert rangers.titles == ["lazovsky-07 silent"]
    assert watch.stats()["failed"] == 1 and watch.stats()["retried"] == 1 and watch.stats()["sent"] == 1
    assert field.db.notices() == []         # told (or failed, counted): not sent again


# -- several collectors ----------------------------------------------------------------------------

def test_two_collectors_on_one_postgresql_alert_once_and_one_takes_over_when_the_other_dies(pg_url, rangers):
    f = Field(pg_url, T0)
    try:
        for k in range(12):
            f.beats(3, 60, station=f"station-{k:02d}")
        f.clock.now += 900
        a, b = f.watch(rangers.url, "collector-a"), f.watch(rangers.url, "collector-b")
        assert a.check()                      # collector-a takes the lease first
        held: list[bool] = []
        go = threading.Barrier(2)

        def rounds(w: StationWatch) -> None:
            go.wait()
            for _ in range(5):
                held.append(w.check())

        threads = [threading.Thread(target=rounds, args=(w,)) for w in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(rangers.titles) == sorted(f"station-{k:02d} silent" for k in range(12))  # each once
        assert held.count(True) == 5 and a.holder and not b.holder
        assert b.stats()["not_holder"] == 5
        a.stop()                              # collector-a dies; its lease runs out
        f.beat("station-03")
        assert not b.check()
        f.clock.now += b.lease_s + 1
        f.beat("station-03")
        assert b.check() and b.holder
        assert rangers.titles[12:] == ["station-03 heard again"]
    finally:
        f.close()


# -- the timer, in the real collector --------------------------------------------------------------

def publish_health(broker, station: str, count: int) -> None:  # noqa: F811
    """``count`` heartbeats from ``station``, as it publishes them: QoS 0, retained."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=station, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for _ in range(count):
            client.publish(Topics(station).health, encode(health(time.time(), station_id=station)),
                           qos=0, retain=True).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_the_collector_finds_a_silent_station_by_itself_and_a_restart_does_not_repeat_it(tmp_path: Path, rangers,
                                                                                       broker):  # noqa: F811
    from station.collector.service import CollectorService

    def collector() -> CollectorService:
        return CollectorService.build(parse_collector_config({
            "collector": {"id": "c1", "data_dir": str(tmp_path / "c1")},
            "mqtt": {"host": broker.host, "port": broker.port},
            "alerts": {"urls": [rangers.url], "timeout_s": 5, "check_interval_s": 0.2, "silent_after_s": 2,
                       "digest": False, "min_interval_s": 0}}), http=False)

    service = collector().start()
    try:
        assert service.ingest.wait_subscribed(10)
        publish_health(broker, "lazovsky-07", count=2)   # two heartbeats, retained, then the station dies
        wait_for(lambda: "lazovsky-07 silent" in rangers.titles, "the silent alert, with no message arriving",
                 within=20)
    finally:
        service.stop()
    told = list(rangers.titles)
    service = collector().start()               # the broker replays the retained heartbeat to it
    try:
        assert service.ingest.wait_subscribed(10)
        wait_for(lambda: service.watch.stats()["checks"] >= 20, "a few rounds after the restart", within=20)
        assert rangers.titles == told               # neither "heard again" nor "silent" a second time
    finally:
        service.stop()
