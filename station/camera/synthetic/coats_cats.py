"""Big cat coats: the Amur leopard's pale gold with large, thick-ringed rosettes and
solid spots on head, legs and tail; the tiger's orange with tapering black stripes,
white belly, cheeks and brows, and a ringed, black-tipped tail."""

from __future__ import annotations

import math

import cv2
import numpy as np

from station.camera.synthetic.fur import (
    BLACK, Canvas, Regions, bgr, ellipse, inside, jitter_grid, lerp, near, noise, smoothstep,
)


def _blotch(img, rng, x, y, a, b, ang):
    """An irregular black blotch: two or three overlapping ellipses."""
    for _ in range(int(rng.integers(2, 4))):
        ox, oy = rng.normal(0, 0.25) * a, rng.normal(0, 0.25) * b
        ellipse(img, x + ox, y + oy, a * rng.uniform(0.6, 1.0), b * rng.uniform(0.6, 1.0),
             ang + rng.normal(0, 15), BLACK)


def _rosette(img, rng, x, y, r):
    """A broken ring of blotches around a centre a shade darker than the coat."""
    stretch = rng.uniform(1.0, 1.4)
    rot = rng.uniform(-0.5, 0.5)
    ellipse(img, x, y, r * stretch * 0.85, r * 0.85, math.degrees(rot), (50, 112, 172))
    k = int(rng.integers(4, 7))
    a0 = rng.uniform(0, 2 * math.pi)
    for i in range(k):
        if rng.random() < 0.15:
            continue
        a = a0 + 2 * math.pi * i / k + rng.uniform(-0.2, 0.2)
        ex, ey = math.cos(a) * r * stretch, math.sin(a) * r
        px = x + ex * math.cos(rot) - ey * math.sin(rot)
        py = y + ex * math.sin(rot) + ey * math.cos(rot)
        ln = math.pi * r * stretch / k * rng.uniform(0.6, 0.95)
        th = r * rng.uniform(0.22, 0.34)
        tang = math.degrees(math.atan2(math.cos(a) * r, -math.sin(a) * r * stretch) + rot)
        _blotch(img, rng, px, py, ln, th, tang)


def leopard(cv: Canvas, rg: Regions, rng) -> np.ndarray:
    H, W = rg.H, rg.W
    rel = rg.rel
    back, side, belly = bgr(70, 145, 205), bgr(120, 182, 225), bgr(198, 220, 232)
    t1 = smoothstep(0.0, 0.5, rel)[..., None]
    t2 = smoothstep(0.62, 0.95, rel)[..., None]
    img = lerp(lerp(back, side, t1), belly, t2)
    img = np.where(rg.legs[..., None], lerp(side, belly, 0.3), img)
    img = np.where((rg.head > 0.5)[..., None], side * 0.97, img)
    img *= (0.9 + 0.2 * noise(rng, H, W, cv.ppu * 0.3))[..., None]
    img = img.astype(np.float32)
    ppu = cv.ppu
    nose = cv.px(cv.plan.nose)
    # Muzzle and chin: cream white.
    ellipse(img, nose[0] - 0.06 * ppu, nose[1] + 0.035 * ppu, 0.075 * ppu, 0.045 * ppu, 10, (200, 218, 230))
    # Rosettes over the flank, shoulder and haunch; solid spots on spine and belly.
    torso = rg.torso
    for (x, y) in jitter_grid(rng, rg.x0, rg.x1, rg.top.min(), rg.bot.max(), 0.135 * ppu):
        if not inside(torso, x, y) or inside(rg.head, x, y):
            continue
        r = rel[int(y), int(x)]
        if r < 0.12:
            ellipse(img, x, y, 0.028 * ppu, 0.012 * ppu, rng.uniform(-15, 15), BLACK)
        elif r > 0.84:
            ellipse(img, x, y, 0.02 * ppu, 0.016 * ppu, 0, BLACK)
        else:
            _rosette(img, rng, x, y, 0.045 * ppu * rng.uniform(0.85, 1.15))
    # Small spots filling the gaps between rosettes.
    for (x, y) in jitter_grid(rng, rg.x0, rg.x1, rg.top.min(), rg.bot.max(), 0.05 * ppu):
        if inside(torso, x, y) and not inside(rg.head, x, y) and rng.random() < 0.25:
            px = img[int(y), int(x)]
            if px.sum() > 330:  # still plain coat here
                s = 0.008 * ppu * rng.uniform(0.6, 1.2)
                _blotch(img, rng, x, y, s * 1.2, s, rng.uniform(0, 180))
    # Head: small dense spots on crown and forehead, fewer on the cheek, none on the muzzle.
    for (x, y) in jitter_grid(rng, 0, W, 0, H, 0.03 * ppu):
        if not inside(rg.head, x, y) or near(rg, cv, x, y, cv.plan.nose, 0.11) \
                or near(rg, cv, x, y, cv.plan.eye, 0.04):
            continue
        low = y > cv.px(cv.plan.eye)[1] + 0.03 * ppu
        if rng.random() < (0.3 if low else 0.8):
            s = 0.0055 * rng.uniform(0.6, 1.4) * ppu
            ellipse(img, x, y, s * rng.uniform(0.9, 1.5), s, rng.uniform(0, 180), BLACK)
    # Legs: solid spots, smaller towards the paws.
    for (x, y) in jitter_grid(rng, 0, W, 0, H, 0.045 * ppu):
        yi, xi = min(H - 1, int(y)), min(W - 1, int(x))
        if rg.legs[yi, xi] and rg.head[yi, xi] < 0.5 and rng.random() < 0.8:
            low = float(np.clip(rg.Y[yi, xi] - 0.6, 0, 0.4) / 0.4)  # 0 at the elbow, 1 at the paw
            s = (0.011 - 0.006 * low) * rng.uniform(0.6, 1.2) * ppu
            _blotch(img, rng, x, y, s * 1.3, s, rng.uniform(0, 180))
    _tail_marks(img, cv, rng, ring_from=0.7, spot_r=0.02)
    _cat_face(img, cv, rng, tiger=False)
    return img


def _tail_marks(img, cv: Canvas, rng, ring_from: float, spot_r: float, tip_black: float = 0.06):
    p = cv.plan
    if not len(p.tail):
        return
    pts = cv.px(p.tail)
    seg = np.hypot(*np.diff(pts, axis=0).T)
    s = np.concatenate([[0], np.cumsum(seg)])
    total = s[-1]
    w = p.tail_widths[0] * cv.ppu
    for d in np.arange(0.03 * cv.ppu, total, 0.055 * cv.ppu):
        f = d / total
        x = np.interp(d, s, pts[:, 0])
        y = np.interp(d, s, pts[:, 1])
        i = min(len(seg) - 1, int(np.searchsorted(s, d)) - 1)
        dx, dy = pts[i + 1] - pts[i]
        ang = math.degrees(math.atan2(dy, dx))
        if f < ring_from:
            off = rng.uniform(-0.3, 0.3) * w
            ellipse(img, x - dy / max(1e-6, seg[i]) * off, y + dx / max(1e-6, seg[i]) * off,
                 spot_r * cv.ppu, spot_r * cv.ppu * 0.8, ang, BLACK)
        else:  # rings towards the tip
            ellipse(img, x, y, 0.016 * cv.ppu, w * 0.75, ang, BLACK)
    end = pts[-1]
    cv2.circle(img, (int(end[0] * 16), int(end[1] * 16)), int(tip_black * cv.ppu * 16), BLACK, -1,
               cv2.LINE_AA, shift=4)


def _cat_face(img, cv: Canvas, rng, tiger: bool):
    ppu = cv.ppu
    p = cv.plan
    ex, ey = cv.px(p.eye)
    nx, ny = cv.px(p.nose)
    r = p.eye_r * ppu
    # pale fur around the eye, then the eye: black rim, amber iris, round pupil
    ellipse(img, ex - 0.1 * r, ey + 0.9 * r, 1.9 * r, 1.0 * r, -10, (205, 222, 235))
    ellipse(img, ex, ey - 1.1 * r, 1.6 * r, 0.7 * r, -10, (200, 218, 232))
    ellipse(img, ex, ey, 1.35 * r, 0.85 * r, -12, BLACK)
    ellipse(img, ex + 0.1 * r, ey, 1.0 * r, 0.65 * r, -12, (40, 165, 200) if not tiger else (60, 170, 205))
    ellipse(img, ex + 0.15 * r, ey, 0.35 * r, 0.55 * r, 0, (10, 12, 14))
    ellipse(img, ex + 0.35 * r, ey - 0.25 * r, 0.12 * r, 0.12 * r, 0, (230, 235, 240))
    # the dark tear line from the inner eye down the side of the nose
    cv2.line(img, (int((ex + 1.2 * r) * 16), int(ey * 16)),
             (int((nx - 0.02 * ppu) * 16), int((ny - 0.01 * ppu) * 16)),
             (60, 80, 110), max(1, int(0.006 * ppu)), cv2.LINE_AA, shift=4)
    # nose leather, mouth line, whisker spots
    tri = np.array([[nx - 0.035 * ppu, ny - 0.012 * ppu], [nx + 0.008 * ppu, ny - 0.014 * ppu],
                    [nx + 0.004 * ppu, ny + 0.02 * ppu]])
    cv2.fillPoly(img, [np.round(tri * 16).astype(np.int32)], (115, 120, 175) if tiger else (95, 105, 150),
                 cv2.LINE_AA, shift=4)
    mouth = np.array([[nx - 0.005 * ppu, ny + 0.03 * ppu], [nx - 0.05 * ppu, ny + 0.06 * ppu],
                      [nx - 0.11 * ppu, ny + 0.055 * ppu]])
    cv2.polylines(img, [np.round(mouth * 16).astype(np.int32)], False, BLACK, max(1, int(0.008 * ppu)),
                  cv2.LINE_AA, shift=4)
    for i in range(3):
        for j in range(4):
            ellipse(img, nx - (0.035 + 0.016 * j) * ppu, ny + (0.02 + 0.012 * i) * ppu,
                 0.003 * ppu, 0.003 * ppu, 0, (60, 70, 80))
    # ears: the dark back of the ear with its white spot, a pale inner rim
    for e in p.ears:
        cv2.fillPoly(img, [cv.fx(e)], (38, 44, 52), cv2.LINE_AA, shift=4)
        c = cv.px(e.mean(0))
        cv2.polylines(img, [cv.fx(e[len(e) // 2:])], False, (190, 205, 220), max(1, int(0.008 * ppu)),
                      cv2.LINE_AA, shift=4)
        ellipse(img, c[0] - 0.004 * ppu, c[1] + 0.005 * ppu, 0.011 * ppu, 0.009 * ppu, 0, (215, 225, 235))
    # white chin and throat
    ellipse(img, nx - 0.1 * ppu, ny + 0.085 * ppu, 0.08 * ppu, 0.03 * ppu, 5, (205, 220, 230))


def tiger(cv: Canvas, rg: Regions, rng) -> np.ndarray:
    H, W = rg.H, rg.W
    rel = rg.rel
    ppu = cv.ppu
    back, side, white = bgr(30, 100, 205), bgr(45, 135, 238), bgr(215, 226, 232)  # Amur: paler orange
    img = lerp(back, side, smoothstep(0.0, 0.45, rel)[..., None])
    img = lerp(img, white, smoothstep(0.68, 0.86, rel)[..., None])
    legs_c = lerp(side, white, 0.15)
    img = np.where(rg.legs[..., None], legs_c, img)
    img = np.where((rg.head > 0.5)[..., None], side, img)
    img *= (0.92 + 0.16 * noise(rng, H, W, ppu * 0.3))[..., None]
    img = img.astype(np.float32)
    nx, ny = cv.px(cv.plan.nose)
    ex, ey = cv.px(cv.plan.eye)
    # white cheeks, muzzle and chin; white brow above the eye
    ellipse(img, nx - 0.08 * ppu, ny + 0.045 * ppu, 0.1 * ppu, 0.055 * ppu, 5, white)
    ellipse(img, ex - 0.06 * ppu, ey + 0.09 * ppu, 0.08 * ppu, 0.05 * ppu, 20, white)
    ellipse(img, ex - 0.01 * ppu, ey - 0.035 * ppu, 0.035 * ppu, 0.014 * ppu, -10, white)
    # Body stripes: from the spine down, tapering, leaning back, some forked.
    x = rg.x0 + rng.uniform(0.02, 0.05) * ppu
    while x < rg.x1 - 0.02 * ppu:
        xi = int(min(W - 1, x))
        top, bot = rg.top[xi], rg.bot[xi]
        length = rng.uniform(0.5, 0.95) * (bot - top)
        width = rng.uniform(0.017, 0.03) * ppu  # Amur: narrower, fewer stripes
        lean = rng.uniform(0.04, 0.10) * ppu * (1 if x < (rg.x0 + rg.x1) / 2 else 0.6)
        _stripe(img, rng, x, top - 0.01 * ppu, length, width, -lean)
        if rng.random() < 0.3:
            _stripe(img, rng, x + width * 1.3, top + length * 0.35, length * 0.4, width * 0.5, -lean * 0.5)
        x += rng.uniform(0.055, 0.09) * ppu
    # Legs: short horizontal bars.
    for (sx, sy) in jitter_grid(rng, 0, W, 0, H, 0.07 * ppu):
        yi, xi = min(H - 1, int(sy)), min(W - 1, int(sx))
        if rg.legs[yi, xi] and rg.Y[yi, xi] < 0.9:
            ellipse(img, sx, sy, 0.03 * ppu, 0.008 * ppu, rng.uniform(-15, 15), BLACK)
    # Head: forehead dashes, cheek stripes.
    _, hy0 = cv.px(cv.plan.head.min(0))
    for i in range(5):
        fx = ex - (0.02 + 0.028 * i) * ppu
        _stripe(img, rng, fx, hy0 + 0.01 * ppu, 0.05 * ppu, 0.012 * ppu, -0.01 * ppu)
    for i in range(3):
        sx0 = ex - (0.07 + 0.035 * i) * ppu
        sy0 = ey + (0.01 + 0.02 * i) * ppu
        _stripe(img, rng, sx0, sy0, 0.09 * ppu, 0.018 * ppu, -0.05 * ppu)
    _tail_marks(img, cv, rng, ring_from=0.0, spot_r=0.02, tip_black=0.05)
    _cat_face(img, cv, rng, tiger=True)
    return img


def _stripe(img, rng, x, y, length, width, lean):
    """A tapering wavy black stripe from (x, y) downward."""
    n = 10
    t = np.linspace(0, 1, n)
    wob = np.sin(t * math.pi * rng.uniform(1.0, 2.5) + rng.uniform(0, 6)) * width * 0.5
    cx = x + lean * t + wob
    cy = y + length * t
    w = width * (1 - t) ** 0.7 * (0.7 + 0.3 * np.sin(t * math.pi + 0.5))
    left = np.stack([cx - w / 2, cy], 1)
    right = np.stack([cx + w / 2, cy], 1)[::-1]
    poly = np.round(np.concatenate([left, right]) * 16).astype(np.int32)
    cv2.fillPoly(img, [poly], BLACK, cv2.LINE_AA, shift=4)
