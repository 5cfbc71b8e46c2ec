"""Motion detection on the low-resolution grayscale stream.

:class:`MotionDetector` keeps a per-pixel background (mean and spread, see
``background.py``) and reports, for each lores frame, the regions that differ from it.
One frame through ``detect``:

1. reduce and blur: the frame is averaged down by a power of two when that smooths no
   more than the configured blur and keeps ``min_area`` at 36 work pixels or more
   (320x240 -> 160x120 and 640x480 -> 160x120 with the defaults), then given whatever
   Gaussian blur is left;
2. light: the frame's light relative to the background is measured over blocks as a
   gain and an offset, and the background is brought to it (slow drift, auto-exposure,
   a passing cloud, snow haze lifting the shadows).
   When ``light_jump_fraction`` of the frame changed at once, and the gain explains it,
   or the changed blocks kept their texture (light falling differently: the infrared
   flash's bright centre), or the change covers the whole frame, the frame is a light
   jump: no motion, and if the gain alone did not explain it the background is
   re-seeded from this frame. A close animal filling half the frame replaces the
   texture, so it stays motion;
3. compare: a pixel changed if ``|x - mean| > max(threshold, noise_k * spread)``;
   exclusion masks are applied;
4. regions: opening removes specks (snow, noise), nearby fragments are grouped by a
   dilation, groups smaller than ``min_area`` are dropped, overlapping boxes merged;
   a region whose blocks kept their texture is a patch of light or shadow: it is
   dropped and learnt at once;
5. learn: the background follows the frame at the rate of ``background_time_s``, but
   inside moving regions only at a sixth of it, so a slow animal is not learnt at once
   while something that stays put is absorbed after tens of seconds (no lasting ghost).
   Pixels that keep flipping between changed and not (leaf edges, water) are exempt
   from the slow-down, so swaying branches are learnt even when they form regions.

The first frame seeds the background and reports no motion. For the first
``background_time_s`` the model averages every frame it has seen (fast warm-up).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from station.config.motion import MotionSection
from station.motion import background as bg
from station.motion.masks import watched_area
from station.motion.types import Box, MotionResult

SLOW_FACTOR = 6.0
"""Inside moving regions the background learns this many times slower."""
SPREAD_DECAY_FACTOR = 8.0
"""The spread (noise allowance) falls this many times slower than it rises."""
FLICKER_TIME_FACTOR = 5.0
"""How often a pixel flips between changed and not is averaged over this many
background time constants (20 s with the defaults)."""
FLICKER_LEVEL = 0.06
"""Pixels that flip on more than this share of frames are vegetation, water, snow: they
learn at the full rate even inside a moving region. An animal walking over a pixel
flips it a few times; a swaying leaf edge flips it every second, all day."""
GAIN_DEADBAND = 0.005
"""Gains closer to 1 than this are not applied (saves a pass; well below any threshold)."""
OFFSET_DEADBAND = 0.5
"""Nor are offsets of less than half a grey level."""
MIN_REGION_PIXELS = 36
"""The automatic reduction keeps the smallest accepted region at least this many work pixels."""
GROUP_RADIUS = 0.01
"""Fragments closer than twice this fraction of the frame width are one region."""
TEXTURE_KEPT = 0.6
"""A change over ``light_jump_fraction`` of the frame is light, not an animal, when this
share of the changed blocks keep their texture (see ``background.texture_blocks``)."""
REGION_TEXTURE_KEPT = 0.85
"""A region is a patch of light or shadow, not an animal, when this share of its mostly
changed blocks keep their texture, and there are at least ``REGION_MIN_BLOCKS`` of them.
In the synthetic forest at threshold 20 (4 seeds x 15 min) this dropped a third of the
regions made by light and none of 6,000 animal regions."""
REGION_MIN_BLOCKS = 6
REGION_MIN_CHANGED = 0.5
"""Share of a block's pixels that must have changed for the block to count."""
REGION_NEW = 0.5
"""Only a region whose changed pixels are mostly new since the last frame is judged."""
GLOBAL_BLOCK_FRACTION = 0.75
"""A change counts as global (not one huge animal) when it touches this share of blocks."""
BLOCK_HIT = 0.2
"""A block is touched when this fraction of its pixels changed."""
GRID_COLUMNS = 16
"""Blocks across the frame for gain estimation (rows follow the aspect ratio)."""


def auto_scale(size: tuple[int, int], blur: int, min_area: float) -> int:
    """Largest power-of-two reduction that stays faithful to the config.

    Averaging ``s x s`` pixels is itself a blur (variance ``(s*s - 1) / 12``), so it may
    smooth no more than ``blur`` asks for, within 10 % (``blur=1``: no reduction); and
    the smallest region worth reporting must still span ``MIN_REGION_PIXELS`` work
    pixels. Powers of two, because OpenCV halves an image ten times faster than it
    divides it by three.
    """
    width, height = size
    if blur <= 1:
        return 1
    by_blur = math.sqrt(12 * (1.1 * bg.opencv_sigma(blur)) ** 2 + 1)
    by_area = math.sqrt(min_area * width * height / MIN_REGION_PIXELS)
    s = 1
    while 2 * s <= min(by_blur, by_area) and width // (2 * s) >= 8 and height // (2 * s) >= 8:
        s *= 2
    return s


class MotionDetector:
    """Background-subtraction motion detector for one lores stream.

    ``size`` is the stream's (width, height); ``fps`` converts the config's time
    constants to per-frame rates. ``scale`` overrides the automatic reduction (1 = work
    on the full lores frame). Not thread-safe: the capture thread owns it.
    """

    def __init__(self, cfg: MotionSection, size: tuple[int, int], fps: float,
                 scale: int | None = None):
        width, height = int(size[0]), int(size[1])
        if width < 8 or height < 8:
            raise ValueError(f"motion size {width}x{height} is too small (at least 8x8)")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.cfg = cfg
        self.size = (width, height)
        self.fps = float(fps)
        self.scale = int(scale) if scale else auto_scale(self.size, cfg.blur, cfg.min_area)
        if self.scale < 1 or self.scale & (self.scale - 1):
            raise ValueError(f"scale must be a power of two (1, 2, 4, ...), got {scale}")
        # Halve step by step; an odd last row or column is dropped at each step.
        self._halves = []
        ww, wh = width, height
        for _ in range(self.scale.bit_length() - 1):
            ww, wh = ww // 2, wh // 2
            self._halves.append(np.empty((wh, ww), np.uint8))
        if ww < 8 or wh < 8:
            raise ValueError(f"scale {self.scale} leaves {ww}x{wh} work pixels (at least 8x8)")
        self.work_size = (ww, wh)
        self._fx, self._fy = self.scale / width, self.scale / height
        """Frame fraction of one work pixel (the dropped odd edge keeps these exact)."""
        self._blur_sigma = bg.residual_blur_sigma(cfg.blur, self.scale)
        self._blur_ksize = 0
        if self._blur_sigma >= 0.3:
            self._blur_ksize = 2 * math.ceil(2.0 * self._blur_sigma) + 1

        self.rate = bg.rate_for(cfg.background_time_s, self.fps)
        self.warmup_frames = max(2, math.ceil(cfg.background_time_s * self.fps))
        self._pixels = ww * wh
        self._min_pixels = cfg.min_area * self._pixels
        self._radius = max(1, round(GROUP_RADIUS * ww))
        self._open_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
        self._group_kernel = cv2.getStructuringElement(
            cv2.MORPH_RECT, (2 * self._radius + 1, 2 * self._radius + 1))

        self._watched = watched_area(cfg.masks, self.size, self.scale)
        self._watched_pixels = (self._pixels if self._watched is None
                                else int(cv2.countNonZero(self._watched)))
        rows = max(3, round(GRID_COLUMNS * wh / ww))
        self._grid = (min(GRID_COLUMNS, ww), min(rows, wh))
        if self._watched is None:
            self._valid_blocks = np.ones(self._grid[::-1], bool)
        else:
            share = cv2.resize(self._watched, self._grid, interpolation=cv2.INTER_AREA)
            self._valid_blocks = share >= 128

        shape = (wh, ww)
        self._x = np.empty(shape, np.float32)
        self._mean = np.zeros(shape, np.float32)
        self._spread = np.zeros(shape, np.float32)
        self._absdiff = np.empty(shape, np.float32)
        self._allowance = np.empty(shape, np.float32)
        self._scratch = np.empty(shape, np.float32)
        self._changed = np.empty(shape, np.uint8)
        self._opened = np.empty(shape, np.uint8)
        self._grouped = np.empty(shape, np.uint8)
        self._scratch_learn = np.empty(shape, np.float32)
        self._beyond_range = False
        self._flipped = np.empty(shape, np.uint8)
        self._previous = np.zeros(shape, np.uint8)
        self._flicker = np.zeros(shape, np.float32)
        self._flicker_rate = bg.rate_for(FLICKER_TIME_FACTOR * cfg.background_time_s, self.fps)
        self._mean_samples = 0
        self._spread_samples = 0

    # -- public -------------------------------------------------------------------------

    @property
    def warming_up(self) -> bool:
        """True until the background has averaged ``background_time_s`` of frames."""
        return self._mean_samples < self.warmup_frames

    def reset(self) -> None:
        """Forget the background; the next frame seeds it (after a camera reconnect)."""
        self._mean_samples = 0
        self._spread_samples = 0

    def detect(self, gray: np.ndarray) -> MotionResult:
        """Compare one lores frame (uint8, shape (height, width)) with the background."""
        gray = bg.check_frame(gray, self.size)
        x = self._prepare(gray)
        if self._mean_samples == 0:
            np.copyto(self._mean, x)
            self._spread.fill(0.0)
            self._previous.fill(0)
            self._flicker.fill(0.0)
            self._beyond_range = False
            self._mean_samples, self._spread_samples = 1, 0
            return MotionResult.still()

        light_changed = self._compensate_light(x)
        bg.classify(x, self._mean, self._spread, self.cfg.threshold,
                    self._absdiff, self._allowance, self._changed)
        if self._watched is not None:
            cv2.bitwise_and(self._changed, self._watched, dst=self._changed)
        n_changed = cv2.countNonZero(self._changed)
        changed_fraction = n_changed / self._watched_pixels if self._watched_pixels else 0.0

        jump_at = self.cfg.light_jump_fraction
        texture_jump = changed_fraction >= jump_at and (
            bg.texture_kept(x, self._mean, self._changed, self._grid,
                            self._valid_blocks) >= TEXTURE_KEPT
            or self._changes_everywhere())
        if light_changed or texture_jump:
            self._after_light_jump(reseed=changed_fraction >= jump_at)
            self._previous.fill(0)
            return MotionResult.still(changed_fraction, light_jump=True)

        cv2.bitwise_xor(self._changed, self._previous, dst=self._flipped)
        cv2.accumulateWeighted(self._flipped, self._flicker, self._flicker_rate)
        np.copyto(self._previous, self._changed)

        regions = self._regions() if n_changed >= self._min_pixels else []
        if any(self._spans_blocks(box) for box, _ in regions):
            regions = self._drop_light_patches(x, regions)
        boxes = [box for box, _ in regions]
        self._learn(self._unclipped(x), boxes)
        if not boxes:
            return MotionResult.still(changed_fraction)
        fx, fy = self._fx, self._fy
        out = tuple(Box(x0 * fx, y0 * fy, (x1 - x0) * fx, (y1 - y0) * fy)
                    for x0, y0, x1, y1 in boxes)
        score = sum(area for _, area in regions) / self._pixels
        return MotionResult(True, score, out, changed_fraction)

    # -- steps --------------------------------------------------------------------------

    def _prepare(self, gray: np.ndarray) -> np.ndarray:
        """Reduce (area average), convert to float32 and blur, into reused buffers."""
        img = gray
        for half in self._halves:
            h, w = half.shape
            cv2.resize(img[:2 * h, :2 * w], (w, h), dst=half, interpolation=cv2.INTER_AREA)
            img = half
        x = self._x
        np.copyto(x, img)
        if self._blur_ksize:
            k = self._blur_ksize
            cv2.GaussianBlur(x, (k, k), self._blur_sigma, dst=x)
        return x

    def _compensate_light(self, x: np.ndarray) -> bool:
        """Bring the background to the frame's light (gain and offset). True when that
        explains a change over ``light_jump_fraction`` of the blocks (a light jump)."""
        frame_blocks = cv2.resize(x, self._grid, interpolation=cv2.INTER_AREA)
        mean_blocks = cv2.resize(self._mean, self._grid, interpolation=cv2.INTER_AREA)
        valid = self._valid_blocks
        gain, offset = bg.estimate_light(frame_blocks, mean_blocks, valid)
        if abs(gain - 1.0) <= GAIN_DEADBAND and abs(offset) <= OFFSET_DEADBAND:
            return False
        cv2.addWeighted(self._mean, gain, self._mean, 0.0, offset, dst=self._mean)
        np.multiply(self._spread, gain, out=self._spread)
        self._check_range()
        n_valid = np.count_nonzero(valid)
        threshold = self.cfg.threshold
        before = np.count_nonzero((np.abs(frame_blocks - mean_blocks) > threshold) & valid)
        after = np.abs(frame_blocks - (gain * mean_blocks + offset)) > threshold
        jump_at = self.cfg.light_jump_fraction * n_valid
        return before >= jump_at > np.count_nonzero(after & valid)

    def _check_range(self) -> None:
        low, high, _, _ = cv2.minMaxLoc(self._mean)
        self._beyond_range = low < 0.0 or high > 255.0

    def _unclipped(self, x: np.ndarray) -> np.ndarray:
        """The frame to learn from. Where the light has pushed the mean beyond what the
        sensor can show, a clipped pixel (255 under a mean of 300) says nothing new:
        learning 255 there would leave a ghost when the light returns, so the mean is
        kept. Costs nothing until a change of light takes the mean out of range."""
        if not self._beyond_range:
            return x
        learn = self._scratch_learn
        np.copyto(learn, x)
        np.maximum(learn, self._mean, out=learn, where=x >= 254.0)
        np.minimum(learn, self._mean, out=learn, where=x <= 1.0)
        self._check_range()
        return learn

    def _changes_everywhere(self) -> bool:
        touched = cv2.resize(self._changed, self._grid, interpolation=cv2.INTER_AREA)
        hit = (touched >= 255 * BLOCK_HIT) & self._valid_blocks
        n_valid = np.count_nonzero(self._valid_blocks)
        return n_valid > 0 and np.count_nonzero(hit) >= GLOBAL_BLOCK_FRACTION * n_valid

    def _after_light_jump(self, reseed: bool) -> None:
        """After a light jump the next frames must be quiet: where the gain did not
        explain the change, start the mean again from this frame (fast warm-up)."""
        if reseed:
            np.copyto(self._mean, self._x)
            self._beyond_range = False
            self._mean_samples = 1
        else:
            self._learn(self._unclipped(self._x), [])

    def _regions(self) -> list[tuple[tuple[int, int, int, int], int]]:
        """Accepted regions as ((x0, y0, x1, y1) work-pixel box, changed pixels in it).

        Specks go with an opening; fragments within the group radius are joined by a
        dilation, whose outlines give the boxes; boxes that overlap are merged; a box
        is kept when the changed pixels inside it reach ``min_area``.
        """
        opened = self._opened
        cv2.morphologyEx(self._changed, cv2.MORPH_OPEN, self._open_kernel, dst=opened)
        if cv2.countNonZero(opened) < self._min_pixels:
            return []
        cv2.dilate(opened, self._group_kernel, dst=self._grouped)
        contours, _ = cv2.findContours(self._grouped, cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        r = self._radius
        ww, wh = self.work_size
        boxes = []
        for c in contours:
            left, top, w, h = cv2.boundingRect(c)
            # Undo the dilation, except where it was cut by the frame edge.
            x0 = left + r if left > 0 else 0
            y0 = top + r if top > 0 else 0
            x1 = left + w - r if left + w < ww else ww
            y1 = top + h - r if top + h < wh else wh
            boxes.append((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)))
        accepted = []
        for x0, y0, x1, y1 in merge_boxes(boxes):
            area = cv2.countNonZero(opened[y0:y1, x0:x1])
            if area >= self._min_pixels:
                accepted.append(((x0, y0, x1, y1), area))
        return accepted

    def _cells(self, box: tuple[int, int, int, int]) -> tuple[slice, slice]:
        """The gain-grid blocks a work-pixel box overlaps."""
        x0, y0, x1, y1 = box
        bw, bh = self.work_size[0] / self._grid[0], self.work_size[1] / self._grid[1]
        return np.s_[int(y0 // bh):math.ceil(y1 / bh), int(x0 // bw):math.ceil(x1 / bw)]

    def _spans_blocks(self, box: tuple[int, int, int, int]) -> bool:
        rows, cols = self._cells(box)
        return (rows.stop - rows.start) * (cols.stop - cols.start) >= REGION_MIN_BLOCKS

    def _drop_light_patches(self, x: np.ndarray, regions: list) -> list:
        """Drop regions that appeared at once and kept the texture beneath them (a
        shadow, a sun fleck, the edge of the infrared flash), and learn them at once.

        Only sudden regions are judged: where an animal has stood a while, the
        background has begun to learn it, and frame and background would correlate.
        """
        sudden = [i for i, (box, _) in enumerate(regions)
                  if self._spans_blocks(box)
                  and self._newly_changed(np.s_[box[1]:box[3], box[0]:box[2]]) >= REGION_NEW]
        if not sudden:
            return regions
        counted, kept = bg.texture_blocks(x, self._mean, self._changed, self._grid,
                                          self._valid_blocks, min_changed=REGION_MIN_CHANGED)
        out = []
        for i, ((x0, y0, x1, y1), area) in enumerate(regions):
            cells = self._cells((x0, y0, x1, y1))
            n = np.count_nonzero(counted[cells])
            if (i in sudden and n >= REGION_MIN_BLOCKS
                    and np.count_nonzero(kept[cells]) >= REGION_TEXTURE_KEPT * n):
                roi = np.s_[y0:y1, x0:x1]
                np.copyto(self._mean[roi], x[roi], where=self._changed[roi] > 0)
            else:
                out.append(((x0, y0, x1, y1), area))
        return out

    def _newly_changed(self, roi) -> float:
        """Share of the changed pixels in ``roi`` that were not changed a frame ago."""
        changed = self._changed[roi]
        total = cv2.countNonZero(changed)
        # _flipped holds changed XOR previous: where changed, that means newly changed.
        fresh = cv2.countNonZero(cv2.bitwise_and(changed, self._flipped[roi]))
        return fresh / total if total else 0.0

    def _learn(self, x: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> None:
        """Background update: everywhere at the base rate; inside moving boxes slowly,
        except at pixels that flicker (leaves, water) which keep the base rate."""
        n_mean, n_spread = self._mean_samples + 1, self._spread_samples + 1
        warm = n_mean <= self.warmup_frames
        rate = max(self.rate, 1.0 / n_mean) if warm else self.rate
        up = max(self.rate, 1.0 / n_spread) if n_spread <= self.warmup_frames else self.rate
        down = up if n_spread <= self.warmup_frames else self.rate / SPREAD_DECAY_FACTOR
        arrays = (x, self._mean, self._spread, self._absdiff, self._allowance, self._scratch)
        k = self.cfg.noise_k
        saved = []
        for x0, y0, x1, y1 in boxes:
            roi = np.s_[y0:y1, x0:x1]
            saved.append((roi, self._mean[roi].copy(), self._spread[roi].copy()))
        bg.update(*arrays, rate=rate, spread_up=up, spread_down=down, noise_k=k)
        slow = self.rate / SLOW_FACTOR
        for roi, mean, spread in saved:
            flickers = self._flicker[roi] > 255.0 * FLICKER_LEVEL
            fast_mean, fast_spread = self._mean[roi].copy(), self._spread[roi].copy()
            self._mean[roi] = mean
            self._spread[roi] = spread
            bg.update(*(a[roi] for a in arrays), rate=slow, spread_up=slow,
                      spread_down=down, noise_k=k)
            np.copyto(self._mean[roi], fast_mean, where=flickers)
            np.copyto(self._spread[roi], fast_spread, where=flickers)
        self._mean_samples, self._spread_samples = n_mean, n_spread


def merge_boxes(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Merge overlapping or touching (x0, y0, x1, y1) boxes until none overlap."""
    boxes = list(boxes)
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        out: list[tuple[int, int, int, int]] = []
        for b in boxes:
            for j, o in enumerate(out):
                if b[0] <= o[2] and o[0] <= b[2] and b[1] <= o[3] and o[1] <= b[3]:
                    out[j] = (min(b[0], o[0]), min(b[1], o[1]), max(b[2], o[2]), max(b[3], o[3]))
                    merged = True
                    break
            else:
                out.append(b)
        boxes = out
    return boxes
