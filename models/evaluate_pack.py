#!/usr/bin/env python3
"""Measure the default pack's detectors on a folder of labelled pictures (runtime only).

Needs only what the station runs with: ai-edge-litert, numpy, opencv-python-headless.

    python models/evaluate_pack.py ../shared/datasets/train --out models/pack_eval_train.json
    python models/evaluate_pack.py ../shared/datasets/train --detector megadetector_lite_640_fp32.tflite ...

The folder has one sub-folder per expected tag (``empty``, ``human``, ``vehicle``,
``leopard``, ``tiger``, ``prey_*``, ``other_animal``), as ``station evaluate`` reads it.
There are no boxes in such a folder, so every figure is per picture:

* detector ("something of interest"): *recall* = share of non-empty pictures with at
  least one box at or above the threshold; *false* = empty pictures with at least one
  box (and the number of boxes on them);
* person/vehicle detector: person recall on ``human``, vehicle recall on ``vehicle``,
  and pictures of animals or empty scenes that get a person or vehicle box.

Latency: median ``invoke()`` of each model on a letterboxed picture, at 1 and 2
threads. RSS: ``--rss`` loads every model of the pack in this process, runs each once,
and reports the process's resident memory before and after (VmRSS, VmHWM).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # legacy runtime
    from tflite_runtime.interpreter import Interpreter  # type: ignore

HERE = Path(__file__).resolve().parent
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
PV_THRESHOLDS = (0.3, 0.4, 0.5, 0.6)
PERSON_IDS = (0,)
VEHICLE_IDS = (1, 2, 3, 5, 6, 7, 8)  # bicycle, car, motorcycle, bus, train, truck, boat (COCO ids)
ANIMAL_FOLDERS = ("leopard", "tiger", "prey_boar", "prey_deer", "prey_hare", "other_animal")


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"{path}: not a readable picture")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def letterbox(rgb: np.ndarray, size: int, pad: int) -> np.ndarray:
    """Top-left letterbox (the detector's contract): scale = min(S/w, S/h), rest = pad."""
    h, w = rgb.shape[:2]
    scale = min(size / w, size / h)
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    out = np.full((size, size, 3), pad, np.uint8)
    out[:nh, :nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return out


def squash(rgb: np.ndarray, size: int) -> np.ndarray:
    """The whole frame resized to size x size (the SSD's fixed-shape resizer)."""
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if max(h, w) > size else cv2.INTER_LINEAR)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        ih = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = iw * ih
        order = rest[inter / np.maximum(area[i] + area[rest] - inter, 1e-9) <= iou]
    return keep


def decode_detector(raw: np.ndarray, threshold: float, iou: float = 0.45) -> tuple[np.ndarray, np.ndarray]:
    """[N, 6] (cx, cy, w, h, objectness, class) -> boxes x1 y1 x2 y2 (input px), scores; NMS applied."""
    score = raw[:, 4] * raw[:, 5]
    m = score >= threshold
    r, s = raw[m], score[m]
    boxes = np.stack([r[:, 0] - r[:, 2] / 2, r[:, 1] - r[:, 3] / 2, r[:, 0] + r[:, 2] / 2, r[:, 1] + r[:, 3] / 2], 1)
    keep = nms(boxes, s, iou)
    return boxes[keep], s[keep]


class Model:
    def __init__(self, path: Path, threads: int = 1):
        self.path = path
        self.it = Interpreter(model_path=str(path), num_threads=threads)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        self.outs = self.it.get_output_details()
        self.size = int(self.inp["shape"][1])

    def run(self, img: np.ndarray) -> list[np.ndarray]:
        self.it.set_tensor(self.inp["index"], img[None])
        self.it.invoke()
        res = []
        for d in self.outs:
            y = self.it.get_tensor(d["index"])[0]
            scale, zp = d["quantization"]
            res.append((y.astype(np.float32) - zp) * scale if scale else y.astype(np.float32))
        return res

    def latency(self, img: np.ndarray, runs: int, warmup: int = 3) -> float:
        for _ in range(warmup):
            self.run(img)
        times = []
        for _ in range(runs):
            self.it.set_tensor(self.inp["index"], img[None])
            t0 = time.perf_counter()
            self.it.invoke()
            times.append((time.perf_counter() - t0) * 1e3)
        return round(statistics.median(times), 2)


def pictures(root: Path) -> list[tuple[str, Path]]:
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() in (".jpg", ".jpeg", ".png"):
                items.append((folder.name, f))
    if not items:
        raise SystemExit(f"{root}: no pictures in sub-folders")
    return items


def counts(items) -> dict:
    out: dict[str, int] = {}
    for tag, _ in items:
        out[tag] = out.get(tag, 0) + 1
    return out


def evaluate_detector(path: Path, items, pad: int, images: dict) -> dict:
    m = Model(path)
    per_image = []
    for tag, f in items:
        raw = m.run(letterbox(images[f], m.size, pad))[0]
        boxes, scores = decode_detector(raw, min(THRESHOLDS))
        per_image.append((tag, f.name, scores))
    nonempty = [s for t, _, s in per_image if t != "empty"]
    empty = [s for t, _, s in per_image if t == "empty"]
    table = {}
    for thr in THRESHOLDS:
        hit = [bool((s >= thr).any()) for s in nonempty]
        table[f"{thr:.1f}"] = {
            "recall_nonempty": round(float(np.mean(hit)), 4), "n_nonempty": len(nonempty),
            "missed": [n for (t, n, s) in per_image if t != "empty" and not (s >= thr).any()],
            "empty_with_box": int(sum(bool((s >= thr).any()) for s in empty)), "n_empty": len(empty),
            "boxes_on_empty": int(sum(int((s >= thr).sum()) for s in empty)),
            "recall_by_tag": {tag: round(float(np.mean([bool((s >= thr).any()) for t, _, s in per_image if t == tag])), 4)
                              for tag in sorted({t for t, _, _ in per_image if t != "empty"})},
        }
    return {"file": path.name, "input": m.size, "pad": pad, "per_threshold": table,
            "top_score": {n: round(float(s.max()) if s.size else 0.0, 3) for _, n, s in per_image}}


def detector_crops(path: Path, items, images: dict, pad: int, threshold: float, margin: float = 0.25,
                   limit: int = 3) -> dict:
    """Square crops (box side x (1 + 2 margin), clamped to the frame) around the detector's
    best ``limit`` boxes at ``threshold``: what a two-stage pipeline hands to stage two."""
    m = Model(path)
    out = {}
    for _, f in items:
        rgb = images[f]
        h, w = rgb.shape[:2]
        scale = min(m.size / w, m.size / h)
        boxes, _ = decode_detector(m.run(letterbox(rgb, m.size, pad))[0], threshold)
        crops = []
        for x1, y1, x2, y2 in boxes[:limit] / scale:
            side = int(round(min(max(max(x2 - x1, y2 - y1) * (1 + 2 * margin), 32), w, h)))
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            x0 = int(min(max(round(cx - side / 2), 0), w - side))
            y0 = int(min(max(round(cy - side / 2), 0), h - side))
            crops.append(rgb[y0:y0 + side, x0:x0 + side])
        out[f] = crops
    return out


def evaluate_pv(path: Path, items, images: dict, crops: dict | None = None) -> dict:
    """Person/vehicle scores per picture: on the whole frame, or (crops given) the best over
    the detector's crops (a picture without crops scores 0)."""
    m = Model(path)
    rows = []
    for tag, f in items:
        p = v = 0.0
        for view in ([images[f]] if crops is None else crops[f]):
            boxes, classes, scores, count = m.run(squash(view, m.size))
            n = int(count[0]) if np.ndim(count) else int(count)
            cls, sc = classes[:n].astype(int), scores[:n]
            p = max(p, float(sc[np.isin(cls, PERSON_IDS)].max(initial=0.0)))
            v = max(v, float(sc[np.isin(cls, VEHICLE_IDS)].max(initial=0.0)))
        rows.append((tag, f.name, p, v))
    table = {}
    for thr in PV_THRESHOLDS:
        def share(sel, col):
            vals = [r[col] >= thr for r in rows if sel(r[0])]
            return round(float(np.mean(vals)), 4) if vals else None, len(vals)
        pr, n_h = share(lambda t: t == "human", 2)
        vr, n_v = share(lambda t: t == "vehicle", 3)
        table[f"{thr:.1f}"] = {
            "person_recall_human": pr, "n_human": n_h,
            "vehicle_recall_vehicle": vr, "n_vehicle": n_v,
            "animal_pictures_with_person": sum(r[2] >= thr for r in rows if r[0] in ANIMAL_FOLDERS),
            "animal_pictures_with_vehicle": sum(r[3] >= thr for r in rows if r[0] in ANIMAL_FOLDERS),
            "n_animal": sum(r[0] in ANIMAL_FOLDERS for r in rows),
            "empty_pictures_with_person": sum(r[2] >= thr for r in rows if r[0] == "empty"),
            "empty_pictures_with_vehicle": sum(r[3] >= thr for r in rows if r[0] == "empty"),
            "n_empty": sum(r[0] == "empty" for r in rows),
            "false_person_files": [r[1] for r in rows if r[0] not in ("human",) and r[2] >= thr],
            "false_vehicle_files": [r[1] for r in rows if r[0] not in ("vehicle",) and r[3] >= thr],
        }
    return {"file": path.name, "input": m.size, "views": "whole frame" if crops is None else "detector crops",
            "per_threshold": table,
            "scores": {r[1]: {"person": round(r[2], 3), "vehicle": round(r[3], 3)} for r in rows}}


def latencies(paths: list[Path], image: np.ndarray, runs: int, threads: list[int]) -> dict:
    """Median and minimum invoke() time per model and thread count, the models taking turns
    (so a busy machine slows them alike); the load average is reported with them."""
    models, feeds, times = {}, {}, {}
    for p in paths:
        for n in threads:
            m = Model(p, n)
            kind = "detector" if len(m.outs) == 1 and len(m.outs[0]["shape"]) == 3 else "other"
            x = letterbox(image, m.size, 114) if kind == "detector" else squash(image, m.size)
            m.run(x)
            models[(p.name, n)], feeds[(p.name, n)], times[(p.name, n)] = m, x, []
    for _ in range(runs):
        for key, m in models.items():
            m.it.set_tensor(m.inp["index"], feeds[key][None])
            t0 = time.perf_counter()
            m.it.invoke()
            times[key].append((time.perf_counter() - t0) * 1e3)
    out: dict = {"loadavg_1_5_15": Path("/proc/loadavg").read_text().split()[:3], "runs": runs}
    for (name, n), ts in times.items():
        out.setdefault(name, {})[str(n)] = {"median": round(statistics.median(ts), 1), "min": round(min(ts), 1)}
    return out


def rss_kb() -> dict:
    status = Path("/proc/self/status").read_text()
    get = lambda key: int(next(l.split()[1] for l in status.splitlines() if l.startswith(key)))  # noqa: E731
    return {"VmRSS_kB": get("VmRSS:"), "VmHWM_kB": get("VmHWM:")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, nargs="?")
    ap.add_argument("--dir", type=Path, default=HERE, help="folder holding the models")
    ap.add_argument("--detector", nargs="*", default=["megadetector_lite_416_int8dr.tflite"])
    ap.add_argument("--pad", type=int, nargs="*", default=[114])
    ap.add_argument("--pv", default="ssd_mobilenet_v2_coco_quant_postprocess.tflite")
    ap.add_argument("--crop-threshold", type=float, default=0.3, help="detector threshold for the crops")
    ap.add_argument("--latency-runs", type=int, default=20)
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--also-time", nargs="*", default=["efficientnet_lite0_emb_int8.tflite", "efficientnet_lite0_int8.tflite"],
                    help="more models to time (not evaluated)")
    ap.add_argument("--rss", nargs="*", metavar="MODEL", help="load these models together and report RSS")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    if args.rss is not None:
        before = rss_kb()
        models = [Model(args.dir / name, 2) for name in args.rss]
        loaded = rss_kb()
        for m in models:
            m.run(np.zeros(tuple(int(s) for s in m.inp["shape"][1:]), np.dtype(m.inp["dtype"])))
        after = rss_kb()
        res = {"models": args.rss, "threads": 2, "before_load": before, "after_load": loaded,
               "after_one_invoke_each": after}
        print(json.dumps(res, indent=2))
        if args.out:
            args.out.write_text(json.dumps(res, indent=1) + "\n")
        return 0

    items = pictures(args.data)
    images = {f: read_rgb(f) for _, f in items}
    report = {"dataset": str(args.data), "n_by_tag": counts(items), "detector": [], "person_vehicle": None,
              "person_vehicle_on_detector_crops": None}
    for name in args.detector:
        for pad in args.pad:
            r = evaluate_detector(args.dir / name, items, pad, images)
            report["detector"].append(r)
            t = r["per_threshold"]
            print(f"{name} pad {pad}: " + "  ".join(
                f"@{k} recall {v['recall_nonempty']:.3f} empty+ {v['empty_with_box']}/{v['n_empty']} ({v['boxes_on_empty']} boxes)"
                for k, v in t.items()), flush=True)
    if args.pv and (args.dir / args.pv).is_file():
        crops = detector_crops(args.dir / args.detector[0], items, images, args.pad[0], args.crop_threshold)
        report["person_vehicle"] = evaluate_pv(args.dir / args.pv, items, images)
        report["person_vehicle_on_detector_crops"] = r = evaluate_pv(args.dir / args.pv, items, images, crops)
        r["crops_from"] = {"detector": args.detector[0], "threshold": args.crop_threshold, "margin": 0.25, "max_boxes": 3}
        for k, v in [(f"frame@{k}", v) for k, v in report["person_vehicle"]["per_threshold"].items()] + \
                [(f"crops@{k}", v) for k, v in r["per_threshold"].items()]:
            print(f"{args.pv} {k}: person {v['person_recall_human']} (n={v['n_human']}) vehicle "
                  f"{v['vehicle_recall_vehicle']} (n={v['n_vehicle']}) animal->person {v['animal_pictures_with_person']}/"
                  f"{v['n_animal']} animal->vehicle {v['animal_pictures_with_vehicle']} empty->person "
                  f"{v['empty_pictures_with_person']}/{v['n_empty']} empty->vehicle {v['empty_pictures_with_vehicle']}", flush=True)
    lat_paths = [args.dir / n for n in args.detector] + ([args.dir / args.pv] if args.pv and (args.dir / args.pv).is_file() else [])
    lat_paths += [args.dir / n for n in args.also_time if (args.dir / n).is_file()]
    report["latency_ms"] = latencies(lat_paths, images[items[0][1]], args.latency_runs, args.threads)
    print(json.dumps(report["latency_ms"], indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
