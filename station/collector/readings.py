"""What the collector reads from a station's heartbeat (health/1): the figures it plots,
the facts its alerts and the effort are reckoned from, and the values it refuses to believe.

    r = read_health(payload)
    r.temperature_c, r.battery_v          # None when absent, or impossible
    r.implausible                         # ("extra.power.battery_v",): left out, and counted
    r.camera_state, r.asleep, r.problems  # for the timeline and the alerts

Pure: no database, no clock. The feed's schema bounds what it knows (a 10,000 °C CPU is
refused at the door, ``invalid``); what a station adds under ``extra`` before its schema
says so (power readings, problems it reports) is checked here against :data:`BOUNDS`: a
value outside them is never plotted nor alerted on, and the heartbeat is kept with the
field named in ``implausible`` (a broken sensor must not make a live station look dead).

Optional sections read here (each at the top level, where a later schema may put it, or
under ``extra``, where a station puts it today):

* ``power`` (health/1's ``power`` section, docs/mqtt-feed.md): ``battery_v`` (volts),
  ``low_battery`` (the station's own verdict: its reduced schedule is on), ``undervoltage``
  (the Pi's supply sagged), ``throttled``, ``wh_yesterday`` (the last whole day's watt-hours).
* ``problems``: a list of ``{"code": "lens_covered", "message": "...", "tamper": true}``:
  anything a station wants a ranger told ("station reports a problem"); ``tamper`` marks
  what makes the camera's view untrustworthy (the timeline's *tampered*).
* ``view``: ``{"state": "ok" | "covered" | "moved" | "blurred" | "ir_dead" | ..., "detail": "..."}``:
  a view or tamper check; any state but ``ok`` (or ``unknown``, ``learning``) is a tamper
  problem with the code ``view_<state>``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

BOUNDS: dict[str, tuple[float, float]] = {
    "cpu_temperature_c": (-60.0, 150.0),
    "power.battery_v": (0.0, 100.0),
    "power.wh_yesterday": (0.0, 100_000.0),
    "outbox.depth": (0.0, 1e9),
}
"""Plausible ranges (inclusive) of the figures the collector plots or alerts on."""

QUIET_VIEW_STATES = frozenset({"ok", "unknown", "learning", "off", "sleeping"})
"""View-check states that are not a problem."""
MAX_PROBLEMS = 10
_CODE = re.compile(r"[^a-z0-9_]+")


@dataclass(frozen=True, slots=True)
class Problem:
    code: str        # lower-case letters, digits and '_', at most 40
    message: str     # for rangers, at most 200 characters
    tamper: bool     # the camera's view cannot be trusted


@dataclass(frozen=True, slots=True)
class HealthReadings:
    camera_state: str | None = None
    asleep: bool = False
    temperature_c: float | None = None
    battery_v: float | None = None
    battery_low: bool | None = None
    undervoltage: bool | None = None
    throttled: bool | None = None
    wh_per_day: float | None = None
    outbox_depth: int | None = None
    problems: tuple[Problem, ...] = ()
    implausible: tuple[str, ...] = ()

    @property
    def tampered(self) -> bool:
        return any(p.tamper for p in self.problems)

    def columns(self) -> dict[str, Any]:
        """The health table's reading columns (migration v0008)."""
        return {"camera_state": self.camera_state, "asleep": int(self.asleep),
                "problems": ",".join(p.code for p in self.problems) or None, "tampered": int(self.tampered),
                "temperature_c": self.temperature_c, "battery_v": self.battery_v,
                "outbox_depth": self.outbox_depth, "implausible": ",".join(self.implausible) or None}


def _section(payload: Mapping[str, Any], name: str) -> tuple[str, Any]:
    """The section at the top level, else under ``extra``: (its path, its value)."""
    if name in payload:
        return name, payload[name]
    extra = payload.get("extra")
    if isinstance(extra, Mapping) and name in extra:
        return f"extra.{name}", extra[name]
    return name, None


def _text(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else ""
    return "".join(ch if ch.isprintable() else " " for ch in text)[:limit].strip()


def _code(value: Any) -> str:
    return _CODE.sub("_", _text(value, 80).lower()).strip("_")[:40]


class _Reader:
    def __init__(self) -> None:
        self.implausible: list[str] = []

    def number(self, section: Mapping[str, Any] | None, key: str, where: str, bound: str) -> float | None:
        if not isinstance(section, Mapping) or section.get(key) is None:
            return None
        value = section[key]
        lo, hi = BOUNDS[bound]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not lo <= value <= hi:
            self.implausible.append(where)
            return None
        return float(value)

    def flag(self, section: Mapping[str, Any] | None, key: str, where: str) -> bool | None:
        if not isinstance(section, Mapping) or section.get(key) is None:
            return None
        value = section[key]
        if not isinstance(value, bool):
            self.implausible.append(where)
            return None
        return value


def _problems(payload: Mapping[str, Any]) -> list[Problem]:
    found: dict[str, Problem] = {}
    path, listed = _section(payload, "problems")
    if isinstance(listed, list):
        for item in listed[:MAX_PROBLEMS]:
            if isinstance(item, Mapping) and (code := _code(item.get("code"))):
                found.setdefault(code, Problem(code, _text(item.get("message"), 200) or code.replace("_", " "),
                                               item.get("tamper") is True))
    path, view = _section(payload, "view")
    if not isinstance(view, Mapping):
        path, view = _section(payload, "tamper")
    if isinstance(view, Mapping):
        state = _code(view.get("state"))
        if state and state not in QUIET_VIEW_STATES:
            code = f"view_{state}"[:40]
            detail = _text(view.get("detail") or view.get("message"), 200)
            found.setdefault(code, Problem(code, detail or f"camera view {state.replace('_', ' ')}", True))
    return list(found.values())[:MAX_PROBLEMS]


def read_health(payload: Mapping[str, Any]) -> HealthReadings:
    """The readings of one health/1 payload (see the module docstring)."""
    r = _Reader()
    camera = payload.get("camera")
    state = camera.get("state") if isinstance(camera, Mapping) else None
    extra = payload.get("extra")
    schedule = extra.get("schedule") if isinstance(extra, Mapping) else None
    outbox = payload.get("outbox")
    power_at, power = _section(payload, "power")
    if power is not None and not isinstance(power, Mapping):
        r.implausible.append(power_at)
        power = None
    depth = r.number(outbox if isinstance(outbox, Mapping) else None, "depth", "outbox.depth", "outbox.depth")
    return HealthReadings(
        camera_state=state[:16] if isinstance(state, str) else None,
        asleep=isinstance(schedule, str) and schedule.startswith("sleeping"),
        temperature_c=r.number(payload, "cpu_temperature_c", "cpu_temperature_c", "cpu_temperature_c"),
        battery_v=r.number(power, "battery_v", f"{power_at}.battery_v", "power.battery_v"),
        battery_low=r.flag(power, "low_battery", f"{power_at}.low_battery"),
        undervoltage=r.flag(power, "undervoltage", f"{power_at}.undervoltage"),
        throttled=r.flag(power, "throttled", f"{power_at}.throttled"),
        wh_per_day=r.number(power, "wh_yesterday", f"{power_at}.wh_yesterday", "power.wh_yesterday"),
        outbox_depth=None if depth is None else int(depth),
        problems=tuple(_problems(payload)),
        implausible=tuple(r.implausible))
