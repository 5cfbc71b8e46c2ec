"""The station's side of the MQTT feed, wired into the daemon.

    classified event ──► detection (+ thumbnail) committed to the SQLite outbox ──► publisher ──► broker
                         record.delivery = queued                 PUBACK ──► record.delivery = delivered
    health thread ──► health (QoS 0, retained)     status: online on connect, offline on stop, will on loss
    broker ──► command/snapshot|reload ──► the station (StationControl) ──► command_result

A detection is sent once its classification is final (a success, or a failure after
``classifier.max_attempts``). At start, every final event not yet delivered is queued
again (``INSERT OR IGNORE`` by message id keeps that idempotent), so a crash between
classification and enqueue loses nothing. The disk guard prunes only delivered events.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from station import __version__, sysinfo
from station.classifier.worker import classification_final
from station.config import StationConfig
from station.events.store import EventStore, StoreError
from station.feed.messages import (
    Command, CommandError, MessageError, ThumbnailError, command_result, detection_message, encode,
    health_message, make_thumbnail, parse_command, status_message, thumbnail_message, thumbnail_source,
    will_message,
)
from station.feed.outbox import Outbox, OutboxError
from station.feed.client import FeedConfigError
from station.feed.control import StationControl, StationFacts
from station.feed.publisher import Publisher
from station.feed.topics import DELIVERY, Topics, parse_topic
from station.log import get_logger
from station.record import DeliveryRecord, EventRecord

log = get_logger("feed")


def delivered(record: EventRecord) -> bool:
    return (record.get("delivery") or {}).get("status") == "delivered"


def prunable_when_fed(record: EventRecord) -> bool:
    """With the feed on, an event may leave the card only once the broker has it."""
    return record.get("status") == "closed" and delivered(record)


class FeedService:
    def __init__(self, cfg: StationConfig, store: EventStore):
        self.cfg = cfg
        self.store = store
        self.topics = Topics(cfg.station.id, cfg.mqtt.topic_prefix)
        path = cfg.mqtt.outbox_file(cfg.storage.data_dir)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.outbox = Outbox(path, int(cfg.mqtt.outbox_cap_mb * 1024 * 1024))
        except (OSError, OutboxError) as exc:
            raise FeedConfigError("outbox_path", f"cannot open the outbox at {path}: {exc}") from None
        self.uptime = sysinfo.Uptime()
        self.connected_at = time.time()
        will = (self.topics.status, encode(will_message(cfg.station.id, self.connected_at)))
        self.publisher = Publisher(cfg.mqtt, cfg.station.id, self.outbox, will=will,
                                   on_delivered=self._on_delivered, on_command=self._on_command,
                                   on_connected=self._on_connected, subscribe_topics=[self.topics.commands])
        self.control: StationControl | None = None
        self._handlers: dict[str, Callable[[Command, StationControl], None]] = {
            "snapshot": self._snapshot, "reload": self._reload}
        self._stop = threading.Event()
        self._health: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------
    def start(self, control: StationControl | None) -> None:
        """Start publishing; ``control`` answers commands and gives health facts (None in benchmarks)."""
        self.control = control
        # Catching up after a long outage reads every record (and may build thumbnails):
        # never on the capture thread.
        self._catcher = threading.Thread(target=self._catch_up, name="feed-catch-up", daemon=True)
        self._catcher.start()
        self.publisher.start()
        self._health = threading.Thread(target=self._health_loop, name="feed-health", daemon=True)
        self._health.start()

    def wait_caught_up(self, timeout: float) -> None:
        """Block until the start-up catch-up has queued every undelivered detection."""
        if getattr(self, "_catcher", None) is not None:
            self._catcher.join(timeout)

    def wait_delivered(self, timeout: float, offline_grace_s: float = 5.0) -> bool:
        """Block until every final event is queued and the broker has acknowledged the outbox
        (a replay that ran out, the demo's Ctrl-C); False at the timeout, or once the broker
        has been out of reach for ``offline_grace_s`` (down, or refusing our credentials):
        waiting longer would not deliver anything, and the outbox keeps it all for the next
        start."""
        deadline = time.monotonic() + timeout
        self.wait_caught_up(timeout)
        offline_since: float | None = None
        while True:
            now = time.monotonic()
            if now >= deadline:
                return False
            if self.publisher.connected:
                offline_since = None
            elif offline_since is None:
                offline_since = now
            elif now - offline_since >= offline_grace_s:
                log.warning("broker out of reach; undelivered detections stay in the outbox for the next start",
                            queued=len(self.outbox), error=self.publisher.last_error)
                return False
            if self.publisher.wait_delivered(min(0.5, deadline - now)):
                return True

    def reconfigure(self, cfg: StationConfig) -> None:
        """A reloaded config: the classifier and station sections take effect for the next
        detection; [mqtt] is kept until the next start (the connection is built once)."""
        self.cfg = self.cfg.model_copy(update={"classifier": cfg.classifier, "station": cfg.station})

    def stop(self) -> None:
        self._stop.set()
        if getattr(self, "_catcher", None) is not None:
            self._catcher.join(10)
        now = time.time()
        self.publisher.publish_now(self.topics.status, encode(status_message(
            self.cfg.station.id, "offline", "stopping", now, software_version=__version__)), qos=1, retain=True)
        self.publisher.stop()
        if self._health is not None:
            self._health.join(5)
        self.outbox.close()

    def _catch_up(self) -> None:
        queued = 0
        try:
            for record in self.store.records():
                if self._stop.is_set():
                    return
                if self._final(record) and not delivered(record):
                    # Already queued once: its row is in the outbox (INSERT OR IGNORE keeps
                    # this idempotent), so do not decode a thumbnail again.
                    again = (record.get("delivery") or {}).get("status") == "queued"
                    queued += self.enqueue(record, thumbnail=not again)
        except (OutboxError, StoreError, OSError) as exc:
            log.error("catching up undelivered detections stopped; the next start resumes", error=str(exc))
        if queued:
            log.info("undelivered detections queued again", count=queued)

    def _final(self, record: EventRecord) -> bool:
        if record.get("status") != "closed":
            return False
        if not self.cfg.classifier.enabled:
            return True
        return classification_final(record.get("classification"), self.cfg.classifier.max_attempts)

    # -- events in ---------------------------------------------------------------------
    def on_event(self, record: EventRecord) -> None:
        """Called with each event's latest record (after classification, if on)."""
        if self._final(record) and not delivered(record):
            self.enqueue(record)

    def enqueue(self, record: EventRecord, thumbnail: bool = True) -> bool:
        event_id = record["id"]
        thumb = None
        if self.cfg.mqtt.thumbnails and thumbnail:
            thumb = self._thumbnail(record)
        try:
            msg = detection_message(record, self.cfg.station, thumbnail=thumb is not None,
                                    coordinate_uncertainty_m=self.cfg.station.coordinate_uncertainty_m)
        except MessageError as exc:
            log.error("event cannot be sent as a detection", id=event_id, error=str(exc))
            return False
        d = DELIVERY["detection"]
        stored = self.outbox.put(self.topics.detection, encode(msg), qos=d.qos, retain=d.retain,
                                 kind="detection", message_id=event_id)
        if thumb is not None:
            d = DELIVERY["thumbnail"]
            self.outbox.put(self.topics.thumbnail, encode(thumb), qos=d.qos, retain=d.retain,
                            kind="thumbnail", message_id=thumb["message_id"])
        if stored:
            self._mark(event_id, {"status": "queued", "queued_at": round(time.time(), 3)})
        return stored

    def _thumbnail(self, record: EventRecord) -> dict[str, Any] | None:
        name = thumbnail_source(record)
        if name is None:
            return None
        try:
            jpeg = make_thumbnail(self.store.frame_path(record["id"], name), self.cfg.mqtt.thumbnail_max_bytes)
            if jpeg is None:
                return None
            return thumbnail_message(record["id"], jpeg, station_id=self.cfg.station.id,
                                     max_bytes=self.cfg.mqtt.thumbnail_max_bytes)
        except ThumbnailError as exc:
            log.warning("no thumbnail for event", id=record["id"], error=str(exc))
            return None

    def _mark(self, event_id: str, delivery: DeliveryRecord) -> None:
        def change(record: EventRecord) -> bool:
            if delivered(record):
                return False  # a fast PUBACK got here first: never step back to "queued"
            record["delivery"] = {**(record.get("delivery") or {}), **delivery}
            return True

        try:
            self.store.modify(event_id, change)
        except (StoreError, OSError) as exc:
            log.warning("cannot mark delivery in the event record", id=event_id, error=str(exc))

    def _on_delivered(self, message_id: str, kind: str) -> None:
        if kind == "detection":
            self._mark(message_id, {"status": "delivered", "delivered_at": round(time.time(), 3)})

    # -- status, health ------------------------------------------------------------------
    def _on_connected(self) -> None:
        msg = status_message(self.cfg.station.id, "online", "started", self.uptime.started_wall,
                             software_version=__version__)
        self.publisher.publish_now(self.topics.status, encode(msg), qos=1, retain=True)
        self.publish_health()

    def _health_loop(self) -> None:
        while not self._stop.wait(self.cfg.mqtt.health_interval_s):
            try:
                self.publish_health()
            except Exception:  # noqa: BLE001 - the heartbeat must outlive any one bad reading
                log.exception("health heartbeat failed")

    def health(self) -> dict[str, Any]:
        facts = self.control.facts() if self.control is not None else StationFacts()
        out = self.outbox.stats()
        load = sysinfo.load_average() or (0.0, 0.0, 0.0)
        return health_message(
            self.cfg.station.id, uptime_s=self.uptime.seconds(), cpu_temperature_c=sysinfo.cpu_temperature_c(),
            load=load, memory=sysinfo.memory_mb(), disk=facts.disk,
            outbox={"depth": out.depth, "detections": out.depth_by_kind.get("detection", 0),
                    "thumbnails": out.depth_by_kind.get("thumbnail", 0), "oldest_age_s": out.oldest_age_s,
                    "bytes": out.bytes, "cap_mb": round(out.cap_bytes / 2**20, 1), "full": out.full,
                    "thumbnails_dropped": out.evicted.get("thumbnail", 0) + out.refused.get("thumbnail", 0),
                    "detections_dropped": out.evicted.get("detection", 0) + out.refused.get("detection", 0)},
            camera=facts.camera,
            events={"total": len(self.store.ids()), "pending_classification": facts.pending_classification},
            clock=sysinfo.clock_sync(),
            power=facts.power,
            # "active", or "sleeping until 18:42" outside [schedule] active hours (camera closed).
            extra={"schedule": facts.schedule} if facts.schedule is not None else None,
            ir_light=facts.ir_light)

    def publish_health(self) -> bool:
        try:
            msg = self.health()
        except (MessageError, OSError) as exc:
            log.error("cannot build the health message", error=str(exc))
            return False
        d = DELIVERY["health"]
        return self.publisher.publish_now(self.topics.health, encode(msg), qos=d.qos, retain=d.retain)

    # -- commands ------------------------------------------------------------------------
    def _on_command(self, topic: str, payload: bytes, retained: bool = False) -> None:
        if retained:
            log.warning("ignoring a retained command (commands act once, when sent)", topic=topic)
            return
        try:
            parsed = parse_topic(topic, self.cfg.mqtt.topic_prefix)
            command = parse_command(payload, topic_command=parsed.rest, station_id=parsed.station_id)
        except CommandError as exc:
            log.warning("command refused", topic=topic, error=str(exc))
            if getattr(exc, "request_id", None) and getattr(exc, "command", None):
                self._reply(exc.request_id, exc.command, False, str(exc))
            return
        except ValueError as exc:
            log.warning("command on an unexpected topic", topic=topic, error=str(exc))
            return
        log.info("command received", command=command.command, request_id=command.request_id,
                 sent_by=command.sent_by)
        if self.control is None:
            self._reply(command.request_id, command.command, False, "station not running")
            return
        self._handlers[command.command](command, self.control)

    def _snapshot(self, command: Command, control: StationControl) -> None:
        control.request_snapshot(lambda event_id, message: self._reply(
            command.request_id, "snapshot", event_id is not None, message, event_id))

    def _reload(self, command: Command, control: StationControl) -> None:
        control.request_reload(lambda ok, message: self._reply(command.request_id, "reload", ok, message))

    def _reply(self, request_id: str, command: str, ok: bool, message: str, event_id: str | None = None) -> None:
        msg = command_result(self.cfg.station.id, request_id, command, ok, message, event_id=event_id)
        d = DELIVERY["command_result"]
        self.outbox.put(self.topics.command_result, encode(msg), qos=d.qos, retain=d.retain,
                        kind="command_result", message_id=f"{request_id}:result")
