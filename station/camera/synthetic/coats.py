"""Coats: the fur (or clothes) texture under each animal's silhouette, and the person's clothes.

A classifier keys on texture, so the patterns are drawn with care: a leopard's pale
golden coat with large thick-ringed rosettes, solid spots on head and legs; a tiger's
orange with tapering black stripes and white belly and cheeks; a boar's grizzled
bristles and mane; a deer's red-brown (roe) or chestnut with white spots (sika); a
hare's ticked agouti with black ear tips; a person's jacket, trousers and boots.

The coat is painted once per crossing on a canvas in the plan's units (``ppu`` pixels
per box height), shaded for volume, and then only masked by the moving silhouette.
"""

from __future__ import annotations

import cv2
import numpy as np

from station.camera.synthetic.bodies import Plan
from station.camera.synthetic.coats_cats import leopard, tiger
from station.camera.synthetic.coats_prey import boar, deer, hare
from station.camera.synthetic.fur import Canvas, Regions, bgr, ellipse, fur_grain, noise, shade

OUTFITS = [
    ((48, 88, 78), (88, 118, 138)),    # olive jacket, khaki trousers
    ((95, 55, 32), (58, 58, 60)),      # navy jacket, grey trousers
    ((40, 42, 165), (30, 32, 34)),     # red jacket, black trousers
    (None, None),                      # camouflage
]


def clothes(cv: Canvas, rg: Regions, rng, outfit: int) -> np.ndarray:
    H, W = rg.H, rg.W
    ppu = cv.ppu
    Y = rg.Y
    jacket, trousers = OUTFITS[outfit % len(OUTFITS)]
    if jacket is None:
        camo = noise(rng, H, W, ppu * 0.05, 2)
        camo2 = noise(rng, H, W, ppu * 0.05, 2)
        jac = np.where((camo > 0.55)[..., None], bgr(40, 70, 60), bgr(70, 110, 105))
        jac = np.where((camo2 > 0.65)[..., None], bgr(35, 50, 60), jac)
        tro = jac
    else:
        jac = np.broadcast_to(bgr(*jacket), (H, W, 3))
        tro = np.broadcast_to(bgr(*trousers), (H, W, 3))
    img = np.where((Y < 0.545)[..., None], jac, tro).astype(np.float32)
    img[Y > 0.93] = bgr(30, 42, 58)  # boots
    # fabric folds
    img *= (0.9 + 0.2 * noise(rng, H, W, ppu * 0.04, 2))[..., None]
    # head: skin, hair, cap
    skin = (135, 165, 205)
    cv2.fillPoly(img, [cv.fx(cv.plan.head)], skin, cv2.LINE_AA, shift=4)
    cap, pack = cv.plan.ears
    cv2.fillPoly(img, [cv.fx(cap)], (40, 45, 50) if outfit != 2 else (50, 80, 60), cv2.LINE_AA, shift=4)
    cv2.fillPoly(img, [cv.fx(pack)], (45, 62, 72), cv2.LINE_AA, shift=4)
    px0, py0 = cv.px(pack.min(0))
    px1, _ = cv.px(pack.max(0))
    cv2.rectangle(img, (int(px0), int(py0 + 0.1 * ppu)), (int(px1), int(py0 + 0.13 * ppu)), (30, 40, 45), -1)
    ex, ey = cv.px(cv.plan.eye)
    ellipse(img, ex, ey, 0.007 * ppu, 0.005 * ppu, 0, (20, 25, 30))
    ellipse(img, ex - 0.055 * ppu, ey + 0.01 * ppu, 0.012 * ppu, 0.018 * ppu, 0, (110, 135, 180))  # ear
    ellipse(img, ex - 0.1 * ppu, ey + 0.005 * ppu, 0.022 * ppu, 0.03 * ppu, 0, (30, 35, 40))  # hair
    # collar and zip
    zip_ = cv.fx([(cv.plan.torso[:, 0].max() - 0.025, 0.17), (cv.plan.torso[:, 0].max() - 0.035, 0.5)])
    cv2.line(img, tuple(zip_[0]), tuple(zip_[1]), (25, 25, 25), max(1, int(0.004 * ppu)),
             cv2.LINE_AA, shift=4)
    return img


def paint_coat(plan: Plan, variant: str, seed: int, ppu: float, margin: float) -> np.ndarray:
    """The coat of one animal at ``ppu`` pixels per box height, as float32 BGR (0..255)."""
    cv = Canvas(plan, ppu, margin)
    rg = Regions(cv)
    rng = np.random.default_rng([seed, 0xC0A7])
    kind = plan.kind
    if kind == "leopard":
        img = leopard(cv, rg, rng)
    elif kind == "tiger":
        img = tiger(cv, rg, rng)
    elif kind == "prey_boar":
        img = boar(cv, rg, rng)
    elif kind == "prey_deer":
        img = deer(cv, rg, rng, sika=(variant == "sika"))
    elif kind == "prey_hare":
        img = hare(cv, rg, rng)
    elif kind == "human":
        img = clothes(cv, rg, rng, int(variant or 0))
    else:
        raise ValueError(f"no coat for kind {kind!r}")
    angle = 90.0 if kind == "human" else 105.0
    grain = fur_grain(rng, rg.H, rg.W, ppu, angle, 0.02 if kind != "prey_boar" else 0.04)
    amount = 0.05 if kind == "human" else 0.09
    img = img * (1.0 + amount * grain)[..., None]
    img = shade(img, rg, cv, rim=0.22 if kind == "human" else 0.3)
    return np.clip(img, 0, 255).astype(np.float32)
