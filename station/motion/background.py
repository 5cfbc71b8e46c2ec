"""The numeric core of motion detection: a per-pixel background of mean and spread.

Everything here works on float32 arrays in place, through OpenCV primitives, with no
camera and no clock, so each step can be tested alone:

* :func:`rate_for` turns a time constant into a per-frame learning rate.
* :func:`estimate_gain` and :func:`estimate_light` measure how the light of the whole
  frame differs from the background (a gain, and an offset when haze lifts the
  shadows), robustly, from block means, so an animal does not move them.
* :func:`texture_blocks` / :func:`texture_kept` tell a change of light (edges stay
  put) from an animal (edges replaced), block by block.
* :func:`classify` marks the pixels that differ from the mean by more than
  ``max(threshold, spread)``, where ``spread`` is ``noise_k`` times the pixel's own
  running mean absolute deviation: swaying leaves earn a wide allowance, still ground
  keeps the plain threshold.
* :func:`update` moves mean and spread toward the frame. The spread rises quickly and
  falls slowly, so a gust teaches the leaves' allowance and the next gust still finds it.

The detector decides *where* each rate applies (slowly inside regions that moved, so an
animal is not learnt as background at once); this module only does the arithmetic.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def rate_for(time_s: float, fps: float) -> float:
    """Per-frame weight of an exponential average with time constant ``time_s`` at ``fps``."""
    if time_s <= 0 or fps <= 0:
        raise ValueError(f"time constant ({time_s} s) and fps ({fps}) must be positive")
    return 1.0 - math.exp(-1.0 / (time_s * fps))


def check_frame(gray: object, size: tuple[int, int]) -> np.ndarray:
    """Return ``gray`` if it is a (height, width) uint8 image of ``size``; else ValueError."""
    width, height = size
    if not isinstance(gray, np.ndarray):
        raise ValueError(f"frame must be a numpy array, got {type(gray).__name__}")
    if gray.dtype != np.uint8:
        raise ValueError(f"frame dtype must be uint8 grayscale, got {gray.dtype}")
    if gray.ndim != 2:
        raise ValueError(
            f"frame must be 2-D grayscale (height, width), got shape {gray.shape}"
            + ("; pass the lores Y plane, not a colour image" if gray.ndim == 3 else "")
        )
    if gray.shape != (height, width):
        raise ValueError(
            f"frame shape {gray.shape} does not match the detector's size "
            f"{width}x{height} (expected shape {(height, width)})"
        )
    if not gray.flags.c_contiguous:
        gray = np.ascontiguousarray(gray)
    return gray


def estimate_gain(frame_blocks: np.ndarray, mean_blocks: np.ndarray, valid: np.ndarray,
                  dark: float = 8.0, tolerance: float = 0.05) -> float:
    """Brightness of the frame relative to the background, from block means.

    A change of light scales every block by about the same ratio; an animal changes the
    blocks it covers by ratios all over the place. So the answer is the densest cluster
    of per-block ratios (the most blocks within ``tolerance`` in log terms of each
    other), which stays right even when a close animal covers more than half the frame
    and a plain median would not. ``valid`` marks blocks to trust (unmasked); blocks
    darker than ``dark`` in the background are left out, their ratios are noise. With
    fewer than 4 usable blocks the answer is 1 (no compensation).
    """
    use = valid & (mean_blocks >= dark)
    if np.count_nonzero(use) < 4:
        return 1.0
    logs = np.sort(np.log(np.maximum(frame_blocks[use], 0.5) / mean_blocks[use]))
    upper = np.searchsorted(logs, logs + tolerance, side="right")
    lower = np.searchsorted(logs, logs - tolerance, side="left")
    best = int(np.argmax(upper - lower))
    lo, hi = int(lower[best]), int(upper[best])
    middle = lo + (hi - lo - 1) / 2  # median of the sorted cluster, by index
    return float(np.exp(0.5 * (logs[int(np.floor(middle))] + logs[int(np.ceil(middle))])))


def estimate_light(frame_blocks: np.ndarray, mean_blocks: np.ndarray, valid: np.ndarray,
                   fit_above: float = 3.0, rounds: int = 3) -> tuple[float, float]:
    """Light of the frame relative to the background as ``frame ~ gain * mean + offset``.

    Most frames need no work: when half the blocks match the background within half a
    percent (or a grey level) the answer is (1, 0). Otherwise it starts from
    :func:`estimate_gain`. When that leaves a tenth of the blocks off by more than
    ``fit_above`` grey levels (haze or falling snow lifting the shadows, a contrast
    change, an exposure offset), a line is fitted to the blocks the gain already
    explains, then to every block within about three standard deviations of that line,
    ``rounds`` times. Growing from the gain's consensus keeps the blocks under an animal
    out of the fit even when it covers more than half of the frame.
    """
    f, m = frame_blocks[valid], mean_blocks[valid]
    if f.size == 0:
        return 1.0, 0.0
    still = np.abs(f - m) <= np.maximum(1.0, 0.005 * m)
    if 2 * np.count_nonzero(still) >= f.size:
        return 1.0, 0.0
    gain = estimate_gain(frame_blocks, mean_blocks, valid)
    if f.size < 8:
        return gain, 0.0
    off = np.abs(f - gain * m)
    if np.count_nonzero(off > fit_above) < 0.1 * f.size:
        return gain, 0.0
    keep = off <= fit_above
    offset = 0.0
    for _ in range(rounds):
        mk, fk = m[keep], f[keep]
        if mk.size < 8:
            break
        dm = mk - mk.mean()
        var = float(np.dot(dm, dm)) / mk.size
        if var < 25.0:  # the kept blocks are all alike: no slope to fit
            break
        slope = float(np.dot(dm, fk)) / mk.size / var
        if not 0.25 <= slope <= 4.0:  # not a change of light
            break
        gain, offset = slope, float(fk.mean() - slope * mk.mean())
        off = np.abs(f - (gain * m + offset))
        # mean absolute deviation: about 0.8 standard deviations for normal scatter
        keep = off <= max(fit_above, 3.75 * float(off[keep].mean()))
    return gain, offset


def texture_blocks(x: np.ndarray, mean: np.ndarray, changed: np.ndarray,
                   grid: tuple[int, int], valid: np.ndarray, min_std: float = 2.0,
                   min_changed: float = 0.2, match: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Per block of ``grid`` (columns, rows): ``(counted, kept)`` boolean arrays.

    Light falling differently (an infrared flash with its bright centre, a shadow)
    changes brightness but leaves every edge where it was: the normalised correlation of
    frame and background within a block stays high. An animal replaces the texture and
    the correlation drops to about zero. A block is *counted* when at least
    ``min_changed`` of its pixels changed and the background's standard deviation there
    is at least ``min_std`` (a flat block has no texture to keep); it is *kept* when,
    besides, the correlation exceeds ``match``.
    """
    def blocks(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a, grid, interpolation=cv2.INTER_AREA)

    ex, em = blocks(x), blocks(mean)
    var_x = blocks(cv2.multiply(x, x)) - ex * ex
    var_m = blocks(cv2.multiply(mean, mean)) - em * em
    cov = blocks(cv2.multiply(x, mean)) - ex * em
    ncc = cov / np.sqrt(np.maximum(var_x * var_m, 1e-6))
    share = blocks(changed) / 255.0
    counted = valid & (var_m >= min_std * min_std) & (share >= min_changed)
    return counted, counted & (ncc > match)


def texture_kept(x: np.ndarray, mean: np.ndarray, changed: np.ndarray,
                 grid: tuple[int, int], valid: np.ndarray, **limits: float) -> float:
    """Share of the counted blocks that kept their texture (see :func:`texture_blocks`);
    0 when no block counts."""
    counted, kept = texture_blocks(x, mean, changed, grid, valid, **limits)
    n = np.count_nonzero(counted)
    return float(np.count_nonzero(kept) / n) if n else 0.0


def classify(x: np.ndarray, mean: np.ndarray, spread: np.ndarray, threshold: float,
             absdiff: np.ndarray, allowance: np.ndarray, changed: np.ndarray) -> None:
    """Fill ``absdiff = |x - mean|``, ``allowance = max(threshold, spread)`` and
    ``changed = 255 where absdiff > allowance`` (uint8), all in place.

    The mean is compared as the camera would see it, clipped to 0..255: once the light
    doubles, a white trunk predicted at 300 reads 255, which is no change. (The mean
    itself is not clipped, so when the light halves again it comes back right.)
    """
    cv2.min(mean, 255.0, dst=absdiff)
    cv2.max(absdiff, 0.0, dst=absdiff)
    cv2.absdiff(x, absdiff, dst=absdiff)
    cv2.max(spread, float(threshold), dst=allowance)
    cv2.compare(absdiff, allowance, cv2.CMP_GT, dst=changed)


def update(x: np.ndarray, mean: np.ndarray, spread: np.ndarray, absdiff: np.ndarray,
           allowance: np.ndarray, scratch: np.ndarray, *, rate: float, spread_up: float,
           spread_down: float, noise_k: float) -> None:
    """Move the background toward frame ``x``, in place (the arrays may be views of a region).

    ``mean`` follows ``x`` at ``rate``. ``spread`` holds ``noise_k`` times the running mean
    absolute deviation; each frame's deviation is clipped to the current allowance so a
    single flash cannot blow it up, it rises at ``spread_up`` and falls at no more than
    ``spread_down`` (its ``max`` with a plain decay).
    """
    cv2.accumulateWeighted(x, mean, rate)
    if noise_k <= 0:
        return
    cv2.min(absdiff, allowance, dst=scratch)
    cv2.addWeighted(spread, 1.0 - spread_up, scratch, spread_up * noise_k, 0.0, dst=scratch)
    np.multiply(spread, 1.0 - spread_down, out=spread)
    cv2.max(spread, scratch, dst=spread)


def opencv_sigma(ksize: int) -> float:
    """The sigma OpenCV uses for a Gaussian kernel of ``ksize`` when sigma is 0."""
    return 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8


def residual_blur_sigma(blur: int, scale: int) -> float:
    """Gaussian sigma (in work pixels) still to apply after an area reduction by ``scale``
    so that the work image is about as smooth as ``blur`` on the full stream.

    Averaging ``scale x scale`` pixels already smooths like a box of that width
    (variance ``(scale**2 - 1) / 12``); only the remainder of the blur is applied.
    """
    if blur <= 1:
        return 0.0
    want = opencv_sigma(blur) ** 2
    have = (scale * scale - 1) / 12.0
    return math.sqrt(max(0.0, want - have)) / scale
