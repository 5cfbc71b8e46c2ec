"""The collector's database: SQLite (WAL) by default, PostgreSQL by URL, one schema.

    db = Database.open("sqlite:///var/lib/collector/camtrap.db")   # or "postgresql://user@host/db"
    db.migrate()                                                  # idempotent: applies what is missing
    result = db.store_batch(detections, statuses, healths)       # one transaction; ack after it returns
    db.query_detections(station="lazovsky-07", tag="leopard", since="2026-11-01T00:00:00.000Z")

``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` as in SQLAlchemy.
SQLite runs with ``synchronous=FULL`` by default: the collector acknowledges a message
to the broker only once its row is committed, and with ``NORMAL`` a power cut can undo
commits that were already acknowledged. Batching pays for the one fsync per commit;
``?synchronous=normal`` trades that guarantee for speed. PostgreSQL needs ``psycopg``
(3); libpq URL options pass through, e.g. ``?options=-csearch_path%3Dcollector``.

Payloads are stored whole (TEXT on SQLite, JSONB on PostgreSQL) beside the columns that
queries filter on. Times go in as the feed's RFC 3339 strings and come out the same way
from both engines. A Database holds one connection: use it from one thread.

A new SQLite file is created readable by its owner only (0600: it holds exact station
coordinates), in a folder that must exist: a mistyped path is an error, not a new folder.

Time and trust: a station's state (its status, its latest heartbeat, when it was last
heard, its latest detection) changes only for a newer message, and "newer" is judged by
when the collector received it, bounded by the sender's own clock: each time a message
claims counts as ``min(claimed, received)``. A message from a clock that ran ahead (by
more than ``max_clock_skew_s``) is stored with ``clock_skew_s``, the seconds it was
ahead, on its row (detections, health) and on its station, and can never pin a state.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

from station import times
from station.collector.fieldhealth_store import FieldHealthStore
from station.collector.migrations import POSTGRESQL, SQLITE, Dialect, discover
from station.collector.readings import read_health

MAX_LIMIT = 1000
DEFAULT_MAX_CLOCK_SKEW_S = 300.0
"""A message whose latest time is further ahead of its arrival than this is flagged ``clock_skew_s``."""
DATABASE_MODE = 0o600
_PARAM = re.compile(r"%\((\w+)\)s")
_SYNCHRONOUS = ("off", "normal", "full", "extra")


_CANONICAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class Payload(dict):
    """A validated payload that keeps the JSON text it came as: stored as it is, not encoded
    again (the collector's ingest hands these in; plain dicts work too)."""

    __slots__ = ("text",)

    def __init__(self, value: Mapping[str, Any], text: str):
        super().__init__(value)
        self.text = text


class StorageError(RuntimeError):
    """A batch, a migration or a query the database refused; nothing of it was kept.

    ``transient``: the database could not do it now (unreachable, locked, full, a
    deadlock, a timeout) and the same request may succeed later; otherwise the data
    itself was refused and would be refused again."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class BatchResult:
    inserted: int    # detections new to the database
    duplicates: int  # detections already stored (QoS 1 resends), kept once
    thumbnails: int = 0  # thumbnails new to the database
    new_event_ids: tuple[str, ...] = field(default=(), compare=False)  # the inserted detections
    statuses: int = field(default=0, compare=False)  # status messages stored (newer or not)
    healths: int = field(default=0, compare=False)   # health messages stored
    implausible: int = field(default=0, compare=False)  # new heartbeats with values left out as impossible


@dataclass(frozen=True, slots=True)
class ThumbnailRow:
    """A thumbnail already written to disk by the collector, to be recorded."""
    event_id: str
    station_id: str
    file: str        # relative to the thumbnails folder; made by the collector
    bytes: int
    width: int
    height: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message refused before storage: counted per reason and station (nothing else kept)."""
    reason: str            # too_large, not_json, schema, unknown_version, station_mismatch, ...
    station_id: str        # from the topic; '' when the topic named none
    detail: str            # the logged sentence (truncated)


def _utc(value: str | float | datetime | None, what: str) -> datetime | None:
    """A time as an aware UTC datetime: RFC 3339 text, Unix seconds or a datetime (naive = UTC)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, timezone.utc)
    elif isinstance(value, str):
        try:
            return times.parse(value, date_ok=True)
        except times.TimeError as exc:
            raise StorageError(f"{what}: {exc}") from None
    else:
        raise StorageError(f"{what}: {value!r} is not a time")
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _earlier(claimed: datetime | None, received: datetime) -> datetime | None:
    """The time a message counts as: what it claims, but never later than its arrival."""
    return None if claimed is None else min(claimed, received)


def _ahead(claimed: Iterable[datetime | None], received: datetime, limit_s: float) -> float | None:
    """Seconds the latest of ``claimed`` is ahead of ``received``, when more than ``limit_s``."""
    latest = max((c for c in claimed if c is not None), default=None)
    if latest is None:
        return None
    skew = (latest - received).total_seconds()
    return round(skew, 3) if skew > limit_s else None


def _reason(exc: BaseException) -> str:
    """The first line of a driver error (PostgreSQL's DETAIL would print the whole row)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def printable(text: str) -> str:
    """Text any engine can store: no NUL, no lone surrogates (they come from hostile keys)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _iso(dt: datetime | None) -> str | None:
    return times.format(dt)


def _offsets(zone: ZoneInfo, lo: str | None, hi: str | None) -> set:
    """The UTC offsets ``zone`` had between two stored (SQLite) times, sampled every 6 hours
    (no zone keeps an offset for less than that)."""
    if lo is None or hi is None:
        return {timedelta(0)}
    start, end = _utc(lo, "lo"), _utc(hi, "hi")
    if (end - start).days > 366 * 30:
        return {timedelta(0), timedelta(1)}  # too long to sample: take the exact path
    found, t = set(), start
    while t <= end:
        found.add(t.astimezone(zone).utcoffset())
        t += timedelta(hours=6)
    found.add(end.astimezone(zone).utcoffset())
    return found


def _create_private(path: Path) -> None:
    """Create a new SQLite file readable by its owner only (its -wal and -shm files take the
    same mode from it); an existing one is left as it is. The folder must exist."""
    folder = path.parent
    if not folder.is_dir():
        raise StorageError(f"{path}: the folder {folder} does not exist (create it, or correct "
                           f"collector.database_url)")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DATABASE_MODE))
    except FileExistsError:
        pass
    except OSError as exc:
        raise StorageError(f"{path}: cannot create the SQLite database: {exc.strerror or exc}") from None


class Database(FieldHealthStore):
    """One connection to the collector's database; see the module docstring. The queries of
    field health (status history, station alerts, leases, snapshot requests) are in
    :class:`~station.collector.fieldhealth_store.FieldHealthStore`."""

    def __init__(self, conn: Any, dialect: Dialect, url: str):
        self._conn, self.dialect, self.url = conn, dialect, url
        self.writer: str | None = None
        """The collector whose writes these are: recorded with each detection it stores
        (``stored_by``), so that it republishes what it stored (station.collector.outbound)."""
        if dialect is POSTGRESQL:
            import psycopg
            from psycopg.types.json import Jsonb
            self._errors: tuple[type[BaseException], ...] = (psycopg.Error,)
            # What the data causes; everything else (connection, locks, deadlocks) may pass.
            self._data_errors: tuple[type[BaseException], ...] = (psycopg.DataError, psycopg.IntegrityError,
                                                                  psycopg.ProgrammingError)
            self._jsonb = Jsonb
        else:
            self._errors = (sqlite3.Error,)
            self._data_errors = (sqlite3.DataError, sqlite3.IntegrityError, sqlite3.ProgrammingError,
                                 sqlite3.InterfaceError)

    # -- opening --------------------------------------------------------------------

    @classmethod
    def open(cls, url: str) -> Database:
        scheme = url.split(":", 1)[0].lower()
        if scheme == "sqlite":
            return cls._open_sqlite(url)
        if scheme in ("postgresql", "postgres"):
            return cls._open_postgresql(url)
        raise StorageError(f"database url {url.split('://')[0]!r}://...: use sqlite:///path.db "
                           f"or postgresql://user@host/db")

    @classmethod
    def _open_sqlite(cls, url: str) -> Database:
        if not url.startswith("sqlite:///"):
            raise StorageError(f"database url {url!r}: write sqlite:///relative.db or sqlite:////absolute.db")
        rest = url[len("sqlite:///"):]
        path, _, query = rest.partition("?")
        options = dict(parse_qsl(query))
        synchronous = options.pop("synchronous", "full").lower()
        if synchronous not in _SYNCHRONOUS or options:
            raise StorageError(f"database url {url!r}: the only option is synchronous="
                               f"{'|'.join(_SYNCHRONOUS)}")
        if not path:
            raise StorageError(f"database url {url!r}: no file name")
        if path != ":memory:":
            _create_private(Path(path))
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open the SQLite database: {exc}") from None
        return cls(conn, SQLITE, url)

    @classmethod
    def _open_postgresql(cls, url: str) -> Database:
        try:
            import psycopg
        except ImportError:
            raise StorageError("PostgreSQL needs psycopg 3: pip install 'psycopg[binary]'") from None
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            where = urlsplit(url)
            raise StorageError(f"postgresql://{where.hostname}:{where.port or 5432}{where.path}: "
                               f"cannot connect: {_reason(exc)}") from None
        return cls(conn, POSTGRESQL, url)

    def close(self) -> None:
        try:
            self._conn.close()
        except self._errors:
            pass  # a connection the server already dropped

    def ping(self) -> bool:
        """True if the connection still works (after a failed batch: the data, or the link?)."""
        try:
            self._conn.execute("SELECT 1").fetchall()
            return True
        except self._errors:
            return False

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------

    def _sql(self, text: str) -> str:
        """Queries are written with %(name)s; SQLite wants :name."""
        return _PARAM.sub(r":\1", text) if self.dialect is SQLITE else text

    def _exec(self, sql: str, params: Mapping[str, Any] | Sequence[Any] = ()) -> Any:
        return self._conn.execute(self._sql(sql), params)

    def _exec_many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> int:
        """Rows changed by one statement run for each of ``params`` (pipelined on PostgreSQL)."""
        if self.dialect is SQLITE:
            return self._conn.executemany(self._sql(sql), params).rowcount
        with self._conn.cursor() as cur:
            cur.executemany(sql, params)
            return cur.rowcount

    def _rows(self, sql: str, params: Mapping[str, Any] = {}) -> list[dict[str, Any]]:
        try:
            cur = self._exec(sql, params)
            names = [c[0] for c in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]
        except self._errors as exc:
            raise StorageError(f"query failed: {_reason(exc)}") from None

    class _Transaction:
        def __init__(self, db: Database):
            self.db = db

        def __enter__(self) -> None:
            if self.db.dialect is SQLITE:
                self.db._conn.execute("BEGIN IMMEDIATE")  # take the write lock now, not half-way
            else:
                self._tx = self.db._conn.transaction()
                self._tx.__enter__()

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            if self.db.dialect is SQLITE:
                conn = self.db._conn
                try:
                    conn.execute("ROLLBACK" if exc_type else "COMMIT")
                finally:
                    if conn.in_transaction:  # a COMMIT that failed (busy, disk full) leaves it open
                        conn.execute("ROLLBACK")
            else:
                self._tx.__exit__(exc_type, exc, tb)

    def _transaction(self) -> Database._Transaction:
        return Database._Transaction(self)

    def _time(self, value: str | float | datetime | None, what: str) -> Any:
        """A time as the engine stores it: canonical text on SQLite, a datetime on PostgreSQL."""
        dt = _utc(value, what)
        if dt is None:
            return None
        if self.dialect is POSTGRESQL:
            return dt
        # The feed's own form (2026-11-25T18:02:11.400Z) is already canonical: checked, kept.
        return value if isinstance(value, str) and _CANONICAL.fullmatch(value) else _iso(dt)

    def _json_in(self, value: Any) -> Any:
        text = value.text if isinstance(value, Payload) else None
        value = value if isinstance(value, dict) else dict(value)
        if self.dialect is POSTGRESQL:
            return self._jsonb(value) if text is None else self._jsonb(value, dumps=lambda _: text)
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False) if text is None else text

    def _out(self, row: dict[str, Any], json_keys: Iterable[str] = ()) -> dict[str, Any]:
        """A row as the API hands it out: times as RFC 3339 text, JSON parsed (text that
        does not parse stays text: :mod:`station.collector.stored` names it, the row's
        neighbours are not lost with it)."""
        for key, value in row.items():
            if isinstance(value, datetime):
                row[key] = _iso(value)
        for key in json_keys:
            if isinstance(row.get(key), str):
                try:
                    row[key] = json.loads(row[key])
                except (ValueError, RecursionError):
                    pass
        return row

    # -- migrations -----------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply the migrations this database lacks, in order; returns their versions ([] if none)."""
        migrations = discover()
        known = migrations[-1].version if migrations else 0
        applied: list[int] = []
        try:
            self._exec(f"CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                       f"name TEXT NOT NULL, applied_at {self.dialect.timestamp} NOT NULL)")
            for m in migrations:
                with self._transaction():
                    if self.dialect is POSTGRESQL:  # two collectors starting together take turns
                        self._exec("SELECT pg_advisory_xact_lock(hashtext('camtrap_schema_migrations'))")
                    done = {r[0] for r in self._exec("SELECT version FROM schema_migrations").fetchall()}
                    newer = [v for v in done if v > known]
                    if newer:
                        raise StorageError(f"database schema is at version {max(newer)}, newer than this "
                                           f"collector knows (up to {known}): upgrade the collector")
                    if m.version in done:
                        continue
                    for statement in m.statements(self.dialect):
                        self._exec(statement)
                    self._exec("INSERT INTO schema_migrations (version, name, applied_at) "
                               "VALUES (%(v)s, %(n)s, %(t)s)",
                               {"v": m.version, "n": m.name, "t": self._time(datetime.now(timezone.utc), "now")})
                    applied.append(m.version)
        except self._errors as exc:
            raise StorageError(f"migration {len(applied) + 1} failed: {_reason(exc)}") from None
        return applied

    def migrations(self) -> list[dict[str, Any]]:
        """The applied migrations: version, name, applied_at."""
        return [self._out(r) for r in self._rows(
            "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")]

    # -- writing --------------------------------------------------------------------

    _SEEN = """
        INSERT INTO stations (station_id, deployment_id, first_seen, last_seen, last_detection_at)
        VALUES (%(station_id)s, %(deployment_id)s, %(received_at)s, %(seen)s, %(detection_at)s)
        ON CONFLICT (station_id) DO UPDATE SET
          deployment_id = CASE WHEN excluded.deployment_id IS NOT NULL AND (stations.last_detection_at IS NULL
                               OR excluded.last_detection_at >= stations.last_detection_at)
                          THEN excluded.deployment_id ELSE stations.deployment_id END,
          last_detection_at = CASE WHEN stations.last_detection_at IS NULL
                                   OR excluded.last_detection_at > stations.last_detection_at
                              THEN excluded.last_detection_at ELSE stations.last_detection_at END,
          last_seen = CASE WHEN stations.last_seen IS NULL OR excluded.last_seen > stations.last_seen
                      THEN excluded.last_seen ELSE stations.last_seen END"""

    _DETECTION = """
        INSERT INTO detections (event_id, station_id, deployment_id, tag, species, label, confidence,
            classification_status, start_time, start_minute, end_time, latitude, longitude, model_name, sent_at,
            received_at, payload, clock_skew_s, stored_by)
        VALUES (%(event_id)s, %(station_id)s, %(deployment_id)s, %(tag)s, %(species)s, %(label)s,
            %(confidence)s, %(classification_status)s, %(start_time)s, %(start_minute)s, %(end_time)s, %(latitude)s,
            %(longitude)s, %(model_name)s, %(sent_at)s, %(received_at)s, %(payload)s, %(clock_skew_s)s,
            %(stored_by)s)
        ON CONFLICT (event_id) DO NOTHING"""

    # A status replaces the stored one only if it began later; at the same `since` the
    # offline one wins (the will carries the time its connection was made). `since` is
    # stored as it counts: never later than the status arrived (see the module docstring).
    _STATUS = """
        UPDATE stations SET status_state = %(state)s, status_reason = %(reason)s,
            status_since = %(since)s, software_version = %(software_version)s
        WHERE station_id = %(station_id)s AND (status_since IS NULL OR status_since < %(since)s
            OR (status_since = %(since)s AND %(state)s = 'offline'))"""

    _LOCATION = """
        UPDATE stations SET latitude = %(latitude)s, longitude = %(longitude)s,
            coordinate_uncertainty_m = %(uncertainty)s
        WHERE station_id = %(station_id)s AND last_detection_at = %(start)s"""

    _THUMBNAIL = """
        INSERT INTO thumbnails (event_id, station_id, file, bytes, width, height, sha256, received_at)
        VALUES (%(event_id)s, %(station_id)s, %(file)s, %(bytes)s, %(width)s, %(height)s, %(sha256)s,
            %(received_at)s)
        ON CONFLICT (event_id) DO NOTHING"""

    _REJECTION = """
        INSERT INTO rejections (reason, station_id, count, first_at, last_at, last_detail)
        VALUES (%(reason)s, %(station_id)s, 1, %(at)s, %(at)s, %(detail)s)
        ON CONFLICT (reason, station_id) DO UPDATE SET count = rejections.count + 1,
            last_at = excluded.last_at, last_detail = excluded.last_detail"""

    _HEALTH_LATEST = """
        UPDATE stations SET health = %(payload)s, health_at = %(sent_at)s
        WHERE station_id = %(station_id)s AND (health_at IS NULL OR health_at < %(sent_at)s)"""

    # The readings (station.collector.readings) beside the payload: what is plotted and reckoned.
    _HEALTH = """
        INSERT INTO health (station_id, sent_at, received_at, payload, clock_skew_s, camera_state, asleep,
            problems, tampered, temperature_c, battery_v, outbox_depth, implausible)
        VALUES (%(station_id)s, %(sent_at)s, %(received_at)s, %(payload)s, %(clock_skew_s)s, %(camera_state)s,
            %(asleep)s, %(problems)s, %(tampered)s, %(temperature_c)s, %(battery_v)s, %(outbox_depth)s,
            %(implausible)s)
        ON CONFLICT (station_id, sent_at) DO NOTHING"""

    # Every status, for the timeline; a will takes effect when it arrives (its `since` is when
    # the connection it ends was made), the station's own when it says.
    _STATUS_LOG = """
        INSERT INTO status_log (station_id, since, state, reason, at, received_at)
        VALUES (%(station_id)s, %(since)s, %(state)s, %(reason)s, %(at)s, %(received_at)s)
        ON CONFLICT (station_id, since, state) DO NOTHING"""

    _CLOCK_AHEAD = """
        UPDATE stations SET clock_skew_s = %(skew)s, clock_skew_at = %(now)s WHERE station_id = %(station_id)s"""
    _CLOCK_ON_TIME = "UPDATE stations SET clock_skew_s = NULL WHERE station_id = %(station_id)s"

    def _store_detections(self, detections: Sequence[Mapping[str, Any]], now: Any, received: datetime,
                          limit_s: float, skews: dict[str, list[float | None]]) -> tuple[int, int, list[str]]:
        """Inside store_batch's transaction: one upsert per station, one multi-row insert of
        the detections not yet stored (a round trip per batch on PostgreSQL, not per row)."""
        rows: list[dict[str, Any]] = []
        for p in detections:
            what = f"detection {p.get('event_id')!r} from station {p.get('station_id')!r}"
            location, model = p.get("location") or {}, p.get("model") or {}
            start = _utc(p.get("start"), f"{what}: start")
            end = _utc(p.get("end"), f"{what}: end")
            sent = _utc(p.get("sent_at"), f"{what}: sent_at")
            skew = _ahead((end, sent), received, limit_s)
            skews.setdefault(str(p.get("station_id")), []).append(skew)
            rows.append({
                "event_id": p.get("event_id"), "station_id": p.get("station_id"),
                "deployment_id": p.get("deployment_id"), "tag": p.get("tag"),
                "species": p.get("species"), "label": p.get("label"), "confidence": p.get("confidence"),
                "classification_status": p.get("classification_status"),
                "start_time": self._time(start, f"{what}: start"),
                "start_minute": None if start is None else start.hour * 60 + start.minute,
                "end_time": self._time(end, f"{what}: end"),
                "latitude": location.get("latitude"), "longitude": location.get("longitude"),
                "uncertainty": location.get("coordinate_uncertainty_m"), "model_name": model.get("name"),
                "sent_at": self._time(sent, f"{what}: sent_at"),
                "received_at": now, "payload": self._json_in(p), "clock_skew_s": skew, "stored_by": self.writer,
                # what the station's row may learn from it: never later than its arrival
                "detection_at": self._time(_earlier(start, received), f"{what}: start"),
                "seen": self._time(_earlier(sent, received), f"{what}: sent_at")})
        latest: dict[str, dict[str, Any]] = {}
        last_sent: dict[str, Any] = {}
        for r in rows:
            st = r["station_id"]
            if st not in latest or r["detection_at"] >= latest[st]["detection_at"]:
                latest[st] = r
            if r["seen"] is not None and (st not in last_sent or r["seen"] > last_sent[st]):
                last_sent[st] = r["seen"]
        for st, r in latest.items():
            self._exec(self._SEEN, {"station_id": st, "deployment_id": r["deployment_id"], "received_at": now,
                                    "seen": last_sent.get(st), "detection_at": r["detection_at"]})
        known: set[str] = set()
        ids = list(dict.fromkeys(r["event_id"] for r in rows))
        for k in range(0, len(ids), 500):
            chunk = {f"i{n}": v for n, v in enumerate(ids[k:k + 500])}
            marks = ", ".join(f"%({n})s" for n in chunk)
            known.update(row[0] for row in self._exec(
                f"SELECT event_id FROM detections WHERE event_id IN ({marks})", chunk).fetchall())
        fresh = []
        for r in rows:
            if r["event_id"] not in known:
                known.add(r["event_id"])
                fresh.append(r)
        inserted = 0
        if fresh:
            inserted = self._exec_many(self._DETECTION, fresh)
        for st, r in latest.items():
            if any(f is r for f in fresh):
                self._exec(self._LOCATION, {"station_id": st, "start": r["detection_at"], "latitude": r["latitude"],
                                            "longitude": r["longitude"], "uncertainty": r["uncertainty"]})
        # A collector sharing the database may have stored one of `fresh` since the SELECT:
        # ON CONFLICT kept it once and the row count says how many were really new.
        return inserted, len(rows) - inserted, [r["event_id"] for r in fresh]

    def _heard(self, detections: Sequence[Mapping[str, Any]], statuses: Sequence[Mapping[str, Any]],
               healths: Sequence[Mapping[str, Any]], thumbnails: Sequence[ThumbnailRow],
               heard: Iterable[str] | None, now: Any) -> None:
        """Inside store_batch's transaction: ``stations.heard_at`` of the stations heard live."""
        if heard is None:
            heard = {str(p.get("station_id")) for p in (*detections, *statuses, *healths)} \
                | {t.station_id for t in thumbnails}
        ids = sorted(set(heard))
        for k in range(0, len(ids), 500):
            chunk = {f"h{n}": v for n, v in enumerate(ids[k:k + 500])}
            marks = ", ".join(f"%({n})s" for n in chunk)
            self._exec(f"UPDATE stations SET heard_at = %(now)s WHERE station_id IN ({marks})"
                       " AND (heard_at IS NULL OR heard_at < %(now)s)", chunk | {"now": now})

    def _storage_error(self, what: str, exc: BaseException) -> StorageError:
        """A driver error as the StorageError that names ``what`` (for the query mixins)."""
        return StorageError(f"{what}: {_reason(exc)}", transient=not isinstance(exc, self._data_errors))

    def _lock_stations(self, detections: Sequence[Mapping[str, Any]], statuses: Sequence[Mapping[str, Any]],
                       healths: Sequence[Mapping[str, Any]], thumbnails: Sequence[ThumbnailRow], now: Any) -> None:
        """Make sure every station the batch touches has a row, and on PostgreSQL lock those
        rows in one order (by id): two collectors storing batches that touch the same
        stations in different orders would otherwise deadlock."""
        ids = sorted({str(p.get("station_id")) for p in (*detections, *statuses, *healths)}
                     | {t.station_id for t in thumbnails})
        if not ids:
            return
        for k in range(0, len(ids), 500):
            chunk = {f"s{n}": v for n, v in enumerate(ids[k:k + 500])}
            if self.dialect is POSTGRESQL:
                self._exec_many("INSERT INTO stations (station_id, first_seen) VALUES (%(id)s, %(now)s)"
                                " ON CONFLICT (station_id) DO NOTHING", [{"id": i, "now": now} for i in chunk.values()])
                marks = ", ".join(f"%({n})s" for n in chunk)
                self._exec(f"SELECT station_id FROM stations WHERE station_id IN ({marks})"
                           " ORDER BY station_id FOR UPDATE", chunk).fetchall()

    def store_batch(self, detections: Sequence[Mapping[str, Any]] = (), statuses: Sequence[Mapping[str, Any]] = (),
                    healths: Sequence[Mapping[str, Any]] = (), *,
                    thumbnails: Sequence[ThumbnailRow] = (), rejections: Sequence[Rejection] = (),
                    received_at: str | float | datetime | None = None,
                    max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S,
                    heard: Iterable[str] | None = None) -> BatchResult:
        """Store validated detection/1, status/1 and health/1 payloads, thumbnails already on
        disk and rejection counts in ONE transaction: all of them or, on any error, none
        (:class:`StorageError` names the message). Detections and thumbnails already stored
        are counted as duplicates and left as they were. ``received_at`` (default: now) is
        when the batch arrived; a message further ahead of it than ``max_clock_skew_s`` is
        flagged (module docstring). ``heard``: the stations that sent a live message in the
        batch (default: every station in it); a retained message replayed to a new
        subscription says nothing about now, so the ingest leaves those out."""
        received = _utc(datetime.now(timezone.utc) if received_at is None else received_at, "received_at")
        assert received is not None
        now = self._time(received, "received_at")
        inserted = duplicates = thumbs = implausible = 0
        new_ids: list[str] = []
        skews: dict[str, list[float | None]] = {}  # per station: each message's skew (None: on time)
        on_time: set[str] = set()                   # stations whose clock a heartbeat or status vouched for
        what = "batch"
        try:
            with self._transaction():
                self._lock_stations(detections, statuses, healths, thumbnails, now)
                if detections:
                    what = f"{len(detections)} detections (a single bad one fails them all; store it alone to know which)"
                    inserted, duplicates, new_ids = self._store_detections(detections, now, received,
                                                                           max_clock_skew_s, skews)
                for p in statuses:
                    what = f"status {p.get('state')!r} from station {p.get('station_id')!r}"
                    station_id = str(p.get("station_id"))
                    since = _utc(p.get("since"), f"{what}: since")
                    sent = _utc(p.get("sent_at"), f"{what}: sent_at")
                    skew = _ahead((since, sent), received, max_clock_skew_s)
                    skews.setdefault(station_id, []).append(skew)
                    if sent is not None and skew is None:
                        on_time.add(station_id)
                    self._exec(self._SEEN, {"station_id": p.get("station_id"), "deployment_id": None,
                                            "received_at": now, "detection_at": None,
                                            "seen": self._time(_earlier(sent, received), f"{what}: sent_at")})
                    counted_since = self._time(_earlier(since, received), f"{what}: since")
                    self._exec(self._STATUS, {"station_id": p.get("station_id"), "state": p.get("state"),
                                              "reason": p.get("reason"), "since": counted_since,
                                              "software_version": p.get("software_version")})
                    self._exec(self._STATUS_LOG, {
                        "station_id": p.get("station_id"), "since": counted_since, "state": p.get("state"),
                        "reason": p.get("reason"), "received_at": now,
                        "at": now if p.get("reason") == "connection_lost" else counted_since})
                for p in healths:
                    what = f"health from station {p.get('station_id')!r} sent at {p.get('sent_at')!r}"
                    station_id = str(p.get("station_id"))
                    sent = _utc(p.get("sent_at"), f"{what}: sent_at")
                    skew = _ahead((sent,), received, max_clock_skew_s)
                    skews.setdefault(station_id, []).append(skew)
                    if skew is None:
                        on_time.add(station_id)
                    counted = self._time(_earlier(sent, received), f"{what}: sent_at")
                    self._exec(self._SEEN, {"station_id": p.get("station_id"), "deployment_id": None,
                                            "received_at": now, "detection_at": None, "seen": counted})
                    payload = self._json_in(p)
                    self._exec(self._HEALTH_LATEST, {"station_id": p.get("station_id"), "sent_at": counted,
                                                     "payload": payload})
                    readings = read_health(p)
                    cur = self._exec(self._HEALTH, {"station_id": p.get("station_id"),
                                                    "sent_at": self._time(sent, f"{what}: sent_at"),
                                                    "received_at": now, "payload": payload, "clock_skew_s": skew,
                                                    **readings.columns()})
                    implausible += bool(readings.implausible) and cur.rowcount == 1
                for station_id, found in sorted(skews.items()):
                    what = f"clock of station {station_id!r}"
                    ahead = max((s for s in found if s is not None), default=None)
                    if ahead is not None:
                        self._exec(self._CLOCK_AHEAD, {"station_id": station_id, "skew": ahead, "now": now})
                    elif station_id in on_time:
                        self._exec(self._CLOCK_ON_TIME, {"station_id": station_id})
                for t in thumbnails:
                    what = f"thumbnail of event {t.event_id!r} from station {t.station_id!r}"
                    self._exec(self._SEEN, {"station_id": t.station_id, "deployment_id": None,
                                            "received_at": now, "detection_at": None, "seen": None})
                    cur = self._exec(self._THUMBNAIL, {"event_id": t.event_id, "station_id": t.station_id,
                                                       "file": t.file, "bytes": t.bytes, "width": t.width,
                                                       "height": t.height, "sha256": t.sha256,
                                                       "received_at": now})
                    thumbs += cur.rowcount == 1
                for r in rejections:
                    what = f"rejection count {r.reason!r}"
                    self._exec(self._REJECTION, {"reason": r.reason, "station_id": printable(r.station_id)[:64],
                                                 "at": now, "detail": printable(r.detail)[:500]})
                what = "when stations were last heard"
                self._heard(detections, statuses, healths, thumbnails, heard, now)
        except self._errors as exc:
            raise StorageError(f"{what}: {_reason(exc)}; the whole batch of {len(detections)} detections, "
                               f"{len(statuses)} statuses and {len(healths)} health messages was rolled back",
                               transient=not isinstance(exc, self._data_errors)) from None
        except (StorageError, ValueError, TypeError, RecursionError) as exc:
            raise StorageError(f"{what}: {exc}; the whole batch was rolled back") from None
        return BatchResult(inserted, duplicates, thumbs, tuple(new_ids), len(statuses), len(healths), implausible)

    # -- reading --------------------------------------------------------------------

    def _where(self, station: str | None, tag: str | None, species: str | None,
               since: Any, until: Any, table: str = "", window: bool = False,
               verified: bool | None = None) -> tuple[str, dict[str, Any]]:
        """WHERE for the filters; ``window``: only starts inside the plausible window (counts
        and the diel chart, which cannot leave out single rows otherwise); ``verified``: only
        events a researcher has verified (True) or not (False)."""
        clauses, params = [], {}
        col = f"{table}." if table else ""
        if verified:  # driven by the (few) verifications: the event_id index finds their rows
            clauses.append(f"{col}event_id IN (SELECT vf.event_id FROM verifications vf)")
        elif verified is not None:
            clauses.append(f"NOT EXISTS (SELECT 1 FROM verifications vf WHERE vf.event_id = "
                           f"{table or 'detections'}.event_id)")
        if window:
            since = times.EARLIEST if since is None else max(_utc(since, "since"), times.EARLIEST)
            until = times.LATEST if until is None else min(_utc(until, "until"), times.LATEST)
        for column, value in (("station_id", station), ("tag", tag), ("species", species)):
            if value is not None:
                clauses.append(f"{col}{column} = %({column})s")
                params[column] = value
        if since is not None:
            clauses.append(f"{col}start_time >= %(since)s")
            params["since"] = self._time(since, "since")
        if until is not None:
            clauses.append(f"{col}start_time < %(until)s")
            params["until"] = self._time(until, "until")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    _COLUMNS = ("d.event_id, d.station_id, d.deployment_id, d.tag, d.species, d.label, d.confidence,"
                " d.classification_status, d.start_time, d.end_time, d.latitude, d.longitude, d.model_name,"
                " d.sent_at, d.received_at, d.payload, d.clock_skew_s, t.file AS thumbnail_file,"
                " v.id AS v_id, v.tag AS v_tag, v.species AS v_species, v.verified_by AS v_by,"
                " v.verified_at AS v_at")
    # A thumbnail counts only when the station that sent it sent the detection too; an
    # event's verification is its latest (the highest id).
    _THUMB_JOIN = (" LEFT JOIN thumbnails t ON t.event_id = d.event_id AND t.station_id = d.station_id"
                   " LEFT JOIN verifications v ON v.id = (SELECT MAX(vm.id) FROM verifications vm"
                   " WHERE vm.event_id = d.event_id)")
    _VERIFICATION = ("id", "tag", "species", "verified_by", "verified_at")

    def _detection_out(self, row: dict[str, Any]) -> dict[str, Any]:
        row = self._out(row, ("payload",))
        row["has_thumbnail"] = row.pop("thumbnail_file") is not None
        current = [row.pop(k) for k in ("v_id", "v_tag", "v_species", "v_by", "v_at")]
        row["verification"] = None if current[0] is None else dict(zip(self._VERIFICATION, current))
        return row

    def query_detections(self, station: str | None = None, tag: str | None = None, species: str | None = None,
                         since: str | float | datetime | None = None, until: str | float | datetime | None = None,
                         limit: int = 100, offset: int = 0, verified: bool | None = None) -> list[dict[str, Any]]:
        """Detections newest first (by start), ``since <= start < until``; each row has the
        filter columns, the whole ``payload``, ``has_thumbnail`` and ``verification`` (the
        current one: id, tag, species, verified_by, verified_at; None if not verified)."""
        if not 1 <= limit <= MAX_LIMIT or offset < 0:
            raise StorageError(f"limit must be 1..{MAX_LIMIT} and offset >= 0 (got {limit}, {offset})")
        where, params = self._where(station, tag, species, since, until, table="d", verified=verified)
        rows = self._rows(
            f"SELECT {self._COLUMNS} FROM detections d{self._THUMB_JOIN}"
            f"{where} ORDER BY d.start_time DESC, d.event_id DESC"
            " LIMIT %(limit)s OFFSET %(offset)s", params | {"limit": limit, "offset": offset})
        return [self._detection_out(r) for r in rows]

    def count_detections(self, station: str | None = None, tag: str | None = None, species: str | None = None,
                         since: str | float | datetime | None = None,
                         until: str | float | datetime | None = None, cap: int | None = None,
                         verified: bool | None = None) -> int:
        """How many detections match; with ``cap``, counting stops after ``cap + 1`` (a page
        header needs "more than 10,000", not a full scan of a million rows)."""
        where, params = self._where(station, tag, species, since, until, verified=verified)
        if cap is None:
            return int(self._rows(f"SELECT COUNT(*) AS n FROM detections{where}", params)[0]["n"])
        return int(self._rows(f"SELECT COUNT(*) AS n FROM (SELECT 1 FROM detections{where}"
                              " LIMIT %(cap)s) AS s", params | {"cap": cap + 1})[0]["n"])

    def detection(self, event_id: str) -> dict[str, Any] | None:
        rows = self._rows(f"SELECT {self._COLUMNS} FROM detections d{self._THUMB_JOIN}"
                          " WHERE d.event_id = %(id)s", {"id": event_id})
        return self._detection_out(rows[0]) if rows else None

    def iter_detections(self, station: str | None = None, since: str | float | datetime | None = None,
                        until: str | float | datetime | None = None, page: int = 1000,
                        verified: bool | None = None) -> Iterator[dict[str, Any]]:
        """Every detection (oldest first) in pages of ``page`` rows, for exports: keyset
        pagination, so memory stays flat however many there are."""
        where, params = self._where(station, None, None, since, until, table="d", verified=verified)
        after: tuple[Any, str] | None = None
        while True:
            clause = where
            if after is not None:
                clause += (" AND " if clause else " WHERE ") + \
                    "(d.start_time > %(a_start)s OR (d.start_time = %(a_start)s AND d.event_id > %(a_id)s))"
                params |= {"a_start": after[0], "a_id": after[1]}
            try:
                cur = self._exec(f"SELECT {self._COLUMNS} FROM detections d{self._THUMB_JOIN}{clause}"
                                 " ORDER BY d.start_time, d.event_id LIMIT %(page)s", params | {"page": page})
                names = [c[0] for c in cur.description]
                raw = cur.fetchall()
            except self._errors as exc:
                raise StorageError(f"query failed: {_reason(exc)}") from None
            if not raw:
                return
            last = dict(zip(names, raw[-1]))
            after = (last["start_time"], last["event_id"])
            for values in raw:
                yield self._detection_out(dict(zip(names, values)))
            if len(raw) < page:
                return

    def thumbnail(self, event_id: str) -> dict[str, Any] | None:
        """The stored thumbnail of an event: file (relative to the thumbnails folder), bytes, size."""
        rows = self._rows("SELECT t.event_id, t.station_id, t.file, t.bytes, t.width, t.height, t.sha256,"
                          " t.received_at FROM thumbnails t JOIN detections d ON d.event_id = t.event_id"
                          " AND d.station_id = t.station_id WHERE t.event_id = %(id)s", {"id": event_id})
        return self._out(rows[0]) if rows else None

    def stations(self) -> list[dict[str, Any]]:
        """Every station heard from, by id: last status, last health, last seen, exact location."""
        rows = self._rows("SELECT station_id, deployment_id, first_seen, last_seen, last_detection_at,"
                          " status_state, status_reason, status_since, software_version, health, health_at,"
                          " latitude, longitude, coordinate_uncertainty_m, clock_skew_s, clock_skew_at"
                          " FROM stations ORDER BY station_id")
        return [self._out(r, ("health",)) for r in rows]

    def stations_with_tags(self, tags: Sequence[str]) -> set[str]:
        """Stations that have recorded any of ``tags`` (for location privacy): by the machine's
        tag or by any researcher's verification, ever (a correction never makes a station
        exact again: its generalised position was public)."""
        if not tags:
            return set()
        names = {f"t{i}": t for i, t in enumerate(tags)}
        marks = ", ".join(f"%({k})s" for k in names)
        return {r["station_id"] for r in self._rows(
            f"SELECT DISTINCT station_id FROM detections WHERE tag IN ({marks})"
            f" UNION SELECT DISTINCT d.station_id FROM verifications v JOIN detections d ON d.event_id = v.event_id"
            f" WHERE v.tag IN ({marks})", names)}

    def count_outside_window(self, station: str | None = None, species: str | None = None,
                             since: str | float | datetime | None = None,
                             until: str | float | datetime | None = None) -> int:
        """Detections matching the filters that start outside the plausible window
        (:data:`station.times.EARLIEST` to ``LATEST``): left out of counts and the diel chart."""
        where, params = self._outside(*self._where(station, None, species, since, until))
        return int(self._rows(f"SELECT COUNT(*) AS n FROM detections{where}", params)[0]["n"])

    def clock_skews(self, since: str | float | datetime | None = None) -> list[dict[str, Any]]:
        """Stations whose clock ran ahead (a message more than ``max_clock_skew_s`` ahead of
        its arrival) at or after ``since`` (default: ever), latest first: ``station_id``, the
        skew of the latest such message while it lasts (``clock_skew_s``; None once a heartbeat
        or status arrived on time), when one last arrived (``clock_skew_at``), and how many
        stored detections and heartbeats carry the flag."""
        params: dict[str, Any] = {}
        where = " WHERE s.clock_skew_at IS NOT NULL"
        if since is not None:
            where += " AND s.clock_skew_at >= %(since)s"
            params["since"] = self._time(since, "since")
        return [self._out(r) for r in self._rows(
            "SELECT s.station_id, s.clock_skew_s, s.clock_skew_at,"
            " (SELECT COUNT(*) FROM detections d WHERE d.station_id = s.station_id"
            "  AND d.clock_skew_s IS NOT NULL) AS detections,"
            " (SELECT COUNT(*) FROM health h WHERE h.station_id = s.station_id"
            "  AND h.clock_skew_s IS NOT NULL) AS heartbeats"
            f" FROM stations s{where} ORDER BY s.clock_skew_at DESC, s.station_id", params)]

    def counts_by_species(self, station: str | None = None, since: str | float | datetime | None = None,
                          until: str | float | datetime | None = None) -> dict[str, int]:
        """Detections per species (those with a species), most first."""
        where, params = self._where(station, None, None, since, until)
        where = (where + " AND" if where else " WHERE") + " species IS NOT NULL"
        counts = {r["species"]: int(r["n"]) for r in self._rows(
            f"SELECT species, COUNT(*) AS n FROM detections{where} GROUP BY species", params)}
        outside, o_params = self._outside(where, params)  # left out (a few rows, found by the start index)
        for r in self._rows(f"SELECT species, COUNT(*) AS n FROM detections{outside} GROUP BY species", o_params):
            counts[r["species"]] -= int(r["n"])
        return dict(sorted(((s, n) for s, n in counts.items() if n > 0), key=lambda kv: (-kv[1], kv[0])))

    def _outside(self, where: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """``where`` narrowed to starts outside the plausible window."""
        clause = "(start_time < %(w_lo)s OR start_time >= %(w_hi)s)"
        return ((where + " AND " if where else " WHERE ") + clause,
                params | {"w_lo": self._time(times.EARLIEST, "w_lo"), "w_hi": self._time(times.LATEST, "w_hi")})

    def diel_activity(self, timezone_name: str = "UTC", station: str | None = None, species: str | None = None,
                      since: str | float | datetime | None = None,
                      until: str | float | datetime | None = None) -> dict[str, list[int]]:
        """Detections by hour of day (0-23, local time in ``timezone_name``) per species, most
        detected species first.

        When the zone kept one UTC offset over the detections' time range (Asia/Vladivostok
        since 2014, UTC), the offset is added to the indexed ``start_minute`` in SQL. Otherwise
        (daylight saving) PostgreSQL converts each time to the zone itself, and SQLite, which
        has no time zones, groups by UTC hour of each day and each group is put in its local
        hour here. Detections dated outside the plausible window are left out (and the index
        alone still answers: they are subtracted, found by the start index)."""
        zone = times.zone(timezone_name)
        every, every_params = self._where(station, None, species, since, until)
        every = (every + " AND" if every else " WHERE") + " species IS NOT NULL"
        where, params = self._where(station, None, species, since, until, window=True)
        where = (where + " AND" if where else " WHERE") + " species IS NOT NULL"
        out: dict[str, list[int]] = {}
        bounds = self._rows(f"SELECT MIN(start_time) AS lo, MAX(start_time) AS hi FROM detections{where}", params)[0]
        offsets = _offsets(zone, bounds["lo"], bounds["hi"])
        if len(offsets) == 1:  # one UTC offset over the range: integer arithmetic on the index
            minutes = int(next(iter(offsets)).total_seconds() // 60)
            # Grouped in index order (species, start_minute): no sort, at most 1,440 rows a species.
            rows = self._rows(f"SELECT species, start_minute AS m, COUNT(*) AS n FROM detections{every}"
                              " GROUP BY species, start_minute", every_params)
            outside, o_params = self._outside(every, every_params)
            rows += [r | {"n": -int(r["n"])} for r in self._rows(
                f"SELECT species, start_minute AS m, COUNT(*) AS n FROM detections{outside}"
                " GROUP BY species, start_minute", o_params)]
            for r in rows:
                if r["m"] is not None:
                    out.setdefault(r["species"], [0] * 24)[(int(r["m"]) + minutes) % 1440 // 60] += int(r["n"])
            out = {s: counts for s, counts in out.items() if any(counts)}
        elif self.dialect is POSTGRESQL:
            rows = self._rows("SELECT species, CAST(EXTRACT(HOUR FROM start_time AT TIME ZONE %(tz)s) AS INTEGER) AS h,"
                              f" COUNT(*) AS n FROM detections{where} GROUP BY species, h",
                              params | {"tz": timezone_name})
            for r in rows:
                out.setdefault(r["species"], [0] * 24)[r["h"]] += int(r["n"])
        else:
            rows = self._rows(f"SELECT species, substr(start_time, 1, 13) AS hour, COUNT(*) AS n"
                              f" FROM detections{where} GROUP BY species, substr(start_time, 1, 13)", params)
            local_hour: dict[str, int] = {}
            for r in rows:
                h = r["hour"]
                if h not in local_hour:
                    utc = datetime(int(h[0:4]), int(h[5:7]), int(h[8:10]), int(h[11:13]), tzinfo=timezone.utc)
                    local_hour[h] = utc.astimezone(zone).hour
                out.setdefault(r["species"], [0] * 24)[local_hour[h]] += int(r["n"])
        return dict(sorted(out.items(), key=lambda kv: (-sum(kv[1]), kv[0])))

    # -- verifications (station.collector.verification) ---------------------------------

    def add_verification(self, event_id: str, tag: str, species: str | None, verified_by: str,
                         at: str | float | datetime | None = None) -> dict[str, Any]:
        """Record a researcher's verification of a stored event (appended: the earlier ones
        stay, as its history) and return it: id, event_id, tag, species, verified_by,
        verified_at. The machine's classification is left as it is. Checking the values is
        the caller's (:func:`station.collector.verification.parse`); an unknown event is a
        :class:`StorageError`."""
        when = self._time(datetime.now(timezone.utc) if at is None else at, "verified_at")
        try:
            with self._transaction():
                row = self._exec("INSERT INTO verifications (event_id, tag, species, verified_by, verified_at)"
                                 " VALUES (%(e)s, %(t)s, %(s)s, %(b)s, %(a)s) RETURNING id",
                                 {"e": event_id, "t": tag, "s": species, "b": verified_by, "a": when}).fetchone()
        except self._errors as exc:
            raise StorageError(f"verification of event {event_id!r}: {_reason(exc)}",
                               transient=not isinstance(exc, self._data_errors)) from None
        return self._out({"id": int(row[0]), "event_id": event_id, "tag": tag, "species": species,
                          "verified_by": verified_by, "verified_at": when})

    def verifications(self, event_id: str) -> list[dict[str, Any]]:
        """Every verification of an event, oldest first (the last is the current one)."""
        return [self._out(r) for r in self._rows(
            "SELECT id, event_id, tag, species, verified_by, verified_at FROM verifications"
            " WHERE event_id = %(e)s ORDER BY id", {"e": event_id})]

    def verified_pairs(self, station: str | None = None, since: str | float | datetime | None = None,
                       until: str | float | datetime | None = None) -> list[dict[str, Any]]:
        """Verified events counted by station, machine tag, verified tag and whether the
        species agree (``species_agree``: 1, 0, or None when the verification names none):
        the input of :func:`station.collector.verification.confusion`."""
        where, params = self._where(station, None, None, since, until, table="d")
        latest = "v.id = (SELECT MAX(vm.id) FROM verifications vm WHERE vm.event_id = v.event_id)"
        where = (where + " AND " if where else " WHERE ") + latest
        agree = ("CASE WHEN v.species IS NULL THEN NULL WHEN lower(d.species) = v.species THEN 1 ELSE 0 END")
        return self._rows(f"SELECT d.station_id, d.tag AS machine, v.tag AS verified, {agree} AS species_agree,"
                          f" COUNT(*) AS n FROM verifications v JOIN detections d ON d.event_id = v.event_id{where}"
                          f" GROUP BY d.station_id, d.tag, v.tag, {agree}"
                          " ORDER BY d.station_id", params)

    # -- outbound feeds (station.collector.outbound) -----------------------------------

    @property
    def _seq(self) -> str:
        return "rowid" if self.dialect is SQLITE else "seq"

    def stored_after(self, writer: str, after: int, limit: int = 100) -> list[dict[str, Any]]:
        """Detections ``writer`` stored after position ``after``, in the order it committed
        them: ``seq``, the filter columns and ``payload``."""
        rows = self._rows(f"SELECT {self._seq} AS seq, event_id, station_id, latitude, longitude, received_at,"
                          f" payload FROM detections WHERE stored_by = %(w)s AND {self._seq} > %(after)s"
                          f" ORDER BY {self._seq} LIMIT %(limit)s", {"w": writer, "after": after, "limit": limit})
        return [self._out(r, ("payload",)) for r in rows]

    def last_stored(self, writer: str) -> int:
        """The position of the last detection ``writer`` stored (0: none)."""
        row = self._rows(f"SELECT MAX({self._seq}) AS n FROM detections WHERE stored_by = %(w)s", {"w": writer})
        return int(row[0]["n"] or 0)

    def cursor(self, name: str) -> int | None:
        rows = self._rows("SELECT position FROM outbound_cursors WHERE name = %(n)s", {"n": name})
        return int(rows[0]["position"]) if rows else None

    def set_cursor(self, name: str, position: int) -> None:
        try:
            with self._transaction():
                self._exec("INSERT INTO outbound_cursors (name, position, updated_at) VALUES (%(n)s, %(p)s, %(t)s)"
                           " ON CONFLICT (name) DO UPDATE SET position = excluded.position,"
                           " updated_at = excluded.updated_at",
                           {"n": name, "p": position, "t": self._time(datetime.now(timezone.utc), "now")})
        except self._errors as exc:
            raise StorageError(f"outbound cursor {name!r}: {_reason(exc)}",
                               transient=not isinstance(exc, self._data_errors)) from None

    def rejections(self) -> list[dict[str, Any]]:
        """Messages refused, counted by reason and station, most recent first."""
        return [self._out(r) for r in self._rows(
            "SELECT reason, station_id, count, first_at, last_at, last_detail FROM rejections"
            " ORDER BY last_at DESC, reason")]
