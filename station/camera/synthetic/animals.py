"""Drawn animals walking across the scene: a coat masked by a moving silhouette.

:class:`AnimalSprite` draws one :class:`~station.camera.synthetic.scene.Crossing`. Its
coat is painted once (at the main stream's scale, so the lores stream gets exactly the
same animal whether or not main frames are ever asked for) and resized per stream.
Each frame the legs are posed from the gait, the silhouette is drawn, and the coat is
composited where the silhouette is, far-side legs a shade darker, over a soft contact
shadow. At night the eyes shine in the infrared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from station.camera.synthetic.bodies import Leg, Plan, arm_pose, body_bob, leg_pose, plan_for
from station.camera.synthetic.coats import paint_coat
from station.camera.synthetic.render import blend_into
from station.camera.synthetic.scene import SPECS, Crossing

MARGIN = 0.08
SKIN = (135, 165, 205)


@dataclass
class _Scaled:
    ppu: float
    size: tuple[int, int]
    coat: np.ndarray
    """BGR uint8, facing right; ``coat_l`` is the mirror image."""
    coat_l: np.ndarray
    dark: np.ndarray
    dark_l: np.ndarray
    static: np.ndarray
    static_l: np.ndarray
    shadow: np.ndarray
    """Float32 multiplier (1 = no shadow) under the animal; symmetric enough for both ways."""


class AnimalSprite:
    """Draws one crossing of a drawn kind onto frames of any size."""

    def __init__(self, crossing: Crossing, frame_aspect: float, coat_height_px: int):
        self.crossing = crossing
        self.frame_aspect = frame_aspect
        plan = plan_for(crossing.kind)
        self.plan = self._gait(plan, crossing, frame_aspect)
        self._coat_ppu = float(min(720.0, max(160.0, crossing.height * coat_height_px)))
        self._coat: np.ndarray | None = None
        self._scaled: dict[tuple[int, int], _Scaled] = {}

    @staticmethod
    def _gait(plan: Plan, c: Crossing, aspect: float) -> Plan:
        """Walk, or trot when it is in a hurry (diagonal legs together)."""
        spec = SPECS[c.kind]
        mps = c.speed * spec.real_height_m * aspect / c.height
        if plan.gait == "walk" and mps > 1.7:
            offs = (0.0, 0.5, 0.5, 0.0)
            legs = tuple(replace(g, offset=o) for g, o in zip(plan.legs, offs))
            return replace(plan, legs=legs, duty=0.45, stride=plan.stride * 1.35, lift=plan.lift * 1.3)
        return plan

    # -- per-size assets ---------------------------------------------------------------------
    def _coat_image(self) -> np.ndarray:
        if self._coat is None:
            self._coat = paint_coat(self.plan, self.crossing.variant, self.crossing.seed,
                                    self._coat_ppu, MARGIN)
        return self._coat

    def _assets(self, W: int, H: int) -> _Scaled:
        key = (W, H)
        if key in self._scaled:
            return self._scaled[key]
        ppu = self.crossing.height * H
        cw = int(math.ceil((self.plan.aspect + 2 * MARGIN) * ppu))
        ch = int(math.ceil((1 + 2 * MARGIN) * ppu))
        coat = self._coat_image()
        interp = cv2.INTER_AREA if ppu < self._coat_ppu else cv2.INTER_LINEAR
        small = cv2.resize(coat, (cw, ch), interpolation=interp)
        small = np.clip(small, 0, 255).astype(np.uint8)
        dark = (small.astype(np.float32) * 0.62).astype(np.uint8)
        static = np.zeros((ch, cw), np.uint8)
        for poly in self._static_polys():
            cv2.fillPoly(static, [self._fx(poly, ppu, 1)], 255, cv2.LINE_AA, shift=4)
        shadow = np.zeros((ch, cw), np.float32)
        xs = self.plan.torso[:, 0]
        cx = (xs.min() + xs.max()) / 2
        half = (xs.max() - xs.min()) * 0.6
        centre = self._fx(np.array([[cx, 1.0]]), ppu, 1)[0]
        cv2.ellipse(shadow, (int(centre[0]), int(centre[1])), (int(half * ppu * 16), int(0.045 * ppu * 16)),
                    0, 0, 360, 0.42, -1, cv2.LINE_AA, shift=4)
        shadow = 1.0 - cv2.GaussianBlur(shadow, (0, 0), max(1.0, 0.03 * ppu))
        a = _Scaled(ppu, (cw, ch), small, np.ascontiguousarray(small[:, ::-1]), dark,
                    np.ascontiguousarray(dark[:, ::-1]), static, np.ascontiguousarray(static[:, ::-1]),
                    shadow)
        self._scaled[key] = a
        return a

    def _static_polys(self) -> list[np.ndarray]:
        p = self.plan
        polys = [p.torso, p.head, *p.ears]
        if "mane" in p.extras:
            polys.append(p.extras["mane"])
        return polys

    def _fx(self, pts, ppu: float, facing: int) -> np.ndarray:
        """Plan units to fixed-point canvas pixels (shift=4), mirrored when facing left."""
        pts = np.asarray(pts, np.float64)
        if facing < 0:
            pts = np.column_stack([self.plan.aspect - pts[:, 0], pts[:, 1]])
        return np.round((pts + MARGIN) * ppu * 16).astype(np.int32)

    # -- drawing ------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Paint the coat now (it is otherwise painted on the first frame it is seen)."""
        self._coat_image()

    def draw(self, img: np.ndarray, t: float, night: bool) -> None:
        c = self.crossing
        if not (c.start_s - 0.5 <= t <= c.end_s + 0.5):
            return
        H, W = img.shape[:2]
        a = self._assets(W, H)
        ppu = a.ppu
        cx, facing, walked = c.state(t)
        moving = c.moving(t)
        phase = (walked * W / ppu) / self.plan.stride
        bob = body_bob(self.plan, phase % 1.0, moving)
        ox = cx * W - (self.plan.aspect / 2 + MARGIN) * ppu
        oy = c.ground_y * H - (1 + MARGIN) * ppu
        ix, iy = int(round(ox)), int(round(oy))
        cw, ch = a.size
        x0, y0 = max(0, ix), max(0, iy)
        x1, y1 = min(W, ix + cw), min(H, iy + ch)
        if x1 <= x0 or y1 <= y0:
            return
        near = (a.static if facing > 0 else a.static_l).copy()
        if bob:
            near = np.roll(near, int(round(bob * ppu)), axis=0)
        far = np.zeros_like(near)
        self._limbs(near, far, phase % 1.0, moving, ppu, facing, bob)
        sx, sy = slice(x0 - ix, x1 - ix), slice(y0 - iy, y1 - iy)
        roi = img[y0:y1, x0:x1]
        shadow = a.shadow[sy, sx]
        if facing < 0:
            shadow = a.shadow[:, ::-1][sy, sx]
        strength = 0.45 if night else 1.0
        sh = 1.0 - (1.0 - shadow) * strength
        roi[:] = (roi.astype(np.float32) * sh[..., None]).astype(np.uint8)
        coat = a.coat if facing > 0 else a.coat_l
        dark = a.dark if facing > 0 else a.dark_l
        if bob:
            shift = int(round(bob * ppu))
            coat, dark = np.roll(coat, shift, axis=0), np.roll(dark, shift, axis=0)
        if ppu > 120:  # fur: a soft edge rather than a cut-out
            near = cv2.GaussianBlur(near, (3, 3), 0)
        an = near[sy, sx].astype(np.float32) * (1 / 255)
        af = far[sy, sx].astype(np.float32) * (1 / 255) * (1 - an)
        if af.any():
            blend_into(roi, dark[sy, sx], af)
        blend_into(roi, coat[sy, sx], an)
        self._overlays(img, ix, iy, phase % 1.0, moving, ppu, facing, bob, night)

    def _limbs(self, near, far, phase, moving, ppu, facing, bob) -> None:
        p = self.plan
        shift = np.array([0.0, bob])
        for leg in p.legs:
            hip, joint, foot = leg_pose(leg, phase, p, moving)
            self._limb(far if leg.far else near, leg, hip + shift, joint + shift, foot, ppu, facing)
        for arm in p.arms:
            sh, el, hand = arm_pose(arm, phase, moving)
            self._limb(far if arm.far else near, arm, sh + shift, el + shift, hand + shift, ppu, facing)
        if len(p.tail):
            tail = p.tail.copy()
            base = tail[0]
            ang = 0.08 * math.sin(2 * math.pi * phase) if moving else 0.0
            ca, sa = math.cos(ang), math.sin(ang)
            d = tail - base
            tail = base + np.column_stack([d[:, 0] * ca - d[:, 1] * sa, d[:, 0] * sa + d[:, 1] * ca])
            tail = tail + shift
            self._tube(near, tail, p.tail_widths, ppu, facing)

    def _limb(self, mask, leg: Leg, hip, joint, foot, ppu, facing) -> None:
        w0, w1, w2 = leg.widths
        self._segment(mask, hip, joint, w0, w1, ppu, facing)
        self._segment(mask, joint, foot, w1, w2, ppu, facing)
        if leg.foot > 0:
            toe = foot + np.array([leg.foot, 0.0])
            self._segment(mask, foot - np.array([w2 * 0.3, w2 * 0.3]), toe - np.array([0, w2 * 0.25]),
                          w2 * 0.9, w2 * 0.55, ppu, facing)

    def _segment(self, mask, p, q, wa, wb, ppu, facing) -> None:
        p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
        d = q - p
        n = np.hypot(*d)
        if n < 1e-9:
            return
        nx, ny = -d[1] / n, d[0] / n
        quad = np.array([[p[0] + nx * wa / 2, p[1] + ny * wa / 2], [q[0] + nx * wb / 2, q[1] + ny * wb / 2],
                         [q[0] - nx * wb / 2, q[1] - ny * wb / 2], [p[0] - nx * wa / 2, p[1] - ny * wa / 2]])
        cv2.fillConvexPoly(mask, self._fx(quad, ppu, facing), 255, cv2.LINE_AA, shift=4)
        for c, w in ((p, wa), (q, wb)):
            cc = self._fx(c[None, :], ppu, facing)[0]
            cv2.circle(mask, (int(cc[0]), int(cc[1])), int(w / 2 * ppu * 16), 255, -1, cv2.LINE_AA, shift=4)

    def _sleeve(self, img, arm: Leg, phase, moving, ppu, facing, bob, origin) -> None:
        joints = np.array(arm_pose(arm, phase, moving)) + (0, bob)
        a = self._assets(img.shape[1], img.shape[0])
        coat = a.coat
        px = np.clip(((joints[1] + MARGIN) * ppu).astype(int), 0, (coat.shape[1] - 1, coat.shape[0] - 1))
        col = coat[px[1], px[0]].astype(np.float64)
        segments = (((joints[0], joints[1]), arm.widths[:2]), ((joints[1], joints[2]), arm.widths[1:]))
        for (q0, q1), (wa, wb) in segments:
            d = q1 - q0
            n = np.array([-d[1], d[0]]) / max(1e-9, float(np.hypot(*d)))
            quad = np.array([q0 + n * wa / 2, q1 + n * wb / 2, q1 - n * wb / 2, q0 - n * wa / 2])
            pts = (self._fx(quad, ppu, facing) + origin).astype(np.int32)
            cv2.fillConvexPoly(img, pts, (col * 0.85).tolist(), cv2.LINE_AA, shift=4)
            cv2.polylines(img, [pts], True, (col * 0.55).tolist(), max(1, int(0.006 * ppu)),
                          cv2.LINE_AA, shift=4)
        c = self._fx(joints[2][None, :], ppu, facing)[0] + origin
        cv2.circle(img, (int(c[0]), int(c[1])), max(1, int(0.022 * ppu * 16)), SKIN, -1, cv2.LINE_AA, shift=4)

    def _tube(self, mask, pts, widths, ppu, facing) -> None:
        n = len(pts)
        ws = np.linspace(widths[0], widths[1], n)
        for i in range(n - 1):
            self._segment(mask, pts[i], pts[i + 1], ws[i], ws[i + 1], ppu, facing)

    def _overlays(self, img, ix, iy, phase, moving, ppu, facing, bob, night) -> None:
        p = self.plan
        origin = np.array([ix * 16, iy * 16])
        if p.kind == "human":  # the near arm as a sleeve over the jacket, and a hand
            for arm in p.arms:
                if not arm.far:
                    self._sleeve(img, arm, phase, moving, ppu, facing, bob, origin)
        if night and p.kind != "human":  # eyeshine: the tapetum returns the IR flash
            c = self._fx(np.array([[p.eye[0], p.eye[1] + bob]]), ppu, facing)[0] + origin
            r = max(0.6, p.eye_r * ppu * 0.9)
            centre = (int(c[0]), int(c[1]))
            cv2.circle(img, centre, int(r * 1.8 * 16), (170, 175, 175), -1, cv2.LINE_AA, shift=4)
            cv2.circle(img, centre, int(r * 16), (250, 252, 252), -1, cv2.LINE_AA, shift=4)
