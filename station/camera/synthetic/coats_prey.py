"""Prey coats: the wild boar's grizzled bristles and dark mane, the deer's red-brown
(roe) or chestnut with rows of white spots (sika) and white rump, the hare's ticked
agouti with black-tipped ears and white scut."""

from __future__ import annotations

import math

import cv2
import numpy as np

from station.camera.synthetic.fur import (
    BLACK, Canvas, Regions, bgr, ellipse, inside, lerp, noise, smoothstep,
)


def boar(cv: Canvas, rg: Regions, rng) -> np.ndarray:
    H, W = rg.H, rg.W
    ppu = cv.ppu
    base = lerp(bgr(34, 40, 46), bgr(58, 66, 74), smoothstep(0.1, 0.8, rg.rel)[..., None])
    base = np.where(rg.legs[..., None], bgr(28, 31, 35), base)
    img = (base * (0.85 + 0.3 * noise(rng, H, W, ppu * 0.2))[..., None]).astype(np.float32)
    mane = cv.plan.extras["mane"]
    cv2.fillPoly(img, [cv.fx(mane)], (24, 27, 30), cv2.LINE_AA, shift=4)
    # Bristles: thousands of short strokes lying down and back, grizzled at the tips.
    mask = np.maximum(rg.union, rg.legs.astype(np.float32))
    n = int(9000 * (ppu / 300) ** 2)
    xs = rng.uniform(0, W, n)
    ys = rng.uniform(0, H, n)
    dark = np.array([(18, 21, 24), (30, 34, 38), (44, 52, 62), (60, 76, 96)], np.float64)
    for x, y in zip(xs, ys):
        xi, yi = int(x), int(y)
        if mask[yi, xi] < 0.5:
            continue
        spine = rg.rel[yi, xi] < 0.18
        L = (0.05 if spine else 0.03) * ppu * rng.uniform(0.6, 1.3)
        a = math.radians(rng.normal(-80 if spine else 115, 18))
        x2, y2 = x + math.cos(a) * L, y + math.sin(a) * L
        if rng.random() < 0.8:
            c = dark[rng.integers(len(dark))]
        else:  # a grizzled tip
            c = np.array((120, 128, 134)) * rng.uniform(0.8, 1.1)
        cv2.line(img, (int(x * 16), int(y * 16)), (int(x2 * 16), int(y2 * 16)), c.tolist(),
                 1 if ppu < 400 else 2, cv2.LINE_AA, shift=4)
    # snout disc, tusk, eye
    nx, ny = cv.px(cv.plan.nose)
    ellipse(img, nx - 0.005 * ppu, ny + 0.005 * ppu, 0.018 * ppu, 0.04 * ppu, 0, (95, 100, 118))
    ellipse(img, nx - 0.003 * ppu, ny - 0.005 * ppu, 0.006 * ppu, 0.008 * ppu, 0, (30, 30, 40))
    ellipse(img, nx - 0.003 * ppu, ny + 0.018 * ppu, 0.006 * ppu, 0.008 * ppu, 0, (30, 30, 40))
    tusk = np.array([[nx - 0.12 * ppu, ny + 0.05 * ppu], [nx - 0.1 * ppu, ny + 0.01 * ppu],
                     [nx - 0.085 * ppu, ny - 0.005 * ppu]])
    cv2.polylines(img, [np.round(tusk * 16).astype(np.int32)], False, (190, 205, 215),
                  max(1, int(0.012 * ppu)), cv2.LINE_AA, shift=4)
    ex, ey = cv.px(cv.plan.eye)
    ellipse(img, ex, ey, cv.plan.eye_r * ppu, cv.plan.eye_r * ppu * 0.8, 0, (8, 10, 12))
    return img


# -- deer ---------------------------------------------------------------------------------
def deer(cv: Canvas, rg: Regions, rng, sika: bool) -> np.ndarray:
    H, W = rg.H, rg.W
    ppu = cv.ppu
    if sika:
        back, side, belly = bgr(28, 55, 105), bgr(40, 78, 140), bgr(130, 160, 190)
    else:
        back, side, belly = bgr(30, 62, 128), bgr(42, 84, 160), bgr(150, 175, 200)
    img = lerp(back, side, smoothstep(0.0, 0.45, rg.rel)[..., None])
    img = lerp(img, belly, smoothstep(0.8, 1.0, rg.rel)[..., None])
    legs = lerp(side, bgr(90, 110, 130), 0.45)
    img = np.where(rg.legs[..., None], legs, img)
    img = np.where((rg.head > 0.5)[..., None], side * 0.95, img)
    img *= (0.9 + 0.2 * noise(rng, H, W, ppu * 0.25))[..., None]
    img = img.astype(np.float32)
    # hooves dark at the bottom of the legs
    img[rg.Y > 0.955] = bgr(25, 28, 32)
    x0, x1 = rg.x0, rg.x1
    # white rump patch (black-edged for sika) around the tail
    tail = cv.px(cv.plan.tail[0])
    if sika:
        ellipse(img, tail[0] + 0.03 * ppu, tail[1] + 0.07 * ppu, 0.07 * ppu, 0.1 * ppu, 0, BLACK)
    ellipse(img, tail[0] + 0.035 * ppu, tail[1] + 0.07 * ppu, 0.058 * ppu, 0.088 * ppu, 0, (215, 225, 232))
    if sika:
        # a dark stripe along the spine and rows of white spots either side
        back = rg.top[(x0 + x1) // 2]
        for x in range(int(x0), int(x1), max(1, int(0.01 * ppu))):
            if rg.top[x] < back - 0.06 * ppu:  # the neck rises: the stripe ends at the withers
                break
            ellipse(img, x, rg.top[x] + 0.012 * ppu, 0.012 * ppu, 0.008 * ppu, 0, (22, 32, 50))
        for relr in (0.18, 0.32, 0.48, 0.62):
            step = 0.055 * ppu * rng.uniform(0.9, 1.1)
            for x in np.arange(x0 + 0.06 * ppu, x1 - 0.12 * ppu, step):
                xi = int(x)
                y = rg.top[xi] + relr * (rg.bot[xi] - rg.top[xi]) + rng.normal() * 0.01 * ppu
                if rng.random() < 0.85 and inside(rg.torso, x, y) and rg.top[xi] > back - 0.06 * ppu:
                    sx = x + rng.normal() * 0.01 * ppu
                    ellipse(img, sx, y, 0.013 * ppu, 0.011 * ppu, 0, (205, 218, 228))
    # ears: dark rims, pale inside; the head stays in front of the ear's base
    head = (rg.head > 0.5)[..., None]
    before = img.copy()
    for e in cv.plan.ears:
        cv2.fillPoly(img, [cv.fx(e)], (70, 95, 130), cv2.LINE_AA, shift=4)
        cv2.polylines(img, [cv.fx(e)], True, (25, 30, 38), max(1, int(0.01 * ppu)), cv2.LINE_AA, shift=4)
        c = cv.px(e.mean(0))
        ellipse(img, c[0], c[1], 0.02 * ppu, 0.045 * ppu, 25, (170, 185, 200))
    img = np.where(head, before, img)
    # face: black nose, white chin, dark eye
    nx, ny = cv.px(cv.plan.nose)
    ellipse(img, nx - 0.025 * ppu, ny + 0.012 * ppu, 0.04 * ppu, 0.026 * ppu, 10, (20, 22, 26))
    ellipse(img, nx - 0.045 * ppu, ny + 0.035 * ppu, 0.035 * ppu, 0.014 * ppu, 10, (205, 215, 225))
    ex, ey = cv.px(cv.plan.eye)
    r = cv.plan.eye_r * ppu
    ellipse(img, ex, ey, r * 1.3, r, -10, (8, 10, 12))
    ellipse(img, ex + 0.3 * r, ey - 0.3 * r, 0.2 * r, 0.2 * r, 0, (220, 225, 230))
    return img


# -- hare -------------------------------------------------------------------------------
def hare(cv: Canvas, rg: Regions, rng) -> np.ndarray:
    H, W = rg.H, rg.W
    ppu = cv.ppu
    back, side, belly = bgr(60, 88, 112), bgr(82, 112, 138), bgr(210, 220, 228)
    img = lerp(back, side, smoothstep(0.0, 0.5, rg.rel)[..., None])
    img = lerp(img, belly, smoothstep(0.78, 0.98, rg.rel)[..., None])
    img = np.where(rg.legs[..., None], lerp(side, belly, 0.4), img)
    img = np.where((rg.head > 0.5)[..., None], side * 1.02, img).astype(np.float32)
    # Agouti ticking: tiny dark and pale flecks everywhere.
    n = int(14000 * (ppu / 300) ** 2)
    xs, ys = rng.uniform(0, W, n), rng.uniform(0, H, n)
    for x, y in zip(xs, ys):
        if rg.rel[int(y), int(x)] > 0.8 and not rg.legs[int(y), int(x)]:
            continue
        c = (28, 34, 42) if rng.random() < 0.55 else (150, 172, 190)
        a = math.radians(rng.normal(160, 20))
        L = 0.012 * ppu
        tip = (int((x + math.cos(a) * L) * 16), int((y + math.sin(a) * L) * 16))
        cv2.line(img, (int(x * 16), int(y * 16)), tip,
                 c, 1, cv2.LINE_AA, shift=4)
    for e in cv.plan.ears:
        top = cv.px(e[np.argmin(e[:, 1])])
        cv2.polylines(img, [cv.fx(e)], True, (150, 165, 175), max(1, int(0.006 * ppu)), cv2.LINE_AA, shift=4)
        ellipse(img, top[0] + 0.01 * ppu, top[1] + 0.03 * ppu, 0.03 * ppu, 0.05 * ppu, -30, BLACK)
    ex, ey = cv.px(cv.plan.eye)
    r = cv.plan.eye_r * ppu
    ellipse(img, ex, ey, r * 1.5, r * 1.25, 0, (170, 190, 205))
    ellipse(img, ex, ey, r, r * 0.95, 0, (20, 35, 60))
    ellipse(img, ex + 0.3 * r, ey - 0.35 * r, 0.25 * r, 0.25 * r, 0, (210, 220, 230))
    tail = cv.px(cv.plan.tail[-1])
    ellipse(img, tail[0], tail[1], 0.05 * ppu, 0.05 * ppu, 0, (225, 232, 236))
    return img
