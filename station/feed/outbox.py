"""The durable outbox: every message for the broker is committed here before it is sent.

paho-mqtt keeps its messages in memory only, so it must never hold the only copy. A
row leaves this table when the broker has acknowledged it (the publisher calls
:meth:`Outbox.remove_many`), or, for droppable kinds, when the cap evicts it. Rows are
opaque to the outbox: a topic, payload bytes, QoS, retain flag, a ``kind`` and a
``message_id`` that makes re-enqueueing the same message a no-op.

Durability. The database runs in WAL mode with ``synchronous=FULL``: each commit
fsyncs the write-ahead log before :meth:`put` returns, so a row that was reported
stored survives SIGKILL *and* a power cut. (With ``NORMAL``, WAL mode stays
uncorrupted after a power cut but may lose the last commits, which would be the
newest detections.) A database that SQLite reports corrupt is moved aside as
``outbox.sqlite3.corrupt-<UTC time>`` (for ``sqlite3 .recover`` by hand) and a new one
is started: the station keeps going.

The cap (``cap_bytes``, counted over topic + payload + a fixed per-row overhead):

* To make room, the oldest thumbnails are evicted first (counted as ``evicted``).
* A detection is never dropped: if evicting every thumbnail is not enough, it is still
  stored above the cap, ``full`` is set, ``stored_over_cap`` counts it and the log
  says so once. Detections are ~1.5 KB and each has an event of several 100 KB on the
  card that is not pruned before delivery, so the event store, not the outbox, is what
  fills a card during a long outage; dropping the rarest data to save kilobytes would
  be the wrong trade.
* Any other kind (a thumbnail, or anything else) that does not fit even after
  evicting thumbnails is refused: :meth:`put` returns False and ``refused`` counts it.

``full`` stays set until the queue is back under 90 % of the cap. The counters live in
a ``meta`` table, committed with the change they count, so they survive restarts.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from station.log import get_logger

log = get_logger("outbox")

ROW_OVERHEAD = 64
"""Bytes counted per row besides topic and payload (ids, flags, timestamps, index)."""
PROTECTED_KINDS = frozenset({"detection"})
EVICTABLE_KIND = "thumbnail"
FULL_CLEAR_FRACTION = 0.9
_CORRUPT = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    kind TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_kind ON outbox (kind, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    kind: str
    message_id: str
    created_at: float
    size: int


@dataclass(frozen=True)
class OutboxStats:
    depth: int
    depth_by_kind: dict[str, int]
    bytes: int
    cap_bytes: int
    oldest_age_s: float | None
    full: bool
    evicted: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    stored_over_cap: int = 0
    recovered_from_corruption: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class OutboxError(RuntimeError):
    """The outbox cannot be opened at all (not corruption: that is recovered from)."""


class _Corrupt(sqlite3.DatabaseError):
    sqlite_errorname = "SQLITE_CORRUPT"


def _is_corrupt(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and getattr(exc, "sqlite_errorname", "") in _CORRUPT


def row_size(topic: str, payload: bytes) -> int:
    return len(topic.encode()) + len(payload) + ROW_OVERHEAD


class Outbox:
    def __init__(self, path: str | Path, cap_bytes: int):
        self.path = Path(path)
        self.cap_bytes = int(cap_bytes)
        self._lock = threading.RLock()
        self._listeners: list[Callable[[], None]] = []
        self._conn: sqlite3.Connection | None = None
        self._bytes_by_kind: dict[str, int] = {}
        self._count_by_kind: dict[str, int] = {}
        self._counters: dict[str, int] = {}
        self._full = False
        self._max_id = 0
        self._open()

    # -- opening, and recovering from a corrupt file ----------------------------
    def _open(self) -> None:
        try:
            self._connect()
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                self._close_quietly()
                raise OutboxError(f"{self.path}: cannot open the outbox: {exc}") from exc
            self._move_aside(str(exc))
            self._connect()
            self._bump_meta("recovered_from_corruption")

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        self._conn = conn
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes effect on a new file
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("outbox not in WAL mode", path=str(self.path), mode=mode)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA journal_size_limit = 4194304")
        check = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        if check != "ok":
            raise _Corrupt(f"quick_check: {check}")
        conn.executescript(_SCHEMA)
        self._load_totals()

    def _load_totals(self) -> None:
        conn = self._conn
        self._bytes_by_kind, self._count_by_kind = {}, {}
        for kind, count, size in conn.execute("SELECT kind, COUNT(*), SUM(size) FROM outbox GROUP BY kind"):
            self._count_by_kind[kind] = count
            self._bytes_by_kind[kind] = size or 0
        self._counters = dict(conn.execute("SELECT key, value FROM meta"))
        self._full = self.bytes >= self.cap_bytes
        seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        if seq is None and self._max_id:
            # A new file after corruption: ids go on rising, so a reader's cursor stays valid.
            conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?)", (self._max_id,))
        self._max_id = max(self._max_id, seq[0] if seq else 0)

    def _move_aside(self, reason: str) -> None:
        self._close_quietly()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        self.path.replace(target)
        for suffix in ("-wal", "-shm"):
            extra = self.path.with_name(self.path.name + suffix)
            if extra.exists():
                extra.replace(target.with_name(target.name + suffix))
        log.error("outbox database corrupt; moved aside and started a new one",
                  path=str(self.path), moved_to=str(target), error=reason)

    def _recover(self, exc: BaseException) -> None:
        self._move_aside(str(exc))
        self._connect()
        self._bump_meta("recovered_from_corruption")

    def _close_quietly(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error as exc:
                log.warning("closing the outbox failed", error=str(exc))
            self._conn = None

    def _bump_meta(self, key: str, n: int = 1) -> None:
        self._conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value", (key, n))
        self._counters[key] = self._counters.get(key, 0) + n

    def _guarded(self, op: Callable, fallback, what: str):
        """Run ``op`` under the lock; on corruption, move the file aside and retry once."""
        with self._lock:
            if self._conn is None:
                raise OutboxError(f"{self.path}: the outbox is closed")
            for attempt in (1, 2):
                try:
                    return op()
                except sqlite3.DatabaseError as exc:
                    self._rollback()
                    if _is_corrupt(exc) and attempt == 1:
                        self._recover(exc)
                        continue
                    log.error(f"outbox {what} failed", path=str(self.path), error=str(exc))
                    return fallback

    def _rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    # -- the API ------------------------------------------------------------------
    @property
    def bytes(self) -> int:
        return sum(self._bytes_by_kind.values())

    @property
    def full(self) -> bool:
        return self._full

    def __len__(self) -> int:
        return sum(self._count_by_kind.values())

    def add_listener(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs after every successful :meth:`put` (the publisher's wake-up)."""
        self._listeners.append(callback)

    def put(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
            kind: str = "detection", message_id: str | None = None) -> bool:
        """Commit a message; True once it is on disk. False: a duplicate ``message_id``
        (already queued), refused by the cap (see the module docs), or a disk error (logged)."""
        if not topic or "+" in topic or "#" in topic:
            raise ValueError(f"not a topic to publish to: {topic!r}")
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {qos!r}")
        payload = bytes(payload)
        message_id = message_id or uuid.uuid4().hex
        size = row_size(topic, payload)
        stored = self._guarded(lambda: self._put(topic, payload, qos, retain, kind, message_id, size),
                               False, "put")
        if stored:
            for callback in list(self._listeners):
                try:
                    callback()
                except Exception:  # noqa: BLE001 - a listener must not undo a committed put
                    log.exception("outbox listener failed")
        return stored

    def _put(self, topic: str, payload: bytes, qos: int, retain: bool, kind: str,
             message_id: str, size: int) -> bool:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute("SELECT 1 FROM outbox WHERE message_id = ?", (message_id,)).fetchone():
            conn.execute("ROLLBACK")
            return False
        over = self.bytes + size - self.cap_bytes
        evicted: list[tuple[int, int]] = []
        if over > 0:
            evictable = self._bytes_by_kind.get(EVICTABLE_KIND, 0)
            if kind not in PROTECTED_KINDS and evictable < over:
                self._bump_meta(f"refused:{kind}")
                conn.execute("COMMIT")
                self._set_full(True, kind=kind, action="refused")
                return False
            evicted = self._evict_thumbnails(over)
            if kind in PROTECTED_KINDS and sum(s for _, s in evicted) < over:
                self._bump_meta("stored_over_cap")
                self._set_full(True, kind=kind, action="stored over the cap")
        cursor = conn.execute(
            "INSERT INTO outbox (topic, payload, qos, retain, kind, message_id, created_at, size) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (topic, payload, qos, int(bool(retain)), kind, message_id, time.time(), size))
        self._max_id = max(self._max_id, cursor.lastrowid)
        if evicted:
            self._bump_meta(f"evicted:{EVICTABLE_KIND}", len(evicted))
        conn.execute("COMMIT")
        for _, s in evicted:
            self._account(EVICTABLE_KIND, -s)
        self._account(kind, size)
        if evicted:
            log.warning("outbox full: oldest thumbnails evicted", evicted=len(evicted), kind=kind,
                        bytes=self.bytes, cap_bytes=self.cap_bytes)
        return True

    def _evict_thumbnails(self, need: int) -> list[tuple[int, int]]:
        evicted: list[tuple[int, int]] = []
        freed = 0
        cursor = self._conn.execute("SELECT id, size FROM outbox WHERE kind = ? ORDER BY id", (EVICTABLE_KIND,))
        for row_id, size in cursor.fetchall():
            if freed >= need:
                break
            evicted.append((row_id, size))
            freed += size
        self._conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i, _ in evicted])
        return evicted

    def _account(self, kind: str, size: int) -> None:
        step = 1 if size > 0 else -1
        self._count_by_kind[kind] = self._count_by_kind.get(kind, 0) + step
        self._bytes_by_kind[kind] = self._bytes_by_kind.get(kind, 0) + size
        if self._count_by_kind[kind] <= 0:
            self._count_by_kind.pop(kind)
            self._bytes_by_kind.pop(kind)
        if self._full and self.bytes <= FULL_CLEAR_FRACTION * self.cap_bytes:
            self._set_full(False)

    def _set_full(self, full: bool, **fields) -> None:
        if full and not self._full:
            log.warning("outbox full", bytes=self.bytes, cap_bytes=self.cap_bytes,
                        depth=len(self), **fields)
        elif not full and self._full:
            log.info("outbox below its cap again", bytes=self.bytes, cap_bytes=self.cap_bytes, depth=len(self))
        self._full = full

    def peek(self, after_id: int = 0, limit: int = 100) -> list[OutboxRow]:
        """Up to ``limit`` rows with ``id > after_id``, oldest first."""
        def op() -> list[OutboxRow]:
            rows = self._conn.execute(
                "SELECT id, topic, payload, qos, retain, kind, message_id, created_at, size "
                "FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)).fetchall()
            return [OutboxRow(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5], r[6], r[7], r[8]) for r in rows]
        return self._guarded(op, [], "peek")

    def remove(self, row_id: int) -> bool:
        return self.remove_many([row_id]) == 1

    def remove_many(self, row_ids: Iterable[int]) -> int:
        """Delete delivered rows in one transaction (one fsync); returns how many existed."""
        ids = list(row_ids)
        if not ids:
            return 0

        def op() -> int:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            gone = []
            for row_id in ids:
                gone.extend(conn.execute("DELETE FROM outbox WHERE id = ? RETURNING kind, size", (row_id,)))
            conn.execute("COMMIT")
            for kind, size in gone:
                self._account(kind, -size)
            if not self._count_by_kind:
                self._reclaim()
            return len(gone)
        return self._guarded(op, 0, "remove")

    def _reclaim(self) -> None:
        """Give the pages of an emptied outbox back to the card (auto_vacuum=INCREMENTAL)."""
        free = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
        if free > 256:
            self._conn.execute("PRAGMA incremental_vacuum")

    def stats(self) -> OutboxStats:
        def op() -> OutboxStats:
            oldest = self._conn.execute("SELECT created_at FROM outbox ORDER BY id LIMIT 1").fetchone()
            counters = self._counters
            return OutboxStats(
                depth=len(self), depth_by_kind=dict(self._count_by_kind), bytes=self.bytes,
                cap_bytes=self.cap_bytes,
                oldest_age_s=None if oldest is None else round(max(0.0, time.time() - oldest[0]), 3),
                full=self._full,
                evicted={k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("evicted:")},
                refused={k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("refused:")},
                stored_over_cap=counters.get("stored_over_cap", 0),
                recovered_from_corruption=counters.get("recovered_from_corruption", 0))
        fallback = OutboxStats(depth=len(self), depth_by_kind=dict(self._count_by_kind), bytes=self.bytes,
                               cap_bytes=self.cap_bytes, oldest_age_s=None, full=self._full)
        return self._guarded(op, fallback, "stats")

    def close(self) -> None:
        with self._lock:
            self._close_quietly()

    def __enter__(self) -> "Outbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
