"""Which conditions hold at a station now: the rules of the station alerts (pure).

    verdict = judge(facts, settings, now=now, listening_since=t0)
    verdict.conditions    # {"silent": Condition(...), "problem:lens_covered": Condition(...)}
    verdict.judged        # the rule families that could be judged now ("silent", "camera", ...)

A family that cannot be judged keeps its last state: silence is judged only once the
collector has listened for longer than the station's silent time (after a restart or a
lost broker connection it has heard nothing, which says nothing about the station), and
trouble, power and problems only from a station that is heard and not offline (an old
heartbeat neither raises nor clears them).

Rules (docs/alerts.md):

* ``silent``: no live message for ``silent_after_s``, by default ``missed_heartbeats``
  times the station's own heartbeat interval, learned from the spacing of its latest
  heartbeats (:func:`learned_interval`).
* ``gone``: offline by its will (``connection_lost``) for ``gone_after_s``.
* ``camera``, ``disk``, ``outbox``, ``clock``: trouble from the latest heartbeat (and the
  station's clock as the collector saw it).
* ``power``: low battery or under-voltage (an optional ``power`` section, see
  :mod:`station.collector.readings`).
* ``problem:<code>``: anything the station reports in ``problems`` or a ``view`` check.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

from station.collector.readings import HealthReadings

FAMILIES = ("silent", "gone", "camera", "disk", "outbox", "clock", "power", "problem")
TROUBLE = ("camera", "disk", "outbox", "clock")
MIN_INTERVAL_S, MAX_INTERVAL_S = 5.0, 86400.0


@dataclass(frozen=True, slots=True)
class RuleSettings:
    silent_after_s: float | None = None
    missed_heartbeats: int = 3
    gone_after_s: float = 300.0
    outbox_age_s: float = 1800.0
    clock_drift_s: float = 300.0
    battery_low_v: float | None = None
    default_interval_s: float = 60.0

    @classmethod
    def from_config(cls, alerts: Any) -> RuleSettings:
        return cls(silent_after_s=alerts.silent_after_s, missed_heartbeats=alerts.missed_heartbeats,
                   gone_after_s=alerts.gone_after_s, outbox_age_s=alerts.outbox_age_s,
                   clock_drift_s=alerts.clock_drift_s, battery_low_v=alerts.battery_low_v)


@dataclass(frozen=True, slots=True)
class Condition:
    rule: str        # a family, or "problem:<code>"
    detail: str      # one sentence for rangers (no coordinates)


@dataclass(slots=True)
class StationFacts:
    """What the rules read of one station (gathered by the watcher from the database)."""
    station_id: str
    status_state: str | None = None          # online, offline (None: never sent one)
    status_reason: str | None = None         # started, stopping, connection_lost
    status_at: datetime | None = None        # when that status took effect
    heard_at: datetime | None = None         # the latest live message, collector's clock
    health: dict[str, Any] | None = None     # the latest heartbeat
    readings: HealthReadings | None = None   # its readings
    beats: Sequence[tuple[datetime, datetime]] = ()  # latest heartbeats (sent_at, received_at), newest first
    outbox_then: int | None = None           # outbox depth outbox_age_s ago
    clock_ahead_s: float | None = None       # stations.clock_skew_s


@dataclass(slots=True)
class Verdict:
    conditions: dict[str, Condition] = field(default_factory=dict)
    judged: set[str] = field(default_factory=set)
    interval_s: float = 60.0
    silent_after_s: float = 180.0


def learned_interval(sent: Sequence[datetime], default: float = 60.0) -> float:
    """A station's heartbeat interval: the median spacing of its latest heartbeats (a
    reconnect sends one early, a missed one makes a gap; the median ignores both);
    ``default`` until there are three."""
    ordered = sorted(sent)
    gaps = [(b - a).total_seconds() for a, b in zip(ordered, ordered[1:]) if b > a]
    if len(gaps) < 2:
        return default
    return min(MAX_INTERVAL_S, max(MIN_INTERVAL_S, statistics.median(gaps)))


def silent_after(interval_s: float, settings: RuleSettings) -> float:
    if settings.silent_after_s is not None:
        return settings.silent_after_s
    return settings.missed_heartbeats * interval_s + min(30.0, interval_s / 2)  # a late one is not a missed one


def span(seconds: float) -> str:
    """2 h 05 min, 12 min, 40 s, 3 days 4 h."""
    s = int(max(0, seconds))
    if s < 90:
        return f"{s} s"
    if s < 5400:
        return f"{round(s / 60)} min"
    if s < 2 * 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} days {s % 86400 // 3600} h"


def _trouble(f: StationFacts, r: HealthReadings, s: RuleSettings) -> dict[str, Condition]:
    out: dict[str, Condition] = {}
    h = f.health or {}
    camera, disk, outbox, clock = (h.get(k) if isinstance(h.get(k), dict) else {}
                                   for k in ("camera", "disk", "outbox", "clock"))
    if r.camera_state == "failed":
        failures = camera.get("failures")
        out["camera"] = Condition("camera", "the camera has failed" + (
            f" ({failures} failure(s) since the station started)" if isinstance(failures, int) else ""))
    if disk.get("low") is True:
        free = disk.get("free_mb")
        out["disk"] = Condition("disk", "the disk is nearly full" + (
            f" ({free:.0f} MB free): stills are not being saved" if isinstance(free, (int, float)) else ""))
    age, depth = outbox.get("oldest_age_s"), r.outbox_depth
    if outbox.get("full") is True:
        out["outbox"] = Condition("outbox", f"the outbox is full ({depth} waiting): thumbnails are being dropped")
    elif isinstance(age, (int, float)) and age > s.outbox_age_s and depth \
            and (f.outbox_then is None or depth >= f.outbox_then):
        grown = f" (was {f.outbox_then} {span(s.outbox_age_s)} ago)" if f.outbox_then is not None else ""
        out["outbox"] = Condition("outbox", f"{depth} message(s) waiting to be sent{grown}, the oldest for "
                                            f"{span(age)}: the link is up but detections are not getting through")
    ahead = f.clock_ahead_s
    lags = [(rec - sent).total_seconds() for sent, rec in f.beats[:2]]
    offset = clock.get("offset_s")
    if ahead is not None and ahead > s.clock_drift_s:
        out["clock"] = Condition("clock", f"its clock runs {span(ahead)} ahead")
    elif len(lags) == 2 and min(lags) > s.clock_drift_s:
        out["clock"] = Condition("clock", f"its clock runs about {span(min(lags))} behind "
                                          "(its heartbeats arrive that late)")
    elif isinstance(offset, (int, float)) and not isinstance(offset, bool) and abs(offset) > s.clock_drift_s:
        out["clock"] = Condition("clock", f"it reports its clock off by {span(abs(offset))}")
    return out


def _power(r: HealthReadings, s: RuleSettings) -> Condition | None:
    words = []
    if r.battery_v is not None and s.battery_low_v is not None and r.battery_v < s.battery_low_v:
        words.append(f"battery at {r.battery_v:.2f} V (below {s.battery_low_v:g} V)")
    elif r.battery_low:
        words.append("battery low" + (f" ({r.battery_v:.2f} V)" if r.battery_v is not None else ""))
    if r.undervoltage:
        words.append("under-voltage: the supply sags below what the Pi needs")
    return Condition("power", "; ".join(words)) if words else None


def judge(f: StationFacts, s: RuleSettings, *, now: datetime, listening_since: datetime | None) -> Verdict:
    """The conditions that hold at station ``f`` at ``now`` (see the module docstring)."""
    interval = learned_interval([sent for sent, _ in f.beats], s.default_interval_s)
    quiet_for = silent_after(interval, s)
    v = Verdict(interval_s=interval, silent_after_s=quiet_for)
    offline = f.status_state == "offline"
    heard = f.heard_at
    # gone: offline by its will, for long enough
    if offline and f.status_reason == "connection_lost":
        since = f.status_at or heard
        if since is None or (now - since).total_seconds() >= s.gone_after_s:
            v.judged.add("gone")
            v.conditions["gone"] = Condition("gone", "the broker reports its link lost"
                                             + (f" {span((now - since).total_seconds())} ago" if since else ""))
    else:
        v.judged.add("gone")
    # silent: only over time the collector itself listened
    silent = False
    if not offline and listening_since is not None and (now - listening_since).total_seconds() > quiet_for:
        v.judged.add("silent")
        if heard is None or (now - heard).total_seconds() > quiet_for:
            silent = True
            v.conditions["silent"] = Condition("silent", (
                f"no heartbeat or status for {span((now - heard).total_seconds())}" if heard else
                "never heard from since the collector started listening") +
                f"; it sends one every {span(interval)}")
    elif offline:
        v.judged.add("silent")  # offline is not silent: the will or the stop said so
    # trouble, power, problems: from a live station's latest heartbeat
    live = (not offline and not silent and heard is not None and f.readings is not None
            and (now - heard).total_seconds() <= quiet_for)
    if live:
        r = f.readings
        v.judged.update(("camera", "disk", "outbox", "clock", "power", "problem"))
        v.conditions.update(_trouble(f, r, s))
        power = _power(r, s)
        if power is not None:
            v.conditions["power"] = power
        for p in r.problems:
            v.conditions[f"problem:{p.code}"] = Condition(f"problem:{p.code}", p.message)
    return v


def family(rule: str) -> str:
    return rule.split(":", 1)[0]
