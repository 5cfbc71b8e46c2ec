"""The MQTT side of the feed: drains the outbox to the broker, oldest first, at QoS 1.

Two threads. paho-mqtt's network thread (``loop_start``) connects, reconnects with
exponential backoff (``reconnect_min_s`` doubling to ``reconnect_max_s``; it sleeps in
between) and reads acknowledgements. The sender thread takes rows from the
:class:`~station.feed.outbox.Outbox` while connected, keeps at most ``max_inflight``
(or the broker's Receive Maximum) unacknowledged, and deletes a row only after the
broker's PUBACK for it. While offline it waits on a condition: no polling.

Delivery is at least once. A row handed to paho is remembered by its message id (mid);
after a reconnect paho sends it again itself (with DUP), so the sender never publishes
it twice. After a restart every row still in the outbox is published again; consumers
de-duplicate by ``message_id``. A PUBACK with a failure reason code (MQTT 5, e.g. the
broker's ACL denies the topic) leaves the row in the outbox, pauses sending with the
same backoff and reports it.

Settings problems are errors that name the key: files are checked when the publisher
is built (:func:`check_settings` raises :class:`FeedConfigError`), a refused
connection (credentials, TLS) is reported once per outage in the log and in
:attr:`Publisher.last_error`.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from station.config.mqtt import MqttSection
from station.feed.client import (build_tls_context, connect_async, describe_connect_error, describe_refusal,
                                 new_client, read_password)
from station.feed.outbox import Outbox, OutboxRow
from station.log import get_logger

log = get_logger("feed")

REPEAT_LOG_S = 600.0
"""An unchanged connection problem is logged again at most this often."""


# -- the publisher -------------------------------------------------------------------------
@dataclass(slots=True)
class _Sent:
    """What a paho message id stands for: an outbox row, or a publish_now message (row_id None)."""
    row_id: int | None
    message_id: str | None
    kind: str | None
    topic: str
    qos: int


class Publisher:
    def __init__(self, cfg: MqttSection, station_id: str, outbox: Outbox,
                 will: tuple[str, bytes | str] | None = None,
                 on_delivered: Callable[[str, str], None] | None = None,
                 on_command: Callable[[str, bytes, bool], None] | None = None,
                 subscribe_topics: Sequence[str] = (),
                 on_connected: Callable[[], None] | None = None):
        self.cfg = cfg
        self.outbox = outbox
        self.client_id = cfg.effective_client_id(station_id)
        self.on_delivered = on_delivered
        self.on_command = on_command
        self.on_connected = on_connected
        self.subscribe_topics = list(subscribe_topics)
        self._tls = build_tls_context(cfg)
        self._password = read_password(cfg)
        self._cond = threading.Condition()
        self._connected = False
        self._window = cfg.max_inflight
        self._sent: dict[int, _Sent] = {}
        self._early: dict[int, Any] = {}
        self._inflight_rows: set[int] = set()
        self._acked: list[_Sent] = []
        self._finishing = 0
        self._cursor = 0
        self._more = True
        self._pause_until = 0.0
        self._refusal_delay = 0.0
        self._closing = False
        self._stopping = False
        self._sender: threading.Thread | None = None
        self._started = False
        self._attempt_refused = False
        self._last_error: str | None = None
        self._last_logged: tuple[str, float, int] | None = None
        self.counters = {"connect_attempts": 0, "connects": 0, "disconnects": 0, "published": 0,
                         "delivered": 0, "refused_publishes": 0, "sender_wakeups": 0}
        self._client = self._make_client(will)
        outbox.add_listener(self.wake)

    def _make_client(self, will: tuple[str, bytes | str] | None) -> mqtt.Client:
        client = new_client(self.cfg, self.client_id, password=self._password, tls=self._tls)
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.max_inflight_messages_set(self.cfg.max_inflight)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> "Publisher":
        if self._started:
            return self
        cfg = self.cfg
        with self._cond:
            self._closing = self._stopping = False
            self._cursor, self._more = 0, True
        connect_async(self._client, cfg)
        self._started = True
        self._client.loop_start()
        self._sender = threading.Thread(target=self._run, name="feed-sender", daemon=True)
        self._sender.start()
        log.info("feed starting", host=cfg.host, port=cfg.port, client_id=self.client_id, tls=cfg.tls,
                 protocol=cfg.protocol, queued=len(self.outbox))
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sending, wait up to ``timeout`` for outstanding acknowledgements, disconnect.
        Publishes nothing itself (publish the offline status first); what is not
        acknowledged stays in the outbox for the next start."""
        if not self._started:
            return
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._inflight_rows or not self._connected, timeout)
            self._stopping = True
            self._cond.notify_all()
        if self._sender is not None:
            self._sender.join(timeout)
            self._sender = None
        self._client.disconnect()
        self._client.loop_stop()
        self._started = False
        with self._cond:
            self._connected = False
        log.info("feed stopped", delivered=self.counters["delivered"], queued=len(self.outbox))

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def last_error(self) -> str | None:
        """The last connection or publish problem, naming the key to fix; None once connected."""
        return self._last_error

    def wake(self) -> None:
        """Something was put in the outbox (registered as the outbox's listener)."""
        with self._cond:
            self._more = True
            if self._connected:  # offline, the sender sleeps until the broker is back
                self._cond.notify_all()

    def publish_now(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> bool:
        """Send a message that is not worth keeping (health, status, command results).
        False when offline: nothing is queued in memory for later."""
        if not self._connected:
            return False
        try:
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
        except ValueError as exc:
            log.error("message cannot be published", topic=topic, error=str(exc))
            return False
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        self._register(info.mid, _Sent(None, None, None, topic, qos))
        return True

    def wait_delivered(self, timeout: float) -> bool:
        """Block until the outbox is empty and nothing is in flight (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if not (self._inflight_rows or self._acked or self._finishing or len(self.outbox)):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))

    def stats(self) -> dict[str, Any]:
        with self._cond:
            inflight = len(self._inflight_rows)
        return {"connected": self._connected, "client_id": self.client_id, "inflight": inflight,
                "window": self._window, "last_error": self._last_error, **self.counters,
                "outbox": self.outbox.stats().to_dict()}

    # -- the sender thread -------------------------------------------------------------
    def _can_send(self) -> bool:
        return (self._connected and self._more and not self._closing
                and len(self._inflight_rows) < self._window and time.monotonic() >= self._pause_until)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._acked or self._stopping or self._can_send()):
                    timeout = None
                    if self._connected and self._more and self._pause_until > time.monotonic():
                        timeout = self._pause_until - time.monotonic()
                    self._cond.wait(timeout)
                    self.counters["sender_wakeups"] += 1
                acked, self._acked = self._acked, []
                self._finishing += len(acked)
                stopping = self._stopping
                send = self._can_send()
                if send:
                    self._more = False
                room = self._window - len(self._inflight_rows)
                cursor, skip = self._cursor, set(self._inflight_rows)
            if acked:  # deleted before the next peek, so a rewound cursor cannot send them again
                self._finish(acked)
            if stopping:
                return
            if send and room > 0:
                self._send_batch(cursor, skip, room)

    def _send_batch(self, cursor: int, skip: set[int], room: int) -> None:
        limit = room + len(skip)  # in-flight rows above the cursor (after a refusal) are skipped
        rows = self.outbox.peek(after_id=cursor, limit=limit)
        fresh = [r for r in rows if r.id not in skip]
        if len(rows) == limit or len(fresh) > room:
            with self._cond:
                self._more = True  # the outbox holds more than this batch
        for row in fresh[:room]:
            self._send_row(row)

    def _send_row(self, row: OutboxRow) -> None:
        with self._cond:
            self._inflight_rows.add(row.id)
            self._cursor = max(self._cursor, row.id)
        try:
            info = self._client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
        except (ValueError, TypeError) as exc:
            log.error("outbox message cannot be published; it stays in the outbox",
                      message_id=row.message_id, topic=row.topic, error=str(exc))
            with self._cond:
                self._inflight_rows.discard(row.id)
            return
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and row.qos > 0):
            # NO_CONN at QoS > 0: paho keeps the message and sends it after reconnecting.
            self.counters["published"] += 1
            self._register(info.mid, _Sent(row.id, row.message_id, row.kind, row.topic, row.qos))
            return
        with self._cond:  # not taken by paho: send it again later
            self._inflight_rows.discard(row.id)
            self._cursor = min(self._cursor, row.id - 1)
            self._more = True

    def _register(self, mid: int, sent: _Sent) -> None:
        # The PUBACK may come before publish() returns here; on_publish then parks it in _early.
        with self._cond:
            reason = self._early.pop(mid, None)
            if reason is None:
                self._sent[mid] = sent
            else:
                self._settle(sent, reason)

    def _settle(self, sent: _Sent, reason: Any) -> None:
        """Called with the lock held, when the broker has answered for ``sent``."""
        if sent.row_id is None:
            return
        self._inflight_rows.discard(sent.row_id)
        if getattr(reason, "is_failure", False):
            self.counters["refused_publishes"] += 1
            self._cursor = min(self._cursor, sent.row_id - 1)
            self._more = True
            self._refusal_delay = min(self.cfg.reconnect_max_s,
                                      max(self.cfg.reconnect_min_s, 2 * self._refusal_delay))
            self._pause_until = time.monotonic() + self._refusal_delay
            self._report(f"the broker refused a message on {sent.topic}: {reason} (check that "
                         f"mqtt.username may publish there in the broker's ACL); it stays in the outbox "
                         f"and is retried", message_id=sent.message_id, retry_in_s=self._refusal_delay)
        else:
            self._acked.append(sent)
        self._cond.notify_all()

    def _finish(self, acked: list[_Sent]) -> None:
        self.outbox.remove_many(s.row_id for s in acked if s.row_id is not None)
        if self.on_delivered is not None:
            for s in acked:
                try:
                    self.on_delivered(s.message_id, s.kind)
                except Exception:  # noqa: BLE001 - the row is delivered; report and go on
                    log.exception("on_delivered failed", message_id=s.message_id)
        with self._cond:
            self.counters["delivered"] += len(acked)
            self._finishing -= len(acked)
            self._cond.notify_all()

    # -- paho callbacks (network thread) ---------------------------------------------------
    def _on_pre_connect(self, client, userdata) -> None:
        self.counters["connect_attempts"] += 1
        self._attempt_refused = False

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            self._attempt_refused = True
            self._report(describe_refusal(self.cfg, reason).message)
            return
        window = self.cfg.max_inflight
        receive_max = getattr(properties, "ReceiveMaximum", None) if properties is not None else None
        if receive_max:
            window = max(1, min(window, int(receive_max)))
        if self.subscribe_topics:
            client.subscribe([(t, 1) for t in self.subscribe_topics])
        with self._cond:
            self._connected = True
            self._window = window
            self._more = True
            self._pause_until, self._refusal_delay = 0.0, 0.0
            self._cond.notify_all()
        self.counters["connects"] += 1
        if self._last_error is not None:
            log.info("connected to the broker again", host=self.cfg.host, port=self.cfg.port,
                     after=self._last_error)
        else:
            log.info("connected to the broker", host=self.cfg.host, port=self.cfg.port,
                     session_present=flags.session_present, window=window)
        self._last_error = None
        self._last_logged = None
        if self.on_connected is not None:
            try:
                self.on_connected()
            except Exception:  # noqa: BLE001 - must not kill the network thread
                log.exception("on_connected failed")

    def _on_connect_fail(self, client, userdata) -> None:
        # paho calls this from inside its ``except OSError`` block: the error is the one being handled.
        problem = describe_connect_error(self.cfg, sys.exc_info()[1])
        self._report(problem.message, level=problem.level)

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        with self._cond:
            was_connected = self._connected
            self._connected = False
            for mid in [m for m, s in self._sent.items() if s.row_id is None and s.qos == 0]:
                del self._sent[mid]  # paho drops unsent QoS 0 messages on reconnect
            self._cond.notify_all()
        if self._closing:
            return
        if was_connected:
            self.counters["disconnects"] += 1
            name = getattr(reason, "getName", lambda: str(reason))()
            if name == "Session taken over":
                self._report(f"mqtt.client_id: another client connected with the id {self.client_id!r} "
                             f"and took over the session; every station needs its own id")
            else:
                log.warning("lost the broker; detections stay in the outbox", reason=str(reason),
                            inflight=len(self._inflight_rows), queued=len(self.outbox))
        elif not self._attempt_refused:
            hint = ""
            if self.cfg.tls and self.cfg.cert_file is None:
                hint = " (if the broker requires client certificates, set mqtt.cert_file and mqtt.key_file)"
            self._report(f"the broker at {self.cfg.host}:{self.cfg.port} closed the connection before "
                         f"accepting it: {reason}{hint}", level="warning")

    def _on_publish(self, client, userdata, mid, reason, properties) -> None:
        with self._cond:
            sent = self._sent.pop(mid, None)
            if sent is None:
                if len(self._early) > 10_000:  # cannot happen if every publish is registered; bound it anyway
                    log.warning("dropping unmatched acknowledgements", count=len(self._early))
                    self._early.clear()
                self._early[mid] = reason
            else:
                self._settle(sent, reason)

    def _on_message(self, client, userdata, message) -> None:
        if self.on_command is None:
            return
        try:
            self.on_command(message.topic, bytes(message.payload), bool(message.retain))
        except Exception:  # noqa: BLE001 - a bad command must not kill the network thread
            log.exception("command handler failed", topic=message.topic)

    # -- reporting -------------------------------------------------------------------------
    def _report(self, message: str, level: str = "error", **fields: Any) -> None:
        """Log a connection problem once, and again only every REPEAT_LOG_S while it lasts."""
        self._last_error = message
        now = time.monotonic()
        last = self._last_logged
        if last is not None and last[0] == message and now - last[1] < REPEAT_LOG_S:
            self._last_logged = (message, last[1], last[2] + 1)
            return
        repeats = last[2] if last is not None and last[0] == message else 0
        self._last_logged = (message, now, 0)
        extra = {"repeated": repeats} if repeats else {}
        getattr(log, level)(message, host=self.cfg.host, port=self.cfg.port, **fields, **extra)
