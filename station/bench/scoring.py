"""Scoring detected events against a scene's ground truth (pure functions).

An event *finds* a crossing when their time intervals overlap. Recall is the share of
crossings found; a false event overlaps no crossing. ``lead_s`` measures how early the
event's first frame is relative to the animal's entry: positive means the event began
before the animal was in view, which is what the pre-trigger buffer is for.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True, slots=True)
class Interval:
    start: float
    end: float
    label: str = ""

    def overlaps(self, other: "Interval", slack: float = 0.0) -> bool:
        return self.start <= other.end + slack and other.start <= self.end + slack


@dataclass(slots=True)
class Score:
    crossings: int
    found: int
    events: int
    false_events: int
    hours: float
    missed: list[str] = field(default_factory=list)
    false_at: list[float] = field(default_factory=list)
    trigger_delays_s: list[float] = field(default_factory=list)
    leads_s: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / self.crossings if self.crossings else 1.0

    @property
    def false_per_hour(self) -> float:
        return self.false_events / self.hours if self.hours else 0.0

    def summary(self) -> dict:
        d = asdict(self)
        d["recall"] = round(self.recall, 4)
        d["false_events_per_hour"] = round(self.false_per_hour, 2)
        d["median_trigger_delay_s"] = round(statistics.median(self.trigger_delays_s), 3) if self.trigger_delays_s else None
        d["median_lead_s"] = round(statistics.median(self.leads_s), 3) if self.leads_s else None
        return d


def score_events(events: list[Interval], crossings: list[Interval], duration_s: float,
                 triggers: list[float] | None = None, slack_s: float = 0.5) -> Score:
    """``events`` and ``crossings`` on one clock; ``triggers`` aligned with ``events``."""
    found = 0
    missed, delays, leads = [], [], []
    for c in crossings:
        hits = [i for i, e in enumerate(events) if e.overlaps(c, slack_s)]
        if not hits:
            missed.append(f"{c.label}@{c.start:.1f}s")
            continue
        found += 1
        first = min(hits, key=lambda i: events[i].start)
        leads.append(c.start - events[first].start)
        if triggers is not None:
            delays.append(triggers[first] - c.start)
    false = [e for e in events if not any(e.overlaps(c, slack_s) for c in crossings)]
    return Score(crossings=len(crossings), found=found, events=len(events), false_events=len(false),
                 hours=duration_s / 3600.0, missed=missed, false_at=[round(e.start, 1) for e in false],
                 trigger_delays_s=[round(d, 3) for d in delays], leads_s=[round(x, 3) for x in leads])
