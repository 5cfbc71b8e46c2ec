#!/usr/bin/env python3
"""Check the built models with the runtime only (ai-edge-litert, numpy, pillow).

Verifies MANIFEST.json against the files (sha256, size, tensor contract),
benchmarks ``Interpreter.invoke`` and prints top-5 predictions for images.

    python models/check_models.py                       # verify + benchmark
    python models/check_models.py --runs 100 --threads 1 2 img1.jpg img2.png

Exit status is non-zero if a file or tensor does not match the manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # legacy runtime
    from tflite_runtime.interpreter import Interpreter  # type: ignore

HERE = Path(__file__).resolve().parent


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def preprocess(path: Path, size: int = 224, fraction: float = 0.875) -> np.ndarray:
    """Central square crop of `fraction` of the short side, bilinear resize, RGB uint8."""
    im = Image.open(path).convert("RGB")
    w, h = im.size
    side = max(1, int(round(min(w, h) * fraction)))
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def load(path: Path, threads: int):
    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    return it


def probabilities(it, img: np.ndarray) -> np.ndarray:
    inp = it.get_input_details()[0]
    out = it.get_output_details()[0]
    it.set_tensor(inp["index"], img[None])
    it.invoke()
    y = it.get_tensor(out["index"])[0]
    scale, zp = out["quantization"]
    return (y.astype(np.float32) - zp) * scale if scale else y.astype(np.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="*", type=Path)
    ap.add_argument("--dir", type=Path, default=HERE)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)

    manifest = json.loads((args.dir / "MANIFEST.json").read_text())
    errors = []
    labels_path = args.dir / manifest["labels_file"]
    labels = labels_path.read_text(encoding="utf-8").splitlines()
    if sha256(labels_path) != manifest["labels_sha256"] or len(labels) != manifest["num_classes"]:
        errors.append(f"{labels_path.name}: sha256 or line count does not match the manifest")

    results = {}
    for key, entry in manifest["models"].items():
        path = args.dir / entry["file"]
        if not path.exists():
            print(f"{key}: {path.name} missing (skipped)")
            continue
        if sha256(path) != entry["sha256"] or path.stat().st_size != entry["size_bytes"]:
            errors.append(f"{path.name}: sha256/size does not match the manifest")
        it = load(path, 1)
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        for side, d in (("input", inp), ("output", out)):
            want = entry[side]
            have_q = d["quantization"]
            if (d["name"] != want["tensor_name"] or list(d["shape"]) != want["shape"]
                    or np.dtype(d["dtype"]).name != want["dtype"]
                    or (want["quantization"] or {}).get("scale", 0.0) != float(have_q[0])
                    or (want["quantization"] or {}).get("zero_point", 0) != int(have_q[1])):
                errors.append(f"{path.name}: {side} tensor differs from the manifest: {d}")
        print(f"{key}: {path.name} {entry['size_bytes'] / 1e6:.2f} MB  "
              f"in {inp['name']} {[int(s) for s in inp['shape']]} {np.dtype(inp['dtype']).name}  "
              f"out {out['name']} {[int(s) for s in out['shape']]} {np.dtype(out['dtype']).name} q={out['quantization']}")
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        for n in args.threads:
            it = load(path, n)
            for _ in range(args.warmup):
                probabilities(it, x)
            times = []
            i_in = it.get_input_details()[0]["index"]
            for _ in range(args.runs):
                it.set_tensor(i_in, x[None])
                t0 = time.perf_counter()
                it.invoke()
                times.append((time.perf_counter() - t0) * 1e3)
            med = statistics.median(times)
            p90 = sorted(times)[int(0.9 * (len(times) - 1))]
            results[(key, n)] = med
            print(f"  threads={n}: invoke median {med:.1f} ms, p90 {p90:.1f} ms, min {min(times):.1f} ms ({args.runs} runs)")

    for img_path in args.images:
        img = preprocess(img_path)
        print(f"\n{img_path}")
        for key, entry in manifest["models"].items():
            path = args.dir / entry["file"]
            if not path.exists():
                continue
            p = probabilities(load(path, 1), img)
            top = np.argsort(-p, kind="stable")[:5]
            print(f"  {key:5s} " + "; ".join(f"{labels[i]} {p[i]:.3f}" for i in top))

    if errors:
        print("\nERRORS:\n  " + "\n  ".join(errors))
        return 1
    print("\nmanifest OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
