"""What the collector publishes itself, after it has committed: at least once, in order.

    outbound = Outbound(link, open_db, [DetectionFeed(cfg)])   # built by the service
    outbound.prepare()     # before the ingest starts: a new stream begins after what is stored
    outbound.start()
    ingest: on_committed=outbound.wake                         # a hook after each commit
    outbound.stop()

A :class:`Stream` turns rows the database already holds into messages:
``fetch(db, after, limit)`` returns a :class:`Batch` (its messages and the position it ends
at). The outbound thread keeps one cursor per stream in the database
(``outbound_cursors``) and moves it to a batch's end only once the broker has
acknowledged (PUBACK) every message of that batch and of every batch before it. So a
collector that crashes between a commit and a publish, or between a publish and its
PUBACK, sends those messages again when it is back: duplicates (consumers de-duplicate by
``message_id``), never gaps. A publish the broker refuses (a PUBACK with a failure code:
the ACL) stops the stream for a while and it starts again from its cursor.

It publishes on the connection it is given (:class:`Link`): the ingest's own, because a
collector's account has one client id, and a second connection would take over its session.
Receipts to stations (the next stream) plug in as another :class:`Stream`.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from station.collector.db import Database, StorageError
from station.log import get_logger

log = get_logger("collector")

REFUSED_RETRY_S = (5.0, 300.0)
"""After the broker refuses a publish: wait this long, doubling up to the second figure."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Batch:
    end: int                      # the position the cursor takes once every message is acknowledged
    messages: tuple[Outgoing, ...]


class Stream(Protocol):
    name: str
    """Names the stream's cursor: one per collector and stream, e.g. ``feed:collector-a``."""

    def start_position(self, db: Database) -> int:
        """Where a stream with no cursor yet begins (what is stored already is not sent)."""

    def fetch(self, db: Database, after: int, limit: int) -> Batch | None:
        """Messages for what was stored after ``after`` (None: nothing new)."""


class Link(Protocol):
    """An MQTT connection to publish on (paho's client, wrapped by :class:`PahoLink`)."""

    def publish(self, message: Outgoing) -> int | None:
        """The message id (mid) the PUBACK will name, or None when it cannot be sent now."""

    @property
    def connected(self) -> bool: ...


class PahoLink:
    """:class:`Link` over a paho-mqtt 2 client whose ``on_publish`` this takes over."""

    def __init__(self, client: Any, on_ack: Callable[[int, Any], None] | None = None):
        self._client = client
        self.on_ack = on_ack
        client.on_publish = self._on_publish

    @property
    def connected(self) -> bool:
        return self._client.is_connected()

    def publish(self, message: Outgoing) -> int | None:
        info = self._client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        # Offline, paho keeps a QoS 1 message and sends it on reconnect (MQTT_ERR_NO_CONN).
        return info.mid if info.rc in (0, 4) else None

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if self.on_ack is not None:
            self.on_ack(mid, reason_code)


@dataclass
class _Running:
    """One stream's state in the outbound thread."""

    stream: Stream
    cursor: int = 0                 # acknowledged up to here (and saved)
    fetched: int = 0                # fetched up to here
    batches: collections.deque = field(default_factory=collections.deque)  # [end, unacknowledged count]
    blocked_until: float = 0.0
    delay: float = REFUSED_RETRY_S[0]


class Outbound:
    def __init__(self, link: Link, open_db: Callable[[], Database], streams: Sequence[Stream], *,
                 max_inflight: int = 100, batch_max: int = 100, poll_s: float = 5.0,
                 clock: Callable[[], float] | None = None):
        self._link = link
        self._open_db = open_db
        self._streams = [_Running(s) for s in streams]
        self.max_inflight = max_inflight
        self.batch_max = batch_max
        self.poll_s = poll_s
        self._clock = clock or time.monotonic
        self._cond = threading.Condition()
        self._inflight: dict[int, tuple[_Running, list]] = {}
        self._early: dict[int, Any] = {}
        self._stale: set[int] = set()
        self._woken = True
        self._stop = False
        self._thread: threading.Thread | None = None
        self.counters: dict[str, int] = collections.Counter()
        self.last_error: str | None = None
        if hasattr(link, "on_ack"):
            link.on_ack = self.on_ack

    # -- lifecycle ---------------------------------------------------------------------
    def prepare(self) -> None:
        """Make each stream's cursor if it has none, at what is stored now: call before the
        ingest starts, so that nothing it stores is behind a new cursor."""
        with self._open_db() as db:
            for run in self._streams:
                if db.cursor(run.stream.name) is None:
                    db.set_cursor(run.stream.name, run.stream.start_position(db))

    def start(self) -> "Outbound":
        self._thread = threading.Thread(target=self._run, name="collector-outbound", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` for outstanding acknowledgements (then save the cursors); what is
        not acknowledged goes again after the next start."""
        with self._cond:
            self._cond.wait_for(lambda: not self._inflight or not self._link.connected, timeout)
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self, *_: Any) -> None:
        """Something was committed (the ingest's hook)."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def on_ack(self, mid: int, reason: Any) -> None:
        """A PUBACK (paho's network thread)."""
        with self._cond:
            entry = self._inflight.pop(mid, None)
            if entry is None:
                if mid in self._stale:  # of a batch given up on (its stream restarts from the cursor)
                    self._stale.discard(mid)
                elif len(self._early) < 10_000:  # the PUBACK beat publish() returning its mid
                    self._early[mid] = reason
                return
            self._settle(entry, reason)
            self._cond.notify_all()

    def _settle(self, entry: tuple[_Running, list], reason: Any) -> None:
        run, batch = entry
        if getattr(reason, "is_failure", False):
            self.counters["refused"] += 1
            self.last_error = f"broker refused a publish of {run.stream.name}: {reason}"
            log.error("broker refused an outbound message; resending from the stream's cursor later "
                      "(check the collector's roles: station provision --role collector)",
                      stream=run.stream.name, reason=str(reason), retry_in_s=run.delay)
            run.blocked_until = self._clock() + run.delay
            run.delay = min(run.delay * 2, REFUSED_RETRY_S[1])
            self._forget(run)
            return
        self.counters["acknowledged"] += 1
        batch[1] -= 1

    def _forget(self, run: _Running) -> None:
        """Give up on what ``run`` has in flight (under the lock): it starts again from its cursor."""
        run.fetched = run.cursor
        run.batches.clear()
        for mid in [m for m, (r, _) in self._inflight.items() if r is run]:
            del self._inflight[mid]
            self._stale.add(mid)

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {"inflight": len(self._inflight), "last_error": self.last_error, **self.counters,
                    "cursors": {r.stream.name: r.cursor for r in self._streams}}

    # -- the outbound thread -----------------------------------------------------------
    def _run(self) -> None:
        db: Database | None = None
        while True:
            with self._cond:
                if self._stop:
                    break
                self._cond.wait_for(lambda: self._stop or self._woken or self._acked_any(), self.poll_s)
                self._woken = False
                if self._stop and not self._acked_any():
                    break
            try:
                if db is None:
                    db = self._open_db()
                    for run in self._streams:
                        run.cursor = run.fetched = db.cursor(run.stream.name) or 0
                self._save_cursors(db)
                self._send(db)
            except StorageError as exc:
                self.last_error = str(exc)
                log.error("outbound: database error; retrying", error=str(exc))
                if db is not None:
                    db.close()
                    db = None
                with self._cond:
                    self._cond.wait(self.poll_s)
            except Exception as exc:  # a bug must not end the thread: the cursors hold the place
                self.counters["errors"] += 1
                self.last_error = repr(exc)
                log.error("outbound error; retrying", error=repr(exc))
                with self._cond:
                    self._cond.wait(self.poll_s)
        if db is not None:
            try:
                self._save_cursors(db)
            finally:
                db.close()

    def _acked_any(self) -> bool:
        return any(run.batches and run.batches[0][1] == 0 for run in self._streams)

    def _save_cursors(self, db: Database) -> None:
        for run in self._streams:
            with self._cond:
                end = None
                while run.batches and run.batches[0][1] == 0:
                    end = run.batches.popleft()[0]
            if end is not None:
                db.set_cursor(run.stream.name, end)
                run.cursor = end

    def _send(self, db: Database) -> None:
        for run in self._streams:
            while self._link.connected and self._clock() >= run.blocked_until:
                with self._cond:
                    room = self.max_inflight - len(self._inflight)
                if room <= 0:
                    return
                batch = run.stream.fetch(db, run.fetched, min(self.batch_max, room))
                if batch is None:
                    break
                entry = [batch.end, len(batch.messages)]
                with self._cond:
                    run.batches.append(entry)
                    run.fetched = batch.end
                for message in batch.messages:
                    mid = self._link.publish(message)
                    with self._cond:
                        if mid is None:  # paho cannot take it now: start over from the cursor, later
                            self.counters["publish_failures"] += 1
                            run.blocked_until = self._clock() + run.delay
                            self._forget(run)
                            return
                        self.counters["published"] += 1
                        if mid in self._early:
                            self._settle((run, entry), self._early.pop(mid))
                        else:
                            self._inflight[mid] = (run, entry)
                run.delay = REFUSED_RETRY_S[0]
