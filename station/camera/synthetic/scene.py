"""The scene's script: when each animal crosses and what the weather does in between.

Everything here is pure: :func:`build_schedule` turns a seed into a :class:`Schedule`
without a camera, a clock or a picture, so a test can ask "did every crossing yield an
event, and did nothing fire in the quiet stretches?" against the same truth the camera
renders.

The timeline alternates a *quiet stretch* (wind and slow light drift always; plus, by
turns, gusts, sudden cloud shadows, a snow shower or the day/IR switch) and a
*crossing* (one animal or person walks through, or in and out). Crossings are at least
``min_gap_s`` apart and every disturbance keeps ``margin_s`` clear of any crossing, so
scoring is fair. Generation is sequential and prefix-stable: the first hour of a
two-hour schedule is the one-hour schedule, which lets an endless camera extend it.

Positions are frame fractions: ``x`` across the width, ``y`` down the height.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

import numpy as np

KINDS = ("leopard", "tiger", "prey_boar", "prey_deer", "prey_hare", "human")
DISTURBANCE_KINDS = ("light_jump", "snow", "night_switch", "gust")
QUIET_THEMES = ("wind", "gust", "light_jump", "snow", "night")
MAX_DISTURBANCE_S = 60.0
"""No disturbance lasts longer (the longest, a snow shower, is under half a minute)."""


@dataclass(frozen=True, slots=True)
class KindSpec:
    """How a drawn kind is sized and moves. The drawing fills a box ``aspect`` wide, 1 high."""

    aspect: float
    """Width / height of the animal's box, tail and head included."""
    real_height_m: float
    """What one box height is in the world; sets walking speed in frame widths."""
    height: tuple[float, float]
    """Box height as a fraction of the frame height, far .. near."""
    speed_mps: tuple[float, float]
    in_out: bool
    """May walk in, stop and go back out the side it came from."""


SPECS: dict[str, KindSpec] = {
    "leopard": KindSpec(2.948, 0.70, (0.18, 0.46), (0.7, 1.6), True),
    "tiger": KindSpec(2.971, 0.95, (0.19, 0.48), (0.7, 1.6), True),
    "prey_boar": KindSpec(1.727, 0.85, (0.18, 0.46), (0.7, 2.2), True),
    "prey_deer": KindSpec(1.540, 1.30, (0.28, 0.70), (0.7, 2.5), True),
    "prey_hare": KindSpec(1.244, 0.40, (0.18, 0.32), (1.0, 3.0), False),
    "human": KindSpec(0.470, 1.80, (0.42, 0.92), (0.9, 1.5), True),
}
PICTURE_SPEC = KindSpec(1.5, 1.0, (0.32, 0.62), (0.0, 0.0), True)
"""Real pictures: height range used; speed is drawn in frame widths per second instead."""

DEFAULT_KIND_DECK = ("leopard", "leopard", "tiger", "prey_boar", "prey_deer", "prey_hare", "human")


@dataclass(frozen=True, slots=True)
class PictureRef:
    """A real picture that can walk across the scene (see ``pictures.find_pictures``)."""

    path: str
    tag: str
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Crossing:
    """One animal (or person, or picture) in frame from ``start_s`` to ``end_s``."""

    index: int
    kind: str
    """The tag: a drawn kind from :data:`KINDS`, or a picture's folder name."""
    start_s: float
    """Scene seconds when the first pixel of its box enters the frame."""
    end_s: float
    """Scene seconds when the last pixel of its box has left."""
    night: bool
    size: float
    """Area of its box as a fraction of the frame area (when fully in frame)."""
    height: float
    """Box height as a fraction of the frame height."""
    width: float
    """Box width as a fraction of the frame width."""
    ground_y: float
    """Bottom of the box (the feet) as a fraction of the frame height; may exceed 1."""
    direction: int
    """+1 walks left to right, -1 right to left."""
    path: str
    """``through`` (in one side, out the other) or ``in_out`` (in, pause, back out)."""
    speed: float
    """Frame widths per second."""
    turn_x: float = 0.5
    """``in_out``: where the box centre stops before turning back."""
    pause_s: float = 0.0
    variant: str = ""
    """Drawing variant, e.g. ``sika`` or ``roe`` for deer."""
    seed: int = 0
    picture: str | None = None

    # -- motion -------------------------------------------------------------------------
    def _legs(self) -> tuple[float, float, float]:
        """Scene seconds of: reaching the turn, leaving it (``in_out``), end."""
        v = self.speed
        if self.path == "in_out":
            t_turn = self.start_s + (self.turn_x + self.width / 2) / v
            return t_turn, t_turn + self.pause_s, self.end_s
        return self.end_s, self.end_s, self.end_s

    def state(self, t: float) -> tuple[float, int, float]:
        """``(centre_x, facing, walked)`` at scene time ``t``.

        ``centre_x`` is in frame widths measured along the walking direction's own
        frame (mirrored for right-to-left), ``facing`` is +1 when the animal faces
        right, ``walked`` is the distance covered so far in frame widths (for the gait).
        """
        v, w = self.speed, self.width
        x0 = -w / 2
        t_turn, t_back, _ = self._legs()
        if self.path == "in_out" and t > t_turn:
            if t < t_back:
                x, dirn, walked = self.turn_x, 1, self.turn_x - x0
            else:
                back = (t - t_back) * v
                x, dirn, walked = self.turn_x - back, -1, self.turn_x - x0 + back
        else:
            walked = (t - self.start_s) * v
            x, dirn = x0 + walked, 1
        if self.direction < 0:
            return 1.0 - x, -dirn, walked
        return x, dirn, walked

    def moving(self, t: float) -> bool:
        t_turn, t_back, _ = self._legs()
        return not (self.path == "in_out" and t_turn < t < t_back)

    def box(self, t: float) -> tuple[float, float, float, float] | None:
        """The visible part of its box ``(x, y, w, h)`` in frame fractions, or None."""
        if not (self.start_s <= t <= self.end_s):
            return None
        cx, _, _ = self.state(t)
        x0, x1 = max(0.0, cx - self.width / 2), min(1.0, cx + self.width / 2)
        y0, y1 = max(0.0, self.ground_y - self.height), min(1.0, self.ground_y)
        if x1 <= x0 or y1 <= y0:
            return None
        return (x0, y0, x1 - x0, y1 - y0)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Disturbance:
    """Something in a quiet stretch that changes pixels but is not an animal."""

    kind: str
    """``light_jump`` | ``snow`` | ``night_switch`` | ``gust``."""
    start_s: float
    end_s: float
    strength: float = 0.0
    """light_jump: brightness factor at its depth (0.6 = 40 % darker); snow: flake
    density 0..1; gust: sway multiplier; night_switch: 1 to IR, 0 back to day."""
    ramp_in_s: float = 0.0
    ramp_out_s: float = 0.0
    detail: str = ""
    """``darken``/``brighten`` for light jumps; ``to_ir``/``to_day`` for night switches."""

    def level(self, t: float) -> float:
        """Envelope 0..1 at scene time ``t``: ramps in, holds, ramps out."""
        if t <= self.start_s or t >= self.end_s:
            return 0.0
        a = 1.0 if self.ramp_in_s <= 0 else min(1.0, (t - self.start_s) / self.ramp_in_s)
        b = 1.0 if self.ramp_out_s <= 0 else min(1.0, (self.end_s - t) / self.ramp_out_s)
        return _smooth(min(a, b))

    def to_dict(self) -> dict:
        return asdict(self)


def _smooth(x: float) -> float:
    return x * x * (3.0 - 2.0 * x)


@dataclass(slots=True)
class Schedule:
    """Crossings and disturbances in time order, with lookups by scene time."""

    seed: int
    duration_s: float | None
    crossings: list[Crossing] = field(default_factory=list)
    disturbances: list[Disturbance] = field(default_factory=list)
    aspect: float = 16 / 9
    _cache: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def _index(self) -> tuple[list[float], list[float], list[tuple[float, bool]]]:
        """Start times (and night switches) for bisecting; rebuilt if the lists grew."""
        key = (len(self.crossings), len(self.disturbances))
        if self._cache is None or self._cache[0] != key:
            switches = [(d.start_s, d.detail == "to_ir") for d in self.disturbances
                        if d.kind == "night_switch"]
            self._cache = (key, ([c.start_s for c in self.crossings],
                                 [d.start_s for d in self.disturbances], switches))
        return self._cache[1]

    def crossings_at(self, t: float) -> list[Crossing]:
        """Crossings whose box may be in frame at ``t`` (a frame of slack either side)."""
        starts = self._index()[0]
        i = bisect.bisect_right(starts, t + 0.5)
        return [c for c in self.crossings[max(0, i - 2):i] if c.start_s - 0.5 <= t <= c.end_s + 0.5]

    def disturbances_at(self, t: float, kind: str | None = None) -> list[Disturbance]:
        starts = self._index()[1]
        i = bisect.bisect_right(starts, t)
        j = bisect.bisect_left(starts, t - MAX_DISTURBANCE_S)
        return [d for d in self.disturbances[j:i]
                if d.start_s <= t < d.end_s and (kind is None or d.kind == kind)]

    def is_night(self, t: float) -> bool:
        switches = self._index()[2]
        i = bisect.bisect_right(switches, (t, True))
        return bool(i) and switches[i - 1][1]

    def night_periods(self) -> list[tuple[float, float | None]]:
        """IR periods as ``(start_s, end_s)``; ``end_s`` is None when still night."""
        out: list[tuple[float, float | None]] = []
        for d in self.disturbances:
            if d.kind != "night_switch":
                continue
            if d.detail == "to_ir":
                out.append((d.start_s, None))
            elif out and out[-1][1] is None:
                out[-1] = (out[-1][0], d.start_s)
        return out

    def quiet_periods(self, margin_s: float = 2.0) -> list[tuple[float, float]]:
        """Stretches with no crossing, shrunk by ``margin_s`` at each crossing."""
        out, t = [], 0.0
        end = self.duration_s if self.duration_s is not None else (
            self.crossings[-1].end_s if self.crossings else 0.0)
        for c in self.crossings:
            a, b = t, c.start_s - margin_s
            if b > a:
                out.append((a, b))
            t = c.end_s + margin_s
        if end > t:
            out.append((t, end))
        return out

    def until(self, t: float) -> "Schedule":
        """The part that has begun by scene time ``t``."""
        return Schedule(self.seed, self.duration_s,
                        [c for c in self.crossings if c.start_s <= t],
                        [d for d in self.disturbances if d.start_s <= t], self.aspect)

    def to_dict(self, epoch_start: float | None = None) -> dict:
        """Plain data for JSON; with ``epoch_start`` (the clock's scene-time 0), every
        item also carries ``start_ts``/``end_ts`` in Unix seconds."""

        def item(x) -> dict:
            d = x.to_dict()
            if epoch_start is not None:
                d["start_ts"] = round(epoch_start + x.start_s, 3)
                d["end_ts"] = round(epoch_start + x.end_s, 3)
            return d

        out = {
            "seed": self.seed,
            "duration_s": self.duration_s,
            "aspect": round(self.aspect, 6),
            "crossings": [item(c) for c in self.crossings],
            "disturbances": [item(d) for d in self.disturbances],
            "night_periods": [list(p) for p in self.night_periods()],
        }
        if epoch_start is not None:
            out["start_time"] = epoch_start
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Schedule":
        cross_keys = set(Crossing.__dataclass_fields__)
        dist_keys = set(Disturbance.__dataclass_fields__)
        return cls(
            seed=int(data["seed"]),
            duration_s=data.get("duration_s"),
            crossings=[Crossing(**{k: v for k, v in c.items() if k in cross_keys})
                       for c in data.get("crossings", [])],
            disturbances=[Disturbance(**{k: v for k, v in d.items() if k in dist_keys})
                          for d in data.get("disturbances", [])],
            aspect=float(data.get("aspect", 16 / 9)),
        )


def _r(x: float) -> float:
    return round(float(x), 3)


class ScheduleBuilder:
    """Writes the script one quiet stretch + crossing at a time, as far as asked.

    ``extend_to(t)`` is idempotent and prefix-stable, so an endless camera calls it with
    a growing horizon and a finite one calls :func:`build_schedule`.
    """

    def __init__(self, seed: int = 0, *, aspect: float = 16 / 9,
                 pictures: Sequence[PictureRef] | None = None,
                 min_gap_s: float = 20.0, margin_s: float = 4.0,
                 warmup_s: tuple[float, float] = (15.0, 22.0)):
        if min_gap_s < 2 * margin_s + 1:
            raise ValueError("min_gap_s must leave room for disturbances between margins")
        self.seed = seed
        self.aspect = aspect
        self.pictures = list(pictures) if pictures else []
        self.min_gap_s = min_gap_s
        self.margin_s = margin_s
        self._warmup = warmup_s
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5C3E]))
        self.crossings: list[Crossing] = []
        self.disturbances: list[Disturbance] = []
        self.horizon_s = 0.0
        """Scene time up to which the script is written."""
        self._night = False
        self._nights_left = 0
        self._themes: list[str] = []
        self._kinds: list = []
        self._started = False

    # -- decks: every theme and kind comes round once per shuffled cycle -------------------
    def _next_theme(self) -> str:
        if self._night and self._nights_left <= 0:
            return "dawn"
        while True:
            if not self._themes:
                self._themes = list(self._rng.permutation(QUIET_THEMES))
            theme = str(self._themes.pop())
            if self._night and theme in ("light_jump", "night"):
                continue  # no sun at night; already dark
            return theme

    def _next_kind(self):
        if not self._kinds:
            deck = self.pictures if self.pictures else list(DEFAULT_KIND_DECK)
            order = self._rng.permutation(len(deck))
            self._kinds = [deck[i] for i in order]
        return self._kinds.pop()

    def extend_to(self, until_s: float) -> None:
        while self.horizon_s < until_s:
            if not self._started:
                # Warm-up (the background settles), then an animal at once, so a demo
                # shows an event within half a minute; quiet stretches follow.
                self._started = True
                self.horizon_s = _r(self._rng.uniform(*self._warmup))
                self._crossing()
                continue
            self._quiet_stretch()
            self._crossing()

    # -- quiet stretches -------------------------------------------------------------------
    def _quiet_stretch(self) -> None:
        rng, m, t0 = self._rng, self.margin_s, self.horizon_s
        theme = self._next_theme()
        gap = self.min_gap_s + rng.uniform(0.0, 14.0)
        found: list[Disturbance] = []
        if theme == "gust":
            gap += 4.0
            found = self._spread(t0 + m, t0 + gap - m, int(rng.integers(1, 3)), self._gust)
        elif theme == "light_jump":
            gap += 6.0
            found = self._spread(t0 + m, t0 + gap - m, int(rng.integers(1, 3)), self._light_jump)
        elif theme == "snow":
            length = rng.uniform(10.0, 22.0)
            gap = max(gap, length + 2 * m + rng.uniform(1.0, 6.0))
            a = t0 + m + rng.uniform(0.0, gap - 2 * m - length)
            found = [Disturbance("snow", _r(a), _r(a + length), _r(rng.uniform(0.5, 1.0)),
                                 _r(rng.uniform(1.5, 3.0)), _r(rng.uniform(1.5, 3.0)))]
        elif theme in ("night", "dawn"):
            to_ir = theme == "night"
            a = t0 + m + rng.uniform(0.3, 0.7) * (gap - 2 * m - 1.0)
            found = [Disturbance("night_switch", _r(a), _r(a + 0.2), 1.0 if to_ir else 0.0,
                                 0.0, 0.0, "to_ir" if to_ir else "to_day")]
            self._night = to_ir
            self._nights_left = int(rng.integers(1, 4)) if to_ir else 0
        self.disturbances.extend(found)
        self.horizon_s = _r(t0 + gap)

    def _spread(self, a: float, b: float, n: int, make) -> list[Disturbance]:
        """Up to ``n`` disturbances from ``make(start)`` laid end to end inside [a, b]."""
        out: list[Disturbance] = []
        t = a + self._rng.uniform(0.0, 3.0)
        for _ in range(n):
            d = make(t)
            if d.end_s > b:
                break
            out.append(d)
            t = d.end_s + self._rng.uniform(3.0, 6.0)
        if not out:  # always at least one, squeezed to fit
            d = make(a)
            if d.end_s > b:
                d = replace(d, end_s=_r(b), ramp_out_s=_r(min(d.ramp_out_s, (b - a) / 3)))
            out.append(d)
        return out

    def _gust(self, t: float) -> Disturbance:
        rng = self._rng
        length = rng.uniform(2.5, 5.0)
        return Disturbance("gust", _r(t), _r(t + length), _r(rng.uniform(1.7, 2.4)),
                           _r(rng.uniform(0.6, 1.2)), _r(rng.uniform(0.8, 1.5)))

    def _light_jump(self, t: float) -> Disturbance:
        rng = self._rng
        ramp_in, ramp_out = rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.4)
        hold = rng.uniform(2.0, 8.0)
        if rng.random() < 0.7:
            strength, detail = rng.uniform(0.5, 0.72), "darken"
        else:
            strength, detail = rng.uniform(1.3, 1.5), "brighten"
        return Disturbance("light_jump", _r(t), _r(t + ramp_in + hold + ramp_out), _r(strength),
                           _r(ramp_in), _r(ramp_out), detail)

    # -- crossings -------------------------------------------------------------------------
    def _crossing(self) -> None:
        rng = self._rng
        item = self._next_kind()
        near = float(rng.random())
        if isinstance(item, PictureRef):
            kind, spec, picture = item.tag, PICTURE_SPEC, item.path
            box_aspect = item.width / max(1, item.height)
        else:
            kind, spec, picture = item, SPECS[item], None
            box_aspect = spec.aspect
        height = spec.height[0] + near * (spec.height[1] - spec.height[0])
        width = height * box_aspect / self.aspect
        if picture is None:
            ground_y = 0.60 + near * 0.42
            ground_y = min(ground_y, 1.0 + 0.25 * height)
            ground_y = max(ground_y, height + 0.02)
            mps = rng.uniform(*spec.speed_mps)
            speed = mps * height / (spec.real_height_m * self.aspect)
        else:
            ground_y = height + rng.uniform(0.04, max(0.05, 0.97 - height))
            speed = rng.uniform(0.08, 0.22)
        speed = min(max(speed, (1 + width) / 16.0), (1 + width) / 2.5)
        direction = 1 if rng.random() < 0.5 else -1
        path = "in_out" if spec.in_out and rng.random() < 0.25 else "through"
        turn_x, pause = 0.5, 0.0
        if path == "in_out":
            turn_x = rng.uniform(0.3, 0.65)
            pause = rng.uniform(1.0, 4.0)
        variant = ""
        if kind == "prey_deer":
            variant = "sika" if rng.random() < 0.55 else "roe"
        elif kind == "human":
            variant = str(int(rng.integers(0, 4)))
        crossing = Crossing(
            index=len(self.crossings), kind=kind, start_s=self.horizon_s, end_s=self.horizon_s,
            night=self._night,
            size=round(width * (min(ground_y, 1.0) - max(0.0, ground_y - height)), 4),
            height=round(height, 4), width=round(width, 4), ground_y=round(ground_y, 4),
            direction=direction, path=path, speed=round(speed, 5), turn_x=round(turn_x, 4),
            pause_s=_r(pause), variant=variant, seed=int(rng.integers(0, 2**31 - 1)),
            picture=picture)
        # The end follows from the rounded numbers, so truth and motion agree exactly.
        c = crossing
        if path == "in_out":
            walk = 2 * (c.turn_x + c.width / 2) / c.speed + c.pause_s
        else:
            walk = (1 + c.width) / c.speed
        crossing = replace(c, end_s=_r(c.start_s + walk))
        self.crossings.append(crossing)
        if self._night:
            self._nights_left -= 1
        self.horizon_s = crossing.end_s

    def schedule(self, duration_s: float | None = None) -> Schedule:
        """What is written so far; with ``duration_s``, only what ends by then."""
        if duration_s is None:
            return Schedule(self.seed, None, list(self.crossings), list(self.disturbances), self.aspect)
        return Schedule(self.seed, duration_s,
                        [c for c in self.crossings if c.end_s <= duration_s],
                        [d for d in self.disturbances if d.end_s <= duration_s], self.aspect)


def build_schedule(seed: int = 0, duration_s: float = 600.0, *, aspect: float = 16 / 9,
                   pictures: Sequence[PictureRef] | None = None, min_gap_s: float = 20.0,
                   margin_s: float = 4.0) -> Schedule:
    """The script of ``duration_s`` scene seconds for ``seed`` (no camera needed).

    ``aspect`` is the frame's width / height (box widths and speeds depend on it);
    ``pictures`` replaces the drawn animals by real pictures walking across.
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    builder = ScheduleBuilder(seed, aspect=aspect, pictures=pictures,
                              min_gap_s=min_gap_s, margin_s=margin_s)
    builder.extend_to(duration_s)
    return builder.schedule(duration_s)


@functools.lru_cache(maxsize=64)
def _phases(seed: int, salt: int, n: int) -> tuple[float, ...]:
    return tuple(np.random.default_rng([seed, salt]).uniform(0, 2 * math.pi, n))


def light_drift(seed: int, t: float) -> tuple[float, float, float]:
    """Slow sun/cloud drift: per-channel (B, G, R) brightness factors, minutes-scale.

    A sum of slow sines with seed-chosen phases: brightness within about +-18 %, colour
    temperature swinging warm/cool by a few percent over several minutes.
    """
    ph = _phases(seed, 0x11647, 4)
    tau = 2 * math.pi
    b = 1.0 + 0.12 * math.sin(tau * t / 263.0 + ph[0]) + 0.06 * math.sin(tau * t / 101.0 + ph[1])
    warm = 0.04 * math.sin(tau * t / 331.0 + ph[2]) + 0.015 * math.sin(tau * t / 77.0 + ph[3])
    return (b * (1.0 - warm), b, b * (1.0 + warm))


def wind_strength(seed: int, t: float, gusts: Sequence[Disturbance] = ()) -> float:
    """Sway multiplier: a slowly breathing breeze times any gust blowing at ``t``."""
    ph = _phases(seed, 0x3107, 3)
    base = (1.0 + 0.22 * math.sin(2 * math.pi * t / 37.0 + ph[0])
            + 0.12 * math.sin(2 * math.pi * t / 13.3 + ph[1])
            + 0.06 * math.sin(2 * math.pi * t / 5.1 + ph[2]))
    g = 1.0
    for d in gusts:
        g = max(g, 1.0 + (d.strength - 1.0) * d.level(t))
    return base * g
