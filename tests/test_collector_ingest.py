"""The collector's MQTT ingest against a real Mosquitto and real SQLite/PostgreSQL databases.

Stations are stood in for by a plain paho client publishing real feed payloads (built by
the station's own message builders). Collectors run in this process (``Ingest``) or, when
a test kills one, as ``station collector`` subprocesses.
"""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from station.collector.db import Database
from station.collector.ingest import Ingest
from station.collector.intake import admit
from station.collector.thumbnails import ThumbnailStore
from station.config.collector import parse_collector_config
from station.feed import messages as m
from station.feed.topics import Topics
from tests.broker import make_broker, tls_files  # noqa: F401 (fixture)
from tests.collector_data import (T0, _postgres_admin, db_url, detection, health,  # noqa: F401 (fixtures)
                                  pg_url, pytest_generate_tests, status)

REPO = Path(__file__).resolve().parent.parent
PREFIX = "camtrap/v1"


# -- helpers -------------------------------------------------------------------------

class Stations:
    """A paho client publishing as any station (the test broker has no ACL)."""

    def __init__(self, broker, client_id: str = "test-stations"):
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes | str | dict, qos: int = 1, retain: bool = False):
        if isinstance(payload, dict):
            payload = m.encode(payload)
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    def publish_all(self, items, timeout: float = 60.0) -> None:
        infos = [self.publish(t, p) for t, p in items]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            assert info.is_published(), "the broker did not acknowledge a station's publish"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def topic(station_id: str, kind: str) -> str:
    return Topics(station_id, PREFIX).of(kind)


def thumbnail_payload(det: dict, colour: int = 90) -> dict:
    pixels = np.full((120, 160, 3), colour, np.uint8)
    cv2.circle(pixels, (80, 60), 30, (20, 120, 200), -1)
    jpeg = m.make_thumbnail(pixels)
    return m.thumbnail_message(det["event_id"], jpeg, station_id=det["station_id"], sent_at=T0 + 6)


def collector_cfg(broker, db_url: str, data_dir: Path, **mqtt_keys):
    return parse_collector_config({
        "collector": {"id": mqtt_keys.pop("collector_id", "test"), "data_dir": str(data_dir),
                      "database_url": db_url},
        "mqtt": {"host": broker.host, "port": broker.port, **mqtt_keys},
        "http": {"enabled": False}})


def wait_until(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def count(url: str) -> int:
    with Database.open(url) as db:
        return db.count_detections()


@pytest.fixture
def broker(tmp_path):
    b = make_broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def stations(broker):
    s = Stations(broker)
    yield s
    s.close()


@pytest.fixture
def ingest_factory(broker, tmp_path):
    made = []

    def make(db_url: str, **mqtt_keys) -> Ingest:
        cfg = collector_cfg(broker, db_url, tmp_path / "collector", **mqtt_keys)
        url = cfg.collector.sqlite_resolved_url()
        ingest = Ingest(cfg, lambda: Database.open(url)).start()
        made.append(ingest)
        assert ingest.wait_subscribed(10), "the collector never subscribed"
        return ingest

    yield make
    for ingest in made:
        ingest.stop()


# -- pure intake -----------------------------------------------------------------------

def test_intake_names_what_is_wrong_with_each_bad_message():
    good = detection(T0)
    t = topic("lazovsky-07", "detection")
    cases = {
        "not_json": (t, b"{not json"),
        "not_object": (t, b"[1, 2]"),
        "unknown_schema": (t, m.encode({**good, "schema": "sighting/1"})),
        "unknown_version": (t, m.encode({**good, "schema": "detection/2"})),
        "kind_mismatch": (topic("lazovsky-07", "health"), m.encode(good)),
        "station_mismatch": (topic("kedrovaya-pad-02", "detection"), m.encode(good)),
        "invalid": (t, m.encode({**good, "confidence": "high"})),
        "too_large": (t, m.encode({**good, "extra": {"pad": "x" * 600_000}})),
        "bad_topic": ("camtrap/v1/lazovsky-07/command/snapshot", m.encode(good)),
    }
    for reason, (tp, payload) in cases.items():
        verdict = admit(tp, payload, prefix=PREFIX, max_bytes=512 * 1024)
        assert getattr(verdict, "reason", None) == reason, (reason, verdict)
        assert verdict.detail
    wrong_type = admit(t, m.encode({**good, "confidence": "high"}), prefix=PREFIX, max_bytes=512 * 1024)
    assert "confidence" in wrong_type.detail
    mismatch = admit(topic("kedrovaya-pad-02", "detection"), m.encode(good), prefix=PREFIX, max_bytes=10**6)
    assert "station_id" in mismatch.detail and "kedrovaya-pad-02" in mismatch.detail
    assert admit(t, m.encode(good), prefix=PREFIX, max_bytes=512 * 1024).kind == "detection"


def _text_of(msg: dict) -> str:
    return m.encode(msg).decode()


def _swap(text: str, old: str, new: str) -> bytes:
    assert text.count(old) >= 1, old
    return text.replace(old, new, 1).encode()


def _failed_detection() -> dict:
    return detection(T0, "unknown", failed=True)


# (what a hostile or broken station sends, the payload, the reason, words in the detail)
_GOOD = _text_of(detection(T0))
_FAILED = _text_of(_failed_detection())
STRICT_JSON_CASES = [
    ("NaN as a duration", _swap(_GOOD, '"duration_s":1.5', '"duration_s":NaN'), "not_json", "NaN"),
    ("Infinity as a camera height", _swap(_GOOD, '"height_m":0.8', '"height_m":Infinity'), "not_json", "Infinity"),
    ("-Infinity as a tilt", _swap(_GOOD, '"tilt_deg":null', '"tilt_deg":-Infinity'), "not_json", "-Infinity"),
    ("1e309 as an uncertainty", _swap(_GOOD, '"coordinate_uncertainty_m":null', '"coordinate_uncertainty_m":1e309'),
     "not_json", "too large for a double"),
    ("a 400-digit integer", _swap(_GOOD, '"coordinate_uncertainty_m":null',
                                  '"coordinate_uncertainty_m":' + "9" * 400), "not_json", "too large for a double"),
    ("a lone surrogate in the error", _swap(_FAILED, '"classification_error":"', '"classification_error":"\\ud800'),
     "not_json", "classification_error"),
    ("a lone surrogate in a top-k label", _swap(_GOOD, '"label":"leopard","tag"', '"label":"\\udc00x","tag"'),
     "not_json", "top_k[0].label"),
    ("a lone surrogate in the region", _swap(_GOOD, '"region":"russian_far_east"', '"region":"\\ud83d"'),
     "not_json", "taxonomy.region"),
    ("a lone surrogate in a key", _swap(_GOOD, '{"schema"', '{"\\udfff":1,"schema"'), "not_json", "a key"),
    ("NUL in the label", _swap(_GOOD, '"label":"leopard","confidence"', '"label":"leo\\u0000pard","confidence"'),
     "invalid", "label"),
    ("NUL in a key of extra", _swap(_GOOD, '"sent_at"', '"extra":{"a\\u0000b":1},"sent_at"'), "invalid", "extra"),
]
STRICT_JSON_FINE = [
    ("a surrogate pair (an emoji) in the region", _swap(_GOOD, '"region":"russian_far_east"',
                                                        '"region":"far east \\ud83d\\udc06"')),
    ("a backslash before u0000 in the region (no NUL)", _swap(_GOOD, '"region":"russian_far_east"',
                                                             '"region":"c:\\\\u0000"')),
]


@pytest.mark.parametrize("what, payload, reason, words", STRICT_JSON_CASES, ids=[c[0] for c in STRICT_JSON_CASES])
def test_a_number_or_text_no_consumer_can_read_alike_is_refused_at_the_door(what, payload, reason, words):
    verdict = admit(topic("lazovsky-07", "detection"), payload, prefix=PREFIX, max_bytes=512 * 1024)
    assert getattr(verdict, "reason", None) == reason, verdict
    assert words in verdict.detail
    verdict.detail.encode("utf-8")  # the detail itself is clean text for the log and the database


@pytest.mark.parametrize("what, payload", STRICT_JSON_FINE, ids=[c[0] for c in STRICT_JSON_FINE])
def test_unicode_that_is_real_text_is_accepted(what, payload):
    assert admit(topic("lazovsky-07", "detection"), payload, prefix=PREFIX, max_bytes=512 * 1024).kind == "detection"


def _with(msg: dict, **changes) -> dict:
    out = dict(msg)
    for key, value in changes.items():
        out[key] = value
    return out


def _impossible_times() -> list[tuple[str, dict, str, str]]:
    d = detection(T0)  # start 18:02:11.400, trigger 18:02:12.400, end 18:02:12.900, frames every 0.5 s
    late_frames = [dict(f) for f in d["frames"]]
    late_frames[-1]["time"] = "2026-11-25T18:02:14.000Z"
    early_frames = [dict(f) for f in d["frames"]]
    early_frames[0]["time"] = "2026-11-25T18:02:11.000Z"
    feb = [dict(f) for f in d["frames"]]
    feb[1]["time"] = "2026-02-31T18:02:11.900Z"
    return [
        ("31 February", _with(d, start="2026-02-31T18:02:11.400Z"), "start", "day is out of range"),
        ("29 February of 2025", _with(d, sent_at="2025-02-29T00:00:00.000Z"), "sent_at", "day is out of range"),
        ("second 60 in the trigger", _with(d, trigger="2026-11-25T18:02:60.000Z"), "trigger", "does not match"),
        ("year 0000", _with(d, end="0000-11-25T18:02:12.900Z"), "end", "does not match"),
        ("year 9999", _with(d, sent_at="9999-12-31T23:59:59.999Z"), "sent_at", "does not match"),
        ("year 1999", _with(d, sent_at="1999-12-31T23:59:59.999Z"), "sent_at", "does not match"),
        ("the end before the start", _with(d, end="2026-11-25T18:02:10.000Z", trigger="2026-11-25T18:02:10.000Z"),
         "end", "before start"),
        ("a trigger after the end", _with(d, trigger="2026-11-25T18:02:13.000Z"), "trigger", "not between"),
        ("a trigger before the start", _with(d, trigger="2026-11-25T18:02:11.000Z"), "trigger", "not between"),
        ("a duration that disagrees", _with(d, duration_s=3600), "duration_s", "end - start is 1.500 s"),
        ("a still after the end", _with(d, frames=late_frames), "frames[3].time", "outside the event"),
        ("a still before the start", _with(d, frames=early_frames), "frames[0].time", "outside the event"),
        ("a still on 31 February", _with(d, frames=feb), "frames[1].time", "day is out of range"),
        ("a status since 30 February", _with(status("online", "started", T0, T0), since="2027-02-30T00:00:00.000Z"),
         "since", "day is out of range"),
        ("a heartbeat on 31 April", _with(health(T0), sent_at="2027-04-31T00:00:00.000Z"), "sent_at",
         "day is out of range"),
    ]


@pytest.mark.parametrize("what, msg, field, words", _impossible_times(), ids=[c[0] for c in _impossible_times()])
def test_an_impossible_time_or_times_that_disagree_are_invalid_naming_the_field(what, msg, field, words):
    kind = msg["schema"].split("/")[0]
    verdict = admit(topic("lazovsky-07", kind), m.encode(msg), prefix=PREFIX, max_bytes=512 * 1024)
    assert getattr(verdict, "reason", None) == "invalid", verdict
    assert f"field {field}:" in verdict.detail and words in verdict.detail, verdict.detail


def test_times_cut_to_milliseconds_still_agree_within_the_stated_tolerance():
    d = detection(T0 + 0.0006)  # every time cut to the millisecond, duration_s rounded: they differ by < 1 ms
    assert admit(topic("lazovsky-07", "detection"), m.encode(d), prefix=PREFIX, max_bytes=10**6).kind == "detection"
    off = _with(d, duration_s=d["duration_s"] + 0.009)  # within 0.01 s
    assert admit(topic("lazovsky-07", "detection"), m.encode(off), prefix=PREFIX, max_bytes=10**6).kind == "detection"


def test_extra_is_bounded_in_size_and_depth():
    t = topic("lazovsky-07", "detection")
    fits = detection(T0) | {"extra": {"note": "x" * 8000, "deep": json_nest(6)}}
    assert admit(t, m.encode(fits), prefix=PREFIX, max_bytes=10**6).kind == "detection"
    for extra, words in [({"blob": "x" * 400_000}, "at most 8192"), ({"deep": json_nest(8)}, "more than 8 levels")]:
        verdict = admit(t, m.encode(detection(T0) | {"extra": extra}), prefix=PREFIX, max_bytes=10**6)
        assert getattr(verdict, "reason", None) == "invalid" and "field extra:" in verdict.detail, verdict
        assert words in verdict.detail


# -- in-process collector ----------------------------------------------------------------

def test_detections_status_health_and_thumbnails_from_many_stations_are_stored_once(
        db_url, broker, stations, ingest_factory, tmp_path):
    ingest = ingest_factory(db_url)
    dets = [detection(T0 + 60 * k, station_id=f"station-{k % 3}", deployment_id=f"dep-{k % 3}")
            for k in range(30)]
    items = [(topic(d["station_id"], "detection"), d) for d in dets]
    items += [(topic(d["station_id"], "thumbnail"), thumbnail_payload(d, 40 + k)) for k, d in enumerate(dets[:5])]
    items += [(topic(f"station-{k}", "status"), status("online", "started", T0, station_id=f"station-{k}"))
              for k in range(3)]
    items += [(topic("station-0", "health"), health(T0 + 30, station_id="station-0"))]
    # QoS 1 is at-least-once: a station resending after an outage sends the same messages again.
    items += items[:10]
    stations.publish_all(items)
    wait_until(lambda: ingest.counters["acked"] >= len(items) - 1, what="every message acknowledged")
    with Database.open(db_url) as db:
        assert db.count_detections() == 30
        stored = {r["event_id"] for r in db.query_detections(limit=100)}
        assert stored == {d["event_id"] for d in dets}
        by_id = {s["station_id"]: s for s in db.stations()}
        assert set(by_id) == {"station-0", "station-1", "station-2"}
        assert all(s["status_state"] == "online" for s in by_id.values())
        assert by_id["station-0"]["health"]["disk"]["free_mb"] == 51000.0
        row = db.thumbnail(dets[0]["event_id"])
    assert ingest.counters["duplicates"] == 10
    assert ingest.counters["stored"] == 30 and ingest.counters["thumbnails"] == 5
    assert ingest.counters["rejected"] == 0
    # The file name is the collector's own (content hash), not anything from the payload.
    store = ThumbnailStore(tmp_path / "collector" / "thumbnails")
    path = store.path(row["file"])
    assert dets[0]["event_id"] not in row["file"] and "lazovsky" not in row["file"]
    jpeg = path.read_bytes()
    assert m.jpeg_size(jpeg) == (row["width"], row["height"]) == (160, 120)
    # The file is the collector's own encoding of the picture, not the station's bytes.
    sent = base64.b64decode(thumbnail_payload(dets[0], 40)["data"])
    assert jpeg != sent
    decoded = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR).astype(float) for b in (jpeg, sent)]
    assert np.abs(decoded[0] - decoded[1]).mean() < 2.0
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)  # readable by the collector's user only


def test_bad_messages_are_rejected_counted_and_the_collector_keeps_storing(
        db_url, broker, stations, ingest_factory):
    ingest = ingest_factory(db_url)
    good = detection(T0)
    t = topic("lazovsky-07", "detection")
    thumb = thumbnail_payload(good)
    exif_jpeg = base64.b64decode(thumb["data"])
    exif_jpeg = exif_jpeg[:2] + b"\xff\xe1\x00\x10Exif\x00\x00GPS-here" + exif_jpeg[2:]
    with_exif = {**thumb, "data": base64.b64encode(exif_jpeg).decode(), "bytes": len(exif_jpeg)}
    bad = [
        (t, b"\x00\xff garbage"),
        (t, b'{"schema": "detection/1", "station_id": "lazovsky-07"'),
        (t, m.encode({**good, "confidence": "0.9"})),
        (t, m.encode({**good, "schema": "detection/7"})),
        (t, m.encode({**good, "extra": {"pad": "y" * 700_000}})),
        (topic("kedrovaya-pad-02", "detection"), m.encode(good)),
        (topic("lazovsky-07", "thumbnail"), m.encode(with_exif)),
    ]
    after = detection(T0 + 600, tag="tiger", species="tiger")
    stations.publish_all(bad + [(t, after)])
    wait_until(lambda: ingest.counters["acked"] >= len(bad) + 1, what="all messages handled")
    assert ingest.rejected == {"not_json": 2, "invalid": 1, "unknown_version": 1, "too_large": 1,
                               "station_mismatch": 1, "bad_thumbnail": 1}
    with Database.open(db_url) as db:
        assert [r["event_id"] for r in db.query_detections()] == [after["event_id"]]
        assert db.thumbnail(good["event_id"]) is None
        counts = {(r["reason"], r["station_id"]): r["count"] for r in db.rejections()}
        assert counts[("not_json", "lazovsky-07")] == 2
        assert counts[("station_mismatch", "kedrovaya-pad-02")] == 1
        assert "confidence" in next(r["last_detail"] for r in db.rejections() if r["reason"] == "invalid")
    assert ingest.connected


def _thumbnail_with(det: dict, jpeg: bytes) -> dict:
    thumb = thumbnail_payload(det)
    return thumb | {"data": base64.b64encode(jpeg).decode(), "bytes": len(jpeg)}


def test_metadata_anywhere_in_a_thumbnail_or_bytes_after_its_end_are_refused(db_url, broker, stations,
                                                                              ingest_factory, tmp_path):
    ingest = ingest_factory(db_url)
    dets = [detection(T0 + k) for k in range(5)]
    clean = base64.b64decode(thumbnail_payload(dets[0])["data"])
    eoi = len(clean) - 2
    gps_exif = b"\xff\xe1\x00\x1aExif\x00\x00GPS 43.2412N 133.8857E"
    hostile = {
        "EXIF after the scan": clean[:eoi] + gps_exif + clean[eoi:],
        "a comment after the scan": clean[:eoi] + b"\xff\xfe\x00\x0eGPS 43.2412N" + clean[eoi:],
        "bytes after the end": clean + b"GPS 43.2412N",
        "EXIF before the frame": clean[:2] + gps_exif + clean[2:],
    }
    t = topic("lazovsky-07", "thumbnail")
    items = [(topic("lazovsky-07", "detection"), d) for d in dets]
    items += [(t, _thumbnail_with(d, jpeg)) for d, jpeg in zip(dets, hostile.values())]
    items += [(t, thumbnail_payload(dets[4]))]
    stations.publish_all(items)
    wait_until(lambda: ingest.counters["acked"] >= len(items), what="every message handled")
    assert ingest.rejected == {"bad_thumbnail": 4}
    with Database.open(db_url) as db:
        assert [db.thumbnail(d["event_id"]) is not None for d in dets] == [False] * 4 + [True]
    stored = list((tmp_path / "collector" / "thumbnails").rglob("*.jpg"))
    assert len(stored) == 1 and b"GPS" not in stored[0].read_bytes()


def test_a_message_the_database_refuses_is_rejected_alone(db_url, broker, stations, ingest_factory):
    url = db_url
    ingest = ingest_factory(url)
    with Database.open(url) as db:  # the database itself refuses one label (a rule of its own)
        if db.dialect.name == "postgresql":
            db._exec("ALTER TABLE detections ADD CONSTRAINT no_poison CHECK (label <> 'poison ivy')")
        else:
            db._exec("CREATE TRIGGER no_poison BEFORE INSERT ON detections WHEN NEW.label = 'poison ivy' "
                     "BEGIN SELECT RAISE(ABORT, 'no poison here'); END")
    ok = [detection(T0 + k) for k in range(5)]
    poison = detection(T0 + 100, "other_animal", "poison ivy")  # valid: only the database says no
    stations.publish_all([(topic("lazovsky-07", "detection"), d) for d in ok[:2] + [poison] + ok[2:]])
    wait_until(lambda: ingest.counters["acked"] >= 6, what="all messages handled")
    assert count(url) == 5
    assert ingest.rejected == {"storage_refused": 1}


def test_the_statuses_counter_counts_only_statuses_the_database_kept(db_url, broker, stations, ingest_factory):
    ingest = ingest_factory(db_url)
    with Database.open(db_url) as db:
        if db.dialect.name == "postgresql":
            db._exec("ALTER TABLE stations ADD CONSTRAINT no_beta CHECK (software_version <> '0.0.0-beta')")
        else:
            db._exec("CREATE TRIGGER no_beta BEFORE UPDATE ON stations WHEN NEW.software_version = '0.0.0-beta' "
                     "BEGIN SELECT RAISE(ABORT, 'no beta here'); END")
    kept = status("online", "started", T0, T0)
    refused = m.status_message("kedrovaya-01", "online", "started", T0, software_version="0.0.0-beta", sent_at=T0)
    stations.publish_all([(topic("lazovsky-07", "status"), kept), (topic("kedrovaya-01", "status"), refused)])
    wait_until(lambda: ingest.counters["acked"] >= 2, what="both statuses handled")
    assert ingest.rejected == {"storage_refused": 1}
    assert ingest.counters["statuses"] == 1


def test_a_nul_character_is_refused_alike_on_both_engines(db_url, broker, stations, ingest_factory):
    """PostgreSQL cannot store NUL and SQLite can: the collector refuses it at the door, so
    the same message is treated the same on both (and named: invalid, with its field)."""
    ingest = ingest_factory(db_url)
    t = topic("lazovsky-07", "detection")
    poisoned = [detection(T0 + 1) | {"label": "leop\u0000ard"},
                detection(T0 + 2) | {"extra": {"n\u0000": 1}},
                {**detection(T0 + 3), "taxonomy": {"region": "far\u0000east"}}]
    ok = detection(T0 + 4)
    stations.publish_all([(t, d) for d in poisoned] + [(t, ok)])
    wait_until(lambda: ingest.counters["acked"] >= 4, what="all messages handled")
    assert ingest.rejected == {"invalid": 3}
    with Database.open(db_url) as db:
        assert [r["event_id"] for r in db.query_detections()] == [ok["event_id"]]
        details = [r["last_detail"] for r in db.rejections()]
    assert "taxonomy.region" in details[0] and "NUL" in details[0]


def test_database_connection_dropped_mid_stream_loses_nothing(pg_url, broker, stations, ingest_factory):
    admin = _postgres_admin()
    url = f"{pg_url}&application_name=collector-under-test"
    ingest = ingest_factory(url)
    dets = [detection(T0 + k) for k in range(400)]
    t = topic("lazovsky-07", "detection")
    infos = [stations.publish(t, d) for d in dets[:200]]
    wait_until(lambda: ingest.counters["stored"] > 0, what="first rows")
    killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE application_name = 'collector-under-test'").fetchall()
    assert killed, "the collector's connection was not found"
    infos += [stations.publish(t, d) for d in dets[200:]]
    for info in infos:
        info.wait_for_publish(30)
    wait_until(lambda: count(url) == 400, timeout=60, what="all 400 detections stored")
    admin.close()
    assert ingest.counters["database_errors"] >= 1


# -- collectors as processes: killed mid-stream, and two sharing the load ----------------

def write_config(path: Path, broker, db_url: str, data_dir: Path, collector_id: str,
                 shared_group: str | None = None) -> Path:
    lines = ["[collector]", f'id = "{collector_id}"', f'data_dir = "{data_dir}"', f'database_url = "{db_url}"',
             "batch_max = 50", "", "[mqtt]", f'host = "{broker.host}"', f"port = {broker.port}",
             "receive_maximum = 50"]
    if shared_group:
        lines.append(f'shared_group = "{shared_group}"')
    lines += ["", "[http]", "enabled = false"]
    path.write_text("\n".join(lines) + "\n")
    return path


class CollectorProcess:
    def __init__(self, config: Path, log: Path):
        self.config, self.log = config, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "CollectorProcess":
        start_at = self.log.stat().st_size if self.log.exists() else 0
        self.proc = subprocess.Popen([sys.executable, "-m", "station.cli", "collector", "--config",
                                      str(self.config), "--no-http"], cwd=REPO,
                                     stdout=subprocess.DEVNULL, stderr=self.log.open("ab"))
        def subscribed() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the collector exited ({self.proc.returncode}):\n"
                                     + self.log.read_text()[start_at:][-3000:])
            return "collector subscribed" in self.log.read_text()[start_at:]

        wait_until(subscribed, timeout=30, what=f"{self.config.name} to subscribe")
        return self

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(20)
        return self.proc.returncode if self.proc else 0


def stored_counts(log: Path) -> int:
    """Rows this collector says it stored (from its final 'ingest stopped' line)."""
    for line in reversed(log.read_text().splitlines()):
        if "collector ingest stopped" in line:
            for field in line.split():
                if field.startswith("stored="):
                    return int(field.split("=", 1)[1])
    return 0


@pytest.mark.slow
def test_a_collector_killed_mid_stream_loses_nothing(db_url, broker, stations, tmp_path):
    cfg = write_config(tmp_path / "collector.toml", broker, db_url, tmp_path / "data", "solo")
    collector = CollectorProcess(cfg, tmp_path / "collector.log").start()
    dets = [detection(T0 + k * 0.5) for k in range(1500)]
    t = topic("lazovsky-07", "detection")
    infos = [stations.publish(t, d) for d in dets]
    url = parse_collector_config({"collector": {"data_dir": str(tmp_path / "data"),
                                                "database_url": db_url}}).collector.sqlite_resolved_url()
    wait_until(lambda: count(url) >= 200, what="the collector to be busy storing")
    collector.kill()
    at_kill = count(url)
    assert at_kill < 1500, "the stream was over before the kill; the test proves nothing"
    for info in infos:
        info.wait_for_publish(30)
    collector.start()
    wait_until(lambda: count(url) == 1500, timeout=60, what="all 1500 detections after the restart")
    time.sleep(0.5)
    assert collector.stop() == 0
    with Database.open(url) as db:
        assert {r["event_id"] for r in db.iter_detections()} == {d["event_id"] for d in dets}


@pytest.mark.slow
def test_two_collectors_share_the_load_on_postgresql_and_one_can_die(pg_url, broker, stations, tmp_path):
    url = pg_url
    a = CollectorProcess(write_config(tmp_path / "a.toml", broker, url, tmp_path / "a", "a", "collectors"),
                         tmp_path / "a.log").start()
    b = CollectorProcess(write_config(tmp_path / "b.toml", broker, url, tmp_path / "b", "b", "collectors"),
                         tmp_path / "b.log").start()
    try:
        dets = [detection(T0 + k * 0.5, station_id=f"station-{k % 7}") for k in range(3000)]
        infos = []
        for k, d in enumerate(dets):
            infos.append(stations.publish(topic(d["station_id"], "detection"), d))
            if k == 1000:
                wait_until(lambda: count(url) >= 300, what="both collectors busy")
                a.kill()
        for info in infos:
            info.wait_for_publish(60)
        # b keeps storing its share; a's unacknowledged messages wait in its session on the broker.
        a.start()
        wait_until(lambda: count(url) == 3000, timeout=90, what="all 3000 detections")
        time.sleep(0.5)
    finally:
        assert b.stop() == 0
        assert a.stop() == 0
    with Database.open(url) as db:
        ids = [r["event_id"] for r in db.iter_detections()]
    assert len(ids) == len(set(ids)) == 3000
    assert set(ids) == {d["event_id"] for d in dets}
    # Each collector took a real share (a's count is since its restart).
    assert stored_counts(tmp_path / "b.log") > 300
    assert stored_counts(tmp_path / "a.log") > 0


# -- hostile and unlucky input (found in review) -----------------------------------------

def test_hostile_payloads_are_rejected_without_holding_up_their_neighbours(db_url, broker, stations, ingest_factory):
    ingest = ingest_factory(db_url)
    t = topic("lazovsky-07", "detection")
    good = [detection(T0 + k) for k in range(4)]
    huge_int = m.encode(good[0])[:-1] + b', "n": ' + b"9" * 5000 + b"}"
    deep = m.encode({**detection(T0 + 50), "extra": {"x": json_nest(200)}})
    odd_keys = [{**detection(T0 + 60), "le\u0000opard": 1}, {**detection(T0 + 61), "\ud800": 1}]
    items = [(t, good[0]), (t, huge_int), (t, good[1]), (t, deep), (t, good[2])]
    items += [(t, _dumps(k)) for k in odd_keys]
    items += [(t, good[3])]
    stations.publish_all(items)
    wait_until(lambda: ingest.counters["acked"] >= len(items), what="every message acknowledged")
    assert count(db_url) == 4
    assert ingest.rejected == {"not_json": 2, "invalid": 2}
    assert ingest.counters.get("writer_errors", 0) == 0
    with Database.open(db_url) as db:
        assert sum(r["count"] for r in db.rejections()) == 4


def json_nest(depth: int):
    node: object = 1
    for _ in range(depth):
        node = [node]
    return node


def _dumps(payload: dict) -> bytes:
    import json
    return json.dumps(payload, ensure_ascii=True).encode()  # lone surrogates survive as \ud800 escapes


def test_a_locked_database_delays_storage_but_rejects_nothing(pg_url, broker, stations, ingest_factory):
    ingest = ingest_factory(f"{pg_url}%20-clock_timeout%3D300")
    with Database.open(pg_url) as db:
        db.migrate()
    admin = _postgres_admin()
    schema = pg_url.split("search_path%3D", 1)[1]
    t = topic("lazovsky-07", "detection")
    dets = [detection(T0 + k) for k in range(5)]
    with admin.transaction():
        admin.execute(f'LOCK TABLE "{schema}".detections IN ACCESS EXCLUSIVE MODE')
        stations.publish_all([(t, d) for d in dets])
        wait_until(lambda: ingest.counters["database_errors"] >= 1, what="the collector to meet the lock")
        time.sleep(1.0)
    admin.close()
    wait_until(lambda: count(pg_url) == 5, what="all five stored once the lock is gone")
    assert ingest.rejected == {}


def test_a_broker_certificate_the_collector_does_not_trust_is_logged_naming_mqtt_ca_file(tmp_path, tls_files,
                                                                                          caplog):
    """The same sentence the station's feed and selftest give: the key to fix comes first."""
    tls_broker = make_broker(tmp_path / "tls-broker", tls=tls_files.broker_side()).start()
    try:
        cfg = parse_collector_config({
            "collector": {"id": "test", "data_dir": str(tmp_path / "col"),
                          "database_url": f"sqlite:///{tmp_path}/col.sqlite3"},
            "mqtt": {"host": tls_broker.host, "port": tls_broker.tls_port, "tls": True,
                     "ca_file": str(tls_files.other_ca)},
            "http": {"enabled": False}})
        ingest = Ingest(cfg, lambda: Database.open(cfg.collector.sqlite_resolved_url())).start()
        try:
            wait_until(lambda: (ingest.stats()["last_error"] or "").startswith("mqtt.ca_file: "),
                       what="the refused certificate reported")
            assert "not trusted" in ingest.stats()["last_error"] and not ingest.connected
            assert any(r.getMessage().startswith("mqtt.ca_file: ") for r in caplog.records)
        finally:
            ingest.stop()
    finally:
        tls_broker.stop()
