"""Watt-hours per day, integrated from the battery monitor's power readings and kept on
the card so that a restart or a reboot does not start the day again.

    ledger = EnergyLedger(data_dir / ENERGY_FILE, ZoneInfo("Asia/Vladivostok"), max_gap_s=30)
    ledger.load()
    ledger.add(t, power_w)        # each reading (None: a failed one, which breaks the chain)
    ledger.totals(now)            # EnergyTotals(day="2026-11-25", wh_today=31.4, ...)
    ledger.save()                 # also by itself every save_every_s, and at a new day

Between two readings the power is taken as a straight line (the trapezoid rule) and the
energy is split at local midnight where the two lie on either side of it. Two readings
more than ``max_gap_s`` apart are not bridged (the station was off, the monitor failed):
the day's ``covered_s`` then says how much of it was measured. Power below zero (noise
around nothing, or a charger on the station's side) counts as zero: these are the
watt-hours the station drew.

The file (``power-energy.json`` in the data folder) holds today and yesterday and the
last reading, written atomically every five minutes and at a stop; a power cut loses at
most those five minutes (and the gap is not bridged, since the last reading is older than
``max_gap_s``). A file that cannot be read is set aside as ``power-energy.json.bad`` and
counting starts again, with a warning naming it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from station.files import atomic_write
from station.log import get_logger

log = get_logger("power")

ENERGY_FILE = "power-energy.json"
FORMAT = "power-energy/1"
MAX_WH_PER_DAY = 25_000.0
"""1000 W (the most health/1 lets a station report) for the longest day (25 h at a
daylight-saving change): a stored day beyond this is not a reading."""
MAX_DAY_S = 25 * 3600.0


@dataclass(frozen=True, slots=True)
class EnergyTotals:
    day: str
    """The local date (``2026-11-25``) whose watt-hours ``wh_today`` counts."""
    wh_today: float | None
    """None while nothing of today was measured."""
    covered_s: float
    """Seconds of today between readings that were bridged."""
    wh_yesterday: float | None
    """The whole of the day before, as far as it was measured; None if nothing was."""
    covered_yesterday_s: float


def _day_bounds(t: float, zone: ZoneInfo) -> tuple[date, float]:
    """(the local date of ``t``, the Unix time of the next local midnight)."""
    day = datetime.fromtimestamp(t, zone).date()
    return day, datetime.combine(day + timedelta(days=1), time(0), zone).timestamp()


class EnergyLedger:
    def __init__(self, path: Path | None, zone: ZoneInfo, max_gap_s: float, save_every_s: float = 300.0):
        self.path = Path(path) if path is not None else None
        self.zone = zone
        self.max_gap_s = max_gap_s
        self.save_every_s = save_every_s
        self.days: dict[str, list[float]] = {}
        """Local date -> [watt-hours, seconds covered]."""
        self.last: tuple[float, float] | None = None
        """(time, watts) of the last good reading: where the next one continues from."""
        self._next_save: float | None = None
        self._save_failed = False

    # -- counting --------------------------------------------------------------------------
    def add(self, t: float, power_w: float | None) -> None:
        """A reading at Unix time ``t``; ``power_w`` None for a failed one."""
        if power_w is None or not math.isfinite(power_w):
            self.last = None
            return
        power_w = max(0.0, power_w)
        new_day = False
        if self.last is not None:
            t0, p0 = self.last
            if 0 < t - t0 <= self.max_gap_s:
                self._integrate(t0, p0, t, power_w)
            new_day = _day_bounds(t0, self.zone)[0] != _day_bounds(t, self.zone)[0]
        self.last = (t, power_w)
        self._prune(t)
        if self._next_save is None:
            self._next_save = t + self.save_every_s
        elif new_day or not (self._next_save - self.save_every_s <= t < self._next_save):
            self.save()  # a new day, due, or the clock stepped back

    def _integrate(self, t0: float, p0: float, t1: float, p1: float) -> None:
        slope = (p1 - p0) / (t1 - t0)
        a = t0
        while a < t1:
            day, midnight = _day_bounds(a, self.zone)
            b = min(t1, midnight)
            pa, pb = p0 + slope * (a - t0), p0 + slope * (b - t0)
            bucket = self.days.setdefault(day.isoformat(), [0.0, 0.0])
            bucket[0] += (pa + pb) / 2 * (b - a) / 3600
            bucket[1] += b - a
            a = b

    def _prune(self, t: float) -> None:
        keep = (datetime.fromtimestamp(t, self.zone).date() - timedelta(days=1)).isoformat()
        for day in [d for d in self.days if d < keep]:
            del self.days[day]

    def totals(self, now: float) -> EnergyTotals:
        today = datetime.fromtimestamp(now, self.zone).date()
        wh, covered = self.days.get(today.isoformat(), (0.0, 0.0))
        before = self.days.get((today - timedelta(days=1)).isoformat())
        return EnergyTotals(day=today.isoformat(), wh_today=wh if covered > 0 else None,
                            covered_s=min(covered, MAX_DAY_S),
                            wh_yesterday=before[0] if before and before[1] > 0 else None,
                            covered_yesterday_s=min(before[1], MAX_DAY_S) if before else 0.0)

    # -- the file --------------------------------------------------------------------------
    def load(self) -> None:
        """Carry on from the file, if there is one; a bad one is set aside, with a warning."""
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} file")
            days = {}
            for day, value in (data.get("days") or {}).items():
                date.fromisoformat(day)
                wh, covered = float(value["wh"]), float(value["covered_s"])
                if not (0 <= wh <= MAX_WH_PER_DAY and 0 <= covered <= MAX_DAY_S):
                    raise ValueError(f"day {day}: {wh} Wh over {covered} s cannot be a reading")
                days[day] = [wh, covered]
            last = data.get("last")
            if last is not None:
                t, p = float(last["t"]), float(last["power_w"])
                if not (math.isfinite(t) and math.isfinite(p) and p >= 0):
                    raise ValueError("last: not a reading")
                last = (t, p)
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as exc:
            aside = self.path.with_name(self.path.name + ".bad")
            log.warning("power: the watt-hour file cannot be read; set aside, counting again",
                        file=str(self.path), moved_to=str(aside), error=str(exc))
            try:
                self.path.replace(aside)
            except OSError:
                pass
            return
        self.days, self.last = days, last

    def save(self) -> None:
        """Write the file now (atomically); a failure is logged once and counting goes on."""
        if self.last is not None:
            self._next_save = self.last[0] + self.save_every_s
        if self.path is None:
            return
        data = {"format": FORMAT, "zone": self.zone.key,
                "days": {d: {"wh": v[0], "covered_s": v[1]} for d, v in sorted(self.days.items())},
                "last": None if self.last is None else {"t": self.last[0], "power_w": self.last[1]}}
        try:
            atomic_write(self.path, json.dumps(data, indent=1) + "\n")
        except OSError as exc:
            if not self._save_failed:
                log.warning("power: cannot write the watt-hour file; counting goes on in memory",
                            file=str(self.path), error=exc.strerror or str(exc))
            self._save_failed = True
            return
        if self._save_failed:
            log.info("power: the watt-hour file is written again", file=str(self.path))
        self._save_failed = False
