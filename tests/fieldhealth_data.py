"""A station's life, written as a plan and stored as it would have arrived: heartbeats every
minute saying what the station was doing, and its status messages. Tests compare the
timeline, the effort and the charts with the plan, never with hard-coded answers.

    life = seed_life(db, "lazovsky-07", start)       # the PLAN below, from `start` (Unix seconds)
    life.seconds["online"], life.segments, life.end
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from station.collector.db import Database
from tests.collector_data import health, status

PLAN = [  # (state, minutes)
    ("online", 120), ("sleeping", 180), ("online", 60), ("camera_failed", 45), ("online", 30),
    ("tampered", 40), ("online", 30), ("silent", 90), ("online", 60), ("offline", 120), ("online", 75),
]
EVERY_S = 60.0
BATCH = 5  # heartbeats stored per transaction: the first of them arrives 4 minutes late, under any clock bound


def temperature(k: int) -> float:
    """The CPU temperature of heartbeat number ``k``: a slow daily wave, in °C."""
    return round(45.0 + 8.0 * ((k % 120) / 120.0), 1)


def battery(k: int) -> float:
    return round(12.9 - 0.002 * k, 3)


@dataclass
class Life:
    station_id: str
    start: float
    end: float = 0.0
    segments: list[tuple[str, float, float]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    temperatures: list[tuple[float, float]] = field(default_factory=list)   # (sent_at, °C) stored and plausible
    batteries: list[tuple[float, float]] = field(default_factory=list)
    implausible_at: list[float] = field(default_factory=list)

    def iso(self, t: float) -> str:
        return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _beat(station: str, t: float, k: int, state: str, life: Life) -> dict[str, Any]:
    msg = health(t, temperature=temperature(k), station_id=station)
    extra: dict[str, Any] = {"schedule": "active"}
    volts = battery(k)
    if k % 97 == 13:               # now and then a broken reading: impossible, never plotted
        volts = -3.0
        life.implausible_at.append(t)
    else:
        life.batteries.append((t, volts))
    extra["power"] = {"battery_v": volts, "low_battery": False, "undervoltage": False}
    if state == "sleeping":
        extra["schedule"] = "sleeping until 18:42"
    elif state == "camera_failed":
        msg["camera"] = msg["camera"] | {"state": "failed", "failures": 1}
    elif state == "tampered":
        extra["view"] = {"state": "covered", "detail": "lens covered"}
    msg["extra"] = extra
    life.temperatures.append((t, temperature(k)))
    return msg


def seed_life(db: Database, station: str, start: float) -> Life:
    """Store :data:`PLAN` for ``station`` from ``start``; heartbeats arrive half a second
    after they are sent."""
    life = Life(station, start)
    t, k = start, 0
    db.store_batch([], [status("online", "started", t, t, station_id=station)], [], received_at=t + 0.5)
    for state, minutes in PLAN:
        end = t + minutes * 60
        life.segments.append((state, t, end))
        life.seconds[state] = life.seconds.get(state, 0.0) + minutes * 60
        if state == "silent":
            pass                                  # nothing arrives
        elif state == "offline":
            db.store_batch([], [status("offline", "stopping", t, t, station_id=station)], [], received_at=t + 0.5)
            db.store_batch([], [status("online", "started", end, end, station_id=station)], [],
                           received_at=end + 0.5)
        else:
            beats = []
            beat_at = t
            while beat_at < end - 1e-6:
                beats.append(_beat(station, beat_at, k, "online" if state == "online" else state, life))
                beat_at += EVERY_S
                k += 1
            for n in range(0, len(beats), BATCH):  # a few at a time, as a busy collector stores them
                chunk = beats[n:n + BATCH]
                last = datetime.fromisoformat(chunk[-1]["sent_at"].replace("Z", "+00:00")).timestamp()
                db.store_batch([], [], chunk, received_at=last + 0.5)
        t = end
    life.end = t
    return life
