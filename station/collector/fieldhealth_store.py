"""The database's queries for field health, mixed into :class:`station.collector.db.Database`.

    db.heartbeats("lazovsky-07", since, until)      # readings of each heartbeat, oldest first
    db.status_marks("lazovsky-07", since, until)    # online/offline, oldest first
    db.field_stations()                              # what the station alerts judge, per station
    db.as_lease_holder("station-alerts", me, now, until, work)   # work() only while holding the lease
    db.add_snapshot_request(...); db.answer_snapshot(...)

Times come back as aware UTC datetimes (``_dt``), not text: the callers reckon with them.
The tables are migration v0008's. Like the rest of Database, one connection, one thread.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from station import times

_HEARTBEAT_COLUMNS = ("sent_at, received_at, camera_state, asleep, problems, tampered, temperature_c, battery_v,"
                      " outbox_depth, implausible, clock_skew_s")


def _dt(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime (PostgreSQL gives datetimes, SQLite text)."""
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        return times.parse(str(value))
    except times.TimeError:
        return None


class FieldHealthStore:
    """Mixed into Database, whose ``_exec``, ``_rows``, ``_time``, ``_transaction``,
    ``_errors`` and ``_storage_error`` it uses."""

    # -- what the timeline, the charts and the effort read ------------------------------

    def _times(self, rows: Iterable[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
        out = []
        for r in rows:
            for k in keys:
                r[k] = _dt(r.get(k))
            out.append(r)
        return out

    def heartbeats(self, station: str, since: Any, until: Any) -> list[dict[str, Any]]:
        """The readings of ``station``'s heartbeats sent in ``[since, until)``, oldest first."""
        return self._times(self._rows(
            f"SELECT {_HEARTBEAT_COLUMNS} FROM health WHERE station_id = %(s)s AND sent_at >= %(a)s"
            " AND sent_at < %(b)s ORDER BY sent_at",
            {"s": station, "a": self._time(since, "since"), "b": self._time(until, "until")}),
            "sent_at", "received_at")

    def heartbeat_before(self, station: str, when: Any) -> dict[str, Any] | None:
        rows = self._times(self._rows(
            f"SELECT {_HEARTBEAT_COLUMNS} FROM health WHERE station_id = %(s)s AND sent_at < %(t)s"
            " ORDER BY sent_at DESC LIMIT 1", {"s": station, "t": self._time(when, "when")}),
            "sent_at", "received_at")
        return rows[0] if rows else None

    def latest_heartbeats(self, station: str, n: int) -> list[dict[str, Any]]:
        """``station``'s latest ``n`` heartbeats, newest first."""
        return self._times(self._rows(
            f"SELECT {_HEARTBEAT_COLUMNS} FROM health WHERE station_id = %(s)s ORDER BY sent_at DESC"
            " LIMIT %(n)s", {"s": station, "n": n}), "sent_at", "received_at")

    def status_marks(self, station: str, since: Any, until: Any) -> list[dict[str, Any]]:
        """``station``'s statuses that took effect in ``[since, until)``: at, state, reason."""
        return self._times(self._rows(
            "SELECT at, state, reason FROM status_log WHERE station_id = %(s)s AND at >= %(a)s AND at < %(b)s"
            " ORDER BY at, state DESC",
            {"s": station, "a": self._time(since, "since"), "b": self._time(until, "until")}), "at")

    def status_mark_before(self, station: str, when: Any) -> dict[str, Any] | None:
        rows = self._times(self._rows(
            "SELECT at, state, reason FROM status_log WHERE station_id = %(s)s AND at < %(t)s"
            " ORDER BY at DESC, state LIMIT 1", {"s": station, "t": self._time(when, "when")}), "at")
        return rows[0] if rows else None

    def implausible_heartbeats(self, station: str) -> dict[str, Any]:
        """How many of ``station``'s heartbeats carried values left out as impossible, and which
        fields the latest of them named."""
        n = int(self._rows("SELECT COUNT(*) AS n FROM health WHERE station_id = %(s)s AND implausible IS NOT NULL",
                           {"s": station})[0]["n"])
        last = self._rows("SELECT sent_at, implausible FROM health WHERE station_id = %(s)s"
                          " AND implausible IS NOT NULL ORDER BY sent_at DESC LIMIT 1", {"s": station})
        return {"heartbeats": n, "latest_fields": last[0]["implausible"].split(",") if last else [],
                "latest_at": times.format(_dt(last[0]["sent_at"])) if last else None}

    def deployment_spans(self, station: str | None = None) -> list[dict[str, Any]]:
        """Per (station, deployment) seen in detections: the first start and last end."""
        where, params = ("WHERE station_id = %(s)s", {"s": station}) if station else ("", {})
        return self._times(self._rows(
            f"SELECT station_id, deployment_id, MIN(start_time) AS first, MAX(end_time) AS last,"
            f" COUNT(*) AS n FROM detections {where} GROUP BY station_id, deployment_id"
            " ORDER BY station_id, first", params), "first", "last")

    def clock_flagged(self, station: str, since: Any, until: Any) -> int:
        """Detections of ``station`` starting in ``[since, until)`` flagged as from a clock ahead."""
        return int(self._rows(
            "SELECT COUNT(*) AS n FROM detections WHERE station_id = %(s)s AND clock_skew_s IS NOT NULL"
            " AND start_time >= %(a)s AND start_time < %(b)s",
            {"s": station, "a": self._time(since, "since"), "b": self._time(until, "until")})[0]["n"])

    # -- what the station alerts judge ---------------------------------------------------

    def field_stations(self) -> list[dict[str, Any]]:
        """Every station: its last status, latest heartbeat, when it was last heard live,
        its clock; times as datetimes."""
        rows = self._rows("SELECT station_id, status_state, status_reason, status_since, health, health_at,"
                          " heard_at, last_seen, clock_skew_s FROM stations ORDER BY station_id")
        out = self._times([self._out(r, ("health",)) for r in rows], "status_since", "health_at", "heard_at",
                          "last_seen")
        for r in out:
            if not isinstance(r.get("health"), dict):
                r["health"] = None
        return out

    def counts_by_station_tag(self, since: Any, until: Any) -> dict[str, dict[str, int]]:
        """Detections starting in ``[since, until)`` per station and tag."""
        out: dict[str, dict[str, int]] = {}
        for r in self._rows("SELECT station_id, tag, COUNT(*) AS n FROM detections WHERE start_time >= %(a)s"
                            " AND start_time < %(b)s GROUP BY station_id, tag",
                            {"a": self._time(since, "since"), "b": self._time(until, "until")}):
            out.setdefault(r["station_id"], {})[r["tag"]] = int(r["n"])
        return out

    # -- station alert state, notices, the lease -------------------------------------------

    def alert_states(self) -> list[dict[str, Any]]:
        return self._times(self._rows(
            "SELECT station_id, rule, active, since, detail, notified, notified_at, window_until, held, held_since,"
            " updated_at FROM station_alerts ORDER BY station_id, rule"),
            "since", "notified_at", "window_until", "held_since", "updated_at")

    def as_lease_holder(self, name: str, holder: str, now: datetime, until: datetime,
                        work: Callable[[], None]) -> bool:
        """In one transaction: take or renew the lease ``name`` for ``holder`` (free, expired, or
        already its own) until ``until``, and only then run ``work`` (writes through
        :meth:`put_alert`, :meth:`add_notice`, :meth:`set_mark`). False: another holds it.
        On PostgreSQL the lease row stays locked until the commit, so two collectors never
        decide the same change."""
        try:
            with self._transaction():
                self._exec("INSERT INTO collector_leases (name, holder, expires_at) VALUES (%(n)s, %(h)s, %(e)s)"
                           " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                           " expires_at = excluded.expires_at WHERE collector_leases.holder = excluded.holder"
                           " OR collector_leases.expires_at < %(now)s",
                           {"n": name, "h": holder, "e": self._time(until, "until"), "now": self._time(now, "now")})
                row = self._exec("SELECT holder FROM collector_leases WHERE name = %(n)s", {"n": name}).fetchone()
                if row is None or row[0] != holder:
                    return False
                work()
        except self._errors as exc:
            raise self._storage_error(f"lease {name!r}", exc) from None
        return True

    def lease(self, name: str) -> dict[str, Any] | None:
        rows = self._times(self._rows("SELECT holder, expires_at FROM collector_leases WHERE name = %(n)s",
                                      {"n": name}), "expires_at")
        return rows[0] if rows else None

    _ALERT = """
        INSERT INTO station_alerts (station_id, rule, active, since, detail, notified, notified_at, window_until,
            held, held_since, updated_at)
        VALUES (%(station_id)s, %(rule)s, %(active)s, %(since)s, %(detail)s, %(notified)s, %(notified_at)s,
            %(window_until)s, %(held)s, %(held_since)s, %(updated_at)s)
        ON CONFLICT (station_id, rule) DO UPDATE SET active = excluded.active, since = excluded.since,
            detail = excluded.detail, notified = excluded.notified, notified_at = excluded.notified_at,
            window_until = excluded.window_until, held = excluded.held, held_since = excluded.held_since,
            updated_at = excluded.updated_at"""

    def put_alert(self, row: Mapping[str, Any]) -> None:
        """Inside :meth:`as_lease_holder`'s work: one station alert row, whole."""
        values = dict(row)
        for key in ("since", "notified_at", "window_until", "held_since", "updated_at"):
            values[key] = self._time(values.get(key), key)
        for key in ("active", "notified"):
            values[key] = None if values.get(key) is None else int(values[key])
        self._exec(self._ALERT, values)

    def add_notice(self, station_id: str, rule: str, kind: str, title: str, body: str, now: datetime) -> None:
        """Inside :meth:`as_lease_holder`'s work: a notice to send once committed."""
        self._exec("INSERT INTO alert_notices (station_id, rule, kind, title, body, created_at)"
                   " VALUES (%(s)s, %(r)s, %(k)s, %(t)s, %(b)s, %(now)s)",
                   {"s": station_id, "r": rule, "k": kind, "t": title, "b": body, "now": self._time(now, "now")})

    def notices(self) -> list[dict[str, Any]]:
        """Notices decided and not yet sent, oldest first."""
        return self._times(self._rows("SELECT id, station_id, rule, kind, title, body, created_at"
                                      " FROM alert_notices ORDER BY id"), "created_at")

    def delete_notice(self, notice_id: int) -> None:
        try:
            with self._transaction():
                self._exec("DELETE FROM alert_notices WHERE id = %(i)s", {"i": notice_id})
        except self._errors as exc:
            raise self._storage_error(f"alert notice {notice_id}", exc) from None

    def mark(self, name: str) -> str | None:
        rows = self._rows("SELECT value FROM collector_marks WHERE name = %(n)s", {"n": name})
        return rows[0]["value"] if rows else None

    def set_mark(self, name: str, value: str, now: datetime) -> None:
        """Inside :meth:`as_lease_holder`'s work (or alone, in autocommit)."""
        self._exec("INSERT INTO collector_marks (name, value, updated_at) VALUES (%(n)s, %(v)s, %(t)s)"
                   " ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                   {"n": name, "v": value, "t": self._time(now, "now")})

    # -- snapshot requests -------------------------------------------------------------

    def add_snapshot_request(self, request_id: str, station_id: str, collector_id: str, requested_at: datetime,
                             requested_by: str | None) -> None:
        try:
            with self._transaction():
                self._exec("INSERT INTO snapshot_requests (request_id, station_id, collector_id, requested_at,"
                           " requested_by) VALUES (%(r)s, %(s)s, %(c)s, %(t)s, %(b)s)",
                           {"r": request_id, "s": station_id, "c": collector_id,
                            "t": self._time(requested_at, "requested_at"), "b": requested_by})
        except self._errors as exc:
            raise self._storage_error(f"snapshot request for {station_id!r}", exc) from None

    def snapshot_request(self, request_id: str) -> dict[str, Any] | None:
        rows = self._times(self._rows(
            "SELECT request_id, station_id, collector_id, requested_at, requested_by, answered_at, ok, message,"
            " event_id FROM snapshot_requests WHERE request_id = %(r)s", {"r": request_id}),
            "requested_at", "answered_at")
        return rows[0] if rows else None

    def answer_snapshot(self, request_id: str, station_id: str, ok: bool, message: str, event_id: str | None,
                        answered_at: datetime) -> bool:
        """Record a station's command_result; False when it answers no request of this
        database (another operator's, or one already answered)."""
        try:
            with self._transaction():
                cur = self._exec("UPDATE snapshot_requests SET answered_at = %(t)s, ok = %(ok)s, message = %(m)s,"
                                 " event_id = %(e)s WHERE request_id = %(r)s AND station_id = %(s)s"
                                 " AND answered_at IS NULL",
                                 {"t": self._time(answered_at, "answered_at"), "ok": int(ok), "m": message[:1024],
                                  "e": event_id, "r": request_id, "s": station_id})
                return cur.rowcount == 1
        except self._errors as exc:
            raise self._storage_error(f"snapshot answer {request_id!r}", exc) from None

    @property
    def _request_seq(self) -> str:
        return "seq" if self.dialect.name == "postgresql" else "rowid"

    def snapshot_requests_after(self, collector_id: str, after: int, limit: int) -> list[dict[str, Any]]:
        """Requests made through ``collector_id`` after position ``after``, in order: seq and the row."""
        return self._times(self._rows(
            f"SELECT {self._request_seq} AS seq, request_id, station_id, requested_at, requested_by"
            f" FROM snapshot_requests WHERE collector_id = %(c)s AND {self._request_seq} > %(a)s"
            f" ORDER BY {self._request_seq} LIMIT %(n)s", {"c": collector_id, "a": after, "n": limit}),
            "requested_at")

    def last_snapshot_request(self, collector_id: str) -> int:
        row = self._rows(f"SELECT MAX({self._request_seq}) AS n FROM snapshot_requests WHERE collector_id = %(c)s",
                         {"c": collector_id})
        return int(row[0]["n"] or 0)
