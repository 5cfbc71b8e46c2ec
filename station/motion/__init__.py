"""Motion detection on the low-resolution grayscale stream.

``MotionDetector(cfg.motion, lores_size, fps).detect(gray)`` returns a
:class:`MotionResult` per frame; :class:`FrameDiffBaseline` is picamera2's plain
frame-difference example with the same interface, kept as a yardstick.
"""

from station.motion.baseline import FrameDiffBaseline
from station.motion.detector import MotionDetector
from station.motion.types import Box, MotionResult

__all__ = ["Box", "FrameDiffBaseline", "MotionDetector", "MotionResult"]
