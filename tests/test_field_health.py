"""Effort and impossible heartbeats: a station's timeline and camera-days follow its life
(real SQLite and PostgreSQL), the Camtrap DP deployments carry them and still validate
offline, and heartbeats with impossible values are refused or left out, counted and never
plotted (through the real ingest and a real Mosquitto).
"""

from __future__ import annotations

import csv
import json
import math
import time
from datetime import datetime, timezone
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from station.collector import camtrap_dp
from station.collector.db import Database
from station.collector.effort import comment
from station.collector.export import export_camtrap_dp
from station.collector.fieldhealth import chart_series, station_record
from station.collector.intake import admit
from station.collector.station_rules import RuleSettings
from station.config.collector import parse_collector_config
from station.feed.messages import encode
from station.feed.topics import Topics
from tests.broker import broker  # noqa: F401 (fixture)
from tests.collector_data import T0, db, db_url, detection, health, pytest_generate_tests  # noqa: F401 (fixtures)
from tests.fieldhealth_data import PLAN, seed_life

pytest.importorskip("frictionless", reason="the collector extra (frictionless) is not installed")


def _ts(dt: datetime) -> float:
    return round(dt.timestamp(), 3)


@pytest.fixture
def life(db):
    return db, seed_life(db, "lazovsky-07", T0)


# -- the timeline and the effort -------------------------------------------------------------------

def test_the_timeline_follows_the_stations_life_state_by_state(life):
    db, lived = life
    record = station_record(db, "lazovsky-07", since=datetime.fromtimestamp(T0 - 3600, timezone.utc),
                            until=datetime.fromtimestamp(lived.end, timezone.utc),
                            now=datetime.fromtimestamp(lived.end + 10, timezone.utc), settings=RuleSettings())
    assert record.interval_s == 60.0
    assert [(s.state, _ts(s.start), _ts(s.end)) for s in record.timeline] == \
        [(state, round(a, 3), round(b, 3)) for state, a, b in lived.segments]
    offline = next(s for s in record.timeline if s.state == "offline")
    assert offline.detail == "stopped"
    assert next(s for s in record.timeline if s.state == "tampered").detail == "view covered"


def test_camera_days_count_only_the_time_the_camera_watched(life):
    db, lived = life
    record = station_record(db, "lazovsky-07", since=datetime.fromtimestamp(T0, timezone.utc),
                            until=datetime.fromtimestamp(lived.end, timezone.utc),
                            now=datetime.fromtimestamp(lived.end + 10, timezone.utc), settings=RuleSettings())
    effort = record.effort
    assert effort.seconds == pytest.approx({s: lived.seconds.get(s, 0.0) for s in effort.seconds})
    assert effort.camera_days == pytest.approx(lived.seconds["online"] / 86400)
    assert effort.deployed_days == pytest.approx(sum(m for _, m in PLAN) / 1440)
    assert [d.state for d in effort.downtime] == ["camera_failed", "tampered", "silent", "offline"]
    words = comment(effort)
    assert f"{lived.seconds['online'] / 86400:.2f} camera-days" in words and "days asleep" in words


def test_a_window_that_starts_mid_life_takes_the_state_in_force(life):
    db, lived = life
    sleeping = next((a, b) for s, a, b in lived.segments if s == "sleeping")
    middle = sleeping[0] + 3600
    record = station_record(db, "lazovsky-07", since=datetime.fromtimestamp(middle, timezone.utc),
                            until=datetime.fromtimestamp(middle + 10800, timezone.utc),
                            now=datetime.fromtimestamp(lived.end, timezone.utc), settings=RuleSettings())
    assert [(s.state, _ts(s.start), _ts(s.end)) for s in record.timeline] == [
        ("sleeping", round(middle, 3), round(sleeping[1], 3)), ("online", round(sleeping[1], 3),
                                                                 round(middle + 10800, 3))]


def test_the_chart_shows_the_plausible_readings_and_never_an_impossible_one(life):
    db, lived = life
    record = station_record(db, "lazovsky-07", since=datetime.fromtimestamp(T0, timezone.utc),
                            until=datetime.fromtimestamp(lived.end, timezone.utc),
                            now=datetime.fromtimestamp(lived.end, timezone.utc), settings=RuleSettings())
    series = chart_series(record.beats)
    assert len(series["battery_v"]) == len(lived.batteries) and lived.implausible_at
    assert all(v > 0 for _, v in series["battery_v"])
    assert [v for _, v in series["temperature_c"]] == [v for _, v in lived.temperatures]
    assert db.implausible_heartbeats("lazovsky-07")["heartbeats"] == len(lived.implausible_at)
    assert db.implausible_heartbeats("lazovsky-07")["latest_fields"] == ["extra.power.battery_v"]
    thin = chart_series(record.beats, max_points=50)
    assert 40 <= len(thin["temperature_c"]) <= 50
    assert min(v for _, v in series["temperature_c"]) <= min(v for _, v in thin["temperature_c"])


# -- Camtrap DP ------------------------------------------------------------------------------------

def test_the_deployment_spans_the_stations_life_and_its_comments_name_the_downtime(life, tmp_path):
    db, lived = life
    online = [(a, b) for s, a, b in lived.segments if s == "online"]
    db.store_batch([detection(online[1][0] + 600, "leopard", "leopard"),
                    detection(online[2][0] + 300, "prey", "sika deer")], [], [])
    # a second station whose clock ran an hour ahead: its timestamps are not to be trusted
    fast = detection(T0 + 7200, "tiger", "tiger", station_id="kedrovaya-01", deployment_id="kedrovaya-01-2026")
    db.store_batch([fast], [], [], received_at=T0 + 7200 - 3600)
    cfg = parse_collector_config({})
    export_camtrap_dp(db, cfg, tmp_path / "pkg", now=datetime.fromtimestamp(lived.end + 10, timezone.utc))
    with open(tmp_path / "pkg" / "deployments.csv", newline="") as f:
        rows = {r["locationID"]: r for r in csv.DictReader(f)}
    ours = rows["lazovsky-07"]
    assert ours["deploymentStart"] == lived.iso(math.floor(T0))          # the first status, not the first leopard
    assert ours["deploymentEnd"] == lived.iso(math.ceil(lived.end + 10))  # still watching at the export
    assert ours["timestampIssues"] == "false"
    words = ours["deploymentComments"]
    assert words.startswith("Coordinates generalised")
    assert f"Effort: {lived.seconds['online'] / 86400:.2f} camera-days watching" in words
    for state, a, b in lived.segments:
        if state in ("camera_failed", "tampered", "silent", "offline"):
            assert f"{lived.iso(a)}/{lived.iso(b)} {state.replace('_', ' ')}" in words, state
    assert rows["kedrovaya-01"]["timestampIssues"] == "true"
    report = camtrap_dp.validate(tmp_path / "pkg" / "datapackage.json")
    assert report.valid, camtrap_dp.problems(report)
    package = json.loads((tmp_path / "pkg" / "datapackage.json").read_text())
    assert package["temporal"]["start"] == lived.iso(T0)[:10]


# -- impossible heartbeats -----------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [("cpu_temperature_c", 10_000.0), ("uptime_s", 1e15),
                                          ("outbox.depth", 10**15), ("camera.failures", 10**12),
                                          ("load_1m", 1e9), ("clock.offset_s", -1e12)])
def test_the_door_refuses_a_heartbeat_with_an_impossible_figure(field, value):
    msg = health(T0)
    section, _, key = field.rpartition(".")
    (msg[section] if section else msg)[key] = value
    verdict = admit("camtrap/v1/lazovsky-07/health", encode(msg), prefix="camtrap/v1", max_bytes=512 * 1024)
    assert verdict.reason == "invalid" and field in verdict.detail


def publish(broker, station: str, messages: list[dict]) -> None:  # noqa: F811
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=station, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for msg in messages:
            client.publish(Topics(station).health, encode(msg), qos=0).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_impossible_heartbeats_are_refused_or_left_out_counted_and_never_plotted(tmp_path: Path, broker):  # noqa: F811
    from station.collector.service import CollectorService
    service = CollectorService.build(parse_collector_config({
        "collector": {"id": "c1", "data_dir": str(tmp_path / "c1")},
        "mqtt": {"host": broker.host, "port": broker.port}, "feed": {"enabled": False}}), http=False).start()
    try:
        assert service.ingest.wait_subscribed(10)
        now = time.time()
        hot = health(now - 30) | {"cpu_temperature_c": 10_000.0}
        counted = health(now - 20)
        counted["outbox"] = counted["outbox"] | {"depth": 10**15}
        negative = health(now - 10, temperature=51.5) | {"extra": {"power": {"battery_v": -12.0}}}
        fine = health(now, temperature=47.0) | {"extra": {"power": {"battery_v": 12.4}}}
        publish(broker, "lazovsky-07", [hot, counted, negative, fine])
        deadline = time.monotonic() + 10
        while service.ingest.counters["healths"] + service.ingest.counters["rejected"] < 4:
            assert time.monotonic() < deadline, service.ingest.stats()
            time.sleep(0.05)
        assert service.ingest.rejected["invalid"] == 2 and service.ingest.counters["implausible"] == 1
    finally:
        service.stop()
    with Database.open(service.cfg.collector.sqlite_resolved_url()) as db:
        assert {(r["reason"], r["station_id"]): r["count"] for r in db.rejections()} == {
            ("invalid", "lazovsky-07"): 2}
        assert db.implausible_heartbeats("lazovsky-07")["heartbeats"] == 1
        beats = db.heartbeats("lazovsky-07", now - 3600, now + 60)
        series = chart_series(beats)
        assert [v for _, v in series["temperature_c"]] == [51.5, 47.0]
        assert [v for _, v in series["battery_v"]] == [12.4]


# -- the upgrade ------------------------------------------------------------------------------------

def test_heartbeats_stored_before_the_upgrade_get_their_readings(db_url, monkeypatch):
    import station.collector.db as dbmod
    every = dbmod.discover()
    monkeypatch.setattr(dbmod, "discover", lambda: every[:7])
    asleep, failed, odd = health(T0), health(T0 + 60), health(T0 + 120)
    asleep["extra"] = {"schedule": "sleeping until 18:42"}
    failed["camera"] = failed["camera"] | {"state": "failed"}
    odd["cpu_temperature_c"] = "hot"        # what no intake lets in now: left empty, not a failed upgrade
    with Database.open(db_url) as old:
        old.migrate()
        old._exec("INSERT INTO stations (station_id, first_seen, last_seen) VALUES ('lazovsky-07', %(t)s, %(t)s)",
                  {"t": old._time(T0, "t")})
        for msg in (asleep, failed, odd):
            old._exec("INSERT INTO health (station_id, sent_at, received_at, payload) VALUES ('lazovsky-07',"
                      " %(s)s, %(s)s, %(p)s)", {"s": old._time(msg["sent_at"], "s"), "p": old._json_in(msg)})
    monkeypatch.setattr(dbmod, "discover", lambda: every)
    with Database.open(db_url) as new:
        assert new.migrate() == [m.version for m in every[7:]]
        rows = new.heartbeats("lazovsky-07", T0 - 1, T0 + 200)
        assert [(r["asleep"], r["camera_state"], r["temperature_c"]) for r in rows] == [
            (1, "ok", 48.5), (0, "failed", 48.5), (0, "ok", None)]
        assert new.field_stations()[0]["heard_at"] is not None
