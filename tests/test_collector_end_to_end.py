"""The whole chain for real: a simulated station's daemon classifies events and publishes
them to a real Mosquitto; a collector stores them, serves them over HTTP and alerts.

Nothing is stood in for: the station is StationDaemon with the synthetic camera and the
real TFLite model, the collector is CollectorService (ingest, SQLite, HTTP server,
Apprise), and the alert endpoint is a local HTTP server.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from station.collector.service import CollectorService
from station.config import parse_config
from station.config.collector import parse_collector_config
from station.daemon import StationDaemon
from station.events.store import EventStore
from tests.broker import make_broker

pytestmark = pytest.mark.slow


class _Hook(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self):  # noqa: N802
        self.bodies.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_events_from_a_station_reach_the_dashboard_api_with_thumbnails_and_alerts(tmp_path):
    broker = make_broker(tmp_path / "broker").start()
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    collector = CollectorService.build(parse_collector_config({
        "collector": {"data_dir": str(tmp_path / "collector")},
        "mqtt": {"host": broker.host, "port": broker.port},
        "http": {"port": 0},
        "alerts": {"urls": [f"json://127.0.0.1:{hook.server_port}/alert"], "tags": ["leopard", "tiger"],
                   "min_interval_s": 0}}))
    station_cfg = parse_config({
        "station": {"id": "lazovsky-07", "deployment_id": "lz07-2026", "latitude": 43.2412, "longitude": 133.8857},
        "camera": {"uri": "synthetic:2", "speed": "max", "main_size": [640, 360], "lores_size": [320, 180],
                   "scene_duration_s": 240.0, "start_time": "2026-11-01T18:00:00Z"},
        "storage": {"data_dir": str(tmp_path / "station"), "min_free_mb": 0},
        "classifier": {"threads": 1},
        "mqtt": {"enabled": True, "host": broker.host, "port": broker.port, "thumbnails": True,
                 "health_interval_s": 5}})
    try:
        collector.start()
        assert collector.ingest.wait_subscribed(10)
        daemon = StationDaemon.build(station_cfg)
        daemon.run()  # the whole scene at full speed; returns once its detections are delivered
        events = {r["id"]: r for r in EventStore(tmp_path / "station").records() if r.get("classification")}
        assert len(events) >= 3

        with httpx.Client(base_url=collector.http.url, timeout=10) as api:
            def stored() -> dict:
                return api.get("/api/detections", params={"limit": 100}).json()

            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and stored()["total"] < len(events):
                time.sleep(0.2)
            body = stored()
            assert {d["event_id"] for d in body["items"]} == set(events)
            for item in body["items"]:
                record = events[item["event_id"]]
                assert item["tag"] == record["classification"]["tag"]
                # Public view: the station's exact position is nowhere in the answer.
                assert "43.2412" not in json.dumps(item) and "133.8857" not in json.dumps(item)
            with_thumbs = [d for d in body["items"] if d.get("thumbnail_url")]
            assert with_thumbs, "no thumbnail reached the collector"
            image = api.get(with_thumbs[0]["thumbnail_url"])
            assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
            assert image.content[:2] == b"\xff\xd8"

            def station() -> dict:
                return next(s for s in api.get("/api/stations").json()["items"] if s["station_id"] == "lazovsky-07")

            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and (station()["status"] or {}).get("state") != "offline":
                time.sleep(0.2)
            # The daemon has stopped: its last word was a clean "offline, stopping".
            assert station()["status"]["state"] == "offline" and station()["status"]["reason"] == "stopping"
            assert station()["online"] is False
            assert station()["health"]["station_id"] == "lazovsky-07"

        cats = [r for r in events.values() if r["classification"]["tag"] in ("leopard", "tiger")]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(_Hook.bodies) < len(cats):
            time.sleep(0.2)
        assert len(_Hook.bodies) == len(cats)
        assert all("43.24" not in b.get("body", "") for b in _Hook.bodies)
    finally:
        collector.stop()
        hook.shutdown()
        broker.stop()
