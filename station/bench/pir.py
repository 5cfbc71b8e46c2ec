"""``station bench pir``: what each ``[trigger] mode`` finds and how often it cries wolf.

The synthetic forest's crossings are the truth; its simulated PIR (misses small and slow
animals, fires on some warm gusts: :mod:`station.camera.synthetic.pir`) is the sensor. For
each mode the station's own pieces run over the same frames: the motion detector, the
trigger gate, the pir_wake state and the event recorder. Figures, never assertions:

* recall (crossings an event overlaps) and false events per hour;
* median trigger delay after the animal entered, and median lead (how early the event's
  first frame is; negative in pir_wake, which has no pre-trigger buffer);
* pir_wake: the share of the time the camera would be on (the power it saves).
"""

from __future__ import annotations

import os
import statistics
import sys

import numpy as np

from station.bench.scoring import Interval, score_events

MODES = ("motion", "pir_and_motion", "pir_wake")


class _Sink:
    def __init__(self):
        self.events: list[tuple[float, float, float]] = []

    def opened(self, event):
        pass

    def still(self, event, still, image):
        pass

    def closed(self, event):
        self.events.append((event.start_time, event.end_time, event.trigger_time))


def run_scene(seed: int, duration_s: float, fps: float = 10.0, lores_size=(320, 180)) -> dict:
    """Every mode over one scene; per mode its score, and the PIR's own hits."""
    from station.camera.base import Frame
    from station.camera.synthetic import SyntheticCamera
    from station.camera.synthetic.pir import pir_intervals
    from station.config.events import EventsSection
    from station.config.motion import MotionSection
    from station.config.trigger import TriggerSection
    from station.events.recorder import EventRecorder
    from station.events.trigger import TriggerGate, WakeState
    from station.gpio.pir import ScenePir
    from station.motion.detector import MotionDetector

    trigger_cfg, events_cfg = TriggerSection(), EventsSection()
    cam = SyntheticCamera(seed=seed, lores_size=lores_size, fps=fps, realtime=False, duration_s=duration_s)
    cam.open()
    lanes = {}
    for mode in MODES:
        sink = _Sink()
        recorder = EventRecorder(events_cfg, "bench", "bench", sink, 1 / fps)
        gate = TriggerGate(mode, None if mode == "motion" else ScenePir(), trigger_cfg.pir_window_s)
        recorder.trigger_source = gate.source
        lanes[mode] = {"detector": MotionDetector(MotionSection(), lores_size, fps), "gate": gate,
                       "recorder": recorder, "sink": sink, "awake_frames": 0,
                       "wake": WakeState(trigger_cfg.pir_wake_timeout_s) if mode == "pir_wake" else None}
    frames = 0
    token = np.zeros((1, 1, 3), np.uint8)  # stands for a still: the recorder's timing needs no picture
    while (frame := cam.read(want_main=False)) is not None:
        frames += 1
        t = frame.timestamp - cam.clock.timestamp(0.0)
        lean = Frame(frame.index, t, frame.lores, token, meta=frame.meta)
        for lane in lanes.values():
            wake = lane["wake"]
            if wake is not None:
                awake, woke = wake.update(t, bool(frame.meta.get("pir")), lane["recorder"].current is not None)
                if not awake:
                    continue  # the camera is closed: no frame, no detection
                if woke:
                    lane["detector"].reset()
            lane["awake_frames"] += 1
            result = lane["gate"].gate(lean, lane["detector"].detect(frame.lores))
            lane["recorder"].feed(lean, result, still=lane["recorder"].still_due(t))
    cam.close()
    truth = [Interval(c.start_s, c.end_s, c.kind) for c in cam.schedule.crossings if c.start_s < duration_s]
    pir_hits = [iv for iv in pir_intervals(cam.schedule) if iv[0] < duration_s]
    out = {"crossings": len(truth),
           "pir_signals": len(pir_hits),
           "pir_false_signals": sum(1 for *_, cause in pir_hits if cause == "gust"),
           "pir_saw_crossings": sum(1 for *_, cause in pir_hits if cause != "gust"),
           "modes": {}}
    for mode, lane in lanes.items():
        lane["recorder"].interrupt("end_of_media")
        events = lane["sink"].events
        score = score_events([Interval(s, e) for s, e, _ in events], truth, duration_s,
                             triggers=[t for _, _, t in events])
        summary = score.summary()
        summary["camera_on_share"] = round(lane["awake_frames"] / max(frames, 1), 4)
        out["modes"][mode] = summary
    return out


def add_arguments(p) -> None:
    p.add_argument("--quick", action="store_true", help="one 10-minute scene instead of three of 30 minutes")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="scene seeds (default 1 2 3)")


def run(quick: bool = False, seeds: list[int] | None = None) -> dict:
    from station.log import setup_logging
    from station.progress import progress

    setup_logging("warning")
    seeds = seeds or ([1] if quick else [1, 2, 3])
    duration = 600.0 if quick else 1800.0
    scenes = {}
    with progress("pir bench", total=len(seeds), unit="scene") as bar:
        for seed in seeds:
            bar.advance(0, name=f"seed {seed}")
            scenes[f"seed_{seed}"] = run_scene(seed, duration)
            bar.advance()
    summary = {}
    for mode in MODES:
        per = [s["modes"][mode] for s in scenes.values()]
        crossings = sum(p["crossings"] for p in per)
        found = sum(p["found"] for p in per)
        false = sum(p["false_events"] for p in per)
        hours = sum(p["hours"] for p in per)
        delays = [d for p in per for d in p["trigger_delays_s"]]
        leads = [x for p in per for x in p["leads_s"]]
        summary[mode] = {
            "recall": round(found / crossings, 4) if crossings else None, "found": found, "crossings": crossings,
            "false_events": false, "false_events_per_hour": round(false / hours, 2) if hours else None,
            "median_trigger_delay_s": round(statistics.median(delays), 2) if delays else None,
            "median_lead_s": round(statistics.median(leads), 2) if leads else None,
            "camera_on_share": round(statistics.mean(p["camera_on_share"] for p in per), 4),
            "missed": [m for p in per for m in p["missed"]],
        }
    pir = {"crossings": sum(s["crossings"] for s in scenes.values()),
           "seen": sum(s["pir_saw_crossings"] for s in scenes.values()),
           "false_signals": sum(s["pir_false_signals"] for s in scenes.values())}
    return {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "scenes": {"seeds": seeds, "duration_s": duration}, "simulated_pir": pir,
            "summary": summary, "per_scene": scenes}


def print_report(r: dict) -> None:
    sc = r["scenes"]
    pir = r["simulated_pir"]
    hours = len(sc["seeds"]) * sc["duration_s"] / 3600
    print(f"Trigger modes on synthetic scenes {sc['seeds']} x {sc['duration_s']:g} s ({hours:.1f} h)")
    print(f"Simulated PIR: saw {pir['seen']} of {pir['crossings']} crossings, {pir['false_signals']} false signal(s)")
    print(f"\n  {'mode':15} {'recall':>14} {'false/h':>8} {'delay s':>8} {'lead s':>7} {'camera on':>10}")
    for mode, s in r["summary"].items():
        recall = f"{s['recall']:.3f} ({s['found']}/{s['crossings']})" if s["recall"] is not None else "-"
        print(f"  {mode:15} {recall:>14} {s['false_events_per_hour']:>8} {s['median_trigger_delay_s']!s:>8} "
              f"{s['median_lead_s']!s:>7} {s['camera_on_share'] * 100:>9.1f}%")
