"""Sampling effort: when a station's camera was watching, and why it was not (pure).

    timeline = build_timeline(beats, marks, start=t0, end=t1, interval_s=60, silent_after_s=210)
    summary = summarise(timeline)          # camera_days, seconds per state, downtime intervals

Researchers divide detections by camera-days: a station that slept by day, lost its
camera for a night or sat silent for a week watched less than its calendar says. The
timeline is reckoned from the station's own heartbeats (each says, at its time, whether
the camera works, the schedule sleeps or the view was tampered with) and its status
messages (online when it starts, offline when it stops or its link is lost):

* a heartbeat holds until the next one, if that comes within ``silent_after_s``; after a
  longer gap the station counts as watching for one ``interval_s`` after its last
  heartbeat, then as **silent** until it is heard again (heartbeat or status);
* an offline status holds until the station is heard again: **offline**;
* an online status counts as a heartbeat of a watching station.

States, in the order one wins over another in a heartbeat: ``sleeping`` (outside the
schedule's active hours: the camera is closed), ``camera_failed``, ``tampered`` (the
station reports its view covered, moved, fogged...), ``online`` (watching). Camera-days
are the ``online`` time. Downtime is what is neither watching nor sleeping. Before the
first heartbeat or status in the window nothing is reckoned (the station was not there).
Times are the station's own (a heartbeat counts as of ``min(sent_at, received_at)``), as
the detections' are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

from station import times

STATES = ("online", "sleeping", "camera_failed", "tampered", "silent", "offline")
DOWN = ("camera_failed", "tampered", "silent", "offline")
"""States the camera was not watching for, other than by plan (sleeping)."""


@dataclass(frozen=True, slots=True)
class Segment:
    state: str
    start: datetime
    end: datetime
    detail: str = ""

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "start": times.format(self.start), "end": times.format(self.end),
                "seconds": round(self.seconds, 1), "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Mark:
    at: datetime
    state: str          # a timeline state the station entered at `at`
    offline: bool       # holds until the next mark (a status offline), or expires like a heartbeat
    detail: str = ""


@dataclass(slots=True)
class Effort:
    start: datetime | None
    end: datetime | None
    seconds: dict[str, float] = field(default_factory=dict)
    downtime: list[Segment] = field(default_factory=list)

    @property
    def deployed_days(self) -> float:
        return sum(self.seconds.values()) / 86400

    @property
    def camera_days(self) -> float:
        return self.seconds.get("online", 0.0) / 86400

    def as_dict(self) -> dict[str, Any]:
        return {"start": times.format(self.start) if self.start else None,
                "end": times.format(self.end) if self.end else None,
                "deployed_days": round(self.deployed_days, 4), "camera_days": round(self.camera_days, 4),
                "seconds": {s: round(self.seconds.get(s, 0.0), 1) for s in STATES},
                "downtime": [d.as_dict() for d in self.downtime]}


def heartbeat_state(beat: Mapping[str, Any]) -> tuple[str, str]:
    """The timeline state one stored heartbeat says (its readings columns), and why."""
    if beat.get("asleep"):
        return "sleeping", "outside the schedule's active hours"
    if beat.get("camera_state") == "failed":
        return "camera_failed", "camera failed"
    if beat.get("tampered"):
        return "tampered", (beat.get("problems") or "").replace(",", ", ").replace("_", " ")
    return "online", ""


def _counted(sent: datetime, received: datetime | None) -> datetime:
    return min(sent, received) if received is not None else sent


def marks_from(beats: Iterable[Mapping[str, Any]], statuses: Iterable[Mapping[str, Any]]) -> list[Mark]:
    """Heartbeat rows (``Database.heartbeats``) and status rows (``Database.status_marks``)
    as one ordered list of marks."""
    out = []
    for b in beats:
        if b.get("sent_at") is None:
            continue
        state, detail = heartbeat_state(b)
        out.append(Mark(_counted(b["sent_at"], b.get("received_at")), state, False, detail))
    for s in statuses:
        if s.get("at") is None:
            continue
        if s.get("state") == "offline":
            why = {"stopping": "stopped", "connection_lost": "link lost"}.get(s.get("reason"), "offline")
            out.append(Mark(s["at"], "offline", True, why))
        else:
            out.append(Mark(s["at"], "online", False, ""))  # started: watching, as a heartbeat says
    out.sort(key=lambda m: (m.at, m.offline))  # at one instant the offline mark comes last: it wins
    return out


def build_timeline(marks: Sequence[Mark], *, start: datetime, end: datetime, interval_s: float,
                   silent_after_s: float) -> list[Segment]:
    """Segments covering ``[start, end)`` from the first mark on (``marks`` may begin before
    ``start``: the state at ``start`` is the one in force), contiguous, each state a run."""
    out: list[Segment] = []

    def add(state: str, a: datetime, b: datetime, detail: str) -> None:
        a, b = max(a, start), min(b, end)
        if b <= a:
            return
        if out and out[-1].state == state and out[-1].end == a and out[-1].detail == detail:
            out[-1] = Segment(state, out[-1].start, b, detail)
        else:
            out.append(Segment(state, a, b, detail))

    ordered = sorted(marks, key=lambda m: (m.at, m.offline))
    for i, m in enumerate(ordered):
        if m.at >= end:
            break
        nxt = ordered[i + 1].at if i + 1 < len(ordered) else end
        nxt = min(nxt, end)
        if m.offline:
            add("offline", m.at, nxt, m.detail)
            continue
        gap = (nxt - m.at).total_seconds()
        if gap <= silent_after_s:
            add(m.state, m.at, nxt, m.detail)
        else:
            covered = m.at + timedelta(seconds=interval_s)
            add(m.state, m.at, covered, m.detail)
            add("silent", covered, nxt, "no heartbeat")
    return out


def summarise(timeline: Sequence[Segment]) -> Effort:
    """Seconds per state, camera-days and the downtime intervals (adjacent down segments
    of different causes are listed each on their own)."""
    effort = Effort(timeline[0].start if timeline else None, timeline[-1].end if timeline else None,
                    dict.fromkeys(STATES, 0.0))
    for seg in timeline:
        effort.seconds[seg.state] += seg.seconds
        if seg.state in DOWN:
            effort.downtime.append(seg)
    return effort


def comment(effort: Effort, limit: int = 12) -> str:
    """Camtrap DP ``deploymentComments`` words for an effort: camera-days, sleep, downtime."""
    if effort.start is None:
        return ""
    parts = [f"Effort: {effort.camera_days:.2f} camera-days watching of {effort.deployed_days:.2f} days deployed"]
    sleeping = effort.seconds.get("sleeping", 0.0)
    if sleeping:
        parts.append(f"{sleeping / 86400:.2f} days asleep outside the schedule's active hours")
    if effort.downtime:
        shown = [f"{d.start:%Y-%m-%dT%H:%M:%SZ}/{d.end:%Y-%m-%dT%H:%M:%SZ} {d.state.replace('_', ' ')}"
                 + (f" ({d.detail})" if d.detail and d.detail != d.state.replace("_", " ") else "")
                 for d in effort.downtime[:limit]]
        more = f" and {len(effort.downtime) - limit} more" if len(effort.downtime) > limit else ""
        down = sum(d.seconds for d in effort.downtime) / 86400
        parts.append(f"downtime {down:.2f} days: " + "; ".join(shown) + more)
    else:
        parts.append("no downtime")
    return "; ".join(parts) + "."
