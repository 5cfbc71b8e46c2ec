"""Real pictures instead of drawn animals: each crossing slides a photo across the scene.

``find_pictures(folder)`` reads a folder with one sub-folder per tag (``leopard/``,
``tiger/``, ``prey_deer/``...; ``empty/`` is skipped) or a flat folder of images (the
folder's own name is then the tag). :class:`PictureSprite` moves one picture, scaled
and with softly feathered edges, along its crossing's path.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from station.camera.synthetic.render import blend_into
from station.camera.synthetic.scene import Crossing, PictureRef

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
SKIP_TAGS = {"empty"}


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _ref(path: Path, tag: str) -> PictureRef:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"pictures: cannot read image {path}")
    h, w = img.shape[:2]
    return PictureRef(str(path), tag, int(w), int(h))


def find_pictures(folder: str | Path) -> list[PictureRef]:
    """Every readable picture under ``folder`` with its tag, in a stable order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"pictures: {folder} is not a folder")
    refs: list[PictureRef] = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name in SKIP_TAGS:
            continue
        refs.extend(_ref(p, sub.name) for p in _images(sub))
    if not refs:
        refs = [_ref(p, folder.name) for p in _images(folder)]
    if not refs:
        raise ValueError(f"pictures: no images in {folder} or its tag sub-folders")
    return refs


class PictureSprite:
    """Slides one picture across the frame along its crossing."""

    def __init__(self, crossing: Crossing):
        if crossing.picture is None:
            raise ValueError(f"crossing {crossing.index} has no picture")
        self.crossing = crossing
        self._image: np.ndarray | None = None
        self._scaled: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def prepare(self) -> None:
        if self._image is None:
            img = cv2.imread(self.crossing.picture, cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"pictures: cannot read image {self.crossing.picture}")
            self._image = img

    def _assets(self, W: int, H: int) -> tuple[np.ndarray, np.ndarray]:
        key = (W, H)
        if key not in self._scaled:
            self.prepare()
            c = self.crossing
            w = max(4, int(round(c.width * W)))
            h = max(4, int(round(c.height * H)))
            img = cv2.resize(self._image, (w, h), interpolation=cv2.INTER_AREA)
            self._scaled[key] = (img, feather(w, h))
        return self._scaled[key]

    def draw(self, img: np.ndarray, t: float, night: bool) -> None:
        c = self.crossing
        if not (c.start_s - 0.5 <= t <= c.end_s + 0.5):
            return
        H, W = img.shape[:2]
        pic, alpha = self._assets(W, H)
        h, w = alpha.shape
        cx, _, walked = c.state(t)
        bob = 0.004 * H * math.sin(2 * math.pi * walked * 4.0) if c.moving(t) else 0.0
        ix = int(round(cx * W - w / 2))
        iy = int(round(c.ground_y * H - h + bob))
        x0, y0, x1, y1 = max(0, ix), max(0, iy), min(W, ix + w), min(H, iy + h)
        if x1 <= x0 or y1 <= y0:
            return
        sx, sy = slice(x0 - ix, x1 - ix), slice(y0 - iy, y1 - iy)
        blend_into(img[y0:y1, x0:x1], pic[sy, sx], alpha[sy, sx])


def feather(w: int, h: int, edge: float = 0.14) -> np.ndarray:
    """Alpha of a picture with soft edges: 1 inside, easing to 0 over ``edge`` of its size."""
    f = max(2.0, edge * min(w, h))
    xs = np.minimum(np.arange(w), np.arange(w)[::-1]).astype(np.float32) / f
    ys = np.minimum(np.arange(h), np.arange(h)[::-1]).astype(np.float32) / f
    a = np.clip(np.minimum(ys[:, None], xs[None, :]), 0, 1)
    return (a * a * (3 - 2 * a)).astype(np.float32)
