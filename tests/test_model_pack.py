"""The default model pack in models/ (MANIFEST.json schema 2): every stage's file, labels and
tensors are what the manifest promises, with the real runtime."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest

from station.classifier.runtime import make_interpreter
from station.config.classifier import PROJECT_ROOT

MODELS = PROJECT_ROOT / "models"
MANIFEST = json.loads((MODELS / "MANIFEST.json").read_text())


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def scene(w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    return cv2.add(img, rng.integers(0, 20, img.shape, dtype=np.uint8))


def run(interp, image: np.ndarray) -> dict[str, np.ndarray]:
    interp.set_tensor(interp.get_input_details()[0]["index"], image[None])
    interp.invoke()
    out = {}
    for d in interp.get_output_details():
        y = interp.get_tensor(d["index"])[0]
        scale, zero = d["quantization"]
        out[d["name"]] = (y.astype(np.float32) - zero) * scale if scale else y.astype(np.float32)
    return out


def test_the_pack_lists_its_files_and_their_true_total_size():
    pack = MANIFEST["pack"]
    assert MANIFEST["schema_version"] == 2
    assert [s["id"] for s in MANIFEST["stages"]] == ["detector", "person_vehicle", "species"]
    assert pack["total_size_bytes"] == sum((MODELS / f).stat().st_size for f in pack["files"])
    assert {s["file"] for s in MANIFEST["stages"]} <= set(pack["files"])
    # the schema-1 keys that today's station reads are still there
    assert MANIFEST["models"]["int8"]["file"] == "efficientnet_lite0_int8.tflite"


@pytest.mark.parametrize("stage", MANIFEST["stages"], ids=lambda s: s["id"])
def test_every_stage_file_and_tensor_is_what_the_manifest_says(stage):
    path = MODELS / stage["file"]
    assert (sha256(path), path.stat().st_size) == (stage["sha256"], stage["size_bytes"])
    if "labels_file" in stage:
        assert sha256(MODELS / stage["labels_file"]) == stage["labels_sha256"]
    interp, _ = make_interpreter(path, 1)
    have = {d["name"]: d for d in interp.get_input_details() + interp.get_output_details()}
    assert [d["name"] for d in interp.get_input_details()] == [stage["input"]["tensor_name"]]
    for want in [stage["input"], *stage["outputs"]]:
        d = have[want["tensor_name"]]
        assert [int(s) for s in d["shape"]] == want["shape"]
        assert np.dtype(d["dtype"]).name == want["dtype"]
        q = want["quantization"] or {"scale": 0.0, "zero_point": 0}
        assert (float(d["quantization"][0]), int(d["quantization"][1])) == (q["scale"], q["zero_point"])
    assert stage["provenance"]["license_evidence"] and stage["license"]


def test_detector_output_decodes_to_scores_between_zero_and_one():
    stage = MANIFEST["stages"][0]
    interp, _ = make_interpreter(MODELS / stage["file"], 1)
    size = stage["input"]["shape"][1]
    img = np.full((size, size, 3), stage["input"]["pad_value"], np.uint8)
    img[: size * 3 // 4] = scene(size, size * 3 // 4, 1)[:, :, ::-1]
    raw = run(interp, img)[stage["outputs"][0]["tensor_name"]]
    assert raw.shape == (stage["outputs"][0]["shape"][1], 6)
    assert raw[:, 4:].min() >= 0 and raw[:, 4:].max() <= 1
    assert (raw[:, 2:4] > 0).all()


def test_species_stage_gives_todays_classes_and_an_embedding_in_one_invoke():
    stage = MANIFEST["stages"][2]
    names = {o["name"]: o["tensor_name"] for o in stage["outputs"]}
    pack, _ = make_interpreter(MODELS / stage["file"], 1)
    today, _ = make_interpreter(MODELS / MANIFEST["models"]["int8"]["file"], 1)
    for seed in range(4):
        img = np.ascontiguousarray(scene(224, 224, seed)[:, :, ::-1])
        out = run(pack, img)
        p, e = out[names["probabilities"]], out[names["embedding"]]
        ref = next(iter(run(today, img).values()))
        assert p.shape == (1000,) and e.shape == (1280,)
        assert 0 < float(p.sum()) <= 1.05 and np.isfinite(e).all() and e.std() > 0  # int8: steps of 1/256
        assert np.argmax(p) == np.argmax(ref)
        assert float(np.max(np.abs(p - ref))) < 0.1
