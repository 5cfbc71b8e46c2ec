#!/usr/bin/env python3
"""Check the built models with the runtime only (ai-edge-litert, numpy, pillow).

Verifies MANIFEST.json against the files (sha256, size, tensor contract) - the
schema-1 ``models`` and, in schema 2, every pack stage (files, labels, input and
output tensors) -, benchmarks ``Interpreter.invoke`` and prints top-5 predictions
for images. With images, it also compares the pack's species stage (the model with
the embedding output) with the schema-1 int8 model: top-1 / top-5 agreement and the
largest probability difference.

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


def probabilities(it, img: np.ndarray, name: str | None = None) -> np.ndarray:
    inp = it.get_input_details()[0]
    outs = it.get_output_details()
    out = next(d for d in outs if name in d["name"]) if name else outs[0]
    it.set_tensor(inp["index"], img[None])
    it.invoke()
    y = it.get_tensor(out["index"])[0]
    scale, zp = out["quantization"]
    return (y.astype(np.float32) - zp) * scale if scale else y.astype(np.float32)


def check_stages(manifest: dict, folder: Path, runs: int, warmup: int, threads: list[int]) -> list[str]:
    """Schema 2: every stage's file, labels and tensors against the manifest; latency per stage."""
    errors = []
    pack = manifest.get("pack")
    if manifest.get("schema_version", 1) < 2:
        return errors
    total = 0
    for name in pack["files"]:
        if not (folder / name).is_file():
            errors.append(f"pack file {name} is missing")
        else:
            total += (folder / name).stat().st_size
    if total != pack["total_size_bytes"]:
        errors.append(f"pack files hold {total} bytes, the manifest says {pack['total_size_bytes']}")
    for stage in manifest["stages"]:
        path = folder / stage["file"]
        if not path.exists():
            errors.append(f"stage {stage['id']}: {path.name} missing")
            continue
        if sha256(path) != stage["sha256"] or path.stat().st_size != stage["size_bytes"]:
            errors.append(f"stage {stage['id']}: {path.name} sha256/size does not match the manifest")
        if stage.get("labels_file") and sha256(folder / stage["labels_file"]) != stage["labels_sha256"]:
            errors.append(f"stage {stage['id']}: {stage['labels_file']} sha256 does not match the manifest")
        it = load(path, 1)
        have = {d["name"]: d for d in it.get_input_details() + it.get_output_details()}
        for want in [stage["input"]] + stage["outputs"]:
            d = have.get(want["tensor_name"])
            q = want["quantization"] or {}
            if (d is None or [int(s) for s in d["shape"]] != want["shape"] or np.dtype(d["dtype"]).name != want["dtype"]
                    or q.get("scale", 0.0) != float(d["quantization"][0]) or q.get("zero_point", 0) != int(d["quantization"][1])):
                errors.append(f"stage {stage['id']}: tensor {want['tensor_name']} differs from the manifest: {d}")
        shape = stage["input"]["shape"]
        x = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        line = []
        for n in threads:
            it = load(path, n)
            i_in = it.get_input_details()[0]["index"]
            it.set_tensor(i_in, x)
            for _ in range(warmup):
                it.invoke()
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                it.invoke()
                times.append((time.perf_counter() - t0) * 1e3)
            line.append(f"threads={n}: median {statistics.median(times):.1f} ms, min {min(times):.1f} ms")
        print(f"stage {stage['id']}: {path.name} {stage['size_bytes'] / 1e6:.2f} MB  " + "; ".join(line))
    print(f"pack {pack['name']} {pack['version']}: {len(pack['files'])} files, {total / 1e6:.2f} MB")
    return errors


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

    errors += check_stages(manifest, args.dir, args.runs, args.warmup, args.threads)
    species = next((s for s in manifest.get("stages", []) if s.get("role") == "classifier"), None)
    agree = []
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
            if key == "int8" and species and (args.dir / species["file"]).exists():
                q = probabilities(load(args.dir / species["file"], 1), img, "probabilities")
                qtop = np.argsort(-q, kind="stable")[:5]
                agree.append((top[0] == qtop[0], list(top) == list(qtop), float(np.max(np.abs(p - q)))))
                print("  pack  " + "; ".join(f"{labels[i]} {q[i]:.3f}" for i in qtop))
    if agree:
        print(f"\nspecies stage vs int8 model on {len(agree)} images: top-1 agree {sum(a for a, _, _ in agree)}, "
              f"top-5 identical {sum(b for _, b, _ in agree)}, max |p diff| {max(c for _, _, c in agree):.4f}")

    if errors:
        print("\nERRORS:\n  " + "\n  ".join(errors))
        return 1
    print("\nmanifest OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
