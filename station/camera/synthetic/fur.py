"""Drawing tools shared by every coat: the canvas in body units, where each pixel is on
the body (spine, flank, belly, legs), hair-like grain, shading for volume, and small
primitives (sub-pixel ellipses, jittered grids)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from station.camera.synthetic.bodies import Plan
from station.camera.synthetic.forest import value_noise

BLACK = (18, 20, 24)


@dataclass
class Canvas:
    plan: Plan
    ppu: float
    margin: float

    @property
    def size(self) -> tuple[int, int]:
        return (int(math.ceil((self.plan.aspect + 2 * self.margin) * self.ppu)),
                int(math.ceil((1 + 2 * self.margin) * self.ppu)))

    def px(self, pts) -> np.ndarray:
        return (np.asarray(pts, np.float64) + self.margin) * self.ppu

    def fx(self, pts) -> np.ndarray:
        """Fixed-point (shift=4) int32 points for OpenCV drawing."""
        return np.round(self.px(pts) * 16).astype(np.int32)


def bgr(*bgr) -> np.ndarray:
    return np.asarray(bgr, np.float32)


def smoothstep(a, b, x):
    t = np.clip((x - a) / (b - a), 0, 1)
    return t * t * (3 - 2 * t)


def lerp(a, b, t):
    return a + (b - a) * t


def noise(rng, h, w, cell, octaves=3):
    return value_noise(rng, h, w, cell, octaves)


class Regions:
    """Masks of the static parts at one resolution, and where each pixel is on the body."""

    def __init__(self, cv: Canvas):
        W, H = cv.size
        self.W, self.H = W, H
        p = cv.plan

        def fill(poly):
            m = np.zeros((H, W), np.float32)
            cv2.fillPoly(m, [cv.fx(poly)], 1.0, cv2.LINE_AA, shift=4)
            return m

        self.torso = fill(p.torso)
        self.head = fill(p.head)
        self.ears = [fill(e) for e in p.ears]
        self.tail = np.zeros((H, W), np.float32)
        if len(p.tail):
            cv2.polylines(self.tail, [cv.fx(p.tail)], False, 1.0,
                          max(1, int(p.tail_widths[0] * cv.ppu * 1.3)), cv2.LINE_AA, shift=4)
        self.union = np.maximum.reduce([self.torso, self.head, self.tail, *self.ears])
        ys = np.arange(H, dtype=np.float32)
        inside = self.torso > 0.5
        cols = np.flatnonzero(inside.any(0))
        top = np.argmax(inside, 0).astype(np.float32)
        bot = (H - 1 - np.argmax(inside[::-1], 0)).astype(np.float32)
        xs = np.arange(W)
        top = np.interp(xs, cols, top[cols])
        bot = np.interp(xs, cols, bot[cols])
        self.top, self.bot = top, bot
        self.rel = ((ys[:, None] - top[None, :]) / np.maximum(1.0, bot - top)[None, :]).astype(np.float32)
        """0 on the spine, 1 at the belly line, above 1 on the legs."""
        self.x0, self.x1 = int(cols.min()), int(cols.max())
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        self.X = xx / cv.ppu - cv.margin
        self.Y = yy / cv.ppu - cv.margin
        self.legs = (self.rel > 0.97) & (self.head < 0.5)


def fur_grain(rng, h, w, ppu, angle_deg=100.0, length=0.03) -> np.ndarray:
    """Streaky noise (about -1..1) that reads as hair lying in one direction."""
    n = rng.standard_normal((h, w)).astype(np.float32)
    L = max(3, int(length * ppu) | 1)
    k = np.zeros((L, L), np.float32)
    a = math.radians(angle_deg)
    c = L // 2
    cv2.line(k, (int(c - math.cos(a) * c), int(c - math.sin(a) * c)),
             (int(c + math.cos(a) * c), int(c + math.sin(a) * c)), 1.0, 1)
    k /= max(1.0, k.sum())
    out = cv2.filter2D(n, -1, k)
    return out / max(1e-6, float(out.std()))


def shade(img: np.ndarray, rg: Regions, cv: Canvas, rim: float = 0.28) -> np.ndarray:
    """Round the body: darker towards its outline and underneath, lit from above."""
    m = (rg.union > 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(m, cv2.DIST_L2, 3) / max(1.0, 0.07 * cv.ppu)
    s = 1.0 - rim + rim * np.clip(dist, 0, 1)
    s = np.where(m > 0, s, 1.0 - rim * 0.5)
    s = s * (1.1 - 0.22 * np.clip(rg.Y, 0, 1))
    s = s * (1.0 - 0.18 * smoothstep(0.7, 1.0, rg.rel) * (rg.rel <= 1.02))
    return img * s[..., None].astype(np.float32)


def jitter_grid(rng, x0, x1, y0, y1, step):
    pts = []
    for y in np.arange(y0, y1, step * 0.87):
        off = step / 2 if int((y - y0) / (step * 0.87)) % 2 else 0.0
        for x in np.arange(x0 + off, x1, step):
            pts.append((x + rng.uniform(-0.3, 0.3) * step, y + rng.uniform(-0.3, 0.3) * step))
    return pts


def inside(mask, x, y) -> bool:
    h, w = mask.shape
    xi, yi = int(round(x)), int(round(y))
    return 0 <= xi < w and 0 <= yi < h and mask[yi, xi] > 0.5


def ellipse(img, x, y, a, b, ang, col):
    cv2.ellipse(img, (int(x * 16), int(y * 16)), (max(1, int(a * 16)), max(1, int(b * 16))),
                float(ang), 0, 360, np.asarray(col, np.float64).tolist(), -1, cv2.LINE_AA, shift=4)


def near(rg, cv, x, y, p, r) -> bool:
    px = cv.px(p)
    return math.hypot(x - px[0], y - px[1]) < r * cv.ppu
