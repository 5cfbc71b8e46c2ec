"""One frame of the scene at one stream's size: the still forest, what walks through it,
the swaying plants, the snow, the light of the moment (or the IR look), sensor noise.

A :class:`StreamRenderer` owns the per-size assets (forest, plants, noise) and renders
any scene time on request; lores and main are two of them over the same
:class:`~station.camera.synthetic.scene.Schedule`, so the lores stream is identical
whether or not main frames are asked for.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

import cv2
import numpy as np

from station.camera.synthetic.forest import SwayLayer, paint_forest, make_vegetation
from station.camera.synthetic.scene import Schedule, light_drift, wind_strength

IR_WEIGHTS = np.array([[0.04, 0.31, 0.19]], np.float32)
"""Grey level under infrared (halved; the flash gain doubles it): foliage, strong in
green, reflects near-IR brightly."""
IR_KNEE = np.concatenate([np.arange(180, dtype=np.float32),
                          180 + 75 * (1 - np.exp(-np.arange(1024 - 180, dtype=np.float32) / 75))])
IR_LUT = np.clip(np.round(IR_KNEE), 0, 255).astype(np.uint8)
"""Soft shoulder so a pale animal close to the flash keeps its pattern instead of clipping."""
SNOW_FLAKES = 240


def blend_into(roi: np.ndarray, fg: np.ndarray, alpha: np.ndarray) -> None:
    """``roi = fg * alpha + roi * (1 - alpha)`` in place (uint8 images, float32 alpha)."""
    alpha = np.ascontiguousarray(alpha, np.float32)
    roi[:] = cv2.blendLinear(np.ascontiguousarray(fg), np.ascontiguousarray(roi), alpha, 1.0 - alpha)


class Sprite(Protocol):
    def draw(self, img: np.ndarray, t: float, night: bool) -> None: ...


class Painted:
    """The forest and its plants painted once (at the main size) for every stream."""

    def __init__(self, seed: int, size: tuple[int, int]):
        self.size = size
        self.forest, self.trunks = paint_forest(seed, size)
        self.vegetation = make_vegetation(seed, size)


class _Trunk:
    """A trunk's coverage at one stream size."""

    def __init__(self, occ, W: int, H: int, src_size: tuple[int, int]):
        sw, sh = src_size
        h0, w0 = occ.alpha.shape
        w, h = max(1, int(round(w0 * W / sw))), max(1, int(round(h0 * H / sh)))
        self.base_y = occ.base_y
        self.x = int(round(occ.x * W / sw))
        self.alpha = cv2.resize(occ.alpha, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)


class _Layer:
    """A swaying plant at one stream size, ready to remap each frame."""

    def __init__(self, layer: SwayLayer, W: int, H: int, src_size: tuple[int, int]):
        sw, sh = src_size
        fx, fy = W / sw, H / sh
        h0, w0 = layer.bgra.shape[:2]
        w, h = max(2, int(round(w0 * fx))), max(2, int(round(h0 * fy)))
        bgra = cv2.resize(layer.bgra, (w, h), interpolation=cv2.INTER_AREA if fx < 1 else cv2.INTER_LINEAR)
        weight = cv2.resize(layer.weight, (w, h), interpolation=cv2.INTER_LINEAR)
        x, y = int(round(layer.x * W)), int(round(layer.y * H))
        # Clip to the frame.
        cx0, cy0 = max(0, -x), max(0, -y)
        cx1, cy1 = min(w, W - x), min(h, H - y)
        self.x, self.y = x + cx0, y + cy0
        self.bgr = np.ascontiguousarray(bgra[cy0:cy1, cx0:cx1, :3])
        self.alpha = np.ascontiguousarray(bgra[cy0:cy1, cx0:cx1, 3]).astype(np.float32) / 255.0
        self.weight = np.ascontiguousarray(weight[cy0:cy1, cx0:cx1]).astype(np.float32)
        hh, ww = self.alpha.shape
        self.gx, self.gy = np.meshgrid(np.arange(ww, dtype=np.float32), np.arange(hh, dtype=np.float32))
        self.xn = ((np.arange(ww, dtype=np.float32) + self.x) / W)[None, :]
        self.src = layer
        self.W = W


class StreamRenderer:
    """Renders scene time ``t`` at ``size`` (width, height)."""

    def __init__(self, seed: int, size: tuple[int, int], painted: "Painted",
                 stream: int, noise_sigma: tuple[float, float]):
        W, H = size
        self.seed, self.size, self.stream = seed, size, stream
        forest = painted.forest
        if painted.size != size:
            forest = cv2.resize(forest, size, interpolation=cv2.INTER_AREA)
        self.forest = forest
        self.layers = [_Layer(v, W, H, painted.size) for v in painted.vegetation]
        self.trunks = [_Trunk(o, W, H, painted.size) for o in painted.trunks]
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        r2 = ((xx - W / 2) / (W / 2)) ** 2 + ((yy - H * 0.55) / (H * 0.75)) ** 2
        # The IR flash: bright in the middle and near the ground, falling off to the corners.
        ir = 1.8 * np.clip(1.0 - 0.75 * r2, 0.08, 1.0) ** 1.3 * (0.7 + 0.45 * yy / H)
        self.ir_gain = np.clip(ir * 2 * 64, 0, 65535).astype(np.uint16)
        rng = np.random.default_rng([seed, 0x401, stream])
        self.pad = 24
        day_sigma, night_sigma = noise_sigma
        n = rng.normal(0.0, day_sigma, (H + self.pad, W + self.pad, 3))
        self.day_pos, self.day_neg = _split(n)
        n = rng.normal(0.0, night_sigma, (H + self.pad, W + self.pad))
        self.night_pos, self.night_neg = _split(n)
        f = np.random.default_rng([seed, 0x5_40_3])  # snow: same flakes in every stream
        self.flakes = {
            "x": f.random(SNOW_FLAKES), "y": f.random(SNOW_FLAKES),
            "vy": f.uniform(0.10, 0.30, SNOW_FLAKES), "vx": f.uniform(-0.025, 0.025, SNOW_FLAKES),
            "wob": f.uniform(0.003, 0.012, SNOW_FLAKES), "wf": f.uniform(0.3, 1.1, SNOW_FLAKES),
            "ph": f.uniform(0, 2 * math.pi, SNOW_FLAKES), "size": f.uniform(0.7, 2.0, SNOW_FLAKES),
            "lum": f.uniform(200, 255, SNOW_FLAKES), "rank": f.random(SNOW_FLAKES),
        }

    def render(self, schedule: Schedule, t: float, index: int,
               sprite_for: Callable[[object], Sprite]) -> tuple[np.ndarray, bool]:
        """``(image, night)``: BGR by day, single-channel grey under IR."""
        img = self.forest.copy()
        night = schedule.is_night(t)
        for c in schedule.crossings_at(t):
            sprite_for(c).draw(img, t, night)
            self._hide_behind_trunks(img, c, t)
        gusts = schedule.disturbances_at(t, "gust")
        self._sway(img, t, wind_strength(self.seed, t, gusts))
        snow = max((d.strength * d.level(t) for d in schedule.disturbances_at(t, "snow")), default=0.0)
        if snow > 0:
            self._snow(img, t, snow, night)
        if night:
            out = self._infrared(img)
        else:
            out = self._daylight(img, schedule, t, snow)
        self._noise(out, index, night)
        return out, night

    def _hide_behind_trunks(self, img: np.ndarray, crossing, t: float) -> None:
        """Put back the trunks that stand nearer the camera than the animal."""
        box = crossing.box(min(max(t, crossing.start_s), crossing.end_s))
        if box is None:
            return
        H, W = img.shape[:2]
        bx0, bx1 = int((box[0] - 0.1) * W), int((box[0] + box[2] + 0.1) * W) + 1
        by1 = min(H, int((box[1] + box[3] + 0.05) * H) + 1)
        for tr in self.trunks:
            if tr.base_y <= crossing.ground_y:
                continue
            x0, x1 = max(bx0, tr.x), min(bx1, tr.x + tr.alpha.shape[1], W)
            y1 = min(by1, tr.alpha.shape[0])
            if x1 <= x0 or y1 <= 0:
                continue
            blend_into(img[:y1, x0:x1], self.forest[:y1, x0:x1], tr.alpha[:y1, x0 - tr.x:x1 - tr.x])

    # -- wind -----------------------------------------------------------------------------
    def _sway(self, img: np.ndarray, t: float, wind: float) -> None:
        for L in self.layers:
            s = L.src
            w = 2 * math.pi * s.freq * t + s.phase
            # a wave running through the plant plus a faster flutter
            osc = (np.sin(w - 5.0 * L.xn) + 0.35 * np.sin(2.7 * w + 1.3 - 11.0 * L.xn)
                   + 0.15 * math.sin(0.37 * w))
            amp = s.amp * L.W * wind
            dx = L.weight * (osc * amp)
            dy = L.weight * (np.abs(osc) * amp * s.lift)
            mx = L.gx - dx
            my = L.gy + dy
            bgr = cv2.remap(L.bgr, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            a = cv2.remap(L.alpha, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            h, w_ = a.shape
            blend_into(img[L.y:L.y + h, L.x:L.x + w_], bgr, a)

    # -- snow -----------------------------------------------------------------------------
    def _snow(self, img: np.ndarray, t: float, density: float, night: bool) -> None:
        H, W = img.shape[:2]
        f = self.flakes
        on = f["rank"] < density
        x = (f["x"] + f["vx"] * t + f["wob"] * np.sin(2 * math.pi * f["wf"] * t + f["ph"])) % 1.0
        y = (f["y"] + f["vy"] * t) % 1.04 - 0.02
        scale = H / 180.0  # flake sizes are given in lores pixels
        streak = f["vy"] * H / 40.0  # a short exposure smears the fall
        for i in np.flatnonzero(on):
            px, py = x[i] * W, y[i] * H
            r = f["size"][i] * scale * 0.5
            lum = float(f["lum"][i])
            col = (lum, lum, lum) if night else (lum, lum, lum * 0.98)
            p1 = (int(px * 16), int((py - streak[i]) * 16))
            p2 = (int(px * 16), int(py * 16))
            cv2.line(img, p1, p2, col, max(1, int(round(2 * r))), cv2.LINE_AA, shift=4)

    # -- light ----------------------------------------------------------------------------
    def _daylight(self, img: np.ndarray, schedule: Schedule, t: float, snow: float) -> np.ndarray:
        g = np.array(light_drift(self.seed, t), np.float32)
        jump = 1.0
        for d in schedule.disturbances_at(t, "light_jump"):
            jump *= 1.0 + (d.strength - 1.0) * d.level(t)
        g *= jump
        haze = 0.12 * snow  # falling snow veils the far woods
        m = np.zeros((3, 4), np.float32)
        for i in range(3):
            m[i, i] = g[i] * (1.0 - haze)
            m[i, 3] = g[i] * haze * 190.0
        return cv2.transform(img, m)

    def _infrared(self, img: np.ndarray) -> np.ndarray:
        grey = cv2.transform(img, IR_WEIGHTS)
        lit = cv2.multiply(grey.astype(np.uint16), self.ir_gain, scale=1.0 / 64, dtype=cv2.CV_16U)
        return IR_LUT[np.minimum(lit, 1023)]

    def _noise(self, img: np.ndarray, index: int, night: bool) -> None:
        H, W = img.shape[:2]
        k = (index * 2654435761 + self.stream * 97 + self.seed * 7919) & 0xFFFFFFFF
        ox, oy = k % self.pad, (k >> 8) % self.pad
        ox2, oy2 = (k >> 16) % self.pad, (k >> 24) % self.pad
        pos, neg = (self.night_pos, self.night_neg) if night else (self.day_pos, self.day_neg)
        cv2.add(img, pos[oy:oy + H, ox:ox + W], dst=img)
        cv2.subtract(img, neg[oy2:oy2 + H, ox2:ox2 + W], dst=img)


def _split(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed noise as two saturating uint8 parts (add one, subtract the other)."""
    n = np.round(n)
    return (np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8))
