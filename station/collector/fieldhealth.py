"""A station's record over a window, from the database: its timeline, effort and the
figures its heartbeats carried (for the station page and the Camtrap DP deployments).

    record = station_record(db, "lazovsky-07", since=t0, until=t1, now=now, settings=RuleSettings())
    record.timeline, record.effort, record.interval_s
    chart_series(record.beats)     # temperature and battery, thinned to at most 1,000 points each
    station_facts(db, now, settings)   # what the alert rules read of every station
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Sequence

from station import times
from station.collector.effort import Effort, Segment, build_timeline, marks_from, summarise
from station.collector.readings import read_health
from station.collector.station_rules import RuleSettings, StationFacts, learned_interval, silent_after

SERIES = ("temperature_c", "battery_v")
"""The figures plotted on the station page (readings columns of the health table)."""
MAX_POINTS = 1000


@dataclass(slots=True)
class StationRecord:
    station_id: str
    since: datetime
    until: datetime
    interval_s: float
    silent_after_s: float
    timeline: list[Segment] = field(default_factory=list)
    effort: Effort | None = None
    beats: list[dict[str, Any]] = field(default_factory=list)


def station_record(db: Any, station: str, *, since: datetime, until: datetime, now: datetime,
                   settings: RuleSettings) -> StationRecord:
    """The timeline and effort of ``station`` over ``[since, min(until, now))``."""
    end = min(until, now)
    beats = db.heartbeats(station, since, end) if end > since else []
    before = db.heartbeat_before(station, since)
    statuses = db.status_marks(station, since, end) if end > since else []
    status_before = db.status_mark_before(station, since)
    sent = [b["sent_at"] for b in beats if b.get("sent_at")]
    if len(sent) < 3:
        sent = [b["sent_at"] for b in db.latest_heartbeats(station, 21) if b.get("sent_at")]
    interval = learned_interval(sent, settings.default_interval_s)
    quiet = silent_after(interval, settings)
    marks = marks_from(([before] if before else []) + beats, ([status_before] if status_before else []) + statuses)
    timeline = build_timeline(marks, start=since, end=end, interval_s=interval, silent_after_s=quiet) \
        if end > since else []
    return StationRecord(station, since, until, interval, quiet, timeline, summarise(timeline), beats)


def chart_series(beats: Sequence[dict[str, Any]], max_points: int = MAX_POINTS) -> dict[str, list[list[Any]]]:
    """Per figure, ``[[time, value], ...]`` of the heartbeats that carried it (values left
    out as impossible are NULL in the table, so never here); more than ``max_points``
    are averaged in equal runs of heartbeats."""
    out: dict[str, list[list[Any]]] = {}
    for name in SERIES:
        points = [(b["sent_at"], float(b[name])) for b in beats if b.get(name) is not None and b.get("sent_at")]
        if len(points) > max_points:
            size = -(-len(points) // max_points)
            points = [(run[len(run) // 2][0], sum(v for _, v in run) / len(run))
                      for run in (points[k:k + size] for k in range(0, len(points), size))]
        out[name] = [[times.format(t), round(v, 3)] for t, v in points]
    return out


def station_facts(db: Any, now: datetime, settings: RuleSettings, station: str | None = None) -> list[StationFacts]:
    """What the alert rules (:func:`station.collector.station_rules.judge`) read of every
    station (or of ``station``), from the database."""
    out = []
    for row in db.field_stations():
        sid = row["station_id"]
        if station is not None and sid != station:
            continue
        beats = db.latest_heartbeats(sid, 21)
        health = row["health"]
        facts = StationFacts(sid, row["status_state"], row["status_reason"], None,
                             row["heard_at"] or row["last_seen"], health, read_health(health) if health else None,
                             [(b["sent_at"], b["received_at"]) for b in beats if b["sent_at"] and b["received_at"]],
                             None, row["clock_skew_s"])
        if row["status_state"] == "offline":
            mark = db.status_mark_before(sid, now + timedelta(days=1))
            facts.status_at = mark["at"] if mark else row["status_since"]
        outbox = health.get("outbox") if health and isinstance(health.get("outbox"), dict) else {}
        age = outbox.get("oldest_age_s")
        if isinstance(age, (int, float)) and age > settings.outbox_age_s and beats:
            then = db.heartbeat_before(sid, beats[0]["sent_at"] - timedelta(seconds=settings.outbox_age_s))
            facts.outbox_then = then["outbox_depth"] if then else None
        out.append(facts)
    return out
