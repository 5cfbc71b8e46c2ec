"""Rows already stored that break today's rules: named, and left out, never a crash.

    problem = detection_problem(row)     # None, or why this detection cannot be shown
    station, problems = station_row(row)  # a station row with what cannot be shown set to None
    skipped = Skipped()                   # ids and reasons, for an answer or an export's warnings

A collector older than its rules (or a database written by hand) may hold a detection
whose payload has NaN or an infinite number, a lone surrogate or a NUL, an impossible
time, times that disagree, or an outsized ``extra``: everything the intake refuses today
(:mod:`station.collector.intake`). Such a row would break whatever reads it next: a JSON
answer cannot encode NaN or a lone surrogate, an export cannot round an infinite
uncertainty or make a date of 31 February. So each reader asks here first, and leaves the
row out, naming its event id: the page, the package and the CSV still come, without it.
The rules are the intake's own (:func:`station.feed.strict_json.problem` and the feed's
schema with its cross-field rules), on both engines alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from station.feed import strict_json
from station.feed.schema import PayloadError, validate

_STATION_LOCATION = ("latitude", "longitude", "coordinate_uncertainty_m")


def detection_problem(row: dict[str, Any]) -> str | None:
    """Why a stored detection row (``Database.query_detections``) cannot be shown or
    exported, or None. Its payload must be a detection/1 the intake would accept today,
    and every column must be a value JSON can carry."""
    payload = row.get("payload")
    if not isinstance(payload, dict):
        return "its stored payload is not a JSON object"
    found = strict_json.problem(row)
    if found is not None:
        return found
    try:
        validate("detection", payload)
    except PayloadError as exc:
        return f"payload.{exc.field}: {exc.problems[0][1]}" if exc.field != "(message)" else str(exc)
    except RecursionError:
        return "payload: nested too deeply"
    return None


def station_row(row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A ``Database.stations()`` row with any part that cannot be shown set to None (a
    column JSON cannot carry; the whole location if one of its numbers is bad; its latest
    heartbeat unless the intake would accept it today), and what was left out, by part."""
    out, problems = dict(row), {}
    for key, value in row.items():
        if key == "health":
            continue
        found = strict_json.problem(value, key)
        if found is not None:
            problems[key] = found
            out[key] = None if key != "station_id" else ascii(value)
    if any(k in problems for k in _STATION_LOCATION):
        out.update({k: None for k in _STATION_LOCATION})
    health = row.get("health")
    if health is not None:
        found = strict_json.problem(health, "health") if isinstance(health, dict) else "health: not a JSON object"
        if found is None:
            try:
                validate("health", health)
            except PayloadError as exc:
                found = f"health.{exc.field}: {exc.problems[0][1]}"
            except RecursionError:
                found = "health: nested too deeply"
        if found is not None:
            problems["health"] = found
            out["health"] = None
    return out, problems


@dataclass
class Skipped:
    """The rows a reader left out: their ids and why, the first ``keep`` of them (a count of all)."""
    keep: int = 1000
    count: int = 0
    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, row_id: Any, problem: str) -> None:
        self.count += 1
        if len(self.rows) < self.keep:
            shown = row_id if isinstance(row_id, str) and strict_json.problem(row_id) is None else repr(row_id)
            self.rows.append((shown, problem))

    @property
    def ids(self) -> list[str]:
        """The ids, each once, in the order met."""
        return list(dict.fromkeys(i for i, _ in self.rows))

    def __bool__(self) -> bool:
        return self.count > 0
