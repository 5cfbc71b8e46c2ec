#!/usr/bin/env python3
"""Write MANIFEST.json schema 2: the default model pack (stages, files, contracts, licences,
evaluation) on top of the schema-1 classifier manifest that build_default_model.py writes.

Run after the three build scripts and evaluate_pack.py (see models/README.md, *Rebuild*)::

    python models/write_pack_manifest.py            # reads models/build_*.json, pack_eval_train.json

Runtime only (json, hashlib): every sha256 and size is read from the files themselves,
and the script fails if a build report disagrees with a file. The schema-1 keys
(``model_name``, ``models``, ``labels_file`` ...) stay as they are so that today's station
(station/classifier/model.py) keeps loading ``efficientnet_lite0_int8.tflite``; a pack
loader reads ``pack`` and ``stages`` only. Every field is described in models/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACK_VERSION = "2.0.0"
DETECTOR_THRESHOLD = 0.2
PV_THRESHOLD = 0.4


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_entry(d: Path, name: str, want_sha: str | None = None) -> dict:
    p = d / name
    digest = sha256(p)
    if want_sha and digest != want_sha:
        raise SystemExit(f"{p}: sha256 {digest} differs from its build report ({want_sha})")
    return {"file": name, "sha256": digest, "size_bytes": p.stat().st_size}


def tensor(desc: dict, **meaning) -> dict:
    return {k: desc[k] for k in ("tensor_name", "shape", "dtype", "quantization")} | meaning


def torch_check(report: dict | None) -> dict | None:
    """The build's TFLite-vs-PyTorch comparison, summed up."""
    if not report:
        return None
    rows = [r for r in report["images"] if r["n_ref"]]
    return {"images": f"{len(report['images'])} scikit-image photos (build_detector_eval.json)",
            "max_abs_score_diff_any_anchor": report["max_abs_score_diff"],
            "pytorch_boxes": sum(r["n_ref"] for r in rows), "tflite_boxes": sum(r["n_other"] for r in rows),
            "threshold": report["threshold"],
            "min_matched_iou": min(r["min_iou"] for r in rows),
            "max_matched_score_gap": max(r["max_score_gap"] for r in rows)}


def trim_detector_eval(ev: dict, n_by_tag: dict) -> dict:
    rows = {k: {kk: v[kk] for kk in ("recall_nonempty", "empty_with_box", "boxes_on_empty", "recall_by_tag")}
            for k, v in ev["per_threshold"].items()}
    chosen = ev["per_threshold"][f"{DETECTOR_THRESHOLD:.1f}"]
    return {"n_by_tag": n_by_tag, "n_nonempty": chosen["n_nonempty"], "n_empty": chosen["n_empty"],
            "at_threshold": DETECTOR_THRESHOLD, "recall_nonempty": chosen["recall_nonempty"],
            "empty_with_box": chosen["empty_with_box"], "per_threshold": rows}


def trim_pv_eval(ev: dict) -> dict:
    keep = ("person_recall_human", "n_human", "vehicle_recall_vehicle", "n_vehicle", "animal_pictures_with_person",
            "animal_pictures_with_vehicle", "n_animal", "empty_pictures_with_person", "empty_pictures_with_vehicle",
            "n_empty")
    return {"views": ev["views"], "per_threshold": {k: {kk: v[kk] for kk in keep} for k, v in ev["per_threshold"].items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=HERE)
    args = ap.parse_args(argv)
    d = args.dir
    manifest = json.loads((d / "MANIFEST.json").read_text())
    cls = json.loads((d / "build_classifier_emb.json").read_text())
    det_build = json.loads((d / "build_detector_eval.json").read_text())
    pv = json.loads((d / "build_person_vehicle.json").read_text())
    ev = json.loads((d / "pack_eval_train.json").read_text())
    rss = json.loads((d / "pack_rss.json").read_text()) if (d / "pack_rss.json").is_file() else None
    (det_name, det), = det_build["models"].items()
    det_eval = next(r for r in ev["detector"] if r["file"] == det_name)
    dataset = {"name": "shared/datasets/train (the project's tuning pool, 69 pictures; small: read every figure "
                       "with its n)", "n_by_tag": ev["n_by_tag"],
               "unit": "pictures (the pool has no boxes): recall = share of pictures with a box at or above the threshold"}

    detector = {
        "id": "detector", "role": "detector",
        **file_entry(d, det_name, det["sha256"]),
        "architecture": "YOLOX-tiny (MegadetectorLite, DrivenData 2022-05-28)",
        "precision": "int8 weights (per channel), float32 activations (weight-only; computes like fp32)",
        "license": "MIT",
        "labels": ["something of interest (animal, person or vehicle)"],
        "input": tensor(det["input"], layout="NHWC", color_order="RGB", value_range=[0, 255],
                        normalization_in_graph="none (YOLOX takes 0..255)",
                        resize="letterbox_top_left", pad_value=114,
                        resize_note="scale = min(S/w, S/h); the scaled picture at the top-left corner, the rest 114"),
        "outputs": [tensor(det["outputs"][0], name="detections",
                           meaning="per anchor: cx, cy, w, h (input pixels), objectness, class score (both after sigmoid)")],
        "decode": {"format": "yolox", "score": "objectness * class score", "nms_iou": 0.45,
                   "threshold": DETECTOR_THRESHOLD,
                   "to_frame": "divide x, y, w, h by the letterbox scale, then by the frame's width/height"},
        "provenance": {"package": "PyPI zamba==2.7.2 (installed with --no-deps)",
                       "file_in_package": det_build["weights_file"], "weights_sha256": det_build["weights_sha256"],
                       "model_code": det_build["model_code_package"], "build_script": "models/build_detector.py",
                       "license_evidence": "zamba-2.7.2.dist-info/licenses/LICENSE: MIT License, Copyright (c) 2022 "
                                           "DrivenData Inc.; METADATA classifier 'License :: OSI Approved :: MIT "
                                           "License'. The .pth carries no licence of its own; the wheel's MIT licence "
                                           "covers the package, asset included."},
        "check_vs_pytorch": torch_check(det_build.get("torch_vs_tflite", {}).get(det_name)),
        "evaluation": {**dataset, **trim_detector_eval(det_eval, ev["n_by_tag"])},
    }
    pv_eval = {**dataset, "whole_frame": trim_pv_eval(ev["person_vehicle"]),
               "on_detector_crops": trim_pv_eval(ev["person_vehicle_on_detector_crops"]),
               "at_threshold": PV_THRESHOLD}
    person_vehicle = {
        "id": "person_vehicle", "role": "labeller",
        **file_entry(d, pv["file"], pv["sha256"]),
        "architecture": "SSD-MobileNetV2 COCO (TensorFlow detection zoo, Coral quantised build)",
        "precision": "uint8 quantised (TF1 style), TFLite_Detection_PostProcess (NMS in the graph)",
        "license": "Apache-2.0 (upstream; NOT stated in the npm package, see models/README.md)",
        "labels_file": pv["labels_file"], "labels_sha256": sha256(d / pv["labels_file"]),
        "labels_format": "'ID  name' per line; the classes output holds the ID; IDs have gaps (COCO's 90)",
        "class_groups": {"person": pv["person_ids"], "vehicle": pv["vehicle_ids"]},
        "input": tensor(pv["input"], layout="NHWC", color_order="RGB", value_range=[0, 255],
                        normalization_in_graph="input quantisation (q - 128) / 128",
                        resize="squash", resize_note="the whole view resized to 300x300, aspect not kept"),
        "outputs": [tensor(pv["outputs"][0], name="boxes", meaning="ymin, xmin, ymax, xmax as fractions of the view"),
                    tensor(pv["outputs"][1], name="classes", meaning="COCO ID (see labels_file)"),
                    tensor(pv["outputs"][2], name="scores", meaning="0..1"),
                    tensor(pv["outputs"][3], name="count", meaning="number of valid rows")],
        "decode": {"format": "tflite_detection_postprocess", "threshold": PV_THRESHOLD},
        "provenance": {"package": f"{pv['package']} (npm pack)", "tarball_sha256": pv["tarball_sha256"],
                       "file_in_package": pv["model_member"], "labels_in_package": pv["labels_member"],
                       "build_script": "models/build_person_vehicle.py",
                       "license_evidence": "package.json has no 'license' field; the tarball has no LICENSE file; "
                                           "the model file and README say nothing. Upstream: Google Coral canned "
                                           "model from the TensorFlow detection model zoo (Apache-2.0)."},
        "evaluation": pv_eval,
    }
    c = cls
    species = {
        "id": "species", "role": "classifier",
        **file_entry(d, c["file"], c["sha256"]),
        "architecture": "EfficientNet-Lite0 (ImageNet-1k)",
        "precision": c["precision"], "license": "Apache-2.0",
        "labels_file": manifest["labels_file"], "labels_sha256": manifest["labels_sha256"],
        "labels_format": "one label per line, in output order",
        "taxonomy_file": "taxonomy_imagenet.toml",
        "input": tensor(c["input"], layout="NHWC", color_order="RGB", value_range=[0, 255],
                        normalization_in_graph="(x - 127) / 128", resize="square_crop",
                        resize_note="square crop around the detector box (or the whole frame), resized to 224x224"),
        "outputs": [tensor(c["output"], name="probabilities", meaning="softmax over labels_file; p = (q - zero_point) * scale"),
                    tensor(c["embedding"], name="embedding",
                           meaning="1280-d global-average-pooled features the classifier layer reads; for per-site heads")],
        "provenance": {"package": manifest["provenance"]["weights_package"],
                       "file_in_package": manifest["provenance"]["weights_file"],
                       "weights_sha256": manifest["provenance"]["weights_sha256"],
                       "build_script": "models/build_default_model.py",
                       "license_evidence": "the wheel's LICENSE file is the Apache License 2.0 text (METADATA says "
                                           "License: UNKNOWN); see the Provenance table in models/README.md"},
        "check": c["check"],
    }
    stages = [detector, person_vehicle, species]
    files = [s["file"] for s in stages] + [person_vehicle["labels_file"], species["labels_file"], species["taxonomy_file"]]
    total = sum((d / f).stat().st_size for f in files)
    manifest["schema_version"] = 2
    manifest["pack"] = {
        "name": "default", "version": PACK_VERSION,
        "description": "two-stage camera-trap recognition: detector boxes -> person/vehicle labels and species on crops",
        "files": files, "total_size_bytes": total,
        "head": "none shipped; a per-site head is a stage with role 'head' (see models/README.md)",
    }
    manifest["pack"]["measured"] = {
        "where": "2-core x86-64 development VM (AMD EPYC), shared with other jobs; ai-edge-litert 2.3.0 (XNNPACK); "
                 "not a Raspberry Pi",
        "latency_ms": ev["latency_ms"],
        "rss_kB": rss,
    }
    manifest["stages"] = stages
    (d / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"MANIFEST.json: schema 2, {len(stages)} stages, {len(files)} files, {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
