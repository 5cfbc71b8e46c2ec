"""Station alerts: silent, gone, trouble, power and reported problems, each with its
recovery, and the daily digest; on a timer, through Apprise (docs/alerts.md).

    watch = StationWatch.from_config(cfg, targets, open_db, listening=lambda: ingest.listening_since)
    watch.start()        # a thread: check() every alerts.check_interval_s
    watch.check()        # one round, now (tests call it with a clock of their own)
    watch.stop()

One round: read every station's facts from the database, judge them
(:mod:`station.collector.station_rules`), and, holding the lease ``station-alerts``, move
each (station, rule) row of ``station_alerts`` to what holds now. A change is told at
once when its rule is outside its rate-limit window (``alerts.min_interval_s``, as the
tag alerts); within it, changes are held and counted, and when the window ends one
summary says where things stand ("+2 changes since 18:02 UTC"). Every notice is written
to ``alert_notices`` in the same transaction as the state it reports, sent after the
commit and deleted once sent: a crash in between sends it at the next round; a restart
neither forgets an alert nor repeats one.

Several collectors on one database: only the holder of the lease (a row of
``collector_leases``, renewed each round, taken over when it has expired for
3 rounds) runs a round; on PostgreSQL the lease row stays locked while the holder decides,
so no change is ever decided twice. Collectors' clocks must agree (NTP).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import apprise

from station.collector.alerts import Sender, Target
from station.collector.db import Database, StorageError
from station.collector.fieldhealth import station_facts
from station.collector.station_rules import (Condition, RuleSettings, StationFacts, Verdict, family, judge,
                                             span)
from station.log import get_logger
from station.vocabulary import TAGS

log = get_logger("collector.station_alerts")
LEASE = "station-alerts"
DIGEST_MARK = "digest-date"
COUNTERS = ("checks", "raised", "cleared", "held", "summaries", "digests", "sent", "failed", "retried",
            "not_holder", "errors")

# (title when it starts, title when it clears), "{s}" the station
WORDS: dict[str, tuple[str, str]] = {
    "silent": ("{s} silent", "{s} heard again"),
    "gone": ("{s} offline", "{s} back online"),
    "camera": ("Camera failing at {s}", "Camera working again at {s}"),
    "disk": ("Disk nearly full at {s}", "Disk space back at {s}"),
    "outbox": ("Detections held up at {s}", "Detections flowing again at {s}"),
    "clock": ("Clock wrong at {s}", "Clock right again at {s}"),
    "power": ("Power low at {s}", "Power back at {s}"),
    "problem": ("{s} reports a problem", "{s}: problem cleared"),
}


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


@dataclass(frozen=True, slots=True)
class Notice:
    station_id: str
    rule: str
    kind: str        # raised, cleared, summary, digest
    title: str
    body: str


class Wording:
    """The notices' words: times in UTC and the local zone, a link to the station's page."""

    def __init__(self, tz: ZoneInfo, dashboard_url: str | None):
        self.tz = tz
        self.base = None
        if dashboard_url:
            parts = urlsplit(dashboard_url)
            self.base = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None

    def stamp(self, t: datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
        local = f" ({t.astimezone(self.tz).strftime(fmt)} {self.tz.key})" if self.tz.key != "UTC" else ""
        return f"{t.astimezone(timezone.utc).strftime(fmt)} UTC{local}"

    def link(self, station_id: str) -> str:
        return f"\nStation page: {self.base}/stations/{station_id}" if self.base else ""

    def change(self, station_id: str, rule: str, active: bool, detail: str | None, since: datetime | None,
               now: datetime) -> Notice:
        fam = family(rule)
        title = WORDS[fam][0 if active else 1].format(s=station_id)
        if active:
            what = f"Station {station_id}: {detail}." if detail else f"Station {station_id}: {rule}."
            body = f"{what}\nSince: {self.stamp(now)}"
        else:
            lasted = f" after {span((now - since).total_seconds())}" if since else ""
            body = (f"Station {station_id}: {(detail or rule)} - no longer{lasted}.\n"
                    f"Cleared: {self.stamp(now)}")
        if fam == "problem":
            title += f": {rule.split(':', 1)[1].replace('_', ' ')}"
        return Notice(station_id, rule, "raised" if active else "cleared", title, body + self.link(station_id))

    def summary(self, station_id: str, rule: str, active: bool, detail: str | None, held: int,
                held_since: datetime | None, now: datetime) -> Notice:
        base = self.change(station_id, rule, active, detail, None, now)
        since = f" since {held_since.astimezone(timezone.utc):%H:%M} UTC" if held_since else ""
        title = f"{base.title} (+{held} change(s){since})"
        now_is = "still" if active else "now fine"
        body = (f"Station {station_id}: {rule} changed {held} more time(s){since}; {now_is}"
                + (f": {detail}." if active and detail else ".") + f"\nAt: {self.stamp(now)}" + self.link(station_id))
        return Notice(station_id, rule, "summary", title, body)


def step(row: dict[str, Any] | None, condition: Condition | None, judged: bool, *, station_id: str, rule: str,
         now: datetime, interval_s: float, words: Wording) -> tuple[dict[str, Any] | None, Notice | None, str]:
    """One (station, rule) row moved to what holds ``now`` (pure): the new row (None: none
    needed), the notice to send (None: nothing to tell now) and what happened (``raised``,
    ``cleared``, ``held``, ``summary`` or '')."""
    active = condition is not None
    if row is None and (not judged or not active):
        return None, None, ""
    row = dict(row) if row is not None else {"station_id": station_id, "rule": rule, "active": None,
                                             "since": now, "detail": None, "notified": None,
                                             "notified_at": None, "window_until": None, "held": 0,
                                             "held_since": None}
    row["updated_at"] = now
    notice, what = None, ""
    if judged and row["active"] is not None and bool(row["active"]) == active:
        if active:
            row["detail"] = condition.detail
    elif judged:
        was_since = row["since"]
        row["active"], row["since"] = int(active), now
        if active:
            row["detail"] = condition.detail
        window = row["window_until"]
        if (window is None or now >= window) and row["held"]:  # changes were held: say them all
            row["held"] = int(row["held"]) + 1
        elif window is None or now >= window:
            notice = words.change(station_id, rule, active, row["detail"], was_since, now)
            row.update(notified=int(active), notified_at=now, window_until=now + timedelta(seconds=interval_s),
                       held=0, held_since=None)
            what = "raised" if active else "cleared"
        else:
            row["held"] = int(row["held"] or 0) + 1
            row["held_since"] = row["held_since"] or row["notified_at"]
            what = "held"
    if notice is None and row["held"] and row["window_until"] is not None and now >= row["window_until"]:
        notice = words.summary(station_id, rule, bool(row["active"]), row["detail"], int(row["held"]),
                               row["held_since"], now)
        row.update(notified=row["active"], notified_at=now, window_until=now + timedelta(seconds=interval_s),
                   held=0, held_since=None)
        what = "summary"
    return row, notice, what


def _changed(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Does the row need writing (anything but its ``updated_at`` differs)?"""
    if old is None:
        return True
    return any(old.get(k) != v for k, v in new.items() if k != "updated_at")


class StationWatch:
    def __init__(self, sender: Sender | None, open_db: Callable[[], Database], settings: RuleSettings, *,
                 collector_id: str, min_interval_s: float = 900.0, timezone_name: str = "UTC",
                 dashboard_url: str | None = None, digest_at: str | None = "07:00",
                 check_interval_s: float = 60.0, lease_s: float | None = None,
                 clock: Callable[[], float] = time.time, listening: Callable[[], float | None] = lambda: None):
        self.sender, self._open_db, self.settings = sender, open_db, settings
        self.collector_id, self.min_interval_s = collector_id, min_interval_s
        self.words = Wording(ZoneInfo(timezone_name), dashboard_url)
        self.digest_at = None if digest_at is None else tuple(int(x) for x in digest_at.split(":"))
        self.check_interval_s = check_interval_s
        self.lease_s = lease_s if lease_s is not None else max(3 * check_interval_s, 10.0)
        self._clock, self._listening = clock, listening
        self._db: Database | None = None
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.holder = False
        self.last_error: str | None = None

    @classmethod
    def from_config(cls, cfg: Any, targets: Sequence[Target], open_db: Callable[[], Database],
                    **options: Any) -> StationWatch:
        """``options``: clock, listening, lease_s, retry_delay_s."""
        retry = options.pop("retry_delay_s", 5.0)
        watch = cls(None, open_db, RuleSettings.from_config(cfg.alerts), collector_id=cfg.collector.id,
                    min_interval_s=cfg.alerts.min_interval_s, timezone_name=cfg.http.timezone,
                    dashboard_url=cfg.alerts.dashboard_url, digest_at=cfg.alerts.digest_at if cfg.alerts.digest else None,
                    check_interval_s=cfg.alerts.check_interval_s, **options)
        watch.sender = Sender(targets, retry_delay_s=retry, stopping=watch._stopping, count=watch._count)
        return watch

    # -- the thread ----------------------------------------------------------------------

    def start(self) -> StationWatch:
        self._thread = threading.Thread(target=self._run, name="station-alerts", daemon=True)
        self._thread.start()
        log.info("station alerts running", every_s=self.check_interval_s, collector=self.collector_id)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._db is not None:
            self._db.close()
            self._db = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.check()
            self._stopping.wait(self.check_interval_s)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {**self._counts, "holder": self.holder, "last_error": self.last_error}

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    # -- one round -----------------------------------------------------------------------

    def check(self) -> bool:
        """One round now; True when this collector held the lease and ran it. Never raises:
        a database that is down is retried next round."""
        try:
            if self._db is None:
                self._db = self._open_db()
            held = self._round(self._db)
            self.last_error = None
            return held
        except StorageError as exc:
            self._count("errors")
            self.last_error = str(exc)
            log.error("station alerts could not check the stations; next round retries", error=str(exc))
            if self._db is not None:
                self._db.close()
                self._db = None
            return False
        except Exception as exc:  # a bug must not end the alerts
            self._count("errors")
            self.last_error = repr(exc)
            log.exception("station alerts failed unexpectedly")
            return False

    def _round(self, db: Database) -> bool:
        now = _dt(self._clock())
        lease = db.lease(LEASE)
        if lease is not None and lease["holder"] != self.collector_id and lease["expires_at"] > now:
            self.holder = False  # another collector runs the round: no need to read every station
            self._count("checks")
            self._count("not_holder")
            return False
        listening = self._listening()
        since = None if listening is None else _dt(listening)
        facts = station_facts(db, now, self.settings)
        verdicts = {f.station_id: judge(f, self.settings, now=now, listening_since=since) for f in facts}
        happened: dict[str, int] = {}

        def work() -> None:
            happened.clear()
            rows = {(r["station_id"], r["rule"]): r for r in db.alert_states()}
            for f in facts:
                v = verdicts[f.station_id]
                rules = set(v.conditions) | {rule for (sid, rule) in rows if sid == f.station_id}
                for rule in sorted(rules):
                    new, notice, what = step(rows.get((f.station_id, rule)), v.conditions.get(rule),
                                             family(rule) in v.judged, station_id=f.station_id, rule=rule,
                                             now=now, interval_s=self.min_interval_s, words=self.words)
                    if new is not None and (what or _changed(rows.get((f.station_id, rule)), new)):
                        db.put_alert(new)
                        rows[(f.station_id, rule)] = new
                    if notice is not None:
                        db.add_notice(notice.station_id, notice.rule, notice.kind, notice.title, notice.body, now)
                    if what:
                        happened[what] = happened.get(what, 0) + 1
            digest = self._digest(db, now, facts, verdicts, rows)
            if digest is not None:
                db.add_notice("", "digest", "digest", digest.title, digest.body, now)
                happened["digests"] = 1

        self.holder = db.as_lease_holder(LEASE, self.collector_id, now, now + timedelta(seconds=self.lease_s), work)
        self._count("checks")
        if not self.holder:
            self._count("not_holder")
            return False
        for what, n in happened.items():
            self._count("summaries" if what == "summary" else what, n)
        self._send_notices(db)
        return True

    def _send_notices(self, db: Database) -> None:
        for n in db.notices():
            kind = {"cleared": apprise.NotifyType.SUCCESS, "digest": apprise.NotifyType.INFO}.get(
                n["kind"], apprise.NotifyType.WARNING)
            if self.sender is not None and self.sender.targets:
                self.sender.send(n["title"], n["body"], kind, station=n["station_id"] or None, rule=n["rule"],
                                 notice=n["kind"])
            db.delete_notice(n["id"])  # delivered or not: no resend queue, as for the tag alerts

    # -- the daily digest ----------------------------------------------------------------

    def _local_date(self, now: datetime) -> str:
        return now.astimezone(self.words.tz).date().isoformat()

    def _digest(self, db: Database, now: datetime, facts: list[StationFacts], verdicts: dict[str, Verdict],
                rows: dict[tuple[str, str], dict[str, Any]]) -> Notice | None:
        if self.digest_at is None:
            return None
        local = now.astimezone(self.words.tz)
        last = db.mark(DIGEST_MARK)
        if (local.hour, local.minute) < self.digest_at or last == self._local_date(now):
            return None
        db.set_mark(DIGEST_MARK, self._local_date(now), now)
        if last is None:  # a new database: the first digest is tomorrow's, not one at the first start
            return None
        counts = db.counts_by_station_tag(now - timedelta(days=1), now)
        lines = [f"Detections in the 24 h to {self.words.stamp(now)}:"]
        for f in facts:
            per = counts.get(f.station_id, {})
            text = ", ".join(f"{tag} {per[tag]}" for tag in TAGS if per.get(tag)) or "none"
            lines.append(f"  {f.station_id}: {text}")
        if not facts:
            lines.append("  no station has been heard from yet")
        visit = []
        for f in facts:
            active = [r for (sid, _), r in sorted(rows.items()) if sid == f.station_id and r.get("active")]
            why = [f"{family(r['rule']) if family(r['rule']) != 'problem' else r['rule'].split(':', 1)[1]}"
                   + (f" ({r['detail']})" if r.get("detail") else "") for r in active]
            if f.status_state == "offline" and f.status_reason == "stopping":
                why.append("stopped (a clean shutdown)")
            if why:
                visit.append(f"  {f.station_id}: " + "; ".join(why))
        lines += (["Stations that need a visit:", *visit] if visit else ["Every station is fine."])
        title = f"Daily digest {local:%Y-%m-%d}: " + (f"{len(visit)} station(s) need a visit" if visit
                                                      else "all stations fine")
        return Notice("", "digest", "digest", title, "\n".join(lines))
