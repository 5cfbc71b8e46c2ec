"""The daemon watching a quiet scene at 10 fps: CPU share of one core and peak RSS.

Run as its own process (``python -m station.bench.idle``) so the figures are the
daemon's, not the benchmark harness's. The camera replays a quiet stretch of the
synthetic scene from memory, back and forth so the loop has no seam, at real time:
the cost measured is the daemon's (motion detection, event logic, the writer thread),
not the scene simulator's. A Pi's ISP likewise hands frames over without CPU work.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np

from station.camera.base import Camera, Frame


def peak_rss_mb() -> float:
    """This process's own peak RSS. ``ru_maxrss`` is not used: Linux carries a parent's
    peak over fork and exec, so a child would report its parent's."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class LoopCamera(Camera):
    """Replays in-memory lores frames back and forth at real time; one shared main frame."""

    live = True

    def __init__(self, lores: list[np.ndarray], main: np.ndarray, fps: float):
        self.uri = "memory:quiet-scene"
        self.fps = fps
        self._order = list(range(len(lores))) + list(range(len(lores) - 2, 0, -1))
        self._lores, self._main = lores, main
        self._i = 0
        self._next = 0.0

    def open(self) -> None:
        self._next = time.monotonic()

    def read(self, want_main: bool = False) -> Frame | None:
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next += 1.0 / self.fps
        i = self._i
        self._i += 1
        return Frame(i, time.time(), self._lores[self._order[i % len(self._order)]],
                     self._main if want_main else None)

    def close(self) -> None:
        pass


def quiet_frames(seed: int, seconds: float, fps: float, lores_size, main_size):
    """``seconds`` of frames from a stretch of the scene with no crossing in it."""
    from station.camera.synthetic import SyntheticCamera, build_schedule

    horizon = 900.0
    schedule = build_schedule(seed, horizon)
    busy = sorted((c.start_s - 3, c.end_s + 3) for c in schedule.crossings)
    start, t = None, 0.0
    for a, b in busy + [(horizon, horizon)]:
        if a - t >= seconds:
            start = t
            break
        t = max(t, b)
    if start is None:
        raise RuntimeError(f"no quiet stretch of {seconds} s in scene {seed}")
    cam = SyntheticCamera(seed=seed, main_size=main_size, lores_size=lores_size, fps=fps,
                          realtime=False, duration_s=start + seconds)
    cam.open()
    lores, main = [], None
    while (frame := cam.read(want_main=main is None)) is not None:
        if frame.timestamp - cam.clock.start < start:
            continue
        lores.append(frame.lores)
        if frame.main is not None and main is None:
            main = frame.main
    cam.close()
    if main is None:
        raise RuntimeError("scene produced no main frame")
    return lores, main


def save_quiet_frames(path: str, seconds: float = 10.0, fps: float = 10.0,
                      lores_size=(320, 180), main_size=(1280, 720)) -> None:
    """Render the quiet stretch here, so the measured process never runs the simulator."""
    lores, main = quiet_frames(seed=11, seconds=seconds, fps=fps, lores_size=lores_size, main_size=main_size)
    np.savez(path, lores=np.stack(lores), main=main)


def measure_idle(frames_path: str, seconds: float = 30.0, fps: float = 10.0, cpu: int | None = 0,
                 with_model: bool = True) -> dict:
    from station.config import parse_config
    from station.daemon import StationDaemon
    from station.log import setup_logging

    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    import cv2

    cv2.setNumThreads(1)
    setup_logging("warning")
    with np.load(frames_path) as data:
        lores, main = list(data["lores"]), data["main"]
    lores_size, main_size = (lores[0].shape[1], lores[0].shape[0]), (main.shape[1], main.shape[0])
    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config({
            "station": {"id": "bench", "deployment_id": "bench", "latitude": 43.1, "longitude": 131.5},
            "camera": {"uri": "memory", "fps": fps, "main_size": list(main_size), "lores_size": list(lores_size)},
            "storage": {"data_dir": tmp, "min_free_mb": 0},
            "classifier": {"enabled": with_model},
            "logging": {"level": "warning"},
        })
        daemon = StationDaemon.build(cfg, camera=LoopCamera(lores, main, fps))
        rss_before_model = peak_rss_mb()
        if daemon.classifier is not None:
            # In the field the model is loaded at the first event; load it now so the
            # peak below is the daemon's real working peak.
            daemon.classifier._ensure_classifier()
        cpu0, wall0 = time.process_time(), time.monotonic()
        daemon.run(duration_s=seconds)
        cpu_s, wall_s = time.process_time() - cpu0, time.monotonic() - wall0
        events = daemon.recorder.events_closed
        frames = daemon.stats.frames
    return {
        "seconds": round(wall_s, 2),
        "fps_target": fps,
        "frames": frames,
        "fps_achieved": round(frames / wall_s, 2),
        "cpu_s": round(cpu_s, 3),
        "cpu_percent_of_one_core": round(100.0 * cpu_s / wall_s, 2),
        "cpu_ms_per_frame": round(1000.0 * cpu_s / max(frames, 1), 3),
        "events_on_quiet_scene": events,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_before_model_mb": round(rss_before_model, 1),
        "model_loaded": daemon.classifier is not None,
        "main_size": list(main_size),
        "lores_size": list(lores_size),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--frames", required=True, help="npz written by save_quiet_frames()")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--no-model", action="store_true")
    args = p.parse_args(argv)
    json.dump(measure_idle(args.frames, args.seconds, args.fps, with_model=not args.no_model), sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
