"""``station bench classifier``: is on-device classification fast and frugal enough?

Figures, never assertions:

* the models in ``models/`` (int8 and float32): size, load time, median and p90
  ``invoke()`` latency over >= 50 runs with 1 and 2 threads, on every TFLite runtime
  installed here (ai-edge-litert, tflite-runtime; "not installed" otherwise);
* the whole classify path of the station's default model on a generated event (8 stills
  of 1280x720 JPEG, 6 with a motion box, as the daemon writes them): wall time per event
  over the time of its ``invoke()`` calls alone. Raw invokes and events are measured
  in turn, so a busy shared machine slows both alike. Target: <= 1.15x;
* peak RSS of a fresh process that loads the default classifier and classifies the event.

Latency is noisy on a shared machine: the report gives the load average it ran under.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_OVERHEAD = 1.15
EVENT_STILLS = 8
STILL_SIZE = (1280, 720)


def _version(pip_name: str) -> str | None:
    try:
        return importlib.metadata.version(pip_name)
    except importlib.metadata.PackageNotFoundError:
        return None


def make_event(folder: Path, seed: int = 0) -> dict:
    """A record and its stills: smooth textured 1280x720 JPEGs (quality 90), two
    pre-trigger stills without boxes, then six with one box each."""
    import cv2

    rng = np.random.default_rng(seed)
    frames = []
    for i in range(EVENT_STILLS):
        small = rng.integers(0, 256, (36, 64, 3), dtype=np.uint8)
        img = cv2.resize(small, STILL_SIZE, interpolation=cv2.INTER_CUBIC)
        img = cv2.add(img, rng.integers(0, 12, img.shape, dtype=np.uint8))
        name = f"{i:03d}.jpg"
        cv2.imwrite(str(folder / name), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        boxes = [] if i < 2 else [[round(0.1 + 0.06 * i, 3), 0.3, 0.22, 0.35]]
        frames.append({"index": i, "file": name, "pre_trigger": i < 2,
                       "motion_score": 0.0 if i < 2 else 0.02 + 0.001 * i, "boxes": boxes})
    return {"id": "bench", "frames": frames}


def _invoke_times(interpreter, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def latency(model_path: Path, runtime: str, threads: int, runs: int) -> dict:
    from station.classifier.runtime import make_interpreter

    loads = []
    for _ in range(3):
        t0 = time.perf_counter()
        interp, _ = make_interpreter(model_path, threads, runtime)
        loads.append((time.perf_counter() - t0) * 1e3)
    detail = interp.get_input_details()[0]
    x = np.random.default_rng(0).integers(0, 256, detail["shape"], dtype=np.uint8).astype(detail["dtype"])
    interp.set_tensor(detail["index"], x)
    _invoke_times(interp, 5)
    times = sorted(_invoke_times(interp, runs))
    return {"load_ms": round(statistics.median(loads), 1), "invoke_median_ms": round(statistics.median(times), 2),
            "invoke_p90_ms": round(times[int(0.9 * (len(times) - 1))], 2), "runs": runs}


def classify_path(threads: int, rounds: int, runs: int) -> dict:
    """Whole-path time of an event and of one picture against their raw invokes."""
    from station.classifier import Classifier
    from station.classifier.preprocess import load_views
    from station.config.classifier import ClassifierSection

    clf = Classifier.from_config(ClassifierSection(threads=threads))
    interp = clf.model.interpreter
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        record = make_event(folder)
        clf.classify_event(record, folder)  # warm-up
        n_invokes = sum(1 + min(len(f["boxes"]), clf.max_boxes) for f in record["frames"])
        picture = folder / record["frames"][0]["file"]
        raw, events, pictures, ratios, picture_ratios = [], [], [], [], []
        for _ in range(rounds):
            block = statistics.median(_invoke_times(interp, runs))
            raw.append(block)
            t0 = time.perf_counter()
            clf.classify_event(record, folder)
            events.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            clf.classify_image(picture)
            pictures.append(time.perf_counter() - t0)
            ratios.append(events[-1] * 1e3 / (n_invokes * block))
            picture_ratios.append(pictures[-1] * 1e3 / block)
        prep = []
        for f in record["frames"]:
            t0 = time.perf_counter()
            load_views(folder / f["file"], [tuple(b) for b in f["boxes"]], clf.model.input_size,
                       clf.crop_margin, clf.max_boxes)
            prep.append((time.perf_counter() - t0) * 1e3)
    invoke_ms = statistics.median(raw)
    event_ms = statistics.median(events) * 1e3
    picture_ms = statistics.median(pictures) * 1e3
    return {
        "threads": threads, "invoke_median_ms": round(invoke_ms, 2),
        "event": {"stills": len(record["frames"]), "invokes": n_invokes, "median_ms": round(event_ms, 1),
                  "overhead": round(statistics.median(ratios), 3), "overhead_best": round(min(ratios), 3)},
        "picture": {"invokes": 1, "median_ms": round(picture_ms, 2),
                    "overhead": round(statistics.median(picture_ratios), 3)},
        "decode_crop_resize_ms_per_still": round(statistics.median(prep), 2),
        "serial_overhead": round((n_invokes * invoke_ms + sum(prep)) / (n_invokes * invoke_ms), 3),
        "rounds": rounds,
    }


def rss_in_subprocess() -> dict:
    res = subprocess.run([sys.executable, "-m", "station.bench.classifier", "--rss"],
                         capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        return {"error": res.stderr.strip()[-2000:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def _peak_rss_mb() -> float:
    """This process's peak RSS. /proc's VmHWM, as ru_maxrss keeps the parent's peak across exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_probe() -> dict:
    import cv2  # noqa: F401  (counted in the baseline, as in the daemon)

    from station.classifier import Classifier
    from station.config.classifier import ClassifierSection

    base = _peak_rss_mb()
    clf = Classifier.from_config(ClassifierSection())
    with tempfile.TemporaryDirectory() as tmp:
        record = make_event(Path(tmp))
        result = clf.classify_event(record, Path(tmp))
    return {"baseline_rss_mb": round(base, 1), "peak_rss_mb": round(_peak_rss_mb(), 1), "status": result["status"]}


def add_arguments(p) -> None:
    p.add_argument("--quick", action="store_true", help="fewer invokes (less precise figures)")


def run(quick: bool = False) -> dict:
    from station.classifier.runtime import PIP_NAMES, available_runtimes
    from station.config.classifier import PROJECT_ROOT

    models_dir = PROJECT_ROOT / "models"
    manifest = json.loads((models_dir / "MANIFEST.json").read_text())
    runs = 50 if quick else 200
    installed = available_runtimes()
    runtimes = {name: (_version(PIP_NAMES[name]) if name in installed else "not installed")
                for name in PIP_NAMES}
    models = {}
    for key, entry in manifest["models"].items():
        path = models_dir / entry["file"]
        m = {"file": entry["file"], "size_mb": round(path.stat().st_size / 1e6, 2), "runtimes": {}}
        for rt in installed:
            m["runtimes"][rt] = {f"threads_{n}": latency(path, rt, n, runs) for n in (1, 2)}
        models[key] = m
    path_figures = [classify_path(n, 5 if quick else 15, 30) for n in (1, 2)]
    rss = rss_in_subprocess()
    best = min(p["event"]["overhead"] for p in path_figures)
    return {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "load_average_1m": round(os.getloadavg()[0], 2)},
        "runtimes": runtimes, "models": models, "classify_path": path_figures, "rss": rss,
        "target_overhead": TARGET_OVERHEAD,
        "verdict": {"overhead_ok": best <= TARGET_OVERHEAD},
    }


def print_report(r: dict) -> None:
    m = r["machine"]
    print(f"Classifier benchmark ({m['cpus']} CPUs, Python {m['python']}, load average {m['load_average_1m']})")
    print("\nRuntimes: " + ", ".join(f"{k} {v}" for k, v in r["runtimes"].items()))
    print("\nModels (median invoke / p90, load time):")
    for key, mod in r["models"].items():
        print(f"  {key:5} {mod['file']} {mod['size_mb']} MB")
        for rt, by_threads in mod["runtimes"].items():
            for n, f in by_threads.items():
                print(f"    {rt:15} {n.replace('_', ' '):9} {f['invoke_median_ms']:7.2f} ms  "
                      f"p90 {f['invoke_p90_ms']:7.2f} ms  load {f['load_ms']:6.1f} ms  ({f['runs']} runs)")
    print("\nWhole classify path (default model), wall time over raw invoke():")
    for p in r["classify_path"]:
        e, pic = p["event"], p["picture"]
        print(f"  threads {p['threads']}: event of {e['stills']} stills, {e['invokes']} invokes: "
              f"{e['median_ms']:.1f} ms = {e['overhead']:.2f}x of invoke (best round {e['overhead_best']:.2f}x; "
              f"{p['invoke_median_ms']:.2f} ms each); "
              f"one picture {pic['median_ms']:.1f} ms = {pic['overhead']:.2f}x; "
              f"decode+crop+resize {p['decode_crop_resize_ms_per_still']:.2f} ms per still "
              f"(on one core, without the read-ahead: {p['serial_overhead']:.2f}x)")
    rss = r["rss"]
    if "error" in rss:
        print(f"\nPeak RSS: failed: {rss['error']}")
    else:
        print(f"\nPeak RSS: {rss['peak_rss_mb']} MB (Python + numpy + OpenCV before the model: {rss['baseline_rss_mb']} MB)")
    print(f"\nTarget overhead <= {r['target_overhead']}x: {'yes' if r['verdict']['overhead_ok'] else 'NO'}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--rss"]:
        print(json.dumps(_rss_probe()))
    else:
        report = run(quick="--quick" in sys.argv)
        print(json.dumps(report, indent=1) if "--json" in sys.argv else "")
        if "--json" not in sys.argv:
            print_report(report)
