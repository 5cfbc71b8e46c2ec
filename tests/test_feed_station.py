"""The station's detection feed through a real Mosquitto: outages, SIGKILL, bad settings.

A ranger's story: the radio link drops for a while, the unit loses power; every
detection still reaches the researchers' subscriber, each exactly once after
de-duplication, oldest first.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from station.config import parse_config
from station.daemon import StationDaemon
from station.events.store import EventStore
from station.feed.schema import validate_message
from tests.broker import Subscriber, make_broker

pytestmark = pytest.mark.slow


def station_config(tmp_path: Path, broker, scene_s: float, **mqtt) -> dict:
    return {
        "station": {"id": "lazovsky-07", "deployment_id": "lz07-2026", "latitude": 43.24, "longitude": 133.88},
        "camera": {"uri": "synthetic:2", "speed": "max", "main_size": [640, 360], "lores_size": [320, 180],
                   "scene_duration_s": scene_s, "start_time": "2026-11-01T18:00:00Z"},
        "storage": {"data_dir": str(tmp_path / "data"), "min_free_mb": 0},
        "classifier": {"threads": 1},
        "mqtt": {"enabled": True, "host": broker.host, "port": broker.port, "reconnect_min_s": 0.2,
                 "reconnect_max_s": 1.0, "health_interval_s": 5, **mqtt},
    }


def detections(sub: Subscriber) -> dict[str, dict]:
    out = {}
    for payload in sub.payloads("camtrap/v1/lazovsky-07/detection"):
        msg = json.loads(payload)
        validate_message(msg)
        out.setdefault(msg["message_id"], msg)
    return out


def detection_ids(payloads: list[bytes]) -> set[str]:
    """For Subscriber.wait_for predicates (which get the payloads; the lock is held)."""
    ids = set()
    for payload in payloads:
        msg = json.loads(payload)
        if msg.get("schema") == "detection/1":
            ids.add(msg["message_id"])
    return ids


def final_ids(data: Path) -> set[str]:
    return {r["id"] for r in EventStore(data).records() if r.get("classification")}


def test_broker_down_while_animals_pass_loses_nothing(tmp_path):
    broker = make_broker(tmp_path / "broker").start()
    sub = Subscriber(broker, ["camtrap/v1/+/detection", "camtrap/v1/+/status"])
    try:
        broker.stop()  # the link is down when the animals come
        cfg = parse_config(station_config(tmp_path, broker, 240.0))
        daemon = StationDaemon.build(cfg)
        thread = threading.Thread(target=daemon.run)
        thread.start()
        store = EventStore(tmp_path / "data")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(final_ids(tmp_path / "data")) < 3:
            time.sleep(0.2)
        assert len(final_ids(tmp_path / "data")) >= 3, "events were classified while offline"
        assert daemon.feed.outbox.stats().depth_by_kind.get("detection", 0) >= 3
        broker.start()  # the link comes back
        thread.join(180)
        assert not thread.is_alive()
        events = final_ids(tmp_path / "data")
        assert sub.wait_for(lambda payloads: detection_ids(payloads) >= events, timeout=30), \
            f"missing: {events - set(detections(sub))}"
        got = detections(sub)
        assert set(got) == events
        order = [json.loads(p)["start"] for p in sub.payloads("camtrap/v1/lazovsky-07/detection")]
        assert order == sorted(order), "delivered oldest first"
        records = list(store.records())
        assert all(r["delivery"]["status"] == "delivered" for r in records if r["id"] in events)
    finally:
        sub.close()
        broker.stop()


def test_a_station_killed_with_undelivered_detections_sends_them_after_restart(tmp_path):
    broker = make_broker(tmp_path / "broker").start()
    sub = Subscriber(broker, ["camtrap/v1/+/detection", "camtrap/v1/+/status"])
    cfg_path = tmp_path / "station.toml"
    try:
        broker.stop()
        cfg = station_config(tmp_path, broker, 100000.0)
        cfg_path.write_text(_toml(cfg))
        proc = subprocess.Popen([sys.executable, "-m", "station", "run", "--config", str(cfg_path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(final_ids(tmp_path / "data")) < 3:
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)  # power cut
        proc.wait(10)
        before = final_ids(tmp_path / "data")
        assert len(before) >= 3
        broker.start()
        # Restart: a short run (the scene starts over; its new events do not matter here).
        cfg["camera"]["scene_duration_s"] = 1.0
        cfg_path.write_text(_toml(cfg))
        out = subprocess.run([sys.executable, "-m", "station", "run", "--config", str(cfg_path)],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert sub.wait_for(lambda payloads: detection_ids(payloads) >= before, timeout=30), \
            f"lost in the power cut: {before - set(detections(sub))}"
        statuses = [json.loads(p) for p in sub.payloads("camtrap/v1/lazovsky-07/status")]
        assert statuses[-1]["state"] == "offline" and statuses[-1]["reason"] == "stopping"
    finally:
        sub.close()
        broker.stop()


def _toml(cfg: dict) -> str:
    lines = []
    for section, values in cfg.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("mqtt, key", [
    ({"tls": True, "ca_file": "/nonexistent/ca.crt"}, "mqtt.ca_file"),
    ({"username": "st", "password_file": "/nonexistent/pw"}, "mqtt.password_file"),
])
def test_broken_tls_or_credential_files_name_the_key(tmp_path, broker, station_cmd, mqtt, key):
    cfg_path = tmp_path / "station.toml"
    cfg_path.write_text(_toml(station_config(tmp_path, broker, 10.0, **mqtt)))
    for args in (["config", "check", str(cfg_path)], ["run", "--config", str(cfg_path)]):
        out = subprocess.run([*station_cmd, *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, out.stderr
        assert key in out.stderr


def test_wrong_password_is_reported_naming_the_credentials_and_capture_goes_on(tmp_path):
    from tests.broker import make_password_file

    pw = make_password_file(tmp_path / "passwd", {"lazovsky-07": "right"})
    broker = make_broker(tmp_path / "broker", allow_anonymous=False, password_file=pw).start()
    try:
        cfg = parse_config(station_config(tmp_path, broker, 60.0, username="lazovsky-07", password="wrong"))
        daemon = StationDaemon.build(cfg)
        daemon.run()
        assert daemon.stats.frames >= 600, "capture went on"
        assert "mqtt.username and mqtt.password" in (daemon.feed.publisher.last_error or "")
        from station.feed.outbox import Outbox

        with Outbox(tmp_path / "data" / "outbox.sqlite3", 50 * 2**20) as outbox:  # as the next start finds it
            assert outbox.stats().depth_by_kind.get("detection", 0) >= 1, "kept for later"
    finally:
        broker.stop()


def test_an_operator_snapshot_command_is_answered_with_the_new_event(tmp_path):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    broker = make_broker(tmp_path / "broker").start()
    sub = Subscriber(broker, ["camtrap/v1/+/command_result", "camtrap/v1/+/detection", "camtrap/v1/+/health"])
    try:
        cfg = station_config(tmp_path, broker, 100000.0)
        cfg["camera"]["speed"] = "realtime"
        daemon = StationDaemon.build(parse_config(cfg))
        thread = threading.Thread(target=daemon.run)
        thread.start()
        deadline = time.monotonic() + 30
        while not (daemon.feed.publisher.connected and daemon.stats.frames > 5) and time.monotonic() < deadline:
            time.sleep(0.05)
        operator = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="operator")
        operator.connect(broker.host, broker.port)
        operator.loop_start()
        operator.publish("camtrap/v1/lazovsky-07/command/snapshot",
                         json.dumps({"schema": "command/1", "command": "snapshot", "request_id": "r-1",
                                     "sent_by": "ranger"}), qos=1).wait_for_publish(5)
        operator.publish("camtrap/v1/lazovsky-07/command/reload", b"{not json", qos=1).wait_for_publish(5)

        def answered(payloads):
            return any(json.loads(p).get("request_id") == "r-1" for p in payloads)

        assert sub.wait_for(answered, timeout=30)
        (result,) = [json.loads(p) for p in sub.payloads("camtrap/v1/lazovsky-07/command_result")]
        validate_message(result)
        assert result["ok"] is True and result["command"] == "snapshot"
        event_id = result["event_id"]
        assert sub.wait_for(lambda payloads: event_id in detection_ids(payloads), timeout=60)
        daemon.stop()
        thread.join(30)
        record = EventStore(tmp_path / "data").load(event_id)
        assert record["trigger_source"] == "snapshot"
        health = [json.loads(p) for p in sub.payloads("camtrap/v1/lazovsky-07/health")]
        assert health, "a heartbeat is sent on connect"
        validate_message(health[-1])
        assert health[-1]["camera"]["state"] in ("starting", "ok") and health[-1]["outbox"]["full"] is False
        assert daemon.stats.frames > 0, "a malformed command did not disturb the station"
        operator.loop_stop()
    finally:
        sub.close()
        broker.stop()


def test_only_delivered_events_may_be_pruned_when_the_feed_is_on():
    from station.feed.service import prunable_when_fed

    assert not prunable_when_fed({"status": "closed"})
    assert not prunable_when_fed({"status": "closed", "delivery": {"status": "queued"}})
    assert not prunable_when_fed({"status": "open", "delivery": {"status": "delivered"}})
    assert prunable_when_fed({"status": "closed", "delivery": {"status": "delivered"}})
