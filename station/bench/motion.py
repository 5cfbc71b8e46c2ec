"""``station bench motion``: is motion detection fast and frugal enough for a Pi, and
does it beat the plain frame-difference baseline?

Figures, never assertions:

* throughput — frames/s and CPU ms per frame of ``detect()`` on one core, at 320×240
  and 640×480, for our detector and the baseline;
* idle — the whole daemon watching a quiet scene at 10 fps: CPU share of one core and
  peak RSS (a separate process, see :mod:`station.bench.idle`);
* accuracy — both detectors drive the same event recorder over synthetic scenes with
  known crossings: recall, false events per hour, trigger delay and how early events
  begin relative to the animal's entry.

Field targets: ≥ 2,000 frames/s at 320×240; idle ≤ 2 % of a core; RSS ≤ 150 MB; fewer
false events than the baseline at equal or better recall.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from station.bench.scoring import Interval, score_events

TARGETS = {"fps_320x240": 2000, "idle_cpu_percent": 2.0, "peak_rss_mb": 150}


class _IntervalSink:
    """Collects event intervals; the benchmark needs no disk."""

    def __init__(self):
        self.events: list[tuple[float, float, float]] = []

    def opened(self, event):
        pass

    def still(self, event, still, image):
        pass

    def closed(self, event):
        self.events.append((event.start_time, event.end_time, event.trigger_time))


def accuracy(seeds: list[int], duration_s: float, fps: float = 10.0, lores_size=(320, 180)) -> dict:
    """Run both detectors over the same synthetic frames and score their events."""
    from station.camera.base import Frame
    from station.camera.synthetic import SyntheticCamera
    from station.config.events import EventsSection
    from station.config.motion import MotionSection
    from station.events.recorder import EventRecorder
    from station.motion.baseline import FrameDiffBaseline
    from station.motion.detector import MotionDetector

    events_cfg = EventsSection()
    out: dict = {}
    totals = {name: {"crossings": 0, "found": 0, "false": 0, "hours": 0.0, "cpu_s": 0.0, "frames": 0}
              for name in ("station", "baseline")}
    for seed in seeds:
        cam = SyntheticCamera(seed=seed, lores_size=lores_size, fps=fps, realtime=False, duration_s=duration_s)
        cam.open()
        detectors = {"station": MotionDetector(MotionSection(), lores_size, fps),
                     "baseline": FrameDiffBaseline(lores_size)}
        sinks = {name: _IntervalSink() for name in detectors}
        recorders = {name: EventRecorder(events_cfg, "bench", "bench", sinks[name], 1 / fps)
                     for name in detectors}
        cpu = dict.fromkeys(detectors, 0.0)
        t0 = None
        frames = 0
        while (frame := cam.read(want_main=False)) is not None:
            frames += 1
            t0 = frame.timestamp if t0 is None else t0
            lean = Frame(frame.index, frame.timestamp - t0, frame.lores, None)
            for name, det in detectors.items():
                c = time.thread_time()
                result = det.detect(frame.lores)
                cpu[name] += time.thread_time() - c
                recorders[name].feed(lean, result)
        cam.close()
        for rec in recorders.values():
            rec.interrupt("end_of_media")
        truth = [Interval(c.start_s, c.end_s, c.kind) for c in cam.schedule.crossings if c.start_s < duration_s]
        per_seed = {}
        for name, sink in sinks.items():
            evs = [Interval(s, e) for s, e, _ in sink.events]
            score = score_events(evs, truth, duration_s, triggers=[t for _, _, t in sink.events])
            per_seed[name] = score.summary()
            tot = totals[name]
            tot["crossings"] += score.crossings
            tot["found"] += score.found
            tot["false"] += score.false_events
            tot["hours"] += score.hours
            tot["cpu_s"] += cpu[name]
            tot["frames"] += frames
        out[f"seed_{seed}"] = per_seed
    summary = {}
    for name, tot in totals.items():
        summary[name] = {
            "recall": round(tot["found"] / tot["crossings"], 4) if tot["crossings"] else None,
            "crossings": tot["crossings"],
            "found": tot["found"],
            "false_events": tot["false"],
            "false_events_per_hour": round(tot["false"] / tot["hours"], 2) if tot["hours"] else None,
            "cpu_ms_per_frame": round(1000 * tot["cpu_s"] / max(tot["frames"], 1), 4),
        }
    return {"scenes": {"seeds": seeds, "duration_s": duration_s, "fps": fps,
                       "lores_size": list(lores_size)}, "summary": summary, "per_scene": out}


def idle_in_subprocess(seconds: float) -> dict:
    import tempfile

    from station.bench.idle import save_quiet_frames

    with tempfile.TemporaryDirectory() as tmp:
        frames = os.path.join(tmp, "quiet.npz")
        save_quiet_frames(frames)
        cmd = [sys.executable, "-m", "station.bench.idle", "--frames", frames, "--seconds", str(seconds)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 4 + 300)
    if res.returncode != 0:
        return {"error": res.stderr.strip()[-2000:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def add_arguments(p) -> None:
    p.add_argument("--quick", action="store_true", help="shorter run (less precise figures)")


def run(quick: bool = False) -> dict:
    from station.bench.motion_speed import measure_throughput
    from station.log import setup_logging

    setup_logging("warning")

    from station.progress import progress

    frames = 1000 if quick else 4000
    throughput = {}
    with progress("motion bench", total=6, unit="step") as bar:
        for size in ((320, 240), (640, 480)):
            for det in ("station", "baseline"):
                bar.advance(0, name=f"throughput {det} {size[0]}x{size[1]}")
                throughput[f"{det}_{size[0]}x{size[1]}"] = measure_throughput(size=size, frames=frames, detector=det)
                bar.advance()
        bar.advance(0, name="idle daemon")
        idle = idle_in_subprocess(10.0 if quick else 30.0)
        bar.advance(name="accuracy on synthetic scenes")
        acc = accuracy(seeds=[1] if quick else [1, 2, 3], duration_s=300.0 if quick else 900.0)
        bar.advance()
    st, bl = acc["summary"]["station"], acc["summary"]["baseline"]
    verdict = {
        "fps_320x240_ok": throughput["station_320x240"]["frames_per_s"] >= TARGETS["fps_320x240"],
        "idle_cpu_ok": "cpu_percent_of_one_core" in idle and idle["cpu_percent_of_one_core"] <= TARGETS["idle_cpu_percent"],
        "rss_ok": "peak_rss_mb" in idle and idle["peak_rss_mb"] <= TARGETS["peak_rss_mb"],
        "beats_baseline": (st["recall"] or 0) >= (bl["recall"] or 0) and st["false_events"] < bl["false_events"],
    }
    return {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "targets": TARGETS, "throughput": throughput, "idle": idle, "accuracy": acc, "verdict": verdict}


def print_report(r: dict) -> None:
    print("Motion detection benchmark (one core)")
    print("\nThroughput of detect():")
    for name, t in r["throughput"].items():
        print(f"  {name:22} {t['frames_per_s']:9.0f} frames/s  {t['cpu_ms_per_frame']:.3f} ms CPU/frame")
    idle = r["idle"]
    print("\nDaemon watching a quiet scene:")
    if "error" in idle:
        print(f"  failed: {idle['error']}")
    else:
        print(f"  {idle['fps_achieved']} fps for {idle['seconds']} s: {idle['cpu_percent_of_one_core']} % of one core "
              f"({idle['cpu_ms_per_frame']} ms/frame), peak RSS {idle['peak_rss_mb']} MB with the model loaded "
              f"({idle['rss_before_model_mb']} MB before), "
              f"{idle['events_on_quiet_scene']} event(s)")
    acc = r["accuracy"]
    sc = acc["scenes"]
    print(f"\nAccuracy on synthetic scenes {sc['seeds']} x {sc['duration_s']:g} s:")
    for name, s in acc["summary"].items():
        print(f"  {name:9} recall {s['recall']:.3f} ({s['found']}/{s['crossings']})  "
              f"false events {s['false_events']} ({s['false_events_per_hour']}/h)")
    print("\nTargets:", ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in r["verdict"].items()))
