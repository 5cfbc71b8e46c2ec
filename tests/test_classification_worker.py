"""Classification in the daemon: off the capture path, nothing lost, failures retried."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from station.classifier.worker import ClassificationWorker
from station.config import parse_config
from station.config.classifier import ClassifierSection
from station.daemon import StationDaemon
from station.events.store import EventStore
from tests.test_daemon import LORES, MAIN, ScriptedCamera

MODELS = Path(__file__).resolve().parents[1] / "models"


def config(tmp_path: Path, **classifier):
    return parse_config({
        "station": {"id": "t1", "deployment_id": "t1-d", "latitude": 43.0, "longitude": 131.0},
        "camera": {"uri": "scripted:test", "main_size": list(MAIN), "lores_size": list(LORES)},
        "events": {"post_motion_s": 1.0, "cooldown_s": 1.0},
        "storage": {"data_dir": str(tmp_path / "data"), "min_free_mb": 0},
        "classifier": {"threads": 1, **classifier},
    })


def test_closed_events_get_a_classification_from_the_real_model(tmp_path):
    seen = []
    daemon = StationDaemon.build(config(tmp_path), camera=ScriptedCamera(), on_event=seen.append)
    daemon.run()
    (record,) = EventStore(tmp_path / "data").records()
    result = record["classification"]
    assert result["status"] == "ok"
    assert result["tag"] in {"leopard", "tiger", "prey", "human", "vehicle", "other_animal", "blank", "unknown"}
    assert result["model"]["name"] and len(result["model"]["sha256"]) == 64
    assert result["best_frame"] in {f["file"] for f in record["frames"]}
    assert seen and seen[0]["classification"] == result, "on_event gets the classified record"


def test_a_missing_model_marks_events_failed_capture_goes_on_and_a_later_retry_succeeds(tmp_path):
    model = tmp_path / "efficientnet_lite0_int8.tflite"  # not there yet
    cfg = config(tmp_path, model=str(model), metadata=str(MODELS / "MANIFEST.json"), retry_after_s=0.2)
    daemon = StationDaemon.build(cfg, camera=ScriptedCamera(frames=300, walk=(60, 100)))
    daemon.run()
    assert daemon.stats.frames == 300, "capture never waited for the classifier"
    (record,) = EventStore(tmp_path / "data").records()
    result = record["classification"]
    assert result["status"] == "failed"
    assert str(model) in result["error"]

    # The ranger copies the model into place; the next scan takes the event again.
    shutil.copy(MODELS / "efficientnet_lite0_int8.tflite", model)
    store = EventStore(tmp_path / "data")
    worker = ClassificationWorker(cfg.classifier, store).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if store.load(record["id"])["classification"]["status"] == "ok":
            break
        time.sleep(0.1)
    worker.stop()
    assert store.load(record["id"])["classification"]["status"] == "ok"


def test_events_left_unclassified_on_disk_are_classified_at_start(tmp_path):
    cfg = config(tmp_path, enabled=False)
    StationDaemon.build(cfg, camera=ScriptedCamera()).run()
    store = EventStore(tmp_path / "data")
    (record,) = store.records()
    assert "classification" not in record
    worker = ClassificationWorker(ClassifierSection(threads=1), store).start()
    assert worker.drain(60)
    deadline = time.monotonic() + 30
    while "classification" not in store.load(record["id"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.stop()
    assert store.load(record["id"])["classification"]["status"] == "ok"


def test_a_full_hand_off_queue_loses_nothing(tmp_path):
    cfg = config(tmp_path, enabled=False)
    StationDaemon.build(cfg, camera=ScriptedCamera(frames=400, walk=(30, 60))).run()
    store = EventStore(tmp_path / "data")
    records = list(store.records())
    worker = ClassificationWorker(ClassifierSection(threads=1), store, queue_size=1)
    for r in records:  # before the worker runs: the queue overflows
        worker.submit(r)
    worker.start()  # its start-up scan takes the rest
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all("classification" in store.load(r["id"]) for r in records):
            break
        time.sleep(0.1)
    worker.stop()
    assert all(store.load(r["id"])["classification"]["status"] == "ok" for r in records)


def test_a_failure_becomes_final_after_max_attempts(tmp_path):
    from station.classifier.worker import classification_final, needs_classification

    failed = {"status": "failed", "attempted_at": 0.0, "attempts": 2}
    record = {"status": "closed", "classification": failed}
    assert not classification_final(failed, max_attempts=3)
    assert needs_classification(record, now=1000.0, retry_after_s=600, max_attempts=3)
    failed["attempts"] = 3
    assert classification_final(failed, max_attempts=3)
    assert not needs_classification(record, now=1000.0, retry_after_s=600, max_attempts=3)
    assert classification_final({"status": "ok"}, max_attempts=3)


def test_an_event_whose_stills_were_never_saved_is_final_at_once(tmp_path):
    """Disk full when it happened: trying again cannot help, so the ranger hears of it now."""
    from station.classifier.worker import classification_final

    cfg = config(tmp_path, enabled=False)
    StationDaemon.build(cfg, camera=ScriptedCamera()).run()
    store = EventStore(tmp_path / "data")
    (record,) = store.records()
    for frame in record["frames"]:
        (store.event_dir(record["id"]) / frame["file"]).unlink()
        frame.update(file=None, error="not saved: No space left on device")
    store.write_record(record)
    seen = []
    worker = ClassificationWorker(ClassifierSection(threads=1, max_attempts=3), store, on_classified=seen.append)
    worker.start()
    assert worker.drain(60), "drain waits for what the start-up scan found"
    worker.stop()
    result = store.load(record["id"])["classification"]
    assert result["status"] == "failed" and "no stills were saved" in result["error"]
    assert result["attempts"] == 1 and classification_final(result, max_attempts=3)
    assert seen and seen[0]["id"] == record["id"], "handed on (to the feed) at once"
