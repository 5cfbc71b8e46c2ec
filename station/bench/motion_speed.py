"""How many lores frames per second motion detection keeps up with, on one core.

``measure_throughput(size, frames, detector)`` renders a realistic stretch of frames in
memory first (textured forest floor, swaying leaves, a slow light drift, an animal
crossing, sensor noise), pins itself to one CPU with OpenCV single-threaded, then times
``detect()`` over them. Rendering is not timed. Run ``python -m station.bench.motion_speed``
for a table of both detectors at 320x240 and 640x480.
"""

from __future__ import annotations

import os
import time
import cv2
import numpy as np

from station.config.motion import MotionSection
from station.motion import FrameDiffBaseline, MotionDetector

FPS = 10.0
CYCLE = 200
"""Distinct frames rendered; longer runs loop over them. The scene is periodic in
CYCLE frames (sway periods divide it, the animal is off-screen at the seam), so the
loop has no jump, and 640x480 needs 61 MB rather than 600 MB for 2,000 frames."""


def _texture(rng: np.random.Generator, w: int, h: int, grain: float) -> np.ndarray:
    img = np.zeros((h, w), np.float32)
    for octave, weight in ((grain, 1.0), (grain * 4, 1.5), (grain * 12, 2.0)):
        img += weight * cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32),
                                         (0, 0), octave)
    img -= img.min()
    return img / max(float(img.max()), 1e-6)


def render_scene(size: tuple[int, int] = (320, 240), count: int = CYCLE,
                 seed: int = 0) -> list[np.ndarray]:
    """``count`` grayscale uint8 frames of a forest scene with some motion."""
    w, h = size
    k = w / 320.0  # scene features scale with the resolution
    rng = np.random.default_rng(seed)
    floor = 30 + 190 * _texture(rng, w, h, 3 * k)
    leaf = np.where(_texture(rng, int(0.45 * w), int(0.5 * h), 2 * k) > 0.5, 200.0, 40.0)
    leaf = cv2.GaussianBlur(leaf.astype(np.float32), (0, 0), 0.8 * k)
    fur = 10 + 80 * _texture(rng, int(0.15 * w), int(0.15 * h), 1.5 * k)
    patches = [(int(0.6 * w), int(0.05 * h), int(0.35 * w), int(0.35 * h), 2.0),
               (int(0.03 * w), int(0.65 * h), int(0.25 * w), int(0.3 * h), 2.5)]
    aw, ah = fur.shape[1], fur.shape[0]
    frames = []
    for i in range(count):
        t = i / FPS
        img = floor.copy()
        for x, y, pw, ph, period in patches:
            phase = 2 * np.pi * t / period
            m = np.float32([[1, 0, 10 * k + 4 * k * np.sin(phase)],
                            [0, 1, 10 * k + 2 * k * np.sin(phase / 2)]])
            img[y:y + ph, x:x + pw] = cv2.warpAffine(leaf, m, (pw, ph),
                                                     flags=cv2.WARP_INVERSE_MAP)
        # An animal crosses during the middle half of the cycle, off-screen at the seam.
        u = (i - count / 4) / (count / 2)
        if 0 <= u <= 1:
            ax = int(-aw + u * (w + aw))
            ay = int(0.45 * h)
            x0, x1 = max(0, ax), min(w, ax + aw)
            if x1 > x0:
                img[ay:ay + ah, x0:x1] = fur[:, x0 - ax:x1 - ax]
        img *= 1.0 + 0.05 * np.sin(2 * np.pi * i / count)  # light drifting
        img += rng.normal(0, 2.0, img.shape).astype(np.float32)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def _make(detector: str, size: tuple[int, int], scale: int | None):
    if detector == "station":
        return MotionDetector(MotionSection(), size, FPS, scale=scale)
    if detector == "baseline":
        return FrameDiffBaseline(size)
    raise ValueError(f"detector must be 'station' or 'baseline', got {detector!r}")


def _pin_one_core(cpu: int | None) -> tuple[int | None, set[int] | None]:
    """Pin this thread's process to one CPU; return (cpu, previous affinity)."""
    if not hasattr(os, "sched_setaffinity"):
        return None, None
    previous = os.sched_getaffinity(0)
    chosen = cpu if cpu is not None else max(previous)
    os.sched_setaffinity(0, {chosen})
    return chosen, previous


def measure_throughput(size: tuple[int, int] = (320, 240), frames: int = 2000,
                       detector: str = "station", cpu: int | None = None,
                       scale: int | None = None) -> dict:
    """Time ``detect()`` over ``frames`` rendered frames on one core.

    Returns size, detector, frames, frames_per_s (wall clock), cpu_ms_per_frame (thread
    CPU time), motion_fraction (share of frames reported as motion) and, for the station
    detector, the work size it compares at. ``cpu`` picks the core (default: the
    highest one this process may use); affinity and OpenCV threads are restored after.
    ``scale`` overrides the station detector's automatic reduction (1: full lores).
    """
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    size = (int(size[0]), int(size[1]))
    scene = render_scene(size, min(frames, CYCLE))
    det = _make(detector, size, scale)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    pinned, previous = _pin_one_core(cpu)
    try:
        for img in scene[: min(len(scene), 50)]:  # warm caches and the seeding path
            det.detect(img)
        n = len(scene)
        moving = 0
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        for i in range(frames):
            moving += det.detect(scene[i % n]).motion
        wall, cpu_s = time.perf_counter() - wall0, time.thread_time() - cpu0
    finally:
        cv2.setNumThreads(threads)
        if previous is not None:
            os.sched_setaffinity(0, previous)
    result = {
        "detector": detector,
        "size": list(size),
        "frames": frames,
        "frames_per_s": round(frames / wall, 1),
        "cpu_ms_per_frame": round(1000 * cpu_s / frames, 4),
        "motion_fraction": round(moving / frames, 3),
        "cpu": pinned,
    }
    if isinstance(det, MotionDetector):
        result["work_size"] = list(det.work_size)
    return result


def main() -> None:
    for size in ((320, 240), (640, 480)):
        for name in ("station", "baseline"):
            r = measure_throughput(size, 2000, name)
            print(f"detector={name} size={size[0]}x{size[1]} frames_per_s={r['frames_per_s']}"
                  f" cpu_ms_per_frame={r['cpu_ms_per_frame']}"
                  f" motion_fraction={r['motion_fraction']}"
                  + (f" work_size={r['work_size'][0]}x{r['work_size'][1]}"
                     if "work_size" in r else ""))


if __name__ == "__main__":
    main()
