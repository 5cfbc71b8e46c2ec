"""Exclusion masks: polygons in frame fractions, rasterised once when the detector starts.

A mask marks a part of the view that must never count as motion (a road, a stream, a
branch in front of the lens). Polygons are given in fractions of the frame (0..1), so
the same config works for any lores resolution; here they become pixel images.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Polygon = Sequence[tuple[float, float]]

_SUBPIXEL_BITS = 4
"""cv2.fillPoly takes fixed-point vertices; 4 fractional bits is 1/16 pixel."""
_SUPERSAMPLE = 4
"""Polygons are drawn this many times finer, then averaged down to measure coverage."""


def rasterise(polygons: Sequence[Polygon], size: tuple[int, int], scale: int = 1) -> np.ndarray:
    """Excluded pixels of a stream of ``size`` (width, height) seen ``scale`` times
    reduced: uint8 image of (height // scale, width // scale), 255 where a pixel lies at
    least half inside some polygon, 0 elsewhere.

    Drawing four times finer and averaging down gives each pixel its covered share, so
    a polygon edge on a pixel boundary falls exactly between pixels. As the detector's
    reduction does, a last row or column that does not fill a whole work pixel is left
    out.
    """
    width, height = size
    out_w, out_h = width // scale, height // scale
    fine_w, fine_h = width * _SUPERSAMPLE, height * _SUPERSAMPLE
    fine = np.zeros((fine_h, fine_w), np.uint8)
    unit = 1 << _SUBPIXEL_BITS
    for i, poly in enumerate(polygons):
        if len(poly) < 3:
            raise ValueError(f"mask {i} has {len(poly)} points; a polygon needs at least 3")
        # Fraction 1.0 is the far edge of the last pixel and OpenCV puts pixel centres on
        # integers, hence the half-pixel shift.
        pts = np.array([[x * fine_w - 0.5, y * fine_h - 0.5] for x, y in poly], np.float64)
        fixed = np.round(pts * unit).astype(np.int32)
        cv2.fillPoly(fine, [fixed], 255, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    step = _SUPERSAMPLE * scale
    share = cv2.resize(fine[:out_h * step, :out_w * step], (out_w, out_h),
                       interpolation=cv2.INTER_AREA)
    return np.where(share >= 128, 255, 0).astype(np.uint8)


def watched_area(polygons: Sequence[Polygon], size: tuple[int, int],
                 scale: int = 1) -> np.ndarray | None:
    """Mask of the watched pixels (255) at the detector's work resolution, the stream's
    ``size`` reduced ``scale`` times; None when nothing is masked."""
    if not polygons:
        return None
    return cv2.bitwise_not(rasterise(polygons, size, scale))
