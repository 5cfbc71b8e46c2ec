"""MQTT ingest: every station's messages into the database, acknowledged only once stored.

    ingest = Ingest(cfg, db_opener, on_stored=alerter.submit).start()
    ...
    ingest.stop()

One paho-mqtt 2 client with a fixed client id and a persistent session (MQTT 5,
``clean_start = false``, session expiry from ``mqtt.session_expiry_s``), subscribed at
QoS 1 to ``{prefix}/+/detection``, ``thumbnail``, ``status`` and ``health``. With
``mqtt.shared_group`` set, detections and thumbnails come through
``$share/GROUP/...`` so that each goes to one collector of the group; status and
health are retained messages, which MQTT 5 never delivers to shared subscriptions, so
every collector subscribes to them directly (storing them is idempotent).

paho's ``manual_ack``: a QoS 1 message is acknowledged (PUBACK) only after the
transaction that holds it has committed. A collector killed at any moment has either
committed a message (and the broker may resend it: the duplicate is counted, not
stored twice) or not acknowledged it (and the broker resends it to the session when it
is back). Acknowledgements go out in the order the messages came, as MQTT requires.

The network thread only queues messages. One writer thread takes everything queued
(up to ``collector.batch_max``) as one batch: a group commit, so a busy collector
makes few large transactions and a quiet one stores each message at once. The broker
keeps at most ``mqtt.receive_maximum`` unacknowledged messages in flight to us, which
bounds the queue. Messages that fail :func:`~station.collector.intake.admit` are
acknowledged (a resend would fail the same way) and counted by reason in the same
transaction. If a batch fails while the database still answers, its messages are
stored one by one so that a single message the database refuses (say, a NUL character
PostgreSQL cannot keep) is rejected alone. If the database does not answer, nothing is
acknowledged; the writer reconnects with backoff and retries, and the broker holds the
rest: the collector never stops.

A PUBACK names a packet id, and ids are per connection: after a reconnect the broker
resends what was not acknowledged, possibly reusing ids. So a message is acknowledged
only on the connection it came on; older ones are stored and left to their resends.
"""

from __future__ import annotations

import collections
import queue
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import paho.mqtt.client as mqtt

from station.collector.db import BatchResult, Database, Rejection, StorageError, ThumbnailRow
from station.collector.intake import Accepted, admit
from station.collector.thumbnails import ThumbnailFileError, ThumbnailStore
from station.config.collector import CollectorConfig
from station.feed.messages import ThumbnailError
from station.feed.client import (build_tls_context, connect_async, describe_connect_error, describe_refusal,
                                 new_client, read_password)
from station.feed.topics import all_stations
from station.log import get_logger
from station.uris import redact_uri

log = get_logger("collector")


@dataclass(slots=True)
class _Incoming:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int     # which connection it came on
    received: float     # time.monotonic()
    retained: bool = False  # a retained message replayed to a new subscription: no sign of life now


class Ingest:
    def __init__(self, cfg: CollectorConfig, open_db: Callable[[], Database], *,
                 on_stored: Callable[[Sequence[dict[str, Any]]], None] | None = None,
                 on_committed: Callable[[], None] | None = None):
        self.cfg = cfg
        self._open_db = open_db
        self._db: Database | None = None
        self._on_stored = on_stored
        self.on_committed = on_committed  # after each commit: the outbound feeds (station.collector.outbound)
        self._thumbs = ThumbnailStore(cfg.collector.thumbnails_dir)
        self._queue: queue.Queue[_Incoming] = queue.Queue()
        self._stop = threading.Event()
        self._generation = 0
        self._gen_lock = threading.Lock()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._writer: threading.Thread | None = None
        self._last_error: str | None = None
        self.client_id = cfg.mqtt.effective_collector_client_id(cfg.collector.id)
        self.counters: dict[str, int] = collections.Counter()
        self.rejected: dict[str, int] = collections.Counter()
        self.last_batch: dict[str, Any] = {}
        self.listening_since: float | None = None
        """Wall-clock time since when every subscription has been granted on the current
        connection (None while not): silence is judged only over time the collector listened."""
        self._extra: list[tuple[str, Callable[..., None]]] = []  # optional subscriptions and their handlers
        self._password = read_password(cfg.mqtt)
        self._tls = build_tls_context(cfg.mqtt)
        self._client = self._make_client()

    # -- subscriptions ---------------------------------------------------------------
    def subscriptions(self) -> list[str]:
        prefix, group = self.cfg.mqtt.topic_prefix, self.cfg.mqtt.shared_group
        shared = [all_stations(k, prefix) for k in ("detection", "thumbnail")]
        if group:
            shared = [f"$share/{group}/{t}" for t in shared]
        return shared + [all_stations(k, prefix) for k in ("status", "health")] + [t for t, _ in self._extra]

    def add_subscription(self, topic: str, handler: Callable[[mqtt.Client, Any, mqtt.MQTTMessage], None]) -> None:
        """Before :meth:`start`: also subscribe to ``topic`` (QoS 1) and hand its messages to
        ``handler`` on the network thread (which must acknowledge them: ``manual_ack``). Optional:
        a broker that refuses it (an account provisioned before it was granted) is logged, and
        the rest of the ingest goes on."""
        self._extra.append((topic, handler))
        self._client.message_callback_add(topic, handler)

    # -- client ----------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        client = new_client(self.cfg.mqtt, self.client_id, password=self._password, tls=self._tls, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def start(self) -> "Ingest":
        cfg = self.cfg.mqtt
        with self._open_db() as db:  # fail here, naming the database, rather than in the thread
            db.migrate()
            url = db.url
        self._writer = threading.Thread(target=self._write_loop, name="collector-writer", daemon=True)
        self._writer.start()
        connect_async(self._client, cfg, receive_maximum=cfg.receive_maximum)
        self._client.loop_start()
        log.info("collector ingest starting", host=cfg.host, port=cfg.port, client_id=self.client_id,
                 shared_group=cfg.shared_group, database=redact_uri(url))
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Store and acknowledge what has arrived, then disconnect (what comes after is resent)."""
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        log.info("collector ingest stopped", **{k: v for k, v in sorted(self.counters.items())})

    def wait_subscribed(self, timeout: float) -> bool:
        """True once the broker has granted every subscription (messages now reach us)."""
        return self._subscribed.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def mqtt_client(self) -> mqtt.Client:
        """The connection, for what the collector publishes itself (one client id per account)."""
        return self._client

    def stats(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "connected": self.connected, "queued": self._queue.qsize(),
                "counters": dict(self.counters), "rejected": dict(self.rejected),
                "last_batch": dict(self.last_batch), "last_error": self._last_error,
                "shared_group": self.cfg.mqtt.shared_group}

    # -- network thread --------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            self._last_error = describe_refusal(self.cfg.mqtt, reason).message
            log.error(self._last_error, client_id=self.client_id)
            return
        with self._gen_lock:
            self._generation += 1
        self.counters["connects"] += 1
        session = bool(getattr(flags, "session_present", False))
        # Subscribing again on a resumed session is harmless and covers a changed config.
        result, _ = client.subscribe([(t, 1) for t in self.subscriptions()])
        if result != mqtt.MQTT_ERR_SUCCESS:
            log.error("subscribe failed", result=str(result))
        self._connected.set()
        self._last_error = None
        log.info("collector connected", session_present=session, subscriptions=",".join(self.subscriptions()))

    def _on_connect_fail(self, client, userdata) -> None:
        # paho calls this from inside its ``except OSError`` block: the error is the one being handled.
        problem = describe_connect_error(self.cfg.mqtt, sys.exc_info()[1])
        self.counters["connect_failures"] += 1
        n = self.counters["connect_failures"]
        changed = problem.message != self._last_error
        self._last_error = problem.message
        if changed or n & (n - 1) == 0:  # 1st, 2nd, 4th, 8th ... failure: readable over a long outage
            getattr(log, problem.level)(problem.message + "; retrying with backoff", failures=n)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = False
        optional = {t for t, _ in self._extra}
        for topic, code in zip(self.subscriptions(), reason_codes):
            if code.is_failure:
                if topic in optional:
                    log.warning("broker refused an optional subscription (run station provision again to "
                                "bring the collector's role up to date)", topic=topic, reason=str(code))
                    continue
                refused = True
                self._last_error = f"subscription to {topic} refused: {code}"
                log.error("broker refused a subscription (check the collector's ACL)", topic=topic,
                          reason=str(code))
        if not refused:
            self.listening_since = time.time()
            self._subscribed.set()
            log.info("collector subscribed", topics=len(reason_codes))

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        with self._gen_lock:  # packet ids of the old connection mean nothing on the next one
            self._generation += 1
        self._connected.clear()
        self._subscribed.clear()
        self.listening_since = None
        self.counters["disconnects"] += 1
        if not self._stop.is_set():
            self._last_error = f"disconnected: {reason}"
            log.warning("collector disconnected; paho reconnects", reason=str(reason))

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        self.counters["received"] += 1
        if message.qos == 0 and self._queue.qsize() >= 2 * self.cfg.mqtt.receive_maximum:
            # Receive Maximum bounds only QoS 1 and 2; heartbeats (QoS 0, retained, repeated)
            # are dropped while the writer is behind, rather than piling up in memory.
            self.counters["qos0_dropped"] += 1
            return
        self._queue.put(_Incoming(message.topic, message.payload, message.mid, message.qos,
                                  self._generation, time.monotonic(), bool(message.retain)))

    # -- writer thread ---------------------------------------------------------------
    def _connect_db(self) -> Database:
        delay = 0.5
        while True:
            db = None
            try:
                db = self._open_db()
                db.migrate()
                return db
            except StorageError as exc:
                if db is not None:
                    db.close()
                self._last_error = str(exc)
                log.error("database unreachable; retrying", error=str(exc), retry_in_s=delay)
                if self._stop.wait(delay):
                    raise
                delay = min(delay * 2, self.cfg.collector.retry_max_s)

    def _write_loop(self) -> None:
        """The writer thread; it owns the database connection (SQLite's cannot change threads)."""
        try:
            self._db = self._connect_db()
        except StorageError:
            return  # stopped before the database came back
        try:
            self._write_batches()
        finally:
            self._db.close()
            self._db = None

    def _write_batches(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            batch = [first]
            while len(batch) < self.cfg.collector.batch_max:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                try:
                    self._process(batch)
                except Exception as exc:  # a bug must not stop the collector, nor stall the others
                    if self._stop.is_set():
                        raise
                    self.counters["writer_errors"] += 1
                    self._isolate(batch, exc)
            except Exception:
                if not self._stop.is_set():
                    raise
                log.info("collector stopping; unstored messages are left to the broker", messages=len(batch))
                return

    def _process(self, batch: list[_Incoming]) -> None:
        accepted: list[tuple[_Incoming, Accepted]] = []
        rejections: list[Rejection] = []
        for item in batch:
            verdict = admit(item.topic, item.payload, prefix=self.cfg.mqtt.topic_prefix,
                            max_bytes=self.cfg.collector.max_payload_kb * 1024)
            if isinstance(verdict, Rejection):
                rejections.append(verdict)
            else:
                accepted.append((item, verdict))
        thumbs: list[ThumbnailRow] = []
        kept: list[tuple[_Incoming, Accepted]] = []
        for item, a in accepted:
            if a.kind == "thumbnail":
                try:
                    thumbs.append(self._save_thumbnail(a))
                except ThumbnailError as exc:
                    rejections.append(Rejection("bad_thumbnail", a.station_id, f"{item.topic}: {exc}"[:500]))
                    continue
            kept.append((item, a))
        result = self._store(kept, thumbs, rejections)
        for r in rejections:
            self.rejected[r.reason] += 1
            log.warning("message rejected", reason=r.reason, station=r.station_id or None, detail=r.detail)
        self._ack(batch)
        if self.on_committed is not None:
            self.on_committed()
        self.counters["batches"] += 1
        self.counters["stored"] += result.inserted
        self.counters["duplicates"] += result.duplicates
        self.counters["thumbnails"] += result.thumbnails
        self.counters["statuses"] += result.statuses
        self.counters["healths"] += result.healths
        if result.implausible:
            self.counters["implausible"] += result.implausible
            log.warning("heartbeat values left out as impossible", heartbeats=result.implausible)
        self.counters["rejected"] += len(rejections)
        now = time.monotonic()
        self.last_batch = {"messages": len(batch), "inserted": result.inserted, "duplicates": result.duplicates,
                           "rejected": len(rejections),
                           "oldest_wait_ms": round((now - min(i.received for i in batch)) * 1000, 1)}
        if result.new_event_ids and self._on_stored is not None:
            new = set(result.new_event_ids)
            try:
                self._on_stored([a.payload for _, a in kept if a.kind == "detection" and a.payload["event_id"] in new])
            except Exception as exc:
                log.error("alert hand-off failed", error=repr(exc))

    def _save_thumbnail(self, a: Accepted) -> ThumbnailRow:
        delay = 0.5
        while True:
            try:
                return self._thumbs.save(a.payload)
            except ThumbnailFileError as exc:  # disk full or read-only: wait, never drop
                self._last_error = str(exc)
                log.error("cannot write thumbnails; retrying", error=str(exc), retry_in_s=delay)
                if self._stop.wait(delay):
                    raise
                delay = min(delay * 2, self.cfg.collector.retry_max_s)

    def _store(self, kept: list[tuple[_Incoming, Accepted]], thumbs: list[ThumbnailRow],
               rejections: list[Rejection]) -> BatchResult:
        """Store the batch; while the database cannot (down, locked, full), wait and retry,
        acknowledging nothing. Only data the database refuses is rejected."""
        delay = 0.5
        while True:
            assert self._db is not None
            try:
                try:
                    return self._store_once(kept, thumbs, rejections)
                except StorageError as exc:
                    if exc.transient or not self._db.ping():
                        raise _Transient(exc) from None
                    return self._store_one_by_one(kept, thumbs, rejections, exc)
            except _Transient as t:
                self.counters["database_errors"] += 1
                self._last_error = str(t.error)
                log.error("database cannot store now; batch kept unacknowledged", error=str(t.error),
                          retry_in_s=delay)
                if self._stop.wait(delay):
                    raise t.error from None
                delay = min(delay * 2, self.cfg.collector.retry_max_s)
                if not self._db.ping():
                    self._db.close()
                    self._db = self._connect_db()

    def _store_once(self, kept: list[tuple[_Incoming, Accepted]], thumbs: list[ThumbnailRow],
                    rejections: list[Rejection]) -> BatchResult:
        assert self._db is not None
        by_kind: dict[str, list[dict[str, Any]]] = {"detection": [], "status": [], "health": []}
        for _, a in kept:
            if a.kind in by_kind:
                by_kind[a.kind].append(a.payload)
        return self._db.store_batch(by_kind["detection"], by_kind["status"], by_kind["health"],
                                    thumbnails=thumbs, rejections=rejections,
                                    max_clock_skew_s=self.cfg.collector.max_clock_skew_s,
                                    heard={a.station_id for item, a in kept if not item.retained})

    def _store_one_by_one(self, kept: list[tuple[_Incoming, Accepted]], thumbs: list[ThumbnailRow],
                          rejections: list[Rejection], cause: StorageError) -> BatchResult:
        """The database answers but refused the batch's data: find the message(s) it refuses.
        A transient error on the way sends the whole batch back to :meth:`_store`'s retry
        (what was stored meanwhile comes back as duplicates)."""
        log.warning("batch refused by the database; storing its messages one by one", error=str(cause))
        thumb_of = {t.event_id: t for t in thumbs}
        refused = list(rejections)
        inserted = duplicates = stored_thumbs = statuses = healths = 0
        new_ids: list[str] = []
        for item, a in kept:
            t = [thumb_of[a.payload["event_id"]]] if a.kind == "thumbnail" else []
            try:
                r = self._store_once([(item, a)] if a.kind != "thumbnail" else [], t, [])
            except StorageError as exc:
                if exc.transient or not self._db.ping():
                    raise _Transient(exc) from None
                refused.append(Rejection("storage_refused", a.station_id, f"{item.topic}: {exc}"[:500]))
                continue
            inserted, duplicates = inserted + r.inserted, duplicates + r.duplicates
            stored_thumbs, statuses, healths = stored_thumbs + r.thumbnails, statuses + r.statuses, healths + r.healths
            new_ids.extend(r.new_event_ids)
        try:
            self._db.store_batch(rejections=refused)
        except StorageError as exc:
            raise _Transient(exc) from None
        rejections[:] = refused
        return BatchResult(inserted, duplicates, stored_thumbs, tuple(new_ids), statuses, healths)

    def _isolate(self, batch: list[_Incoming], error: BaseException) -> None:
        """A batch broke the writer (a bug, or input nothing else caught): handle its messages
        one at a time, so that one message cannot hold the others, or the broker's in-flight
        window, hostage. A message that still breaks it is logged, counted and acknowledged."""
        log.error("collector writer error; retrying the batch message by message", error=repr(error),
                  messages=len(batch))
        for item in batch:
            try:
                self._process([item])
            except Exception as exc:
                if self._stop.is_set():
                    raise
                self.counters["internal_errors"] += 1
                self.rejected["internal_error"] += 1
                self._last_error = f"writer error: {exc!r}"
                log.error("message dropped: the collector cannot handle it (a bug: please report)",
                          topic=item.topic, bytes=len(item.payload), error=repr(exc))
                try:
                    self._db.store_batch(rejections=[Rejection("internal_error", _station_of_topic(item.topic),
                                                               f"{item.topic}: {exc!r}"[:500])])
                except Exception as store_exc:  # counted in memory already
                    log.error("could not record the dropped message", error=repr(store_exc))
                self._ack([item])

    def _ack(self, batch: list[_Incoming]) -> None:
        with self._gen_lock:  # a disconnect in between turns the rest into resends
            current = self._generation
            for item in batch:
                if item.qos == 0:
                    continue
                if item.generation != current:
                    self.counters["left_for_resend"] += 1  # its resend on a new connection is acknowledged
                    continue
                self._client.ack(item.mid, item.qos)
                self.counters["acked"] += 1


class _Transient(Exception):
    """The database could not store a batch now; :meth:`Ingest._store` waits and retries."""

    def __init__(self, error: StorageError):
        super().__init__(str(error))
        self.error = error


def _station_of_topic(topic: str) -> str:
    parts = topic.split("/")
    return parts[-2][:64] if len(parts) >= 2 else ""
