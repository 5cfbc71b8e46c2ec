"""The collector's database, on SQLite and on PostgreSQL: every test runs on both.

Test data is contract data: detections are built from closed event records by the
station's own detection_message() and validated like the collector will validate them.
PostgreSQL is the server at PG_URL (trust auth); each test gets a fresh schema.
"""

from __future__ import annotations

import time

import pytest

from station.collector.db import BatchResult, Database, StorageError
from station.collector.migrations import discover
from station.times import iso
from tests.collector_data import (DEPLOYMENT, MODEL, PG_URL, T0, db, db_url, detection, pg_url,  # noqa: F401 (fixtures)
                                  health, pytest_generate_tests, station, status)


# -- migrations ---------------------------------------------------------------------

def test_a_new_database_is_migrated_once_and_remembers_it(db_url):
    versions = [mig.version for mig in discover()]
    with Database.open(db_url) as first:
        assert first.migrate() == versions
        assert first.migrate() == []
    with Database.open(db_url) as again:  # the collector restarts
        assert again.migrate() == []
        recorded = again.migrations()
    assert [r["version"] for r in recorded] == versions
    assert recorded[0]["name"] == "initial" and recorded[0]["applied_at"].endswith("Z")


def test_a_database_from_a_newer_collector_is_refused(db):
    db._exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (%(v)s, 'future', %(t)s)",
             {"v": 999, "t": db._time(T0, "t")})
    with pytest.raises(StorageError, match="version 999, newer than this collector"):
        db.migrate()


def test_sqlite_runs_in_wal_with_full_sync_and_foreign_keys(tmp_path):
    with Database.open(f"sqlite:///{tmp_path}/c.db") as db:
        assert db._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert db._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with Database.open(f"sqlite:///{tmp_path}/c.db?synchronous=normal") as db:
        assert db._conn.execute("PRAGMA synchronous").fetchone()[0] == 1
    with pytest.raises(StorageError, match="synchronous="):
        Database.open(f"sqlite:///{tmp_path}/c.db?sync=off")
    with pytest.raises(StorageError, match="use sqlite:///path.db or postgresql://"):
        Database.open("mysql://root@localhost/camtrap")


# -- de-duplication -----------------------------------------------------------------

def test_a_resent_detection_is_stored_once(db):
    first, second = detection(T0), detection(T0 + 60)
    assert db.store_batch([first, first, second], [], []) == BatchResult(inserted=2, duplicates=1)
    assert db.store_batch([second, first], [], []) == BatchResult(inserted=0, duplicates=2)
    resent = dict(first, sent_at=iso(T0 + 3600))  # from the outbox, an hour later: keep the first
    assert db.store_batch([resent], [], []) == BatchResult(inserted=0, duplicates=1)
    rows = db.query_detections()
    assert [r["event_id"] for r in rows] == [second["event_id"], first["event_id"]]
    assert rows[1]["payload"] == first


# -- atomic batches -----------------------------------------------------------------

def test_one_bad_detection_rolls_back_the_whole_batch(db):
    good, bad = detection(T0), detection(T0 + 60)
    bad["tag"] = None  # NOT NULL
    with pytest.raises(StorageError, match=r"2 detections.*tag.*rolled back"):
        db.store_batch([good, bad], [status("online", "started", T0, T0)], [health(T0)])
    with pytest.raises(StorageError, match=r"tag.*rolled back"):  # alone, it is named by its batch of 1
        db.store_batch([bad], [], [])
    assert db.query_detections() == [] and db.stations() == []
    assert db.store_batch([good], [], []) == BatchResult(inserted=1, duplicates=0)  # usable afterwards


def test_a_bad_time_rolls_back_and_names_the_message(db):
    bad = detection(T0) | {"start": "yesterday"}
    with pytest.raises(StorageError, match="start: 'yesterday' is not an RFC 3339 time"):
        db.store_batch([detection(T0 + 1), bad], [], [])
    assert db.query_detections() == []


# -- queries ------------------------------------------------------------------------

@pytest.fixture
def night(db):
    """Three stations over a night: leopard, prey, a failed classification, a tiger."""
    msgs = [detection(T0, "leopard", "leopard"),
            detection(T0 + 600, "prey", "wild boar"),
            detection(T0 + 1200, "unknown", failed=True),
            detection(T0 + 1800, "leopard", "leopard", station_id="kedrovaya-01", deployment_id="kedrovaya-01-dep"),
            detection(T0 + 2400, "tiger", "amur tiger", station_id="kedrovaya-01", deployment_id="kedrovaya-01-dep"),
            detection(T0 + 3000, "prey", "sika deer", station_id="bars-03", deployment_id="bars-03-dep")]
    db.store_batch(msgs[:3], [], [])
    db.store_batch(msgs[3:], [], [])
    return db, msgs


def test_detections_come_newest_first_and_filter_by_station_tag_species_and_time(night):
    db, msgs = night
    ids = [d["event_id"] for d in msgs]
    assert [r["event_id"] for r in db.query_detections()] == ids[::-1]
    assert [r["event_id"] for r in db.query_detections(station="lazovsky-07")] == [ids[2], ids[1], ids[0]]
    assert [r["event_id"] for r in db.query_detections(tag="leopard")] == [ids[3], ids[0]]
    assert [r["event_id"] for r in db.query_detections(species="wild boar")] == [ids[1]]
    window = db.query_detections(since=iso(T0 + 600), until=T0 + 1800)  # RFC 3339 text or Unix seconds
    assert [r["event_id"] for r in window] == [ids[2], ids[1]]
    assert [r["event_id"] for r in db.query_detections(limit=2, offset=1)] == [ids[4], ids[3]]
    row = db.query_detections(tag="tiger")[0]
    assert row["start_time"] == iso(T0 + 2400) and row["end_time"] == iso(T0 + 2401.5)
    assert (row["species"], row["confidence"], row["model_name"]) == ("amur tiger", 0.81, MODEL["name"])
    assert (row["latitude"], row["longitude"], row["deployment_id"]) == (43.2412, 133.8857, "kedrovaya-01-dep")
    failed = db.query_detections(tag="unknown")[0]
    assert failed["classification_status"] == "failed" and failed["species"] is None
    with pytest.raises(StorageError, match="limit"):
        db.query_detections(limit=0)


def test_species_are_counted_most_first(night):
    db, _ = night
    assert db.counts_by_species() == {"leopard": 2, "amur tiger": 1, "sika deer": 1, "wild boar": 1}
    assert db.counts_by_species(station="kedrovaya-01") == {"amur tiger": 1, "leopard": 1}
    assert db.counts_by_species(since=T0 + 1000) == {"amur tiger": 1, "leopard": 1, "sika deer": 1}


# -- stations -----------------------------------------------------------------------

def test_the_stations_table_shows_the_last_status_and_health(db):
    db.store_batch([detection(T0)], [status("online", "started", T0 - 60, T0 - 60)], [health(T0 + 100)])
    db.store_batch([], [], [health(T0 + 40, temperature=30.0)])  # a late, older heartbeat: kept in history only
    (row,) = db.stations()
    assert row["station_id"] == "lazovsky-07" and row["deployment_id"] == DEPLOYMENT
    assert (row["status_state"], row["status_reason"], row["status_since"]) == ("online", "started", iso(T0 - 60))
    assert row["health_at"] == iso(T0 + 100) and row["health"]["cpu_temperature_c"] == 48.5
    assert row["last_seen"] == iso(T0 + 100) and row["last_detection_at"] == iso(T0)
    heartbeats = db._rows("SELECT COUNT(*) AS n FROM health")[0]["n"]
    db.store_batch([], [], [health(T0 + 100)])  # the retained heartbeat again after a reconnect
    assert heartbeats == 2 == db._rows("SELECT COUNT(*) AS n FROM health")[0]["n"]


def test_a_station_that_lost_its_link_shows_offline_until_it_is_back(db):
    connected = T0
    db.store_batch([], [status("online", "started", connected, connected)], [])
    db.store_batch([], [status("offline", "connection_lost", connected)], [])  # the will: same `since`
    assert db.stations()[0]["status_state"] == "offline"
    back = T0 + 7200
    db.store_batch([], [status("online", "started", back, back), status("offline", "connection_lost", connected)], [])
    row = db.stations()[0]
    assert (row["status_state"], row["status_reason"], row["status_since"]) == ("online", "started", iso(back))
    assert row["last_seen"] == iso(back)


@pytest.mark.parametrize("zone", ["Asia/Vladivostok", "Europe/Berlin", "Asia/Kolkata", "UTC"])
def test_diel_activity_counts_each_detection_in_its_local_hour(db, zone):
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    # Leopards at night, boar by day, over a spring and a summer (Berlin changes its clocks
    # on 29 March 2026; Vladivostok never does; Kolkata is 5:30 ahead of UTC).
    starts = [T0 - 86400 * d + 3600 * h + 1800 for d in (0, 100, 200, 250) for h in range(0, 24, 3)]
    msgs = [detection(t, "leopard" if k % 2 else "prey", "leopard" if k % 2 else "wild boar")
            for k, t in enumerate(starts)]
    db.store_batch(msgs)
    expected: dict[str, list[int]] = {}
    for msg, t in zip(msgs, starts):
        hour = datetime.fromtimestamp(t, timezone.utc).astimezone(ZoneInfo(zone)).hour
        expected.setdefault(msg["species"], [0] * 24)[hour] += 1
    assert db.diel_activity(zone) == expected
    leopards_only = db.diel_activity(zone, species="leopard")
    assert leopards_only == {"leopard": expected["leopard"]}


def test_two_collectors_storing_crossing_batches_do_not_deadlock(pg_url):
    """Status and health reach every collector of a shared group: batches that touch the
    same stations in opposite orders run at once on two connections."""
    import threading

    first, second = Database.open(pg_url), Database.open(pg_url)
    first.migrate()
    errors: list[str] = []

    def store(db: Database, order: list[str], offset: float) -> None:
        for k in range(40):
            try:
                db.store_batch([detection(T0 + offset + k, station_id=order[0])], [],
                               [health(T0 + offset + k + 0.5, station_id=s) for s in order])
            except StorageError as exc:
                errors.append(str(exc))

    threads = [threading.Thread(target=store, args=(first, ["st-a", "st-b", "st-c"], 0)),
               threading.Thread(target=store, args=(second, ["st-c", "st-b", "st-a"], 1000))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    first.close(), second.close()
    assert errors == []


def test_a_thumbnail_shows_only_with_a_detection_of_the_station_that_sent_it(db):
    from station.collector.db import ThumbnailRow

    det = detection(T0)
    forged = ThumbnailRow(event_id=det["event_id"], station_id="intruder-01", file="ab/" + "ab" * 32 + ".jpg",
                          bytes=10, width=4, height=4, sha256="ab" * 32)
    db.store_batch([det], thumbnails=[forged])
    assert db.thumbnail(det["event_id"]) is None
    assert db.query_detections()[0]["has_thumbnail"] is False


# -- time and trust: a clock that runs ahead never pins a station's state ------------------

TWO_YEARS = 2 * 365 * 86400


def test_a_status_from_a_clock_two_years_ahead_never_pins_the_station_online(db):
    now = T0 + 3600
    ahead = now + TWO_YEARS
    db.store_batch([], [status("online", "started", ahead, ahead)], [], received_at=now)
    row = db.stations()[0]
    assert row["status_state"] == "online" and row["status_since"] == iso(now)  # counted as when it came
    assert row["last_seen"] == iso(now) and row["clock_skew_s"] == pytest.approx(TWO_YEARS, abs=1)
    # The station's clock is put right and it stops: the honest offline status wins.
    stop = now + 600
    db.store_batch([], [status("offline", "stopping", stop, stop)], [], received_at=stop + 1)
    row = db.stations()[0]
    assert (row["status_state"], row["status_reason"], row["status_since"]) == ("offline", "stopping", iso(stop))
    assert row["last_seen"] == iso(stop) and row["clock_skew_s"] is None  # on time again
    assert row["clock_skew_at"] == iso(now)  # ... but it is remembered that it ran ahead


def test_a_forged_since_cannot_outlive_the_will(db):
    now = T0
    forged = now + 10 * 365 * 86400
    db.store_batch([], [status("online", "started", forged, now)], [], received_at=now)
    # the broker publishes the will later: offline wins, as it does for an honest station
    db.store_batch([], [status("offline", "connection_lost", forged)], [], received_at=now + 120)
    assert db.stations()[0]["status_state"] == "offline"


def test_a_heartbeat_from_the_future_is_flagged_and_the_next_honest_one_replaces_it(db):
    now = T0
    db.store_batch([], [], [health(now + TWO_YEARS, temperature=99.0)], received_at=now)
    db.store_batch([], [], [health(now + 60, temperature=40.0)], received_at=now + 61)
    row = db.stations()[0]
    assert row["health"]["cpu_temperature_c"] == 40.0 and row["health_at"] == iso(now + 60)
    assert row["last_seen"] == iso(now + 60) and row["clock_skew_s"] is None
    beats = db._rows("SELECT sent_at, clock_skew_s FROM health")
    assert len(beats) == 2  # both kept in the history
    flagged = [b for b in beats if b["clock_skew_s"] is not None]
    assert len(flagged) == 1 and flagged[0]["clock_skew_s"] == pytest.approx(TWO_YEARS, abs=1)


def test_small_clock_differences_are_not_flagged_and_late_messages_are_not_news(db):
    now = T0
    db.store_batch([detection(now - 30)], [status("online", "started", now + 200, now + 200)], [health(now + 250)],
                   received_at=now, max_clock_skew_s=300)
    row = db.stations()[0]
    assert row["clock_skew_s"] is None and row["clock_skew_at"] is None
    assert row["status_since"] == iso(now) and row["health_at"] == iso(now)
    assert db.query_detections()[0]["clock_skew_s"] is None
    # an old heartbeat from the outbox, an hour late: kept in history, not the latest
    db.store_batch([], [], [health(now - 3600, temperature=10.0)], received_at=now + 5)
    assert db.stations()[0]["health"]["cpu_temperature_c"] == 48.5


def test_a_detection_from_the_future_is_flagged_and_its_station_is_easy_to_find(db):
    now = T0 + 86400
    future = detection(now + TWO_YEARS)
    db.store_batch([detection(now - 600), future], [], [], received_at=now)
    rows = {r["event_id"]: r for r in db.query_detections()}
    assert rows[future["event_id"]]["clock_skew_s"] == pytest.approx(TWO_YEARS + 5, abs=0.01)  # its sent_at
    station_row = db.stations()[0]
    assert station_row["last_detection_at"] == iso(now)  # never in the future
    assert station_row["last_seen"] == iso(now)
    db.store_batch([], [], [health(now + 10)], received_at=now + 10)  # on time: the flag clears
    (skew,) = db.clock_skews()
    assert (skew["station_id"], skew["clock_skew_s"], skew["detections"], skew["heartbeats"]) == \
        ("lazovsky-07", None, 1, 0)
    assert skew["clock_skew_at"] == iso(now)
    assert db.clock_skews(since=now + 1) == []


def test_the_upgrade_frees_stations_an_earlier_version_let_a_future_message_pin(db_url, monkeypatch):
    import station.collector.db as dbmod
    all_migrations = dbmod.discover()
    monkeypatch.setattr(dbmod, "discover", lambda: all_migrations[:3])
    with Database.open(db_url) as old:
        old.migrate()
        future = "2028-11-25T18:02:11.400Z"
        old._exec("INSERT INTO stations (station_id, first_seen, last_seen, status_state, status_reason, status_since,"
                  " health_at, last_detection_at) VALUES ('lazovsky-07', %(t)s, %(f)s, 'online', 'started', %(f)s,"
                  " %(f)s, %(f)s)", {"t": old._time(T0, "t"), "f": old._time(future, "f")})
    monkeypatch.setattr(dbmod, "discover", lambda: all_migrations)
    with Database.open(db_url) as new:
        assert new.migrate() == [m.version for m in all_migrations[3:]]
        row = new.stations()[0]
        for key in ("status_since", "health_at", "last_seen", "last_detection_at"):
            assert row[key] < "2027", (key, row[key])
        new.store_batch([], [status("offline", "stopping", time.time(), time.time())], [])
        assert new.stations()[0]["status_state"] == "offline"


def _store_as_version_5_did(db: Database, detections: list[dict]) -> None:
    """Rows as a collector at schema version 5 wrote them (today's store_batch needs later columns)."""
    import json

    for d in detections:
        db._exec("INSERT INTO stations (station_id, deployment_id, first_seen) VALUES (%(s)s, %(dep)s, %(t)s) "
                 "ON CONFLICT (station_id) DO NOTHING",
                 {"s": d["station_id"], "dep": d["deployment_id"], "t": db._time(d["start"], "t")})
        db._exec("INSERT INTO detections (event_id, station_id, deployment_id, tag, species, confidence, "
                 "classification_status, start_time, start_minute, end_time, received_at, payload) VALUES "
                 "(%(e)s, %(s)s, %(dep)s, %(tag)s, %(sp)s, %(c)s, %(cs)s, %(st)s, 0, %(en)s, %(st)s, %(p)s)",
                 {"e": d["event_id"], "s": d["station_id"], "dep": d["deployment_id"], "tag": d["tag"],
                  "sp": d["species"], "c": d["confidence"], "cs": d["classification_status"],
                  "st": db._time(d["start"], "start"), "en": db._time(d["end"], "end"),
                  "p": json.dumps(d, separators=(",", ":"))})



def test_an_upgrade_to_verifications_keeps_every_detection_and_leaves_it_unverified(db_url, monkeypatch):
    import station.collector.db as dbmod
    all_migrations = dbmod.discover()
    monkeypatch.setattr(dbmod, "discover", lambda: all_migrations[:5])
    stored = [detection(T0), detection(T0 + 60, "prey", "deer")]
    with Database.open(db_url) as old:
        old.migrate()
        _store_as_version_5_did(old, stored)
        raw = "SELECT event_id, tag, species, confidence, start_time, payload FROM detections ORDER BY event_id"
        before = [old._out(r, ("payload",)) for r in old._rows(raw)]
    monkeypatch.setattr(dbmod, "discover", lambda: all_migrations)
    with Database.open(db_url) as new:
        assert new.migrate()[0] == 6
        assert [new._out(r, ("payload",)) for r in new._rows(raw)] == before
        assert [r["verification"] for r in new.query_detections()] == [None, None]
        first = stored[0]["event_id"]
        made = new.add_verification(first, "blank", None, "anna", at=T0 + 86400)
        assert made == {"id": made["id"], "event_id": first, "tag": "blank", "species": None, "verified_by": "anna",
                        "verified_at": "2026-11-26T18:02:11.400Z"}
        again = new.add_verification(first, "leopard", "leopard", "boris", at=T0 + 2 * 86400)
        assert again["id"] > made["id"] and new.verifications(first) == [made, again]
        assert new.detection(first)["verification"] == {k: again[k] for k in ("id", "tag", "species",
                                                                               "verified_by", "verified_at")}
        assert new.detection(first)["tag"] == "leopard" and new.detection(first)["payload"] == stored[0]
        with pytest.raises(StorageError, match="verification of event 'no-such-event'"):
            new.add_verification("no-such-event", "blank", None, "anna")


def test_counts_and_the_diel_chart_leave_out_a_detection_dated_9999(night):
    from tests.collector_data import store_as_an_old_collector_did, stored_hostile_detections
    db, _ = night
    before = (db.counts_by_species(), db.diel_activity("Asia/Vladivostok"), db.diel_activity("Europe/Berlin"))
    payload, text = stored_hostile_detections(db.dialect.name)["dated 9999"]
    store_as_an_old_collector_did(db, payload, text)
    assert db.count_outside_window() == 1 and db.count_outside_window(station="bars-03") == 0
    assert (db.counts_by_species(), db.diel_activity("Asia/Vladivostok"), db.diel_activity("Europe/Berlin")) == before
