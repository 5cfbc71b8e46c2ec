"""The still forest: painted once per seed, then only relit and swayed each frame.

:func:`paint_forest` returns the background (misty far woods, trunks with bark at
several depths, leaf litter and a trail) and :func:`make_vegetation` the foreground
plants that the wind moves, as BGRA sprites with a sway weight per pixel (0 at the
root, 1 at the tips). Both are painted at the main resolution; the lores stream gets
them resized, so the two streams show the same scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def value_noise(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int = 3,
                aniso: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Smooth fractal noise in [0, 1], float32, features about ``cell`` pixels wide.

    ``aniso`` stretches the cells (y, x), e.g. (8, 1) for vertical bark streaks.
    """
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        c = max(1.0, cell / (2 ** o))
        gh = max(2, int(h / (c * aniso[0])) + 2)
        gw = max(2, int(w / (c * aniso[1])) + 2)
        grid = rng.random((gh, gw), dtype=np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(1e-6, hi - lo)


def _lerp(a, b, t):
    return a + (b - a) * t


def _col(bgr) -> np.ndarray:
    return np.asarray(bgr, np.float32)


# -- background ----------------------------------------------------------------------------
@dataclass
class Occluder:
    """A trunk that hides whatever walks behind it: its outline and where it stands."""

    base_y: float
    """Where the trunk meets the ground, as a fraction of the frame height."""
    x: int
    alpha: np.ndarray
    """Coverage (0..1, float32) of columns ``x .. x + width`` from the top of the frame."""


def paint_forest(seed: int, size: tuple[int, int]) -> tuple[np.ndarray, list[Occluder]]:
    """The static forest at ``size`` (width, height) as BGR uint8, and its trunks."""
    W, H = size
    rng = np.random.default_rng([seed, 0xF0E57])
    yh = int(H * rng.uniform(0.40, 0.47))  # where the ground meets the far woods
    haze = _col((172, 182, 170))
    img = np.zeros((H, W, 3), np.float32)
    ys = np.arange(H, dtype=np.float32)[:, None]

    # Far woods: a hazy wall of foliage, lighter at the top, with gaps of sky.
    t = np.clip(ys / max(1, yh), 0, 1)[..., None]
    top, low = _col((150, 168, 152)), _col((62, 92, 74))
    img[:] = _lerp(top, low, t)
    fol = value_noise(rng, H, W, W / 14, 4)[..., None]
    fine = value_noise(rng, H, W, W / 80, 2)[..., None]
    dark, light = _col((38, 68, 48)), _col((112, 150, 128))
    img = _lerp(img, _lerp(dark, light, fine), 0.55 * (0.6 + 0.4 * fol))
    gaps = np.clip((fol[..., 0] - 0.72) * 6, 0, 1) * np.clip(1.3 - ys[:, 0:1] / max(1, yh), 0, 1)
    img = _lerp(img, _col((214, 222, 216)), gaps[..., None] * 0.8)
    # Thin far trunks in the haze.
    for _ in range(int(rng.integers(28, 44))):
        x = rng.uniform(0, W)
        w = rng.uniform(0.002, 0.008) * W
        base = yh + rng.uniform(-0.02, 0.05) * H
        c = _lerp(_col((52, 60, 66)), haze, rng.uniform(0.35, 0.7))
        pts = np.array([[x - w / 2, -5], [x + w / 2, -5], [x + w * 0.7, base], [x - w * 0.7, base]])
        cv2.fillPoly(img, [np.round(pts).astype(np.int32)], c.tolist(), cv2.LINE_AA)
    img = cv2.GaussianBlur(img, (0, 0), max(0.6, W / 900))

    # Ground: olive-brown near the horizon, darker and warmer towards the camera.
    g = np.clip((ys - yh) / max(1, H - yh), 0, 1)
    ground = _lerp(_col((92, 112, 116)), _col((38, 58, 82)), g[..., None] ** 0.8)
    soil = value_noise(rng, H, W, W / 10, 4)[..., None]
    ground = ground * (0.8 + 0.4 * soil)
    edge = np.clip((ys - yh + 6) / 12.0, 0, 1)[..., None]
    img = _lerp(img, ground, edge)

    # The trail the animals follow: a lighter band of packed earth.
    trail_c = rng.uniform(0.62, 0.74) * H
    xs = np.arange(W, dtype=np.float32)
    wave = trail_c + 0.03 * H * np.sin(xs / W * 2 * np.pi * rng.uniform(0.5, 1.2) + rng.uniform(0, 6))
    half = 0.055 * H + 0.03 * H * (wave - yh) / (H - yh)
    dist = np.abs(ys - wave[None, :]) / half[None, :]
    tr = np.clip(1.3 - dist, 0, 1) ** 1.5
    tr *= 0.6 + 0.4 * value_noise(rng, H, W, W / 20, 3)
    img = _lerp(img, _col((76, 98, 118)) * (0.85 + 0.3 * soil), tr[..., None] * 0.75)

    img = np.clip(img, 0, 255)
    _leaf_litter(img, rng, yh, tr)
    occluders = _trunks(img, rng, yh, haze)
    _shrubs(img, rng, yh, haze)

    # Dappled light and a soft lens.
    dapple = value_noise(rng, H, W, W / 7, 3)
    img *= (0.82 + 0.3 * dapple)[..., None]
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    r2 = ((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2
    img *= (1.0 - 0.18 * r2)[..., None]
    img *= (0.9 + 0.2 * value_noise(rng, H, W, 2.0, 1))[..., None]
    img = cv2.GaussianBlur(img, (0, 0), max(0.5, W / 2400))
    return np.clip(img, 0, 255).astype(np.uint8), occluders


LITTER = [(34, 60, 100), (40, 75, 125), (28, 48, 80), (45, 85, 135), (60, 90, 110),
          (35, 70, 95), (25, 40, 60), (70, 105, 140), (40, 75, 70), (36, 80, 145), (70, 88, 96)]


def _leaf_litter(img: np.ndarray, rng: np.random.Generator, yh: int, trail: np.ndarray) -> None:
    """Fallen leaves, twigs and a few stones, smaller towards the horizon."""
    H, W = img.shape[:2]
    n = int(7000 * (W * H) / (1280 * 720) ** 1.0 * 0.6) + 2500
    ys = yh + (H - yh) * rng.random(n) ** 0.8
    xs = rng.uniform(-10, W + 10, n)
    depth = (ys - yh) / (H - yh)
    order = np.argsort(ys)
    cols = np.asarray(LITTER, np.float32)
    for i in order:
        x, y, d = xs[i], ys[i], depth[i]
        yi, xi = min(H - 1, int(y)), min(W - 1, max(0, int(x)))
        if trail[yi, xi] > 0.35 and rng.random() < 0.9:
            continue
        s = (0.003 + 0.012 * d) * W * rng.uniform(0.6, 1.4)
        c = cols[rng.integers(len(cols))] * rng.uniform(0.75, 1.2)
        c = _lerp(c, _col((95, 112, 118)), 0.5 * (1 - d))
        ax = (max(1, int(s)), max(1, int(s * rng.uniform(0.3, 0.55))))
        ang = float(rng.uniform(0, 180))
        off = max(1, int(s * 0.25))
        cv2.ellipse(img, (int(x), int(y) + off), ax, ang, 0, 360, (c * 0.45).tolist(), -1, cv2.LINE_AA)
        cv2.ellipse(img, (int(x), int(y)), ax, ang, 0, 360, c.tolist(), -1, cv2.LINE_AA)
        if ax[0] > 3 and rng.random() < 0.5:  # the midrib
            cv2.ellipse(img, (int(x), int(y)), (ax[0], 0), ang, 0, 360,
                        (c * 0.7).tolist(), 1, cv2.LINE_AA)
    for _ in range(int(25 * W / 1280)):  # twigs
        y = yh + (H - yh) * rng.random() ** 0.7
        d = (y - yh) / (H - yh)
        x = rng.uniform(0, W)
        L = (0.01 + 0.035 * d) * W
        a = rng.uniform(-0.5, 0.5)
        p1 = (int(x), int(y))
        p2 = (int(x + L * np.cos(a)), int(y + L * np.sin(a)))
        cv2.line(img, p1, p2, _lerp(_col((35, 45, 55)), _col((95, 112, 118)), 0.5 * (1 - d)).tolist(),
                 max(1, int((1 + 3 * d) * W / 1280)), cv2.LINE_AA)
    for _ in range(int(rng.integers(1, 4))):  # stones with moss on top
        y = yh + (H - yh) * rng.uniform(0.3, 1.0)
        d = (y - yh) / (H - yh)
        x = rng.uniform(0, W)
        r = (0.01 + 0.03 * d) * W
        c = _lerp(_col((105, 110, 108)), _col((95, 112, 118)), 0.4 * (1 - d))
        for k in range(6):  # shaded from below to the lit top
            f = k / 5
            cv2.ellipse(img, (int(x - r * 0.1 * f), int(y - r * 0.25 * f)),
                        (max(1, int(r * (1 - 0.45 * f))), max(1, int(r * 0.5 * (1 - 0.45 * f)))),
                        0, 0, 360, (c * (0.45 + 0.6 * f)).tolist(), -1, cv2.LINE_AA)
        cv2.ellipse(img, (int(x - r * 0.15), int(y - r * 0.32)), (int(r * 0.45), max(1, int(r * 0.12))),
                    0, 0, 360,
                    (_col((55, 105, 85)) * (0.7 + 0.3 * d)).tolist(), -1, cv2.LINE_AA)


BARK = {
    "oak": ((58, 64, 70), (28, 32, 36)),
    "pine": ((60, 80, 112), (30, 38, 52)),
    "birch": ((205, 212, 214), (40, 40, 42)),
    "lime": ((80, 88, 92), (44, 48, 52)),
}


def _trunks(img: np.ndarray, rng: np.random.Generator, yh: int, haze: np.ndarray) -> list[Occluder]:
    """Trunks from far to near: hazy and thin behind, dark and wide in front."""
    H, W = img.shape[:2]
    n = int(rng.integers(5, 8))
    depths = np.sort(rng.uniform(0.0, 0.85, n))
    kinds = list(rng.choice(["oak", "pine", "lime", "oak", "pine"], n))
    kinds[int(rng.integers(n))] = "birch"
    xs = rng.uniform(0.05, 0.95, n) * W
    # One big trunk at an edge of the frame, partly out of it.
    depths = np.append(depths, 1.0)
    kinds.append(str(rng.choice(["oak", "pine"])))
    xs = np.append(xs, rng.choice([rng.uniform(-0.02, 0.05), rng.uniform(0.95, 1.02)]) * W)
    out: list[Occluder] = []
    for x, d, kind in zip(xs, depths, kinds):
        w = (0.012 + 0.075 * d ** 1.4) * W
        base = yh + (0.04 + 0.5 * d) * (H - yh)
        occ = _trunk(img, rng, x, w, base, d, kind, haze)
        if occ is not None:
            out.append(occ)
    return out


def _trunk(img, rng, x, w, base, d, kind, haze) -> Occluder | None:
    H, W = img.shape[:2]
    x0, x1 = int(max(0, x - w)), int(min(W, x + w))
    y1 = int(min(H, base + w * 0.25))
    if x1 - x0 < 2 or y1 < 2:
        return None
    h, ww = y1, x1 - x0
    xx = (np.arange(x0, x1, dtype=np.float32) - x)[None, :]
    yy = np.arange(0, y1, dtype=np.float32)[:, None]
    # Root flare widens the base; a slight lean.
    lean = rng.uniform(-0.04, 0.04) * (yy - base)
    flare = 1.0 + 0.55 * np.clip((yy - (base - 1.2 * w)) / (1.2 * w), 0, 1) ** 2
    half = w / 2 * flare
    u = (xx - lean) / half  # -1..1 across the trunk
    inside = np.clip((1.0 - np.abs(u)) * half / 1.5, 0, 1)
    inside *= np.clip((base - yy) / 3.0 + 1.0, 0, 1)
    light_c, dark_c = (_col(c) for c in BARK[kind])
    if kind == "birch":
        streak = value_noise(rng, h, ww, max(4.0, w * 0.25), 2, aniso=(0.25, 1.0))
        marks = (value_noise(rng, h, ww, max(4.0, w * 0.5), 2, aniso=(0.25, 1.4)) > 0.72).astype(np.float32)
        grain = value_noise(rng, h, ww, max(2.0, w * 0.06), 2, aniso=(0.5, 1.0))
        tex = (1.0 - 0.85 * marks * (0.5 + 0.5 * streak)) * (0.85 + 0.15 * grain)
    else:
        furrow = value_noise(rng, h, ww, max(2.0, w * 0.09), 2, aniso=(14.0, 1.0))
        plates = value_noise(rng, h, ww, max(3.0, w * 0.35), 3, aniso=(3.0, 1.0))
        grain = value_noise(rng, h, ww, max(1.5, w * 0.04), 1)
        ridge = np.clip((furrow - 0.38) * 3.0, 0, 1)
        tex = np.clip(ridge * (0.55 + 0.6 * plates) * (0.8 + 0.3 * grain), 0, 1)
    col = _lerp(dark_c, light_c, tex[..., None])
    # Round trunk lit from the upper left; moss creeping up the base.
    shade = np.clip(0.55 + 0.55 * np.cos((u + 0.35) * 1.3), 0.25, 1.1)
    col *= shade[..., None]
    moss = np.clip(1.0 - (base - yy) / (1.2 * w), 0, 1) ** 2 * (tex > 0.45) * (u < 0.2)
    col = _lerp(col, _col((50, 100, 75)), (0.45 * moss)[..., None])
    col = _lerp(col, haze, 0.6 * (1 - d) ** 1.5)
    roi = img[0:y1, x0:x1]
    roi[:] = _lerp(roi, col, inside[..., None])
    return Occluder(base_y=float(base / H), x=x0, alpha=inside.astype(np.float32))


def _shrubs(img: np.ndarray, rng: np.random.Generator, yh: int, haze: np.ndarray) -> None:
    """Undergrowth: clumps of small leaves along the far edge of the ground."""
    H, W = img.shape[:2]
    greens = np.asarray([(40, 95, 60), (55, 120, 80), (30, 75, 50), (60, 130, 110), (45, 100, 95)],
                        np.float32)
    for _ in range(int(rng.integers(6, 12))):
        d = rng.uniform(0.0, 0.5)
        cx = rng.uniform(0, W)
        cy = yh + d * (H - yh) * 0.5
        rx = rng.uniform(0.03, 0.09) * W * (0.6 + d)
        ry = rx * rng.uniform(0.35, 0.6)
        for _ in range(int(rx * ry / (W * 0.004) ** 2 * 1.4) + 10):
            a = rng.uniform(0, 2 * np.pi)
            r = np.sqrt(rng.random())
            x = cx + r * rx * np.cos(a)
            y = cy - abs(r * ry * np.sin(a)) * 1.6 + ry * 0.2
            s = (0.003 + 0.006 * d) * W * rng.uniform(0.7, 1.3)
            lit = 0.75 + 0.35 * (cy - y) / (2 * ry)  # the top of a bush catches the light
            c = greens[rng.integers(len(greens))] * rng.uniform(0.6, 1.15) * lit
            c = _lerp(c, haze, 0.45 * (1 - d))
            cv2.ellipse(img, (int(x), int(y)), (max(1, int(s)), max(1, int(s * 0.5))),
                        float(rng.uniform(0, 180)), 0, 360, c.tolist(), -1, cv2.LINE_AA)


# -- swaying foreground --------------------------------------------------------------------
@dataclass
class SwayLayer:
    """A foreground plant: BGRA sprite placed at ``(x, y)`` (frame fractions).

    ``weight`` (0..1 per pixel) says how far each pixel swings; ``freq`` (Hz), ``phase``
    and ``amp`` (frame widths at weight 1) set its own rhythm in the common wind.
    """

    x: float
    y: float
    bgra: np.ndarray
    weight: np.ndarray
    amp: float
    freq: float
    phase: float
    lift: float
    """Vertical share of the swing (branches bob, grass mostly leans)."""


def make_vegetation(seed: int, size: tuple[int, int]) -> list[SwayLayer]:
    """Grass and fern clumps along the bottom edge and a leafy branch from the top."""
    W, H = size
    rng = np.random.default_rng([seed, 0x6A55])
    layers: list[SwayLayer] = []
    n = int(rng.integers(2, 4))
    centres = np.sort(rng.choice([0.06, 0.2, 0.8, 0.94, 0.35, 0.65], n, replace=False))
    for cx in centres:
        layers.append(_grass_clump(rng, W, H, float(cx)))
    layers.append(_branch(rng, W, H, left=bool(rng.random() < 0.5)))
    return layers


GRASS = [(60, 140, 120), (50, 120, 100), (70, 160, 150), (60, 150, 170), (80, 170, 190), (40, 100, 80)]


def _grass_clump(rng, W, H, cx: float) -> SwayLayer:
    cw, ch = int(rng.uniform(0.12, 0.2) * W), int(rng.uniform(0.18, 0.3) * H)
    pad = int(0.02 * W)
    sw, sh = cw + 2 * pad, ch + pad
    img = np.zeros((sh, sw, 3), np.float32)
    alpha = np.zeros((sh, sw), np.float32)
    cols = np.asarray(GRASS, np.float32)
    for _ in range(int(rng.integers(60, 110))):
        root = pad + cw * (0.5 + 0.5 * rng.normal() * 0.35)
        height = ch * rng.uniform(0.35, 0.98)
        lean = rng.normal() * 0.35 * height
        width = rng.uniform(0.002, 0.005) * W
        tt = np.linspace(0, 1, 12)
        px = root + lean * tt ** 2
        py = sh - 1 - height * tt
        c = cols[rng.integers(len(cols))] * rng.uniform(0.7, 1.2)
        left = np.stack([px - width * (1 - tt) / 2, py], 1)
        right = np.stack([px + width * (1 - tt) / 2, py], 1)[::-1]
        poly = np.round(np.concatenate([left, right]) * 16).astype(np.int32)
        cv2.fillPoly(img, [poly], (c * rng.uniform(0.8, 1.0)).tolist(), cv2.LINE_AA, shift=4)
        cv2.fillPoly(alpha, [poly], 1.0, cv2.LINE_AA, shift=4)
    if rng.random() < 0.6:  # a fern frond or two
        for _ in range(int(rng.integers(1, 3))):
            _fern(img, alpha, rng, pad + cw * rng.uniform(0.3, 0.7), sh - 1, ch * rng.uniform(0.5, 0.9), W)
    shade = np.linspace(0.55, 1.05, sh, dtype=np.float32)[:, None, None]  # darker near the roots
    img *= shade
    rows = np.clip((sh - 1 - np.arange(sh, dtype=np.float32)) / ch, 0, 1) ** 1.6
    weight = np.repeat(rows[:, None], sw, 1).astype(np.float32)
    bgra = np.dstack([np.clip(img, 0, 255), np.clip(alpha * 255, 0, 255)]).astype(np.uint8)
    return SwayLayer(x=(cx * W - sw / 2) / W, y=(H - sh) / H, bgra=bgra, weight=weight,
                     amp=rng.uniform(0.0025, 0.0040), freq=rng.uniform(0.5, 0.9),
                     phase=rng.uniform(0, 2 * np.pi), lift=0.1)


def _fern(img, alpha, rng, x0, y0, length, W) -> None:
    ang = -np.pi / 2 + rng.normal() * 0.4
    bend = rng.uniform(0.6, 1.2) * (1 if rng.random() < 0.5 else -1)
    c = np.asarray((50, 130, 90), np.float32) * rng.uniform(0.8, 1.1)
    pts = []
    for i in range(30):
        t = i / 29
        a = ang + bend * t * t
        if pts:
            px, py = pts[-1]
        else:
            px, py = x0, y0
        pts.append((px + np.cos(a) * length / 29, py + np.sin(a) * length / 29))
        if i > 4 and i % 2 == 0:
            leaf = length * 0.22 * (1 - t) + 2
            for side in (-1, 1):
                la = a + side * 1.2
                q = np.round(np.array([[px, py], [px + np.cos(la) * leaf, py + np.sin(la) * leaf]]) * 16)
                p0, p1 = tuple(q[0].astype(int)), tuple(q[1].astype(int))
                th = max(1, int(W * 0.004))
                cv2.line(img, p0, p1, c.tolist(), th, cv2.LINE_AA, shift=4)
                cv2.line(alpha, p0, p1, 1.0, th, cv2.LINE_AA, shift=4)
    poly = np.round(np.asarray(pts) * 16).astype(np.int32)
    cv2.polylines(img, [poly], False, (c * 0.8).tolist(), max(1, int(W * 0.002)), cv2.LINE_AA, shift=4)
    cv2.polylines(alpha, [poly], False, 1.0, max(1, int(W * 0.002)), cv2.LINE_AA, shift=4)


LEAVES = [(40, 110, 70), (50, 130, 90), (35, 95, 60), (60, 150, 120), (45, 120, 110)]


def _branch(rng, W, H, left: bool) -> SwayLayer:
    """A leafy branch reaching into the frame from a top corner."""
    bw, bh = int(rng.uniform(0.25, 0.38) * W), int(rng.uniform(0.22, 0.34) * H)
    pad = int(0.02 * W)
    sw, sh = bw + pad, bh + pad
    img = np.zeros((sh, sw, 3), np.float32)
    alpha = np.zeros((sh, sw), np.float32)
    # Main twig from the corner (anchor) curving down into the frame.
    ax, ay = 0.0, 0.0
    pts = [(ax, ay)]
    a = rng.uniform(0.25, 0.6)
    seg = bw / 10
    for _ in range(10):
        a += rng.normal() * 0.15 + 0.03
        px, py = pts[-1]
        pts.append((px + np.cos(a) * seg, py + np.sin(a) * seg))
    twigs = [pts]
    for i in range(2, 9, 2):  # side twigs
        px, py = pts[i]
        b = a + rng.choice([-1, 1]) * rng.uniform(0.5, 1.0)
        sub = [(px, py)]
        for _ in range(4):
            b += rng.normal() * 0.2
            qx, qy = sub[-1]
            sub.append((qx + np.cos(b) * seg * 0.6, qy + np.sin(b) * seg * 0.6))
        twigs.append(sub)
    wood = (40, 55, 70)
    for k, tw in enumerate(twigs):
        poly = np.round(np.asarray(tw) * 16).astype(np.int32)
        th = max(1, int(W * (0.006 if k == 0 else 0.003)))
        cv2.polylines(img, [poly], False, wood, th, cv2.LINE_AA, shift=4)
        cv2.polylines(alpha, [poly], False, 1.0, th, cv2.LINE_AA, shift=4)
    cols = np.asarray(LEAVES, np.float32)
    for tw in twigs:
        for (px, py) in tw[1:]:
            for _ in range(int(rng.integers(2, 5))):
                L = rng.uniform(0.018, 0.03) * W
                la = rng.uniform(0, 2 * np.pi)
                cx, cy = px + np.cos(la) * L * 0.6, py + np.sin(la) * L * 0.6
                c = cols[rng.integers(len(cols))] * rng.uniform(0.7, 1.2)
                e = cv2.ellipse2Poly((int(cx * 16), int(cy * 16)), (int(L * 8), int(L * 3.6)),
                                     int(np.degrees(la)), 0, 360, 10)
                cv2.fillPoly(img, [e], c.tolist(), cv2.LINE_AA, shift=4)
                cv2.fillPoly(alpha, [e], 1.0, cv2.LINE_AA, shift=4)
                cv2.line(img, (int(cx * 16), int(cy * 16)), (int((cx + np.cos(la) * L * 0.4) * 16),
                         int((cy + np.sin(la) * L * 0.4) * 16)), (c * 0.75).tolist(), 1, cv2.LINE_AA, shift=4)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    weight = np.clip(np.hypot(xx, yy) / np.hypot(bw, bh), 0, 1) ** 1.3
    if not left:
        img, alpha, weight = img[:, ::-1], alpha[:, ::-1], weight[:, ::-1]
    bgra = np.dstack([np.clip(img, 0, 255), np.clip(alpha * 255, 0, 255)]).astype(np.uint8)
    return SwayLayer(x=0.0 if left else (W - sw) / W, y=0.0, bgra=np.ascontiguousarray(bgra),
                     weight=np.ascontiguousarray(weight), amp=rng.uniform(0.004, 0.006),
                     freq=rng.uniform(0.3, 0.55), phase=rng.uniform(0, 2 * np.pi), lift=0.45)
