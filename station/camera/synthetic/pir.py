"""A simulated PIR sensor for the synthetic scene, worked out from its ground truth.

A PIR sees a warm body moving across its zones; like a real one (HC-SR501, AM312) this one
misses some crossings and fires on some warm gusts:

* **small animals** (a hare far off) are missed more often: the chance of being seen grows
  with the body's area in the frame, full from :data:`FULL_SIZE` of the frame;
* **slow ones** too: the chance shrinks below :data:`FULL_SPEED` frame widths a second;
* a seen crossing sets the output high from entry plus a latency (0.3-1.0 s) until
  :data:`HOLD_S` after it left (the module's hold time);
* a **gust** fires it with chance :data:`GUST_CHANCE` (warm air moving); light jumps, snow
  and the day/IR switch never do (a PIR does not see light).

Each draw comes from its own random stream (the seed and the crossing's number), never the
scene's: every seed's frames and truth are what they were without the PIR.
"""

from __future__ import annotations

import bisect

import numpy as np

from station.camera.synthetic.scene import Crossing, Schedule

HOLD_S = 2.5
FULL_SIZE = 0.06
"""Bodies covering this share of the frame or more are always big enough."""
MIN_SIZE = 0.01
FULL_SPEED = 0.15
"""Frame widths a second from which speed no longer matters."""
GUST_CHANCE = 0.2
LATENCY_S = (0.3, 1.0)


def seen_chance(c: Crossing) -> float:
    size = min(1.0, max(0.0, (c.size - MIN_SIZE) / (FULL_SIZE - MIN_SIZE)))
    speed = min(1.0, max(0.3, c.speed / FULL_SPEED))
    return size * speed


def pir_intervals(schedule: Schedule) -> list[tuple[float, float, str]]:
    """(start_s, end_s, cause) when the simulated PIR's output is high; cause is the crossing's
    kind, or "gust" for a false alarm."""
    out = []
    for c in schedule.crossings:
        rng = np.random.default_rng([schedule.seed, 0x9172, c.index])
        if rng.random() < seen_chance(c):
            out.append((c.start_s + rng.uniform(*LATENCY_S), c.end_s + HOLD_S, c.kind))
    for d in schedule.disturbances:
        if d.kind != "gust":
            continue
        rng = np.random.default_rng([schedule.seed, 0x9173, int(round(d.start_s * 1000))])
        if rng.random() < GUST_CHANCE:
            at = rng.uniform(d.start_s, d.end_s)
            out.append((at, at + HOLD_S, "gust"))
    return sorted(out)


class ScenePirSignal:
    """``active(t)`` for a schedule that may grow (an endless scene writes its script as it goes)."""

    def __init__(self):
        self._key: tuple | None = None
        self._intervals: list[tuple[float, float, str]] = []
        self._starts: list[float] = []

    def active(self, schedule: Schedule, t: float) -> bool:
        key = (schedule.seed, len(schedule.crossings), len(schedule.disturbances))
        if key != self._key:
            self._intervals = pir_intervals(schedule)
            self._starts = [a for a, _, _ in self._intervals]
            self._key = key
        i = bisect.bisect_right(self._starts, t)
        return any(a <= t < b for a, b, _ in self._intervals[max(0, i - 4):i])
