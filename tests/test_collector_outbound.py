"""The researchers' feed: what the collector republishes after a commit, at least once.

The crash tests run the real collector (ingest, SQLite or PostgreSQL) on a real Mosquitto,
with a researcher subscribed through a persistent session; the ordering rules of the
outbound cursor are checked on a link that acknowledges when the test says so.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from station.collector.db import Database
from station.collector.outbound import Batch, Outbound, Outgoing
from station.collector.republish import feed_message
from station.collector.privacy import LocationPolicy
from station.collector.service import CollectorService
from station.config.collector import parse_collector_config
from station.feed.schema import validate_message
from station.feed.topics import Topics, feed_filter
from tests.broker import Subscriber, broker  # noqa: F401 - fixture
from tests.collector_data import T0, db_url, detection, pytest_generate_tests  # noqa: F401 - fixtures

FEED = feed_filter("generalised")


def config(broker, data_dir: Path, url: str, **feed):
    return parse_collector_config({
        "collector": {"id": "collector-a", "data_dir": str(data_dir), "database_url": url},
        "mqtt": {"host": broker.host, "port": broker.port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "http": {"enabled": False}, "feed": feed})


def publish(broker, messages: list[dict]) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="station-under-test", protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for msg in messages:
            client.publish(Topics(msg["station_id"]).detection, json.dumps(msg), qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def wait_until(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_detections_committed_before_a_crash_reach_researchers_after_the_restart(broker, tmp_path, db_url):  # noqa: F811
    """The collector stores detections and dies before it republishes any: the cursor, still
    before them, sends every one once it is back."""
    researcher = Subscriber(broker, [FEED], client_id="researcher-anna")
    cfg = config(broker, tmp_path / "collector", db_url)
    first = CollectorService.build(cfg)
    first.ingest.start()  # the ingest alone: it commits, nothing republishes (the crash in between)
    sent = [detection(T0 + 60 * k) for k in range(12)]
    try:
        assert first.ingest.wait_subscribed(10)
        publish(broker, sent)
        assert wait_until(lambda: first.ingest.counters["stored"] == len(sent))
    finally:
        first.ingest.stop()
    assert researcher.payloads() == []
    again = CollectorService.build(cfg)
    again.start()
    try:
        want = {m["event_id"] for m in sent}
        assert researcher.wait_for(lambda got: {json.loads(p)["message_id"] for p in got} >= want)
        assert wait_until(lambda: again.outbound.stats()["cursors"]["feed:collector-a"] > 0)
    finally:
        again.stop()
    for body in researcher.payloads():
        assert validate_message(json.loads(body)) == "feed_detection"
    with Database.open(cfg.collector.sqlite_resolved_url()) as db:  # the cursor is saved past them
        assert db.cursor("feed:collector-a") == db.last_stored("collector-a")
    researcher.close()


def test_a_new_collector_feed_starts_after_what_is_stored_and_history_stays_in_the_api(broker, tmp_path):  # noqa: F811
    url = f"sqlite:///{tmp_path}/c.db"
    with Database.open(url) as db:
        db.migrate()
        db.writer = "collector-a"
        db.store_batch([detection(T0)])
    researcher = Subscriber(broker, [FEED], client_id="researcher-boris")
    service = CollectorService.build(config(broker, tmp_path / "collector", url))
    service.start()
    try:
        assert service.ingest.wait_subscribed(10)
        new = detection(T0 + 600)
        publish(broker, [new])
        assert researcher.wait_for(lambda got: len(got) >= 1)
    finally:
        service.stop()
    assert [json.loads(p)["message_id"] for p in researcher.payloads()] == [new["event_id"]]
    researcher.close()


def test_the_stored_rows_come_back_in_the_order_this_collector_committed_them(db_url):  # noqa: F811
    with Database.open(db_url) as db:
        db.migrate()
        db.writer = "collector-a"
        first = [detection(T0 + 60 * k) for k in range(3)]
        db.store_batch(first)
        db.writer = "collector-b"  # a second collector on the same database
        db.store_batch([detection(T0 + 1000)])
        db.writer = "collector-a"
        later = [detection(T0 + 2000)]
        db.store_batch(later)
        rows = db.stored_after("collector-a", 0, 10)
        assert [r["event_id"] for r in rows] == [m["event_id"] for m in first + later]
        assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
        assert db.stored_after("collector-a", rows[2]["seq"], 10)[0]["event_id"] == later[0]["event_id"]
        assert db.last_stored("collector-a") == rows[-1]["seq"]
        assert db.last_stored("nobody") == 0
        assert db.cursor("feed:collector-a") is None
        db.set_cursor("feed:collector-a", 7)
        db.set_cursor("feed:collector-a", 9)
        assert db.cursor("feed:collector-a") == 9


def test_the_generalised_message_never_carries_the_exact_position():
    cfg = parse_collector_config({})
    msg = detection(T0, latitude=43.2412, longitude=133.8857)
    msg["extra"] = {"gps": [43.2412, 133.8857]}
    row = {"seq": 1, "event_id": msg["event_id"], "station_id": msg["station_id"], "latitude": 43.2412,
           "longitude": 133.8857, "received_at": "2026-11-25T18:02:20.000Z", "payload": msg}
    policy = LocationPolicy(cfg.privacy)
    public = feed_message(row, policy, exact=False, sensitive=None, collector_id="collector-a")
    assert validate_message(public) == "feed_detection"
    assert "43.2412" not in json.dumps(public) and "133.8857" not in json.dumps(public)
    assert public["location"]["generalised"] and "extra" not in public["detection"]
    exact = feed_message(row, policy, exact=True, sensitive=None, collector_id="collector-a")
    assert validate_message(exact) == "feed_detection"
    assert exact["location"]["latitude"] == 43.2412 and exact["detection"]["extra"] == msg["extra"]


# -- the cursor's rules, on a link the test acknowledges by hand ------------------------------------
class HandLink:
    """A connection whose PUBACKs the test sends: ``ack(mid)`` or ``ack(mid, refused=True)``."""

    def __init__(self):
        self.connected = True
        self.on_ack = None
        self.sent: dict[int, Outgoing] = {}
        self._mid = 0
        self._lock = threading.Lock()

    def publish(self, message: Outgoing) -> int:
        with self._lock:
            self._mid += 1
            self.sent[self._mid] = message
            return self._mid

    def ack(self, mid: int, refused: bool = False) -> None:
        class Code:
            is_failure = refused

            def __str__(self):
                return "Not authorized" if refused else "Success"
        self.on_ack(mid, Code())


class Numbers:
    """A stream over rows 1..n of a list: one message per row."""

    name = "numbers"

    def __init__(self):
        self.rows: list[int] = []

    def start_position(self, db) -> int:
        return 0

    def fetch(self, db, after: int, limit: int) -> Batch | None:
        rows = [r for r in self.rows if r > after][:limit]
        return Batch(rows[-1], tuple(Outgoing(f"n/{r}", str(r).encode()) for r in rows)) if rows else None


def test_the_cursor_moves_only_past_batches_the_broker_acknowledged_in_full(tmp_path):
    url = f"sqlite:///{tmp_path}/c.db"
    with Database.open(url) as db:
        db.migrate()
    link, stream = HandLink(), Numbers()
    out = Outbound(link, lambda: Database.open(url), [stream], batch_max=2, poll_s=0.05)
    out.prepare()
    out.start()
    try:
        stream.rows = [1, 2, 3, 4]
        out.wake()
        assert wait_until(lambda: len(link.sent) == 4)  # two batches: rows 1-2 and 3-4
        link.ack(4)
        link.ack(3)  # the second batch, acknowledged first: the cursor waits for the first
        time.sleep(0.3)
        assert out.stats()["cursors"]["numbers"] == 0
        link.ack(1)
        time.sleep(0.3)
        assert out.stats()["cursors"]["numbers"] == 0
        link.ack(2)
        assert wait_until(lambda: out.stats()["cursors"]["numbers"] == 4)
        stream.rows.append(5)
        out.wake()
        assert wait_until(lambda: len(link.sent) == 5)
        link.ack(5, refused=True)  # the ACL refuses it: sent again from the cursor, later
        assert out.stats()["refused"] == 1 and out.stats()["cursors"]["numbers"] == 4
    finally:
        out.stop(timeout=1)
    with Database.open(url) as db:
        assert db.cursor("numbers") == 4
