"""The classifier end to end: the real default model on generated pictures, events from
the store, every way a model or its labels can fail to fit, and the evaluation report."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from station.classifier import (
    Classifier, ClassifierModel, ImageError, ModelError, TaxonomyError, failed, load_taxonomy, select_frames,
)
from station.classifier import runtime as runtime_mod
from station.classifier.evaluate import evaluate, expected_for, format_report
from station.progress import progress
from station.classifier.model import _check_tensors
from station.config.classifier import PROJECT_ROOT, ClassifierSection
from station.events.store import EventStore

MODELS = PROJECT_ROOT / "models"
INT8 = MODELS / "efficientnet_lite0_int8.tflite"
LABELS = MODELS / "imagenet_labels.txt"
ALERT_TAGS = {"leopard", "tiger", "prey", "human", "vehicle"}


@pytest.fixture(scope="module")
def real() -> Classifier:
    return Classifier.from_config(ClassifierSection(threads=1))


def scene(w: int = 640, h: int = 360, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    return cv2.add(img, rng.integers(0, 20, img.shape, dtype=np.uint8))


# -- the real default model -----------------------------------------------------------------
def test_default_config_finds_the_shipped_model_labels_and_taxonomy():
    cfg = ClassifierSection()
    assert cfg.model == INT8 and cfg.model.is_file()
    assert cfg.labels.is_file() and cfg.taxonomy.is_file()
    assert (cfg.region, cfg.threads, cfg.top_k, cfg.enabled) == ("russian_far_east", 2, 5, True)


def test_default_model_loads_once_and_matches_its_manifest(real):
    info = real.model.info
    assert info.name == "efficientnet_lite0_imagenet/int8"
    assert info.sha256 == json.loads((MODELS / "MANIFEST.json").read_text())["models"]["int8"]["sha256"]
    assert (info.input_size, info.input_dtype, info.output_kind, info.num_classes) == ((224, 224), "uint8", "probabilities", 1000)
    assert info.runtime in ("ai_edge_litert", "tflite_runtime")
    assert real.model_id == {"name": info.name, "sha256": info.sha256}


def test_default_model_returns_probabilities_for_a_generated_picture(real):
    p = real.model.predict(cv2.resize(scene(), (224, 224))[:, :, ::-1].copy())
    assert p.shape == (1000,) and p.dtype == np.float32
    assert p.min() >= 0 and 0.5 < p.sum() <= 1.01
    with pytest.raises(ValueError, match="uint8 RGB image of shape"):
        real.model.predict(np.zeros((100, 100, 3), np.uint8))


def test_classify_a_generated_picture_file_and_array_alike(real, tmp_path):
    img = scene(seed=3)
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), img)
    from_file, from_array = real.classify_image(path), real.classify_image(img)
    assert from_file.tag == from_array.tag and from_file.top_k == from_array.top_k
    d = from_file.to_dict()
    assert set(d) == {"file", "tag", "species", "label", "confidence", "top_k", "tag_scores", "best_box"}
    assert d["tag"] in {"leopard", "tiger", "prey", "human", "vehicle", "other_animal", "blank", "unknown"}
    assert 1 <= len(d["top_k"]) <= 5
    json.dumps(d)


def test_nothing_in_front_of_the_camera_raises_no_alert(real):
    rng = np.random.default_rng(5)
    pictures = [np.full((360, 640, 3), 128, np.uint8), rng.integers(0, 256, (360, 640, 3), dtype=np.uint8),
                np.repeat(np.linspace(0, 255, 640, dtype=np.uint8)[None, :, None], 360, 0).repeat(3, 2), scene(seed=9)]
    for img in pictures:
        assert real.classify_image(img).tag not in ALERT_TAGS


def test_a_grey_frame_is_unknown_not_a_guess(real):
    r = real.classify_image(np.full((480, 640), 128, np.uint8))
    assert r.tag == "unknown" and r.species is None


def test_unreadable_picture_raises_naming_the_file(real, tmp_path):
    path = tmp_path / "card_error.jpg"
    path.write_bytes(cv2.imencode(".jpg", scene())[1].tobytes()[:2000])
    with pytest.raises(ImageError, match="card_error.jpg: truncated JPEG"):
        real.classify_image(path)


# -- a model that does not fit --------------------------------------------------------------
def test_missing_model_is_named(tmp_path):
    with pytest.raises(ModelError, match=r"nothing\.tflite: model file not found"):
        ClassifierModel(tmp_path / "nothing.tflite", LABELS)


def test_corrupt_model_is_named(tmp_path):
    bad = tmp_path / "garbled.tflite"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(ModelError, match=r"garbled\.tflite: not a usable TFLite model"):
        ClassifierModel(bad, LABELS, threads=1)
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match=r"empty\.tflite: not a usable TFLite model"):
        ClassifierModel(empty, LABELS, threads=1)


def test_default_model_damaged_on_the_card_is_caught_by_its_manifest(tmp_path):
    for name in (INT8.name, "MANIFEST.json", LABELS.name):
        shutil.copy(MODELS / name, tmp_path / name)
    data = bytearray((tmp_path / INT8.name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / INT8.name).write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"efficientnet_lite0_int8\.tflite: sha256 .* differs from .*MANIFEST\.json"):
        ClassifierModel(tmp_path / INT8.name, tmp_path / LABELS.name, threads=1)


def test_labels_with_the_wrong_count_are_named(tmp_path):
    short = tmp_path / "labels999.txt"
    short.write_text("\n".join(LABELS.read_text().splitlines()[:999]) + "\n")
    with pytest.raises(ModelError) as err:
        ClassifierModel(INT8, short, threads=1)
    assert "output has 1000 classes but" in str(err.value) and "labels999.txt has 999 labels" in str(err.value)


def test_labels_file_problems_are_named(tmp_path):
    with pytest.raises(ModelError, match=r"absent\.txt: labels file not found"):
        ClassifierModel(INT8, tmp_path / "absent.txt", threads=1)
    holes = tmp_path / "holes.txt"
    holes.write_text("tench\n\ngoldfish\n")
    with pytest.raises(ModelError, match=r"holes\.txt: blank label on line\(s\) 2"):
        ClassifierModel(INT8, holes, threads=1)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ModelError, match="not UTF-8"):
        ClassifierModel(INT8, binary, threads=1)


def test_a_sidecar_can_declare_logits_and_softmax_is_applied(tmp_path):
    model = tmp_path / "mine.tflite"
    shutil.copy(INT8, model)
    sidecar = tmp_path / "mine.json"
    sidecar.write_text(json.dumps({"name": "my-model", "output": "logits"}))
    m = ClassifierModel(model, LABELS, threads=1, metadata_path=sidecar)
    assert (m.info.name, m.info.output_kind) == ("my-model", "logits")
    assert m.predict(np.zeros((224, 224, 3), np.uint8)).sum() == pytest.approx(1.0, abs=1e-4)
    sidecar.write_text(json.dumps({"output": "scores"}))
    with pytest.raises(ModelError, match=r"mine\.json: \"output\" must be"):
        ClassifierModel(model, LABELS, threads=1, metadata_path=sidecar)
    with pytest.raises(ModelError, match=r"MANIFEST\.json: lists no model file named mine\.tflite"):
        ClassifierModel(model, LABELS, threads=1, metadata_path=MODELS / "MANIFEST.json")


def test_without_metadata_the_output_kind_is_detected(tmp_path):
    shutil.copy(INT8, tmp_path / "alone.tflite")
    m = ClassifierModel(tmp_path / "alone.tflite", LABELS, threads=1)
    assert (m.info.name, m.info.output_kind) == ("alone", "probabilities")


def tensor(name, shape, dtype, q=(0.0, 0)):
    return {"name": name, "index": 0, "shape": np.array(shape), "dtype": dtype, "quantization": q}


def test_tensor_contract_says_exactly_what_does_not_fit():
    labels = Path("labels.txt")
    ok_in, ok_out = tensor("in", [1, 224, 224, 3], np.uint8), tensor("out", [1, 10], np.float32)
    assert _check_tensors([ok_in], [ok_out], 10, labels) == []
    problems = _check_tensors([tensor("in", [1, 224, 224, 1], np.int8)],
                              [tensor("out", [1, 11], np.int8), tensor("aux", [1], np.float32)], 10, labels)
    text = "\n".join(problems)
    assert "input has 1 channels in the last axis, expected 3" in text
    assert "input is int8 without quantisation parameters" in text
    assert "has 2 outputs, expected 1" in text
    problems = _check_tensors([tensor("in", [224, 224, 3], np.float32)], [tensor("out", [1, 11], np.uint8)], 10, labels)
    text = "\n".join(problems)
    assert "expected rank 4" in text
    assert "output has 11 classes but labels.txt has 10 labels" in text
    assert "output is uint8 without quantisation parameters" in text
    assert "input dtype is int16" in "\n".join(_check_tensors([tensor("in", [1, 8, 8, 3], np.int16)], [ok_out], 10, labels))


def test_no_runtime_installed_names_both_packages(monkeypatch):
    monkeypatch.setattr(runtime_mod, "_import", lambda name: None)
    with pytest.raises(ModelError, match=r"no TFLite runtime installed: install ai-edge-litert \(import ai_edge_litert\) "
                                         r"or tflite-runtime \(import tflite_runtime\)"):
        ClassifierModel(INT8, LABELS, threads=1)


def test_asking_for_a_runtime_that_is_not_installed(monkeypatch):
    monkeypatch.setattr(runtime_mod, "_import", lambda name: None if name == "tflite_runtime" else object)
    with pytest.raises(ModelError, match="install tflite-runtime"):
        runtime_mod.interpreter_class("tflite_runtime")
    with pytest.raises(ModelError, match="unknown TFLite runtime 'tensorflow'"):
        runtime_mod.interpreter_class("tensorflow")


def test_region_missing_from_the_taxonomy_stops_the_load():
    with pytest.raises(TaxonomyError, match="region 'atlantis' is not defined"):
        Classifier.from_config(ClassifierSection(region="atlantis", threads=1))


def test_config_section_checks_values_and_resolves_paths(tmp_path):
    cfg = ClassifierSection(model="models/other.tflite", labels=tmp_path / "l.txt", taxonomy="~/t.toml")
    assert cfg.model == PROJECT_ROOT / "models" / "other.tflite"
    assert cfg.labels == tmp_path / "l.txt"
    assert cfg.taxonomy == Path.home() / "t.toml"
    for bad in ({"threads": 9}, {"min_confidence": 1.5}, {"region": "Far East"}, {"runtime": "tensorflow"},
                {"max_frames": 0}, {"thread": 2}):
        with pytest.raises(ValidationError):
            ClassifierSection(**bad)


# -- events from the store ------------------------------------------------------------------
TINY_LABELS = ["leopard", "wild boar", "valley"]
TINY_TAXONOMY = '[tags.leopard]\nleopard = ["leopard"]\n[tags.prey]\nboar = ["wild boar"]\n'


class RedIsLeopard:
    """A stand-in model: the redder the view, the surer it is of a leopard (sure from 40 %
    red up, as an animal filling its box fills 1/1.5^2 of a crop with the default margin)."""

    labels = TINY_LABELS
    input_size = (224, 224)

    def __init__(self):
        self.calls = 0

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        self.calls += 1
        red = min(1.0, 2.5 * float((rgb[:, :, 0] > 200).mean()))
        return np.array([red, 0.0, 1.0 - red], np.float32)


@pytest.fixture
def fake(tmp_path) -> Classifier:
    tax = tmp_path / "tiny.toml"
    tax.write_text(TINY_TAXONOMY)
    return Classifier(RedIsLeopard(), load_taxonomy(tax, TINY_LABELS), min_confidence=0.4,
                      model_id={"name": "red-is-leopard", "sha256": None})


def write_event(store: EventStore, frames: list[tuple[np.ndarray | None, float, list]], event_id: str) -> dict:
    """Stills and a record as the recorder writes them (docs/event-store.md)."""
    t0 = 1_790_000_000.0
    record = {"schema": 1, "id": event_id, "station_id": "lazovsky-07", "deployment_id": "dep",
              "status": "closed", "camera": "synthetic", "frames": []}
    for i, (image, score, boxes) in enumerate(frames):
        name = f"{i:03d}.jpg"
        frame = {"index": i, "file": name, "timestamp": t0 + i * 0.5, "pre_trigger": score == 0,
                 "motion_score": score, "boxes": boxes}
        if image is None:
            frame.update(file=None, error="not saved: disk low")
        else:
            store.write_still(event_id, name, image)
        record["frames"].append(frame)
    store.write_record(record)
    return store.load(event_id)


def forest_with_red_animal(box: list[float], size=(640, 360)) -> np.ndarray:
    img = np.zeros((size[1], size[0], 3), np.uint8)
    img[:] = (40, 140, 40)
    x, y, w, h = box
    cv2.rectangle(img, (int(x * size[0]), int(y * size[1])), (int((x + w) * size[0]), int((y + h) * size[1])),
                  (0, 0, 255), -1)
    return img


def test_leopard_in_a_motion_box_is_found_by_its_crop_and_the_record_keeps_the_result(fake, tmp_path):
    store = EventStore(tmp_path / "data")
    box = [0.7, 0.6, 0.08, 0.12]
    record = write_event(store, [(forest_with_red_animal([0, 0, 0, 0]), 0.0, []),
                                 (forest_with_red_animal(box), 0.03, [box]),
                                 (forest_with_red_animal(box), 0.02, [box])], "ev-leopard")
    result = fake.classify_event(record, store.event_dir("ev-leopard"))
    assert result["status"] == "ok" and result["error"] is None
    assert (result["tag"], result["species"], result["label"]) == ("leopard", "leopard", "leopard")
    assert result["best_frame"] in ("001.jpg", "002.jpg") and result["best_box"] == box
    assert result["model"] == {"name": "red-is-leopard", "sha256": None}
    assert result["threshold"] == 0.4 and result["frame_errors"] == []
    store.update("ev-leopard", classification=result)
    assert store.load("ev-leopard")["classification"] == json.loads(json.dumps(result))


def test_missing_still_fails_the_event_with_the_file_named(real, tmp_path):
    store = EventStore(tmp_path / "data")
    record = write_event(store, [(scene(), 0.02, [[0.1, 0.1, 0.3, 0.3]])], "ev-missing")
    (store.event_dir("ev-missing") / "000.jpg").unlink()
    result = real.classify_event(record, store.event_dir("ev-missing"))
    assert result["status"] == "failed"
    assert "000.jpg: file not found" in result["error"]
    assert result["tag"] is None and result["frame_errors"][0]["file"] == "000.jpg"
    assert result["model"]["name"] == "efficientnet_lite0_imagenet/int8"
    json.dumps(result)


def test_one_corrupt_still_is_skipped_and_named_the_rest_are_classified(real, tmp_path):
    store = EventStore(tmp_path / "data")
    record = write_event(store, [(scene(seed=1), 0.0, []), (scene(seed=2), 0.03, [[0.2, 0.2, 0.4, 0.5]]),
                                 (scene(seed=3), 0.02, [[0.3, 0.2, 0.4, 0.5]])], "ev-corrupt")
    still = store.event_dir("ev-corrupt") / "001.jpg"
    still.write_bytes(still.read_bytes()[:1500])
    result = real.classify_event(record, store.event_dir("ev-corrupt"))
    assert result["status"] == "ok"
    assert result["frames"] == ["002.jpg", "000.jpg"]
    assert result["frame_errors"] == [{"file": "001.jpg", "error": f"{still}: truncated JPEG (no end-of-image marker "
                                                                   "after the image data)"}]
    assert result["tag"] in {"other_animal", "blank", "unknown"}
    assert result["taxonomy"] == {"file": "taxonomy_imagenet.toml", "region": "russian_far_east"}


def test_event_whose_stills_were_never_saved_fails_with_the_reason(fake, tmp_path):
    store = EventStore(tmp_path / "data")
    record = write_event(store, [(None, 0.02, []), (None, 0.03, [])], "ev-disk-low")
    result = fake.classify_event(record, store.event_dir("ev-disk-low"))
    assert result["status"] == "failed" and "no stills were saved" in result["error"]
    assert fake.classify_event({"id": "x"}, tmp_path)["error"].endswith("the event record has no frames list")


def test_frames_chosen_are_the_first_after_the_trigger_then_the_most_moving(fake, tmp_path):
    store = EventStore(tmp_path / "data")
    img = forest_with_red_animal([0, 0, 0, 0])
    record = write_event(store, [(img, 0.0, []), (img, 0.0, []), (img, 0.01, []), (img, 0.05, []),
                                 (img, 0.02, []), (img, 0.09, [])], "ev-long")
    fake.max_frames = 2
    result = fake.classify_event(record, store.event_dir("ev-long"))
    assert result["frames"] == ["002.jpg", "005.jpg"]
    assert [f["file"] for f in select_frames(record["frames"])][:3] == ["002.jpg", "005.jpg", "003.jpg"]


def test_a_model_failing_mid_event_marks_the_event_failed(fake, tmp_path):
    store = EventStore(tmp_path / "data")
    record = write_event(store, [(scene(), 0.02, [])], "ev-model")

    def broken(rgb):
        raise RuntimeError("Invoke failed: delegate error")

    fake.model.predict = broken
    result = fake.classify_event(record, store.event_dir("ev-model"))
    assert result["status"] == "failed" and result["error"] == "model failed: Invoke failed: delegate error"


def test_failed_without_a_classifier_has_the_same_shape(fake, tmp_path):
    store = EventStore(tmp_path / "data")
    record = write_event(store, [(scene(), 0.02, [])], "ev-shape")
    ok = fake.classify_event(record, store.event_dir("ev-shape"))
    bad = failed("models/x.tflite: model file not found")
    assert set(ok) == set(bad)
    assert bad["status"] == "failed" and bad["model"] is None


# -- evaluation -----------------------------------------------------------------------------
def test_folder_names_stand_for_tags_and_prey_species():
    assert expected_for("empty") == ("blank", None)
    assert expected_for("prey_deer") == ("prey", "deer")
    assert expected_for("leopard") == ("leopard", None)
    with pytest.raises(ValueError, match="folder 'leopards' does not name a tag"):
        expected_for("leopards")


def test_evaluation_report_on_a_generated_folder(fake, tmp_path):
    root = tmp_path / "eval"
    for folder, images in {"leopard": [forest_with_red_animal([0, 0, 1, 1])] * 2,
                           "empty": [forest_with_red_animal([0, 0, 0, 0])] * 3,
                           "prey_boar": [forest_with_red_animal([0, 0, 0, 0])]}.items():
        (root / folder).mkdir(parents=True)
        for i, img in enumerate(images):
            cv2.imwrite(str(root / folder / f"{i}.png"), img)
    (root / "empty" / "broken.jpg").write_bytes(b"")
    (root / "empty" / "notes.txt").write_text("not a picture")
    calls = []
    report = evaluate(root, fake, progress=lambda done, total, name: calls.append((done, total)))
    assert calls[-1] == (7, 7)
    assert (report["images"], report["classified"], report["correct"]) == (7, 6, 5)
    assert report["accuracy"] == pytest.approx(5 / 6, abs=1e-4)
    assert report["per_tag"]["leopard"] == {"expected": 2, "predicted": 2, "correct": 2, "precision": 1.0, "recall": 1.0}
    assert report["per_tag"]["blank"]["precision"] == pytest.approx(0.75)
    assert report["per_tag"]["prey"]["recall"] == 0.0
    assert report["confusion"]["prey"]["blank"] == 1
    assert report["prey_species"] == {"images": 1, "correct": 0, "accuracy": 0.0}
    assert report["errors"][0]["file"] == "empty/broken.jpg"
    text = format_report(report)
    assert "Tag accuracy: 0.83 (5/6)" in text and "Confusion" in text and "empty/broken.jpg" in text
    json.dumps(report)


def test_evaluation_with_the_real_model_runs_end_to_end(real, tmp_path):
    (tmp_path / "empty").mkdir()
    cv2.imwrite(str(tmp_path / "empty" / "a.jpg"), scene(seed=4))
    report = evaluate(tmp_path, real)
    assert report["classified"] == 1 and report["model"]["name"] == "efficientnet_lite0_imagenet/int8"


def test_evaluation_refuses_a_folder_it_cannot_read(fake, tmp_path):
    (tmp_path / "leopards").mkdir()
    with pytest.raises(ValueError, match="leopards"):
        evaluate(tmp_path, fake)
    with pytest.raises(ValueError, match="not a folder"):
        evaluate(tmp_path / "nope", fake)


def test_progress_is_drawn_on_a_terminal_and_never_into_logs():
    out = io.StringIO()
    with progress("evaluate", unit="picture", stream=out, force=True) as bar:
        for i in range(1, 5):
            bar(i, 4, "b.jpg")
    assert "evaluate" in out.getvalue() and "4/4" in out.getvalue() and "b.jpg" in out.getvalue()
    quiet = io.StringIO()  # not a terminal: a log file, journald, a pipe
    with progress("evaluate", stream=quiet) as bar:
        bar(1, 1, "x.jpg")
        bar.advance()
    assert quiet.getvalue() == "" and not bar.drawn