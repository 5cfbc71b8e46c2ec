"""The feed speaks for a station through a small control protocol (station.feed.control):
a fake of a few lines stands in for the whole daemon, against a real Mosquitto."""

from __future__ import annotations

import json
from pathlib import Path

from station.config import parse_config
from station.events.store import EventStore
from station.feed import messages as m
from station.feed.control import CameraFacts, DiskFacts, PowerFacts, StationFacts
from station.feed.schema import validate_message
from station.feed.service import FeedService
from tests.broker import Subscriber, broker  # noqa: F401 (fixture)


class FakeStation:
    """Everything the feed needs of a station."""

    def __init__(self):
        self.reloads = 0

    def request_snapshot(self, done):
        done("0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", "snapshot taken")

    def request_reload(self, done):
        self.reloads += 1
        done(False, "config.toml: motion.threshold = -1: must be positive")

    def facts(self) -> StationFacts:
        return StationFacts(camera=CameraFacts("failed", "rtsp://ranger:pw@cam/1", 10.0, 3),
                            disk=DiskFacts(812.5, 40.2, False), pending_classification=2, schedule="active",
                            power=PowerFacts(monitor="ina219", battery_v=12.43, current_a=0.21, power_w=2.6,
                                             wh_today=31.4, wh_today_covered_s=41230.0, day="2026-11-25",
                                             low_battery=False, undervoltage=False))


def test_the_feed_answers_commands_and_reports_health_through_the_control_protocol(tmp_path: Path, broker):  # noqa: F811
    cfg = parse_config({
        "station": {"id": "lazovsky-07", "deployment_id": "lz07-2026", "latitude": 43.24, "longitude": 133.88},
        "storage": {"data_dir": str(tmp_path / "data")},
        "mqtt": {"enabled": True, "host": broker.host, "port": broker.port, "health_interval_s": 60}})
    sub = Subscriber(broker, ["camtrap/v1/lazovsky-07/health", "camtrap/v1/lazovsky-07/command_result"])
    station = FakeStation()
    feed = FeedService(cfg, EventStore(tmp_path / "data"))
    feed.start(station)
    try:
        assert sub.wait_for(lambda ps: any(b'"health/1"' in p for p in ps))
        health = json.loads(sub.payloads("camtrap/v1/lazovsky-07/health")[-1])
        validate_message(health)
        assert health["camera"] == {"state": "failed", "uri": "rtsp://***@cam/1", "fps": 10.0, "failures": 3}
        assert health["disk"] == {"free_mb": 812.5, "store_mb": 40.2, "low": False}
        assert health["events"]["pending_classification"] == 2 and health["extra"] == {"schedule": "active"}
        assert health["power"]["battery_v"] == 12.43 and health["power"]["wh_today"] == 31.4

        for name in ("snapshot", "reload"):
            sub.client.publish(f"camtrap/v1/lazovsky-07/command/{name}", m.encode(
                {"schema": "command/1", "request_id": f"req-{name}", "command": name,
                 "station_id": "lazovsky-07", "sent_at": m.timestamp(), "sent_by": "test"}), qos=1)
        assert sub.wait_for(lambda ps: sum(b'"command_result/1"' in p for p in ps) == 2)
        results = {r["request_id"]: r for r in map(json.loads, sub.payloads("camtrap/v1/lazovsky-07/command_result"))}
        assert results["req-snapshot"]["ok"] and results["req-snapshot"]["event_id"].startswith("0193a1b2")
        assert not results["req-reload"]["ok"] and "motion.threshold" in results["req-reload"]["message"]
        assert station.reloads == 1
    finally:
        feed.stop()
        sub.close()
