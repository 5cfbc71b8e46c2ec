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

import ssl
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from station.config.mqtt import BrokerSection, MqttSection
from station.feed.outbox import Outbox, OutboxRow
from station.log import get_logger

log = get_logger("feed")

REPEAT_LOG_S = 600.0
"""An unchanged connection problem is logged again at most this often."""


class FeedConfigError(ValueError):
    """A feed setting that cannot work; ``key`` is the config key, and the message starts with it."""

    def __init__(self, key: str, message: str):
        self.key = f"mqtt.{key}"
        super().__init__(f"{self.key}: {message}")


# -- settings checked before connecting ------------------------------------------------
def _read(key: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FeedConfigError(key, f"{path}: no such file") from None
    except PermissionError:
        raise FeedConfigError(key, f"{path}: permission denied (the station's user cannot read it)") from None
    except IsADirectoryError:
        raise FeedConfigError(key, f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise FeedConfigError(key, f"{path}: cannot be read: {exc.strerror or exc}") from None


def read_password(cfg: BrokerSection) -> str | None:
    if cfg.password is not None:
        return cfg.password.get_secret_value()
    if cfg.password_file is None:
        return None
    try:
        text = _read("password_file", cfg.password_file).decode("utf-8")
    except UnicodeDecodeError:
        raise FeedConfigError("password_file", f"{cfg.password_file}: not UTF-8 text") from None
    password = text.splitlines()[0] if text.strip() else ""
    if not password:
        raise FeedConfigError("password_file", f"{cfg.password_file}: is empty")
    return password


def _pem(key: str, path: Path, marker: bytes, what: str) -> str:
    data = _read(key, path)
    if marker not in data:
        raise FeedConfigError(key, f"{path}: not a PEM {what} (no '{marker.decode()}' block)")
    return data.decode("ascii", errors="replace")


def build_tls_context(cfg: BrokerSection) -> ssl.SSLContext | None:
    """The client's TLS context, or None without TLS. Every failure names its key."""
    if not cfg.tls:
        return None
    if cfg.ca_file is not None:
        ca = _pem("ca_file", cfg.ca_file, b"-----BEGIN CERTIFICATE-----", "certificate")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # trusts this CA only, not the system's
        try:
            ctx.load_verify_locations(cadata=ca)
        except ssl.SSLError as exc:
            raise FeedConfigError("ca_file", f"{cfg.ca_file}: not a usable CA certificate ({exc.reason or exc})") from None
    else:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cfg.cert_file is not None and cfg.key_file is not None:
        cert = _pem("cert_file", cfg.cert_file, b"-----BEGIN CERTIFICATE-----", "certificate")
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=cert)
        except ssl.SSLError as exc:
            raise FeedConfigError("cert_file", f"{cfg.cert_file}: not a usable certificate ({exc.reason or exc})") from None
        key = _pem("key_file", cfg.key_file, b"PRIVATE KEY-----", "private key")
        if "ENCRYPTED" in key:
            raise FeedConfigError("key_file", f"{cfg.key_file}: the key is encrypted; give an unencrypted key "
                                              "readable only by the station's user")
        try:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file, password=lambda: b"")
        except ssl.SSLError as exc:
            if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
                raise FeedConfigError("key_file", f"{cfg.key_file}: does not belong to the certificate "
                                                  f"in mqtt.cert_file ({cfg.cert_file})") from None
            raise FeedConfigError("key_file", f"{cfg.key_file}: not a usable private key ({exc.reason or exc})") from None
        except OSError as exc:
            raise FeedConfigError("key_file", f"{cfg.key_file}: {exc}") from None
    ctx.check_hostname = not cfg.tls_insecure
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def check_settings(cfg: BrokerSection) -> None:
    """Raise :class:`FeedConfigError` if the password file or TLS files cannot work
    (for ``station config check`` and the daemon's start-up)."""
    read_password(cfg)
    build_tls_context(cfg)


def new_client(cfg: BrokerSection, client_id: str, *, password: str | None, tls: ssl.SSLContext | None,
               **kwargs: Any) -> mqtt.Client:
    """A paho-mqtt 2 client for ``cfg`` (protocol, session, credentials, TLS, reconnect
    backoff); the station's publisher and the collector's ingest add their callbacks."""
    v5 = cfg.protocol == "5"
    args: dict[str, Any] = {"callback_api_version": CallbackAPIVersion.VERSION2, "client_id": client_id,
                            "protocol": mqtt.MQTTv5 if v5 else mqtt.MQTTv311, **kwargs}
    if not v5:
        args["clean_session"] = cfg.clean_start
    client = mqtt.Client(**args)
    client.suppress_exceptions = True  # a bug in a callback must not kill the network thread
    if cfg.username is not None:
        client.username_pw_set(cfg.username, password)
    if tls is not None:
        client.tls_set_context(tls)
    client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
    return client


def connect_async(client: mqtt.Client, cfg: BrokerSection, receive_maximum: int | None = None) -> None:
    """Start connecting (paho's loop retries): MQTT 5 with the session expiry (and Receive
    Maximum, when given) as CONNECT properties."""
    if cfg.protocol == "5":
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = cfg.session_expiry_s
        if receive_maximum is not None:
            props.ReceiveMaximum = receive_maximum
        client.connect_async(cfg.host, cfg.port, cfg.keepalive_s, clean_start=cfg.clean_start, properties=props)
    else:
        client.connect_async(cfg.host, cfg.port, cfg.keepalive_s)


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
            self._report(self._describe_refusal(reason))
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
        self._report(*self._describe_connect_error(sys.exc_info()[1]))

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

    def _credential_keys(self) -> str:
        if self.cfg.username is None:
            return "mqtt.username and mqtt.password"
        return "mqtt.username and " + ("mqtt.password_file" if self.cfg.password_file else "mqtt.password")

    def _describe_refusal(self, reason: Any) -> str:
        name = getattr(reason, "getName", lambda: str(reason))()
        where = f"the broker at {self.cfg.host}:{self.cfg.port} refused the connection: {name}"
        if name in ("Bad user name or password", "Not authorized"):
            if self.cfg.username is None:
                return f"{self._credential_keys()}: {where}; it wants credentials and none are set"
            return f"{self._credential_keys()}: {where}; check the credentials"
        if name == "Client identifier not valid":
            return f"mqtt.client_id: {where}"
        if name == "Unsupported protocol version":
            return f"mqtt.protocol: {where}; try protocol = \"3.1.1\""
        return where

    def _describe_connect_error(self, exc: BaseException | None) -> tuple[str, str]:
        """(message naming the key, log level) for a failed connection attempt."""
        host, port = self.cfg.host, self.cfg.port
        if isinstance(exc, ssl.SSLCertVerificationError):
            detail = exc.verify_message or str(exc)
            if exc.verify_code == 62 or "hostname" in detail.lower() or "ip address mismatch" in detail.lower():
                return (f"mqtt.host: the broker's certificate does not name {host!r} ({detail}); connect "
                        f"by a name the certificate holds, or set mqtt.tls_insecure = true", "error")
            ca = str(self.cfg.ca_file) if self.cfg.ca_file else "the system's CA certificates"
            return (f"mqtt.ca_file: the broker's certificate at {host}:{port} is not trusted by {ca} "
                    f"({detail})", "error")
        if isinstance(exc, ssl.SSLError):
            text = str(exc)
            if "certificate" in text.lower() and "alert" in text.lower():
                return (f"mqtt.cert_file: the broker at {host}:{port} rejected the client certificate "
                        f"({text})", "error")
            return (f"mqtt.tls: the TLS handshake with {host}:{port} failed ({text}); is mqtt.port a TLS "
                    f"port?", "error")
        if isinstance(exc, ConnectionRefusedError):
            return f"cannot connect to {host}:{port}: connection refused (broker down, or mqtt.host/mqtt.port wrong)", "warning"
        if exc is not None and exc.__class__.__name__ == "gaierror":
            return f"mqtt.host: cannot resolve {host!r}: {exc}", "error"
        if isinstance(exc, TimeoutError):
            return f"cannot connect to {host}:{port}: no answer (timed out)", "warning"
        if exc is None:
            return f"cannot connect to {host}:{port}", "warning"
        return f"cannot connect to {host}:{port}: {exc}", "warning"
