"""A picture now: the dashboard asks a station for a snapshot through the collector.

    desk = SnapshotDesk(cfg, open_db, wake=outbound.wake)      # built by the service
    ingest.add_subscription(desk.results_topic, desk.on_result)
    outbound streams: [..., SnapshotCommands(cfg)]
    desk.request("lazovsky-07", requested_by="dashboard")   # -> request row (the web handler)
    desk.status(request_id)                                  # pending, taken, failed, expired

The request is a row of ``snapshot_requests``; :class:`SnapshotCommands`, an outbound
stream, publishes it as ``command/1`` on ``{prefix}/{station}/command/snapshot`` (QoS 1)
once committed, on the collector's own connection (a collector account has one client
id). The station answers ``command_result/1`` with the event it recorded; the collector
reads those (every collector of a group: status-like, not shared), and the event's
detection and thumbnail come through the feed like any other. A request older than
``MAX_AGE_S`` when it could first be sent (the collector was down) is not sent: a stale
picture request must not wake a camera an hour later.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from station import times
from station.collector.db import Database, StorageError
from station.collector.outbound import Batch, Outgoing
from station.config.collector import CollectorConfig
from station.feed import strict_json
from station.feed.messages import encode, timestamp
from station.feed.schema import PayloadError, validate
from station.feed.topics import Topics, TopicError, all_stations, parse_topic
from station.log import get_logger

log = get_logger("collector.snapshots")
MAX_AGE_S = 300.0
"""A request not sent within this long is dropped (the page says it expired)."""
ANSWER_WAIT_S = 180.0
"""The page stops waiting for the station's answer after this long."""


class SnapshotCommands:
    """The outbound stream of this collector's snapshot requests, as command/1 messages."""

    def __init__(self, cfg: CollectorConfig, clock: Callable[[], float] = time.time):
        self.collector_id = cfg.collector.id
        self.name = f"snapshots:{self.collector_id}"
        self.prefix = cfg.mqtt.topic_prefix
        self._clock = clock

    def start_position(self, db: Database) -> int:
        return db.last_snapshot_request(self.collector_id)

    def fetch(self, db: Database, after: int, limit: int) -> Batch | None:
        rows = db.snapshot_requests_after(self.collector_id, after, limit)
        if not rows:
            return None
        out = []
        now = self._clock()
        for row in rows:
            age = now - row["requested_at"].timestamp()
            if age > MAX_AGE_S:
                log.warning("snapshot request expired before it could be sent", request_id=row["request_id"],
                            station=row["station_id"], age_s=round(age))
                continue
            message = {"schema": "command/1", "command": "snapshot", "request_id": row["request_id"],
                       "station_id": row["station_id"], "sent_by": (row["requested_by"] or "collector")[:128],
                       "sent_at": timestamp(now)}
            validate("command", message)
            out.append(Outgoing(Topics(row["station_id"], self.prefix).command("snapshot"), encode(message)))
        return Batch(int(rows[-1]["seq"]), tuple(out))


class SnapshotDesk:
    """Takes requests (the web app), and the stations' answers (the MQTT network thread,
    handed to a small thread of its own that writes them down)."""

    def __init__(self, cfg: CollectorConfig, open_db: Callable[[], Database], *,
                 wake: Callable[[], None] = lambda: None, clock: Callable[[], float] = time.time):
        self.cfg = cfg
        self.collector_id = cfg.collector.id
        self.results_topic = all_stations("command_result", cfg.mqtt.topic_prefix)
        self._open_db, self._wake, self._clock = open_db, wake, clock
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=1000)
        self._thread: threading.Thread | None = None
        self.counters = {"requested": 0, "answered": 0, "not_ours": 0, "refused": 0}

    # -- the web side ----------------------------------------------------------------

    def request(self, db: Database, station_id: str, requested_by: str | None) -> dict[str, Any]:
        """Record a request (the outbound stream sends it); the row as :meth:`status` shows it."""
        request_id = f"snap-{uuid.uuid4().hex[:24]}"
        db.add_snapshot_request(request_id, station_id, self.collector_id, self._now(), requested_by)
        self.counters["requested"] += 1
        log.info("snapshot requested", station=station_id, request_id=request_id, by=requested_by)
        self._wake()
        return self.status(db, request_id)

    def status(self, db: Database, request_id: str) -> dict[str, Any]:
        """pending (asked, no answer yet), taken (the station recorded ``event_id``), failed
        (it said why), expired (no answer in :data:`ANSWER_WAIT_S`); with the event's
        detection and thumbnail once they arrived."""
        row = db.snapshot_request(request_id)
        if row is None:
            raise KeyError(request_id)
        age = (self._now() - row["requested_at"]).total_seconds()
        if row["answered_at"] is None:
            state = "pending" if age <= ANSWER_WAIT_S else "expired"
        else:
            state = "taken" if row["ok"] else "failed"
        out = {"request_id": row["request_id"], "station_id": row["station_id"], "state": state,
               "requested_at": _iso(row["requested_at"]), "answered_at": _iso(row["answered_at"]),
               "message": row["message"], "event_id": row["event_id"], "detection": False,
               "has_thumbnail": False}
        if row["event_id"]:
            detection = db.detection(row["event_id"])
            if detection is not None and detection["station_id"] == row["station_id"]:
                out["detection"] = True
                out["has_thumbnail"] = bool(detection.get("has_thumbnail"))
        return out

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), timezone.utc)

    # -- the stations' answers ---------------------------------------------------------

    def on_result(self, client: Any, userdata: Any, message: Any) -> None:
        """paho's callback for ``+/command_result`` (network thread): check, acknowledge, hand on."""
        try:
            answer = self._parse(message.topic, message.payload)
        finally:
            if message.qos:
                client.ack(message.mid, message.qos)
        if answer is None:
            return
        try:
            self._answers.put_nowait(answer)
        except queue.Full:
            log.warning("snapshot answers queue full; answer dropped", request_id=answer["request_id"])

    def _parse(self, topic: str, payload: bytes) -> dict[str, Any] | None:
        try:
            station = parse_topic(topic, self.cfg.mqtt.topic_prefix).station_id
            data = strict_json.loads(payload.decode("utf-8"))
            validate("command_result", data)
        except (TopicError, ValueError, UnicodeDecodeError, PayloadError, RecursionError) as exc:
            self.counters["refused"] += 1
            log.warning("command result refused", topic=topic[:200], error=str(exc)[:300])
            return None
        if data["station_id"] != station or data["command"] != "snapshot":
            return None
        return {"request_id": data["request_id"], "station_id": station, "ok": data["ok"],
                "message": data["message"], "event_id": data["event_id"]}

    def start(self) -> SnapshotDesk:
        self._thread = threading.Thread(target=self._write_answers, name="snapshot-answers", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._answers.put(None)
            self._thread.join(timeout)

    def _write_answers(self) -> None:
        db: Database | None = None
        while True:
            answer = self._answers.get()
            if answer is None:
                break
            try:
                db = db or self._open_db()
                if db.answer_snapshot(answer["request_id"], answer["station_id"], answer["ok"], answer["message"],
                                      answer["event_id"], self._now()):
                    self.counters["answered"] += 1
                    log.info("snapshot answered", station=answer["station_id"], request_id=answer["request_id"],
                             ok=answer["ok"], event_id=answer["event_id"])
                else:
                    self.counters["not_ours"] += 1
            except StorageError as exc:
                log.error("cannot record a snapshot answer", error=str(exc), request_id=answer["request_id"])
                if db is not None:
                    db.close()
                    db = None
        if db is not None:
            db.close()


def _iso(value: datetime | None) -> str | None:
    return times.format(value) if value else None
