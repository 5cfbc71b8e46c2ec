"""Event-closed to delivered latency: classifier, outbox, publisher, broker, subscriber.

A detection is sent when its event is final (closed and classified), so what the
station adds after the animal has gone is: classification, the outbox commit, the
publish and the broker's acknowledgement. Real events are recorded first (the daemon
on a synthetic scene), then handed over one at a time, every ``interval_s``, exactly as
the writer hands over a closed event; the clock stops when a subscriber on the same
broker receives the detection.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def _record_events(data_dir: Path, seconds: float) -> list[str]:
    from station.config import parse_config
    from station.daemon import StationDaemon
    from station.events.store import EventStore

    cfg = parse_config({
        "station": {"id": "bench", "deployment_id": "bench", "latitude": 43.1, "longitude": 131.5},
        "camera": {"uri": "synthetic:1", "speed": "max", "scene_duration_s": seconds},
        "storage": {"data_dir": str(data_dir), "min_free_mb": 0},
        "classifier": {"enabled": False},
    })
    StationDaemon.build(cfg).run()
    return EventStore(data_dir).ids()


def _copy_event(source, store, event_id: str) -> str:
    """A fresh copy of a recorded event, under a new id, into the live store."""
    from station.events.ids import new_event_id

    record = source.load(event_id)
    new_id = new_event_id(record["start_timestamp"])
    shutil.copytree(source.event_dir(event_id), store.event_dir(new_id))
    record["id"] = new_id
    store.write_record(record)
    return new_id


def measure(samples: int = 50, interval_s: float = 0.5, scene_s: float = 900.0) -> dict:
    from station.classifier.worker import ClassificationWorker
    from station.config import parse_config
    from station.events.store import EventStore
    from station.feed.broker_process import Mosquitto
    from station.feed.service import FeedService
    from station.log import setup_logging

    setup_logging("warning")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        originals = _record_events(tmp / "recorded", scene_s)
        source = EventStore(tmp / "recorded")
        broker = Mosquitto(tmp / "broker").start()
        try:
            cfg = parse_config({
                "station": {"id": "bench", "deployment_id": "bench", "latitude": 43.1, "longitude": 131.5},
                "storage": {"data_dir": str(tmp / "data"), "min_free_mb": 0},
                "classifier": {"threads": 2},
                "mqtt": {"enabled": True, "host": broker.host, "port": broker.port, "health_interval_s": 3600},
            })
            store = EventStore(tmp / "data")
            store.ensure()
            received: dict[str, float] = {}
            arrived = threading.Condition()

            def on_message(client, userdata, msg):
                import json

                data = json.loads(msg.payload)
                with arrived:
                    received.setdefault(data["message_id"], time.monotonic())
                    arrived.notify_all()

            sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-sub")
            sub.on_message = on_message
            sub.connect(broker.host, broker.port)
            sub.subscribe("camtrap/v1/+/detection", qos=1)
            sub.loop_start()
            feed = FeedService(cfg, store)
            worker = ClassificationWorker(cfg.classifier, store, on_classified=feed.on_event)
            feed.start(None)
            while not feed.publisher.connected:
                time.sleep(0.01)
            worker._ensure_classifier()  # loaded once at start-up in the daemon, too
            worker.start()
            handed: dict[str, float] = {}
            ids = []
            for i in range(samples):
                eid = _copy_event(source, store, originals[i % len(originals)])
                ids.append(eid)
                handed[eid] = time.monotonic()
                worker.submit(store.load(eid))
                time.sleep(interval_s)
            deadline = time.monotonic() + 30
            with arrived:
                while len(received) < len(ids) and time.monotonic() < deadline:
                    arrived.wait(0.5)
            worker.stop()
            feed.stop()
            sub.loop_stop()
            sub.disconnect()
        finally:
            broker.stop()
    lat = sorted(1000 * (received[e] - handed[e]) for e in ids if e in received)
    p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))] if lat else None
    return {"samples": samples, "delivered": len(lat), "interval_s": interval_s,
            "median_ms": round(statistics.median(lat), 1) if lat else None,
            "p95_ms": round(p95, 1) if p95 is not None else None,
            "max_ms": round(lat[-1], 1) if lat else None, "target_p95_ms": 1000}
