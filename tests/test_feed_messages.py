"""The MQTT feed's contract: topics, message builders, JSON Schemas, thumbnails, commands, docs."""

from __future__ import annotations

import json
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from station.classifier.classify import failed
from station.config import parse_config
from station.daemon import StationDaemon
from station.events.ids import new_event_id
from station.events.model import Event, Still
from station.events.store import EventStore
from station.events.writer import EventWriter
from station.feed import messages as m
from station.feed.schema import (KINDS, SCHEMA_DIR, PayloadError, load_schema, schema_id, validate,
                                 validate_message)
from station.feed.topics import (DELIVERY, Topics, TopicError, all_stations, check_prefix, feed_topic,
                                 parse_topic)
from station.motion.types import Box
from tests.conftest import ROOT
from tests.test_daemon import LORES, MAIN, ScriptedCamera

DOC = ROOT / "docs" / "mqtt-feed.md"
ASYNCAPI = ROOT / "docs" / "asyncapi.yaml"
T0 = 1_795_629_731.4  # 2026-11-25T18:02:11.400Z

STATION = parse_config({"station": {
    "id": "lazovsky-07", "deployment_id": "lazovsky-07-2026-autumn", "latitude": 43.2412,
    "longitude": 133.8857, "camera_height_m": 0.8, "camera_tilt_deg": -5, "camera_heading_deg": 270}}).station
MODEL = {"name": "efficientnet_lite0_imagenet/int8",
         "sha256": "25f3843f227663ded2bcca58c1d98fe103edb8e069ee6a2d8ed3f4c76622399d"}
TAXONOMY = {"file": "taxonomy_imagenet.toml", "region": "russian_far_east"}


def recorded_event(tmp_path: Path, boxes=(Box(0.1, 0.42, 0.21, 0.18),), n_stills: int = 4,
                   station_id: str = "lazovsky-07") -> tuple[EventStore, dict]:
    """An event written by the real EventWriter into a real EventStore."""
    store = EventStore(tmp_path / "data")
    writer = EventWriter(store).start()
    event = Event(id=new_event_id(T0), station_id=station_id, deployment_id="lazovsky-07-2026-autumn",
                  trigger_time=T0 + 1.0, start_time=T0, camera="picamera2")
    writer.opened(event)
    rng = np.random.default_rng(3)
    for k in range(n_stills):
        still = Still(k, T0 + 0.5 * k, tuple(boxes) if k >= 2 else (), 0.02 * k, k < 2)
        event.stills.append(still)
        writer.still(event, still, rng.integers(0, 255, (180, 320, 3), dtype=np.uint8))
    event.end_time, event.end_reason = T0 + 0.5 * n_stills, "motion_ended"
    writer.closed(event)
    writer.stop()
    return store, store.load(event.id)


def ok_classification(**overrides) -> dict:
    result = {"status": "ok", "error": None, "tag": "leopard", "species": "leopard", "label": "leopard",
              "confidence": 0.81, "top_k": [{"label": "leopard", "tag": "leopard", "p": 0.62},
                                            {"label": "jaguar", "tag": "leopard", "p": 0.12}],
              "tag_scores": {"leopard": 0.81}, "best_frame": "002.jpg", "best_box": [0.1, 0.42, 0.21, 0.18],
              "frames": ["002.jpg", "003.jpg"], "frame_errors": [], "model": MODEL, "taxonomy": TAXONOMY,
              "threshold": 0.4, "attempted_at": T0 + 9, "elapsed_ms": 96.4}
    return result | overrides


def detection(tmp_path: Path, **overrides) -> dict:
    store, record = recorded_event(tmp_path)
    record = store.update(record["id"], classification=ok_classification(**overrides))
    return m.detection_message(record, STATION, sent_at=T0 + 10)


def problem_fields(kind: str, payload: dict) -> list[str]:
    with pytest.raises(PayloadError) as err:
        validate(kind, payload)
    return [f for f, _ in err.value.problems]


# -- detections from real records ------------------------------------------------------

def test_an_event_recorded_and_classified_by_the_real_station_becomes_a_valid_detection(tmp_path):
    cfg = parse_config({
        "station": {"id": "lazovsky-07", "deployment_id": "lazovsky-07-2026-autumn",
                    "latitude": 43.2412, "longitude": 133.8857},
        "camera": {"uri": "scripted:test", "main_size": list(MAIN), "lores_size": list(LORES)},
        "events": {"post_motion_s": 1.0, "cooldown_s": 1.0},
        "storage": {"data_dir": str(tmp_path / "data"), "min_free_mb": 0},
        "classifier": {"threads": 1},
    })
    StationDaemon.build(cfg, camera=ScriptedCamera()).run()
    (record,) = EventStore(tmp_path / "data").records()
    assert record["classification"]["status"] == "ok"

    msg = m.detection_message(record, cfg.station, thumbnail=True)
    validate("detection", msg)
    assert msg["message_id"] == msg["event_id"] == record["id"]
    assert msg["tag"] == record["classification"]["tag"]
    assert msg["model"]["sha256"] == record["classification"]["model"]["sha256"]
    assert msg["frame_count"] == len(record["frames"]) == len(msg["frames"])
    assert msg["best_frame"] in {f["index"] for f in record["frames"]}
    assert msg["location"] == {"latitude": 43.2412, "longitude": 133.8857, "coordinate_uncertainty_m": None}
    assert msg["thumbnail"] is True
    assert validate_message(json.loads(m.encode(msg))) == "detection"


def test_a_leopard_detection_carries_the_classification_and_the_station_set_up(tmp_path):
    msg = detection(tmp_path)
    validate("detection", msg)
    assert (msg["tag"], msg["species"], msg["confidence"]) == ("leopard", "leopard", 0.81)
    assert msg["classification_status"] == "ok" and msg["classification_error"] is None
    assert msg["best_frame"] == 2 and msg["best_box"] == [0.1, 0.42, 0.21, 0.18]
    assert msg["frames"][0] == {"index": 0, "time": "2026-11-25T18:02:11.400Z", "boxes": [], "pre_trigger": True}
    assert msg["frames"][2]["boxes"] == [[0.1, 0.42, 0.21, 0.18]]
    assert msg["duration_s"] == 2.0
    assert msg["camera"] == {"height_m": 0.8, "heading_deg": 270, "tilt_deg": -5}
    assert msg["taxonomy"] == {"region": "russian_far_east"}
    assert msg["sent_at"] == "2026-11-25T18:02:21.400Z"
    assert "extra" not in msg


def test_an_event_the_classifier_could_not_read_is_still_reported_as_failed(tmp_path):
    store, record = recorded_event(tmp_path)
    reason = f"{store.event_dir(record['id'])}/002.jpg: cannot be read"
    record = store.update(record["id"], classification=failed(reason, MODEL, TAXONOMY, 0.4))
    msg = m.detection_message(record, STATION)
    validate("detection", msg)
    assert msg["classification_status"] == "failed" and msg["classification_error"] == reason
    assert msg["tag"] == "unknown" and msg["confidence"] is None and msg["top_k"] == []
    assert msg["best_frame"] is None and msg["best_box"] is None
    assert msg["model"] == MODEL


def test_a_model_that_never_loaded_gives_a_failed_detection_with_no_model(tmp_path):
    store, record = recorded_event(tmp_path)
    record = store.update(record["id"], classification=failed("classifier unavailable: no such file"))
    msg = m.detection_message(record, STATION)
    validate("detection", msg)
    assert msg["model"] is None and msg["taxonomy"] is None


def test_an_event_with_the_classifier_switched_off_is_reported_unclassified(tmp_path):
    _, record = recorded_event(tmp_path)
    msg = m.detection_message(record, STATION)
    validate("detection", msg)
    assert msg["classification_status"] == "failed"
    assert msg["classification_error"] == "not classified on the station"


def test_an_event_with_no_motion_boxes_and_a_whole_frame_decision_is_valid(tmp_path):
    store, record = recorded_event(tmp_path, boxes=())
    record = store.update(record["id"], classification=ok_classification(tag="blank", species=None,
                                                                         label="valley", best_box=None))
    msg = m.detection_message(record, STATION)
    validate("detection", msg)
    assert all(f["boxes"] == [] for f in msg["frames"]) and msg["best_box"] is None


def test_a_still_lost_to_a_full_card_stays_in_the_frame_list(tmp_path):
    store, record = recorded_event(tmp_path)
    record["frames"][1]["file"] = None
    record["frames"][1]["error"] = "not saved: disk low"
    record["classification"] = ok_classification()
    msg = m.detection_message(record, STATION)
    validate("detection", msg)
    assert msg["frame_count"] == 4 and [f["index"] for f in msg["frames"]] == [0, 1, 2, 3]


def test_open_events_and_events_of_another_station_are_refused_naming_why(tmp_path):
    _, record = recorded_event(tmp_path)
    with pytest.raises(m.MessageError, match="status is 'open'"):
        m.detection_message(record | {"status": "open"}, STATION)
    with pytest.raises(m.MessageError, match="not this station's id 'lazovsky-07'"):
        m.detection_message(record | {"station_id": "kedrovaya-01"}, STATION)
    with pytest.raises(m.MessageError, match="'end_timestamp'"):
        m.detection_message(record | {"end_timestamp": None}, STATION)


def test_new_fields_ride_in_extra_and_the_coordinate_uncertainty_can_be_given(tmp_path):
    store, record = recorded_event(tmp_path)
    msg = m.detection_message(record, STATION, coordinate_uncertainty_m=30,
                              extra={"end_reason": record["end_reason"], "anything": {"nested": [1]}})
    validate("detection", msg)
    assert msg["location"]["coordinate_uncertainty_m"] == 30


# -- the schemas reject what is wrong, naming the field --------------------------------

def test_a_missing_field_is_named(tmp_path):
    msg = detection(tmp_path)
    del msg["tag"]
    assert problem_fields("detection", msg) == ["tag"]


def test_a_typo_at_the_top_level_is_caught_and_the_right_key_suggested(tmp_path):
    msg = detection(tmp_path)
    msg["confidance"] = 0.9
    with pytest.raises(PayloadError) as err:
        validate("detection", msg)
    assert err.value.field == "confidance"
    assert "did you mean 'confidence'" in str(err.value) and "extra" in str(err.value)


def test_unknown_keys_inside_nested_objects_are_errors_too(tmp_path):
    msg = detection(tmp_path)
    msg["location"]["altitude"] = 310
    msg["frames"][0]["motion_score"] = 0.1
    assert problem_fields("detection", msg) == ["frames[0].motion_score", "location.altitude"]


@pytest.mark.parametrize("path, value, field", [
    (("tag",), "snow_leopard", "tag"),
    (("confidence",), 1.2, "confidence"),
    (("confidence",), "high", "confidence"),
    (("station_id",), "lazovsky/07", "station_id"),
    (("station_id",), "lazovsky-07\n", "station_id"),
    (("station_id",), "", "station_id"),
    (("event_id",), "not-a-uuid", "event_id"),
    (("start",), "2026-11-25 18:02:11", "start"),
    (("start",), "2026-11-25T18:02:11Z", "start"),
    (("best_box",), [0.1, 0.2, 0.3], "best_box"),
    (("top_k", 0, "p"), 1.5, "top_k[0].p"),
    (("frames", 2, "boxes", 0, 3), -0.1, "frames[2].boxes[0][3]"),
    (("model", "sha256"), "25f3843f…", "model.sha256"),
    (("location", "latitude"), 91, "location.latitude"),
    (("thumbnail",), "yes", "thumbnail"),
    (("schema",), "detection/2", "schema"),
])
def test_a_bad_value_is_rejected_naming_its_path(tmp_path, path, value, field):
    msg = detection(tmp_path)
    target = msg
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert field in problem_fields("detection", msg)


def test_a_failed_classification_must_not_pretend_to_a_result(tmp_path):
    msg = detection(tmp_path)
    msg["classification_status"] = "failed"
    fields = problem_fields("detection", msg)
    assert {"classification_error", "tag", "confidence"} <= set(fields)


def test_rules_no_schema_can_state_are_checked_too(tmp_path):
    msg = detection(tmp_path)
    assert problem_fields("detection", msg | {"message_id": new_event_id(T0 + 5)}) == ["message_id"]
    assert problem_fields("detection", msg | {"frame_count": 9}) == ["frame_count"]
    assert problem_fields("detection", msg | {"best_frame": 7}) == ["best_frame"]


def test_a_payload_names_its_own_schema_and_unknown_ones_are_refused():
    with pytest.raises(PayloadError) as err:
        validate_message({"schema": "sighting/1"})
    assert err.value.field == "schema"
    with pytest.raises(PayloadError, match="major version '2'"):
        validate_message({"schema": "detection/2"})
    with pytest.raises(PayloadError, match="JSON object"):
        validate_message(["detection/1"])
    with pytest.raises(PayloadError, match="unknown message kind"):
        validate("sighting", {})


def test_each_schema_file_is_strict_and_named_after_its_messages_schema_field():
    shared: dict[str, dict] = {}
    for kind in KINDS:
        schema = load_schema(kind)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == schema_id(kind) == f"https://camtrap-station.example/schemas/{kind}/1"
        assert schema["properties"]["schema"]["const"] == f"{kind}/1"
        assert schema["additionalProperties"] is False
        assert "extra" in schema["properties"] and "extra" not in schema["required"]
        for name, definition in schema["$defs"].items():
            assert shared.setdefault(name, definition) == definition, f"{kind}: $defs.{name} differs"
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(f"{k}.schema.json" for k in KINDS)


def test_the_health_keys_agree_with_the_schema():  # the tags: tests/test_vocabulary.py
    health = load_schema("health")["properties"]
    for section, keys in m.HEALTH_SECTIONS.items():
        assert tuple(health[section]["properties"]) == keys


# -- status and the will ---------------------------------------------------------------

def test_the_online_status_and_the_will_are_valid_and_the_will_has_no_sent_at():
    online = m.status_message("lazovsky-07", "online", "started", T0, sent_at=T0)
    validate("status", online)
    assert online["sent_at"] == online["since"] == "2026-11-25T18:02:11.400Z"
    will = m.will_message("lazovsky-07", connected_at=T0)
    validate("status", will)
    assert (will["state"], will["reason"]) == ("offline", "connection_lost") and "sent_at" not in will
    validate("status", m.status_message("lazovsky-07", "offline", "stopping", T0 + 60))


def test_a_state_and_reason_that_contradict_each_other_are_refused():
    with pytest.raises(m.MessageError, match="does not go with state 'online'"):
        m.status_message("lazovsky-07", "online", "connection_lost", T0)
    bad = m.status_message("lazovsky-07", "online", "started", T0) | {"reason": "stopping"}
    assert problem_fields("status", bad) == ["reason"]


# -- health ----------------------------------------------------------------------------

@dataclass
class OutboxStats:
    depth: int = 3
    detections: int = 2
    thumbnails: int = 1
    oldest_age_s: float | None = 12.5
    bytes: int = 4100
    cap_mb: float = 64.0
    full: bool = False
    thumbnails_dropped: int = 0
    detections_dropped: int = 0
    path: str = "/var/lib/station/outbox.sqlite"  # not part of the message


def health(**overrides) -> dict:
    args = dict(uptime_s=3600.04, cpu_temperature_c=None, load=(0.5, 0.4, 0.3),
                memory={"total_mb": 3794, "available_mb": 2900.5, "process_rss_mb": 140.2},
                disk={"free_mb": 51000.0, "store_mb": 800.0, "low": False}, outbox=OutboxStats(),
                camera={"state": "ok", "uri": "rtsp://admin:hunter2@10.0.0.5:554/live?token=abc&ch=1",
                        "fps": 9.8, "failures": 1},
                events={"total": 12, "pending_classification": 1},
                clock={"synchronized": None, "source": None, "offset_s": None}, sent_at=T0)
    return m.health_message("lazovsky-07", **(args | overrides))


def test_a_heartbeat_from_a_board_without_a_temperature_sensor_is_valid():
    msg = health()
    validate("health", msg)
    assert msg["cpu_temperature_c"] is None and msg["outbox"]["depth"] == 3
    assert "path" not in msg["outbox"]


def test_camera_credentials_never_reach_the_feed():
    uri = health()["camera"]["uri"]
    assert "hunter2" not in uri and "admin" not in uri and "abc" not in uri
    assert uri == "rtsp://***@10.0.0.5:554/live?token=***&ch=1"
    assert m.redact_uri("picamera2") == "picamera2" and m.redact_uri(None) is None


def test_a_health_section_missing_a_key_is_named():
    with pytest.raises(m.MessageError, match=r"outbox\.depth"):
        health(outbox={"detections": 0})
    with pytest.raises(m.MessageError, match="15 minute"):
        health(load=(0.1, 0.2))
    bad = health()
    bad["camera"]["state"] = "broken"
    assert problem_fields("health", bad) == ["camera.state"]


# -- thumbnails ------------------------------------------------------------------------

def app_markers(jpeg: bytes) -> set[int]:
    pos, markers = 2, set()
    while pos < len(jpeg) and jpeg[pos + 1] != 0xDA:
        markers.add(jpeg[pos + 1])
        pos += 2 + int.from_bytes(jpeg[pos + 2:pos + 4], "big")
    return {mk for mk in markers if 0xE0 <= mk <= 0xEF or mk == 0xFE}


def with_exif(jpeg: bytes) -> bytes:
    """The same JPEG with an APP1 EXIF segment (as a phone or trail camera writes one)."""
    body = b"Exif\x00\x00" + b"MM\x00*\x00\x00\x00\x08" + b"GPS 43.2412N 133.8857E" * 4
    return jpeg[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + jpeg[2:]


def test_a_full_resolution_still_becomes_a_thumbnail_under_the_cap_with_no_metadata(tmp_path):
    noisy = np.random.default_rng(1).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 95])
    path = tmp_path / "still.jpg"
    path.write_bytes(with_exif(buf.tobytes()))
    assert 0xE1 in app_markers(path.read_bytes())

    jpeg = m.make_thumbnail(path, max_bytes=24 * 1024, max_side=320)
    assert jpeg is not None and len(jpeg) <= 24 * 1024
    assert app_markers(jpeg) <= {0xE0}, "only the JFIF header; no EXIF/XMP (APP1), no comments"
    assert b"GPS" not in jpeg
    width, height = m.jpeg_size(jpeg)
    assert max(width, height) <= 320 and abs(width / height - 16 / 9) < 0.05

    msg = m.thumbnail_message(new_event_id(T0), jpeg, station_id="lazovsky-07", sent_at=T0)
    validate("thumbnail", msg)
    assert msg["message_id"] == msg["event_id"] + ":thumb" and msg["bytes"] == len(jpeg)
    assert (msg["width"], msg["height"]) == (width, height)


def test_a_tight_cap_shrinks_the_picture_and_an_impossible_one_gives_none():
    smooth = cv2.GaussianBlur(np.random.default_rng(2).integers(0, 255, (720, 1280, 3), dtype=np.uint8), (0, 0), 3)
    small = m.make_thumbnail(smooth, max_bytes=3000)
    assert small is not None and len(small) <= 3000
    assert m.make_thumbnail(smooth, max_bytes=200) is None


def test_an_unreadable_still_is_named(tmp_path):
    broken = tmp_path / "007.jpg"
    broken.write_bytes(b"\xff\xd8 half a file")
    with pytest.raises(m.ThumbnailError, match="007.jpg"):
        m.make_thumbnail(broken)


def test_a_jpeg_with_metadata_or_over_the_cap_is_never_sent():
    ok, buf = cv2.imencode(".jpg", np.zeros((40, 60, 3), np.uint8))
    with pytest.raises(m.ThumbnailError, match="metadata segment"):
        m.thumbnail_message(new_event_id(T0), with_exif(buf.tobytes()), station_id="lazovsky-07")
    with pytest.raises(m.ThumbnailError, match="over the cap"):
        m.thumbnail_message(new_event_id(T0), buf.tobytes(), station_id="lazovsky-07", max_bytes=100)
    with pytest.raises(m.ThumbnailError, match="not a JPEG"):
        m.thumbnail_message(new_event_id(T0), b"\x89PNG....", station_id="lazovsky-07")


def test_a_thumbnail_whose_size_does_not_match_its_data_is_rejected():
    ok, buf = cv2.imencode(".jpg", np.zeros((40, 60, 3), np.uint8))
    msg = m.thumbnail_message(new_event_id(T0), buf.tobytes(), station_id="lazovsky-07")
    assert problem_fields("thumbnail", msg | {"bytes": msg["bytes"] + 1}) == ["bytes"]
    assert problem_fields("thumbnail", msg | {"message_id": msg["event_id"]}) == ["message_id"]


def test_the_thumbnail_shows_the_classifiers_best_still(tmp_path):
    store, record = recorded_event(tmp_path)
    assert m.thumbnail_source(record) == "002.jpg", "without a result: the first still after the trigger"
    record["classification"] = ok_classification(best_frame="003.jpg")
    assert m.thumbnail_source(record) == "003.jpg"
    assert m.make_thumbnail(store.event_dir(record["id"]) / m.thumbnail_source(record)) is not None
    assert m.thumbnail_source(record | {"frames": []}) is None


# -- commands --------------------------------------------------------------------------

def test_an_operators_snapshot_command_is_parsed():
    cmd = m.parse_command(b'{"schema":"command/1","command":"snapshot","request_id":"anna-0042",'
                          b'"sent_by":"anna@lab","sent_at":"2026-11-25T18:30:00.000Z"}',
                          topic_command="snapshot", station_id="lazovsky-07")
    assert cmd == m.Command("snapshot", "anna-0042", "anna@lab", "2026-11-25T18:30:00.000Z")
    assert m.parse_command(b'{"schema":"command/1","command":"reload","request_id":"r1"}').sent_by is None


@pytest.mark.parametrize("payload, field", [
    (b"snapshot please", "(payload)"),
    (b"\xff\xfe{}", "(payload)"),
    (b'["snapshot"]', "(payload)"),
    (b'{"schema":"command/1","command":"snapshot"}', "request_id"),
    (b'{"schema":"command/1","command":"reboot","request_id":"r1"}', "command"),
    (b'{"schema":"command/1","command":"snapshot","request_id":"has spaces"}', "request_id"),
    (b'{"schema":"command/1","command":"snapshot","request_id":"r1","sent_by":7}', "sent_by"),
    (b'{"schema":"command/1","command":"snapshot","request_id":"r1","delay_s":5}', "delay_s"),
    (b'{"schema":"command/2","command":"snapshot","request_id":"r1"}', "schema"),
    (b'{"schema":"command/1","command":"reload","request_id":"r1"}', "command"),  # topic says snapshot
    (b'{"schema":"command/1","command":"snapshot","request_id":"r1","station_id":"other-3"}', "station_id"),
    (b'{"schema":"command/1","command":"snapshot","request_id":"r1","sent_by":"' + b"x" * 5000 + b'"}',
     "(payload)"),
])
def test_a_bad_command_is_refused_naming_the_field(payload, field):
    with pytest.raises(m.CommandError) as err:
        m.parse_command(payload, topic_command="snapshot", station_id="lazovsky-07")
    assert err.value.field == field
    assert field in str(err.value)


def test_a_bad_command_keeps_its_request_id_so_the_station_can_answer():
    with pytest.raises(m.CommandError) as err:
        m.parse_command(b'{"schema":"command/1","command":"snapshot","request_id":"r7","sent_by":7}')
    assert (err.value.request_id, err.value.command) == ("r7", "snapshot")
    answer = m.command_result("lazovsky-07", err.value.request_id, err.value.command, False, str(err.value))
    validate("command_result", answer)


def test_command_results_are_valid_and_only_a_snapshot_names_an_event():
    snap = m.command_result("lazovsky-07", "r1", "snapshot", True, "recorded", event_id=new_event_id(T0))
    validate("command_result", snap)
    validate("command_result", m.command_result("lazovsky-07", "r2", "reload", True, "configuration reloaded"))
    bad = m.command_result("lazovsky-07", "r2", "reload", True, "ok") | {"event_id": new_event_id(T0)}
    assert problem_fields("command_result", bad) == ["event_id"]


# -- encoding --------------------------------------------------------------------------

def test_messages_are_compact_utf8_json_and_nan_is_refused(tmp_path):
    msg = detection(tmp_path) | {"extra": {"note": "Лазовский заповедник"}}
    data = m.encode(msg)
    assert b", " not in data and b": " not in data and "Лазовский".encode() in data
    assert json.loads(data) == msg
    with pytest.raises(m.MessageError, match="cannot encode"):
        m.encode(msg | {"confidence": float("nan")})


# -- topics ----------------------------------------------------------------------------

def test_each_station_has_its_topics_under_the_prefix():
    t = Topics("lazovsky-07")
    assert t.detection == "camtrap/v1/lazovsky-07/detection"
    assert t.status == "camtrap/v1/lazovsky-07/status" and t.health == "camtrap/v1/lazovsky-07/health"
    assert t.thumbnail == "camtrap/v1/lazovsky-07/thumbnail"
    assert t.command("snapshot") == "camtrap/v1/lazovsky-07/command/snapshot"
    assert t.commands == "camtrap/v1/lazovsky-07/command/+"
    assert t.command_result == "camtrap/v1/lazovsky-07/command_result"
    assert t.of("health") == t.health
    assert Topics("st-1", prefix="wwf/amur/v1").detection == "wwf/amur/v1/st-1/detection"
    assert all_stations("detection") == "camtrap/v1/+/detection"
    assert all_stations("command") == "camtrap/v1/+/command/+"
    assert (DELIVERY["status"].qos, DELIVERY["status"].retain) == (1, True)
    assert (DELIVERY["health"].qos, DELIVERY["health"].retain) == (0, True)
    assert (DELIVERY["detection"].qos, DELIVERY["detection"].retain) == (1, False)


def test_topics_are_parsed_back():
    assert parse_topic("camtrap/v1/lazovsky-07/detection") == ("lazovsky-07", "detection", None)
    assert parse_topic("camtrap/v1/lazovsky-07/command/reload") == ("lazovsky-07", "command", "reload")
    station_id, kind, rest = parse_topic("wwf/amur/v1/st.1/command_result", prefix="wwf/amur/v1")
    assert (station_id, kind, rest) == ("st.1", "command_result", None)


@pytest.mark.parametrize("topic, complaint", [
    ("camtrap/v2/lazovsky-07/detection", "not under the prefix"),
    ("camtrap/v1/lazovsky-07", "no message kind"),
    ("camtrap/v1/-bad/detection", "station id '-bad'"),
    ("camtrap/v1/lazovsky-07/sighting", "kind 'sighting'"),
    ("camtrap/v1/lazovsky-07/command", "ends in the command name"),
    ("camtrap/v1/lazovsky-07/command/reboot", "command 'reboot'"),
    ("camtrap/v1/lazovsky-07/detection/extra", "nothing may follow"),
])
def test_a_topic_that_does_not_fit_the_tree_is_refused_saying_why(topic, complaint):
    with pytest.raises(TopicError, match=re.escape(complaint)):
        parse_topic(topic)


def test_bad_station_ids_prefixes_and_commands_are_refused():
    for bad in ("", "a/b", "a+b", "#", "x" * 65, "lazovsky 07"):
        with pytest.raises(TopicError, match="station id"):
            Topics(bad)
    for bad in ("", "camtrap/", "/camtrap", "camtrap//v1", "camtrap/+", "$SYS"):
        with pytest.raises(TopicError, match="prefix"):
            check_prefix(bad)
    with pytest.raises(TopicError, match="reboot"):
        Topics("lazovsky-07").command("reboot")


# -- the documents ---------------------------------------------------------------------

def doc_json_examples() -> list[dict]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.S)]


def test_every_example_in_the_feed_guide_is_valid_against_its_schema():
    examples = doc_json_examples()
    kinds = [validate_message(example) for example in examples]
    assert set(kinds) == set(KINDS), "every message has an example"
    statuses = [e for e in examples if e["schema"] == "status/1"]
    assert any("sent_at" not in e for e in statuses), "the will is shown"
    assert any(e.get("classification_status") == "failed" for e in examples)


def test_the_guides_qos_table_matches_the_code():
    rows = re.findall(r"^\| (\w+) \| `[^`]+` \| (\d) \| (yes|no|never) \|", DOC.read_text(), flags=re.M)
    assert {kind: (int(qos), retained == "yes") for kind, qos, retained in rows} == \
        {kind: (d.qos, d.retain) for kind, d in DELIVERY.items()}


def test_the_asyncapi_document_parses_and_points_at_the_schema_files():
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed; the AsyncAPI document is not checked")
    doc = yaml.safe_load(ASYNCAPI.read_text())
    assert doc["asyncapi"].startswith("3.")
    schemes = doc["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"userPassword", "X509"}
    assert {s["protocol"] for s in doc["servers"].values()} <= {"mqtt", "secure-mqtt"}
    assert "mqtt" in {s["protocol"] for s in doc["servers"].values()}

    referenced = set()
    for name, message in doc["components"]["messages"].items():
        target = (ASYNCAPI.parent / message["payload"]["schema"]["$ref"]).resolve()
        assert target.is_file(), f"{name}: {target} does not exist"
        kind = target.name.removesuffix(".schema.json")
        assert message["title"] == f"{kind}/1"
        referenced.add(kind)
    assert referenced == set(KINDS)

    for channel in doc["channels"].values():
        address = channel["address"].replace("{stationId}", "lazovsky-07").replace("{command}", "snapshot")
        if "/_feed/" in address:  # the collector's feed: never a station's topic
            feed = address.split("/")[3]
            assert address == feed_topic("lazovsky-07", feed)
            kind = "feed_detection"
            ref = next(iter(channel["messages"].values()))["$ref"]
            assert doc["components"]["messages"][ref.rsplit("/", 1)[1]]["title"] == "feed_detection/1"
            continue
        kind = parse_topic(address).kind
        ref = next(iter(channel["messages"].values()))["$ref"]
        message = doc["components"]["messages"][ref.rsplit("/", 1)[1]]
        assert message["title"] == f"{kind}/1", f"{channel['address']} carries {message['title']}"
    for op in doc["operations"].values():
        channel = doc["channels"][op["channel"]["$ref"].rsplit("/", 1)[1]]
        binding = op["bindings"]["mqtt"]
        if "/_feed/" in channel["address"]:
            assert (binding["qos"], binding["retain"]) == (1, False)
            continue
        kind = parse_topic(channel["address"].replace("{stationId}", "x").replace("{command}", "reload")).kind
        assert (binding["qos"], binding["retain"]) == (DELIVERY[kind].qos, DELIVERY[kind].retain), kind


# -- the guide's subscriber, against a real broker -------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mosquitto_port(tmp_path):
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if exe is None:
        pytest.skip("mosquitto is not installed (scripts/test installs it)")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail(f"mosquitto did not start: {proc.stderr.read().decode()[-500:]}")
    yield port
    proc.terminate()
    proc.wait(10)


def test_the_guides_paho_subscriber_prints_each_detection_once(mosquitto_port, tmp_path):
    import paho.mqtt.client as mqtt

    block = re.search(r"```python\n(.*?)```", DOC.read_text(), flags=re.S).group(1)
    assert "client.tls_set()" in block and 'BROKER, PORT = "broker.example.org", 8883' in block
    script = block.replace('BROKER, PORT = "broker.example.org", 8883',
                           f'BROKER, PORT = "127.0.0.1", {mosquitto_port}')
    script = script.replace("client.tls_set()", "pass  # the test broker has no TLS")
    (tmp_path / "subscriber.py").write_text(script)
    sub = subprocess.Popen([sys.executable, str(tmp_path / "subscriber.py")], stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in sub.stdout], daemon=True).start()

    from station.collector.privacy import LocationPolicy
    from station.collector.republish import feed_message
    from station.config.collector import parse_collector_config

    feed = next(e for e in doc_json_examples() if e["schema"] == "feed_detection/1")
    failed = next(e for e in doc_json_examples() if e.get("classification_status") == "failed")
    row = {"event_id": failed["event_id"], "station_id": failed["station_id"], "latitude": 43.2412,
           "longitude": 133.8857, "received_at": "2026-11-25T19:15:06.000Z", "payload": failed}
    policy = LocationPolicy(parse_collector_config({}).privacy)
    first = m.encode(feed)
    second = m.encode(feed_message(row, policy, exact=False, sensitive=None, collector_id="collector"))
    topic = "camtrap/v1/_feed/generalised/lazovsky-07/detection"
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="station-test")
    pub.connect("127.0.0.1", mosquitto_port)
    pub.loop_start()
    try:
        got = None
        deadline = time.monotonic() + 20
        while got is None and time.monotonic() < deadline:  # until the script has subscribed
            pub.publish(topic, first, qos=1).wait_for_publish(5)
            try:
                got = lines.get(timeout=0.3)
            except queue.Empty:
                pass
        assert got == "lazovsky-07 2026-11-25T18:02:11.400Z leopard leopard 0.81 43.25 133.85\n"
        for payload in (first, second, first):  # a resend, the next event, another resend
            pub.publish(topic, payload, qos=1).wait_for_publish(5)
        rest = [lines.get(timeout=10)]
        time.sleep(0.5)
        while not lines.empty():
            rest.append(lines.get_nowait())
        assert rest == ["lazovsky-07 2026-11-25T19:15:02.100Z unknown None None 43.25 133.85\n"], \
            "duplicates are dropped"
    finally:
        pub.loop_stop()
        pub.disconnect()
        sub.terminate()
        sub.wait(10)


@pytest.mark.parametrize("change, key", [
    ({"frames": "000.jpg"}, "frames is a string '000.jpg', not a list"),
    ({"classification": "leopard"}, "classification is not an object"),
])
def test_a_malformed_record_is_refused_naming_the_key(tmp_path, change, key):
    _, record = recorded_event(tmp_path)
    record.update(change)
    with pytest.raises(m.MessageError, match=key):
        m.detection_message(record, STATION)
