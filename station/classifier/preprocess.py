"""Pictures in, model inputs out: decode with clear errors, then the views the model sees.

A frame gives one *view* for the whole frame and one for each motion box: a square crop
around the box with a margin, clamped to the frame. Every view is resized to the
model's input (area interpolation when shrinking) and handed over as RGB uint8.

* Boxes are ``[x, y, w, h]`` fractions of the frame (docs/event-store.md), so they fit
  any resolution. A crop's side is the box's longer side times ``1 + 2 * margin``, at
  least ``MIN_CROP_PX``, at most the frame's shorter side; the square is shifted, never
  shrunk, to stay inside the frame.
* The whole frame is resized as it is (its aspect squashed to square), not centre-cropped:
  a trap sees animals at the edges. Frames longer than 2:1 are first cut to 2:1 around
  the centre.
* JPEGs are decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, nearly free) when
  every view keeps at least 3/4 of the model's input size in pixels, so a 12-megapixel
  still costs little more than a small one.
* Grey, 16-bit and RGBA pictures become 8-bit 3-channel; a truncated JPEG, an empty or
  non-image file raise :class:`ImageError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

Box = tuple[float, float, float, float]
Size = tuple[int, int]  # (width, height)

MIN_CROP_PX = 32
MAX_ASPECT = 2.0
MIN_VIEW_FRACTION = 0.75
_REDUCE_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ImageError(ValueError):
    """A picture cannot be used; the message names the file and says why."""


# -- reading -------------------------------------------------------------------------
def read_bytes(path: str | Path) -> bytes:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror})") from None
    if not data:
        raise ImageError(f"{path}: empty file (0 bytes)")
    return data


def image_size(data: bytes) -> Size | None:
    """(width, height) from a JPEG or PNG header without decoding; None if unknown."""
    if data[:8] == _PNG_MAGIC and data[12:16] == b"IHDR":
        w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return (w, h) if w and h else None
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            w, h = int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
            return (w, h) if w and h else None
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def decode(data: bytes, name: str | Path = "<bytes>", reduce: int = 1) -> np.ndarray:
    """BGR uint8 (H, W, 3) from encoded bytes; JPEGs optionally at 1/``reduce`` scale."""
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    is_jpeg, is_png = data[:2] == b"\xff\xd8", data[:8] == _PNG_MAGIC
    if is_jpeg and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        raise ImageError(f"{name}: truncated JPEG (no end-of-image marker after the image data)")
    flag = _REDUCE_FLAGS[reduce] if is_jpeg else cv2.IMREAD_COLOR
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error as exc:
        raise ImageError(f"{name}: cannot be decoded ({exc.err})") from None
    if image is None:
        kind = "corrupt JPEG data" if is_jpeg else "corrupt or truncated PNG data" if is_png else \
            "not an image format OpenCV reads (or corrupt)"
        raise ImageError(f"{name}: {kind}")
    return to_bgr8(image, name)


def to_bgr8(image: np.ndarray, name: str | Path = "<array>") -> np.ndarray:
    """Any grey/colour/alpha picture of 8 or 16 bits -> BGR uint8 (H, W, 3)."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or 0 in a.shape:
        raise ImageError(f"{name}: array of shape {a.shape} is not an image (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype.kind == "f":
        scale = 255.0 if np.nanmax(a) <= 1.0 else 1.0
        a = np.clip(np.nan_to_num(a) * scale, 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise ImageError(f"{name}: pixel type {a.dtype} is not supported (uint8, uint16, float or bool)")
    if a.ndim == 2:
        return cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)
    if a.shape[2] == 4:
        return cv2.cvtColor(a, cv2.COLOR_BGRA2BGR)
    return a


# -- views ---------------------------------------------------------------------------
def parse_box(value: object) -> Box | None:
    """A record's ``[x, y, w, h]`` as floats, or None if it is not a usable box."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return None
    try:
        x, y, w, h = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if not all(np.isfinite((x, y, w, h))) or w <= 0 or h <= 0 or x >= 1 or y >= 1 or x + w <= 0 or y + h <= 0:
        return None
    return x, y, w, h


def crop_square(box: Box, width: int, height: int, margin: float) -> tuple[int, int, int]:
    """(x0, y0, side) in pixels of the square crop around ``box``."""
    x, y, w, h = box
    cx, cy = (x + w / 2) * width, (y + h / 2) * height
    side = max(w * width, h * height) * (1 + 2 * margin)
    side = int(round(min(max(side, MIN_CROP_PX), width, height)))
    side = max(side, 1)
    x0 = min(max(int(round(cx - side / 2)), 0), width - side)
    y0 = min(max(int(round(cy - side / 2)), 0), height - side)
    return x0, y0, side


def choose_boxes(boxes: Sequence[Box], width: int, height: int, margin: float, limit: int) -> list[Box]:
    """Up to ``limit`` boxes, largest first, skipping ones whose crop mostly repeats another's."""
    chosen: list[tuple[Box, tuple[int, int, int]]] = []
    for box in sorted(boxes, key=lambda b: -b[2] * b[3]):
        if len(chosen) >= limit:
            break
        sq = crop_square(box, width, height, margin)
        if all(_iou(sq, other) < 0.6 for _, other in chosen):
            chosen.append((box, sq))
    return [b for b, _ in chosen]


def _iou(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[2], b[1] + b[2]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] ** 2 + b[2] ** 2 - inter)


def _resize_rgb(bgr: np.ndarray, size: Size) -> np.ndarray:
    """Exact halvings by area averaging (OpenCV's fast path) while at least twice too
    big, then one bilinear step (a factor below 2 needs no anti-aliasing)."""
    h, w = bgr.shape[:2]
    while w >= 2 * size[0] and h >= 2 * size[1]:
        w, h = w // 2, h // 2
        bgr = cv2.resize(bgr[:2 * h, :2 * w], (w, h), interpolation=cv2.INTER_AREA)
    if (w, h) != size:
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def whole_frame(bgr: np.ndarray) -> np.ndarray:
    """The frame, cut around its centre to at most 2:1."""
    h, w = bgr.shape[:2]
    if w > MAX_ASPECT * h:
        keep = max(1, int(MAX_ASPECT * h))
        return bgr[:, (w - keep) // 2:(w - keep) // 2 + keep]
    if h > MAX_ASPECT * w:
        keep = max(1, int(MAX_ASPECT * w))
        return bgr[(h - keep) // 2:(h - keep) // 2 + keep]
    return bgr


def views(bgr: np.ndarray, boxes: Sequence[Box], size: Size, margin: float) -> list[np.ndarray]:
    """The whole frame, then one crop per box: RGB uint8 at ``size``."""
    h, w = bgr.shape[:2]
    out = [_resize_rgb(whole_frame(bgr), size)]
    for box in boxes:
        x0, y0, side = crop_square(box, w, h, margin)
        out.append(_resize_rgb(bgr[y0:y0 + side, x0:x0 + side], size))
    return out


def reduction(frame: Size | None, boxes: Sequence[Box], size: Size, margin: float) -> int:
    """The largest JPEG scale-down (1, 2, 4, 8) that keeps every view at least
    ``MIN_VIEW_FRACTION`` of the model's input side (a view is enlarged by at most 4/3,
    which training-time random crops enlarge far more)."""
    if frame is None:
        return 1
    w, h = frame
    whole = whole_frame_size(w, h)
    sides = [min(whole)] + [crop_square(b, w, h, margin)[2] for b in boxes]
    need = MIN_VIEW_FRACTION * max(size)
    for r in (8, 4, 2):
        if min(sides) / r >= need:
            return r
    return 1


def whole_frame_size(w: int, h: int) -> Size:
    return (min(w, int(MAX_ASPECT * h)) or 1, min(h, int(MAX_ASPECT * w)) or 1)


def load_views(source: str | Path | np.ndarray, boxes: Sequence[Box], size: Size, margin: float,
               max_boxes: int) -> tuple[list[np.ndarray], list[Box]]:
    """Read a picture (file or BGR array) and make its views; returns (views, boxes used)."""
    if isinstance(source, np.ndarray):
        bgr = to_bgr8(source)
        chosen = choose_boxes(boxes, bgr.shape[1], bgr.shape[0], margin, max_boxes)
        return views(bgr, chosen, size, margin), chosen
    data = read_bytes(source)
    dims = image_size(data)
    chosen = choose_boxes(boxes, *dims, margin, max_boxes) if dims else list(boxes)
    bgr = decode(data, source, reduction(dims, chosen, size, margin))
    if not dims:
        chosen = choose_boxes(boxes, bgr.shape[1], bgr.shape[0], margin, max_boxes)
    return views(bgr, chosen, size, margin), chosen
