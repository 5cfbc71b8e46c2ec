"""The plain frame-difference detector from picamera2's ``examples/capture_motion.py``.

Kept as a yardstick: the same ``detect(gray) -> MotionResult`` interface as
:class:`~station.motion.detector.MotionDetector`, so benchmarks and tests can show what
the background model buys (it does not fire on swaying leaves; this one does).

The example compares each lores frame with the previous one and calls it motion when
the mean squared difference exceeds 7. It subtracts the uint8 frames directly, which
wraps around (``5 - 10 == 251``); here the difference is taken in int32, the squared
error the example means, which also cannot overflow as int16 squares can (``200**2``).
For differences below 16 grey levels, where the threshold of 7 sits, both agree.
"""

from __future__ import annotations

import numpy as np

from station.motion.background import check_frame
from station.motion.types import Box, MotionResult

WHOLE_FRAME = Box(0.0, 0.0, 1.0, 1.0)


class FrameDiffBaseline:
    """Motion when the mean squared difference from the previous frame exceeds ``threshold``."""

    def __init__(self, size: tuple[int, int], threshold: float = 7.0):
        if threshold < 0:
            raise ValueError(f"threshold must not be negative, got {threshold}")
        self.size = (int(size[0]), int(size[1]))
        self.threshold = float(threshold)
        self.last_mse = 0.0
        self._prev: np.ndarray | None = None

    def reset(self) -> None:
        self._prev = None

    def detect(self, gray: np.ndarray) -> MotionResult:
        cur = check_frame(gray, self.size)
        prev = self._prev
        if prev is None:
            self._prev = cur.copy()
            return MotionResult.still()
        mse = float(np.square(np.subtract(cur.astype(np.int32), prev)).mean())
        # The caller may reuse its buffer for the next frame: keep our own copy.
        np.copyto(prev, cur)
        self.last_mse = mse
        if mse > self.threshold:
            # One whole-frame box; the example measures no per-pixel change fraction.
            return MotionResult(True, 1.0, (WHOLE_FRAME,))
        return MotionResult.still()
