"""Body plans of the drawn animals and how their legs move.

Each plan is a side view facing right, drawn in *design units* and then normalised so
that its box is ``[0, aspect] x [0, 1]`` with the ground at ``y = 1``. Static parts
(torso with neck, head, ears, tail) are polygons; legs are two-segment chains placed
each frame by inverse kinematics from a gait (walk, trot, bound or a person's stride).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

import numpy as np


def chaikin(points, iterations: int = 3, closed: bool = True) -> np.ndarray:
    """Round a control polygon into a smooth outline (corner cutting)."""
    p = np.asarray(points, np.float64)
    for _ in range(iterations):
        q = np.roll(p, -1, 0) if closed else p[1:]
        a = p if closed else p[:-1]
        new = np.empty((2 * len(a), 2))
        new[0::2] = 0.75 * a + 0.25 * q
        new[1::2] = 0.25 * a + 0.75 * q
        if not closed:
            new = np.vstack([p[:1], new, p[-1:]])
        p = new
    return p


@dataclass(frozen=True)
class Leg:
    hip: tuple[float, float]
    l1: float
    l2: float
    widths: tuple[float, float, float]
    """Width at the hip, at the joint, at the foot."""
    bend: int
    """+1: the joint bows forward (fore legs, human knees); -1: backward (hocks)."""
    offset: float
    """Phase of this leg in the gait cycle (0..1)."""
    far: bool
    foot: float = 0.0
    """Length of the paw / boot reaching forward from the foot point."""


@dataclass(frozen=True)
class Plan:
    kind: str
    torso: np.ndarray
    head: np.ndarray
    ears: tuple[np.ndarray, ...]
    tail: np.ndarray
    """Centre line of the tail (open polyline), base first."""
    tail_widths: tuple[float, float]
    legs: tuple[Leg, ...]
    eye: tuple[float, float]
    eye_r: float
    nose: tuple[float, float]
    stride: float
    """Distance the body moves per gait cycle."""
    duty: float
    lift: float
    bob: float
    gait: str = "walk"
    arms: tuple[Leg, ...] = ()
    extras: dict = field(default_factory=dict)
    aspect: float = 0.0

    def scaled(self, s: float, dx: float, dy: float) -> "Plan":
        def t(p):
            return (np.asarray(p, np.float64) + (dx, dy)) * s

        def leg(g: Leg) -> Leg:
            return replace(g, hip=tuple(t(g.hip)), l1=g.l1 * s, l2=g.l2 * s,
                           widths=tuple(w * s for w in g.widths), foot=g.foot * s)

        return replace(self, torso=t(self.torso), head=t(self.head),
                       ears=tuple(t(e) for e in self.ears), tail=t(self.tail),
                       tail_widths=tuple(w * s for w in self.tail_widths),
                       legs=tuple(leg(g) for g in self.legs), arms=tuple(leg(g) for g in self.arms),
                       eye=tuple(t(self.eye)), eye_r=self.eye_r * s, nose=tuple(t(self.nose)),
                       stride=self.stride * s, lift=self.lift * s, bob=self.bob * s,
                       extras={k: t(v) for k, v in self.extras.items()})


# -- legs ---------------------------------------------------------------------------------
def ik(hip, foot, l1: float, l2: float, bend: int) -> tuple[np.ndarray, np.ndarray]:
    """Joint and (reachable) foot for a two-segment leg from ``hip`` towards ``foot``."""
    hip = np.asarray(hip, np.float64)
    foot = np.asarray(foot, np.float64)
    d = foot - hip
    dist = float(np.hypot(*d)) or 1e-6
    u = d / dist
    dist = min(max(dist, abs(l1 - l2) + 1e-4), l1 + l2 - 1e-4)
    foot = hip + u * dist
    cos_a = (l1 * l1 + dist * dist - l2 * l2) / (2 * l1 * dist)
    a = math.acos(max(-1.0, min(1.0, cos_a)))
    best = None
    for s in (1, -1):
        ca, sa = math.cos(s * a), math.sin(s * a)
        v = np.array([u[0] * ca - u[1] * sa, u[0] * sa + u[1] * ca])
        joint = hip + l1 * v
        score = bend * (joint[0] - (hip[0] + foot[0]) / 2)
        if best is None or score > best[0]:
            best = (score, joint)
    return best[1], foot


def foot_target(leg: Leg, phase: float, stride: float, duty: float, lift: float,
                moving: bool, ground: float = 1.0, reach: float = 1.0) -> np.ndarray:
    """Where the foot is at this point of the gait: planted and sliding back, or swinging."""
    hx = leg.hip[0]
    if not moving:
        return np.array([hx, ground])
    span = stride * duty * reach
    p = (phase + leg.offset) % 1.0
    if p < duty:
        s = p / duty
        return np.array([hx + span / 2 - span * s, ground])
    s = (p - duty) / (1 - duty)
    e = s * s * (3 - 2 * s)
    return np.array([hx - span / 2 + span * e, ground - lift * math.sin(math.pi * s)])


def leg_pose(leg: Leg, phase: float, plan: Plan, moving: bool, ground: float = 1.0):
    """``(hip, joint, foot)`` of one leg at gait ``phase``."""
    target = foot_target(leg, phase, plan.stride, plan.duty, plan.lift, moving, ground)
    joint, foot = ik(leg.hip, target, leg.l1, leg.l2, leg.bend)
    return np.asarray(leg.hip, np.float64), joint, foot


def arm_pose(arm: Leg, phase: float, moving: bool, swing: float = 0.45):
    """A hanging arm swinging opposite to the leg of its side."""
    p = (phase + arm.offset) % 1.0
    ang = swing * math.sin(2 * math.pi * p) if moving else 0.05
    sh = np.asarray(arm.hip, np.float64)
    elbow = sh + arm.l1 * np.array([math.sin(ang), math.cos(ang)])
    fore = ang + 0.25 + 0.3 * max(0.0, math.sin(2 * math.pi * p)) if moving else ang + 0.15
    hand = elbow + arm.l2 * np.array([math.sin(fore), math.cos(fore)])
    return sh, elbow, hand


def body_bob(plan: Plan, phase: float, moving: bool) -> float:
    if not moving:
        return 0.0
    if plan.gait == "bound":
        return -plan.bob * max(0.0, math.sin(2 * math.pi * phase)) ** 1.5
    return plan.bob * math.cos(4 * math.pi * phase)


# -- the plans ------------------------------------------------------------------------------
def _poly(points, it=3):
    return chaikin(points, it, True)


def _line(points, it=2):
    return chaikin(points, it, False)


def _cat(kind: str) -> Plan:
    big = kind == "tiger"
    k = 1.2 if big else 1.12  # head size; a tiger's is broader
    torso = _poly([
        (0.70, 0.33), (0.86, 0.27), (1.05, 0.30), (1.30, 0.32), (1.50, 0.28), (1.62, 0.195),
        (1.72, 0.20), (1.84, 0.28), (1.95, 0.35), (2.02, 0.40), (2.04, 0.55), (1.93, 0.61),
        (1.78, 0.68), (1.55, 0.67), (1.30, 0.62), (1.10, 0.57), (0.93, 0.62), (0.74, 0.60),
        (0.66, 0.46)])
    hx, hy, dx, dy = 2.12, 0.43, 0.02, 0.02
    head = _poly([(hx + dx + (x - hx) * k, hy + dy + (y - hy) * k) for x, y in [
        (1.96, 0.36), (2.05, 0.305), (2.18, 0.30), (2.27, 0.34), (2.33, 0.39), (2.385, 0.44),
        (2.38, 0.49), (2.33, 0.525), (2.22, 0.555), (2.06, 0.56), (1.97, 0.48)]])
    ear = _poly([(hx + dx + (x - hx) * k, hy + dy + (y - hy) * k) for x, y in [
        (1.99, 0.34), (2.015, 0.255), (2.045, 0.235), (2.08, 0.25), (2.12, 0.32)]], 1)
    eye = (hx + dx + (2.245 - hx) * k, hy + dy + (0.395 - hy) * k)
    nose = (hx + dx + (2.375 - hx) * k, hy + dy + (0.455 - hy) * k)
    tail = _line([(0.71, 0.35), (0.56, 0.44), (0.42, 0.58), (0.30, 0.72), (0.20, 0.80),
                  (0.13, 0.78), (0.11, 0.71)])
    legs = (
        Leg((0.90, 0.48), 0.33, 0.21, (0.27, 0.09, 0.068), -1, 0.0, True, 0.085),
        Leg((1.74, 0.57), 0.24, 0.225, (0.17, 0.09, 0.072), +1, 0.25, True, 0.09),
        Leg((0.86, 0.48), 0.33, 0.21, (0.27, 0.09, 0.068), -1, 0.5, False, 0.085),
        Leg((1.70, 0.57), 0.24, 0.225, (0.17, 0.09, 0.072), +1, 0.75, False, 0.09),
    )
    return Plan(kind, torso, head, (ear,), tail, (0.085 if not big else 0.08, 0.065), legs,
                eye=eye, eye_r=0.022, nose=nose, stride=0.95, duty=0.6, lift=0.07, bob=0.006)


def _boar() -> Plan:
    torso = _poly([
        (0.10, 0.32), (0.35, 0.23), (0.65, 0.16), (0.90, 0.11), (1.05, 0.14), (1.16, 0.22),
        (1.20, 0.45), (1.10, 0.60), (0.97, 0.68), (0.70, 0.70), (0.40, 0.68), (0.20, 0.62),
        (0.08, 0.46)])
    head = _poly([(1.06, 0.18), (1.20, 0.20), (1.38, 0.36), (1.52, 0.52), (1.60, 0.56),
                  (1.625, 0.64), (1.56, 0.67), (1.40, 0.65), (1.24, 0.62), (1.10, 0.55)], 2)
    ear = _poly([(1.10, 0.22), (1.09, 0.09), (1.15, 0.11), (1.21, 0.20)], 2)
    crest = []  # the bristly mane along the back: a ragged ridge of tufts
    tuft = np.random.default_rng(7).uniform(0.015, 0.045, 26)
    for i, x in enumerate(np.linspace(0.35, 1.08, 26)):
        y = np.interp(x, [0.35, 0.65, 0.90, 1.08], [0.23, 0.16, 0.11, 0.15])
        crest.append((x + (0.012 if i % 2 else 0.0), y - (tuft[i] if i % 2 else 0.0)))
    mane = np.asarray(crest + [(1.08, 0.22), (0.35, 0.28)], np.float64)
    tail = _line([(0.10, 0.34), (0.06, 0.42), (0.045, 0.52), (0.05, 0.58)])
    legs = (
        Leg((0.30, 0.58), 0.25, 0.20, (0.17, 0.065, 0.05), -1, 0.0, True, 0.035),
        Leg((0.98, 0.62), 0.21, 0.20, (0.13, 0.065, 0.05), +1, 0.25, True, 0.035),
        Leg((0.26, 0.58), 0.25, 0.20, (0.17, 0.065, 0.05), -1, 0.5, False, 0.035),
        Leg((0.94, 0.62), 0.21, 0.20, (0.13, 0.065, 0.05), +1, 0.75, False, 0.035),
    )
    return Plan("prey_boar", torso, head, (ear,), tail, (0.025, 0.018), legs,
                eye=(1.27, 0.33), eye_r=0.016, nose=(1.61, 0.60), stride=0.62, duty=0.6,
                lift=0.06, bob=0.006, extras={"mane": mane})


def _deer() -> Plan:
    torso = _poly([
        (0.15, 0.38), (0.40, 0.35), (0.72, 0.36), (0.93, 0.31), (1.04, 0.25), (1.12, 0.15),
        (1.19, 0.09), (1.30, 0.13), (1.27, 0.28), (1.17, 0.45), (1.07, 0.60), (0.90, 0.64),
        (0.62, 0.63), (0.36, 0.60), (0.20, 0.56), (0.12, 0.46)])
    head = _poly([(1.16, 0.10), (1.24, 0.055), (1.35, 0.07), (1.46, 0.12), (1.53, 0.16),
                  (1.545, 0.20), (1.50, 0.225), (1.38, 0.215), (1.27, 0.19), (1.18, 0.16)])
    ear = _poly([(1.19, 0.085), (1.11, -0.02), (1.13, -0.06), (1.21, -0.02), (1.255, 0.07)], 2)
    tail = _line([(0.13, 0.40), (0.115, 0.43), (0.11, 0.46)])
    legs = (
        Leg((0.27, 0.52), 0.30, 0.24, (0.15, 0.048, 0.034), -1, 0.0, True, 0.03),
        Leg((1.00, 0.57), 0.22, 0.24, (0.11, 0.048, 0.034), +1, 0.25, True, 0.03),
        Leg((0.23, 0.52), 0.30, 0.24, (0.15, 0.048, 0.034), -1, 0.5, False, 0.03),
        Leg((0.96, 0.57), 0.22, 0.24, (0.11, 0.048, 0.034), +1, 0.75, False, 0.03),
    )
    return Plan("prey_deer", torso, head, (ear,), tail, (0.045, 0.035), legs,
                eye=(1.33, 0.11), eye_r=0.02, nose=(1.54, 0.185), stride=0.85, duty=0.6,
                lift=0.08, bob=0.006)


def _hare() -> Plan:
    torso = _poly([
        (0.13, 0.58), (0.22, 0.42), (0.38, 0.36), (0.60, 0.37), (0.80, 0.43), (0.93, 0.48),
        (0.97, 0.62), (0.84, 0.76), (0.55, 0.80), (0.30, 0.82), (0.16, 0.74)])
    head = _poly([(0.86, 0.43), (0.96, 0.355), (1.09, 0.36), (1.19, 0.42), (1.235, 0.475),
                  (1.20, 0.52), (1.10, 0.55), (0.98, 0.56), (0.90, 0.52)])
    ear = _poly([(0.93, 0.39), (0.83, 0.14), (0.76, 0.03), (0.79, 0.01), (0.91, 0.12), (1.02, 0.37)], 2)
    ear2 = _poly([(0.97, 0.38), (0.93, 0.14), (0.90, 0.04), (0.94, 0.03), (1.00, 0.14), (1.05, 0.37)], 2)
    tail = _line([(0.15, 0.56), (0.11, 0.57), (0.10, 0.60)])
    legs = (
        Leg((0.34, 0.66), 0.21, 0.22, (0.20, 0.06, 0.045), -1, 0.0, True, 0.10),
        Leg((0.86, 0.70), 0.15, 0.16, (0.07, 0.04, 0.03), +1, 0.5, True, 0.04),
        Leg((0.30, 0.66), 0.21, 0.22, (0.20, 0.06, 0.045), -1, 0.05, False, 0.10),
        Leg((0.82, 0.70), 0.15, 0.16, (0.07, 0.04, 0.03), +1, 0.55, False, 0.04),
    )
    return Plan("prey_hare", torso, head, (ear2, ear), tail, (0.10, 0.09), legs,
                eye=(1.07, 0.42), eye_r=0.03, nose=(1.225, 0.47), stride=0.7, duty=0.4,
                lift=0.1, bob=0.08, gait="bound")


def _human() -> Plan:
    torso = _poly([(0.25, 0.155), (0.35, 0.15), (0.385, 0.22), (0.38, 0.36), (0.365, 0.50),
                   (0.35, 0.56), (0.22, 0.56), (0.215, 0.40), (0.215, 0.22)], 2)
    head = _poly([(0.26, 0.05), (0.29, 0.015), (0.34, 0.012), (0.375, 0.05), (0.385, 0.08),
                  (0.395, 0.10), (0.38, 0.11), (0.37, 0.14), (0.33, 0.155), (0.28, 0.14), (0.255, 0.10)], 2)
    cap = _poly([(0.255, 0.055), (0.28, 0.012), (0.34, 0.005), (0.375, 0.04), (0.42, 0.05),
                 (0.375, 0.06), (0.26, 0.07)], 2)
    pack = _poly([(0.13, 0.17), (0.225, 0.16), (0.23, 0.44), (0.14, 0.43), (0.12, 0.30)], 2)
    legs = (
        Leg((0.29, 0.52), 0.245, 0.245, (0.10, 0.075, 0.06), +1, 0.0, True, 0.085),
        Leg((0.29, 0.52), 0.245, 0.245, (0.10, 0.075, 0.06), +1, 0.5, False, 0.085),
    )
    arms = (
        Leg((0.30, 0.185), 0.16, 0.15, (0.065, 0.055, 0.045), +1, 0.5, True),
        Leg((0.30, 0.185), 0.16, 0.15, (0.065, 0.055, 0.045), +1, 0.0, False),
    )
    return Plan("human", torso, head, (cap, pack), np.zeros((0, 2)), (0.0, 0.0), legs,
                eye=(0.37, 0.075), eye_r=0.008, nose=(0.395, 0.10), stride=0.78, duty=0.6,
                lift=0.05, bob=0.008, gait="biped", arms=arms)


_DESIGNS = {"leopard": lambda: _cat("leopard"), "tiger": lambda: _cat("tiger"),
            "prey_boar": _boar, "prey_deer": _deer, "prey_hare": _hare, "human": _human}


def _extent(plan: Plan) -> tuple[float, float, float, float]:
    """Bounding box of every part over a whole gait cycle, in design units."""
    pts = [plan.torso, plan.head, *plan.ears, *plan.extras.values()]
    if len(plan.tail):
        pts.append(plan.tail - plan.tail_widths[0] / 2)
        pts.append(plan.tail + plan.tail_widths[0] / 2)
    for ph in np.linspace(0, 1, 24, endpoint=False):
        for leg in plan.legs:
            hip, joint, foot = leg_pose(leg, ph, plan, True)
            w = max(leg.widths) / 2
            pts.append(np.array([hip - w, hip + w, joint - w, joint + w, foot + (leg.foot, 0)]))
        for arm in plan.arms:
            pts.append(np.array(arm_pose(arm, ph, True)))
    allp = np.vstack(pts)
    return float(allp[:, 0].min()), float(allp[:, 1].min()), float(allp[:, 0].max()), 1.0


@functools.lru_cache(maxsize=None)
def plan_for(kind: str) -> Plan:
    """The normalised plan: box ``[0, aspect] x [0, 1]``, ground at 1, facing right."""
    plan = _DESIGNS[kind]()
    x0, y0, x1, y1 = _extent(plan)
    s = 1.0 / (y1 - y0)
    out = plan.scaled(s, -x0, -y0)
    return replace(out, aspect=round((x1 - x0) * s, 4))
