"""Classification off the capture path: a worker thread fed by the event store.

Events are handed over by id as their record is closed; the worker reads the stills
from the store, classifies, and writes the result under the record's
``classification`` key. Nothing is lost if the hand-off queue is full or the station
restarts: at start, and every ``retry_after_s``, the worker scans the store for closed
events with no result, or whose classification failed, and takes them again. The
model is loaded once, in the worker, so a slow or broken model never delays capture;
if it cannot be loaded, events are marked ``failed`` with the reason and the load is
retried later.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Any, Callable

from station.classifier.classify import Classifier, failed, select_frames
from station.config.classifier import ClassifierSection
from station.events.store import EventStore, StoreError
from station.log import get_logger
from station.record import EventRecord

log = get_logger("classifier")

_STOP = object()
_NICE = 10  # below the capture thread: motion watching comes first on a busy Pi


def classification_final(result: dict[str, Any] | None, max_attempts: int) -> bool:
    """Is this result the last word: a success, a failure that trying again cannot mend
    (``permanent``: no still was saved), or a failure after every attempt?"""
    if not result:
        return False
    return (result.get("status") == "ok" or result.get("permanent") is True
            or int(result.get("attempts", 1)) >= max_attempts)


def needs_classification(record: EventRecord, now: float, retry_after_s: float,
                         max_attempts: int = 1_000_000) -> bool:
    if record.get("status") != "closed":
        return False
    result = record.get("classification")
    if not result:
        return True
    if result.get("status") == "failed" and not classification_final(result, max_attempts):
        return now - float(result.get("attempted_at", 0)) >= retry_after_s
    return False


class ClassificationWorker:
    def __init__(self, cfg: ClassifierSection, store: EventStore,
                 on_classified: Callable[[EventRecord], None] | None = None,
                 loader: Callable[[ClassifierSection], Classifier] = Classifier.from_config,
                 queue_size: int = 256):
        self.cfg = cfg
        self.store = store
        self.on_classified = on_classified
        self._loader = loader
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._classifier: Classifier | None = None
        self._load_error: str | None = None
        self._load_attempted = -float("inf")
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._queued: set[str] = set()
        self._lock = threading.Lock()
        self.classified = 0
        self.failures = 0
        self._scanned = threading.Event()
        """Set once the start-up scan has handed over every event waiting on disk."""

    # -- called from other threads -------------------------------------------------
    def submit(self, record: EventRecord) -> None:
        """Hand over a closed event (the writer's on_closed hook); never blocks."""
        event_id = record["id"]
        with self._lock:
            if event_id in self._queued:
                return
            try:
                self._queue.put_nowait(event_id)
            except queue.Full:
                log.warning("classification queue full; the event will be taken by the next scan",
                            id=event_id)
                return
            self._queued.add(event_id)

    def reconfigure(self, cfg: ClassifierSection) -> None:
        """New settings (config reload): the model is loaded again at the next event."""
        self.cfg = cfg
        self._generation += 1  # a load already under way must not install the old model
        self._classifier = None
        self._load_error = None

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def start(self) -> "ClassificationWorker":
        self._thread = threading.Thread(target=self._run, name="classifier", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the event in hand, then stop; the rest are taken at the next start."""
        if self._thread is None:
            return
        while True:  # drop what is queued: it stays unclassified on disk, not lost
            try:
                self._queue.get_nowait()
                self._queue.task_done()
            except queue.Empty:
                break
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def drain(self, timeout: float = 120.0) -> bool:
        """Block until everything queued so far is classified (tests, `--speed max` runs)."""
        deadline = time.monotonic() + timeout
        if self._thread is not None and not self._scanned.wait(timeout):
            return False  # the start-up scan queues what waited on disk: count it in
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return False

    # -- the worker thread ---------------------------------------------------------
    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICE)
        except (AttributeError, OSError):
            pass
        try:
            self._scan()
        finally:
            self._scanned.set()
        next_scan = time.monotonic() + self.cfg.retry_after_s
        while True:
            try:
                item = self._queue.get(timeout=min(5.0, self.cfg.retry_after_s))
            except queue.Empty:
                item = None
            if item is _STOP:
                self._queue.task_done()
                return
            if item is not None:
                with self._lock:
                    self._queued.discard(item)
                try:
                    self._classify(item)
                except Exception as exc:  # noqa: BLE001 - one bad event must not stop the worker
                    log.exception("classification crashed on an event", id=item)
                    self._record_crash(item, exc)
                finally:
                    self._queue.task_done()
            if time.monotonic() >= next_scan:
                next_scan = time.monotonic() + self.cfg.retry_after_s
                self._scan()

    def _scan(self) -> None:
        now = time.time()
        found = 0
        for record in self.store.records():
            if needs_classification(record, now, self.cfg.retry_after_s, self.cfg.max_attempts):
                self.submit(record)
                found += 1
        if found:
            log.info("events waiting for classification", count=found)

    def _ensure_classifier(self) -> Classifier | None:
        if self._classifier is not None:
            return self._classifier
        if time.monotonic() - self._load_attempted < self.cfg.retry_after_s and self._load_error:
            return None
        self._load_attempted = time.monotonic()
        generation, cfg = self._generation, self.cfg
        try:
            started = time.monotonic()
            loaded = self._loader(cfg)
            if generation != self._generation:
                return self._ensure_classifier()  # reconfigured while loading: load the new one
            self._classifier = loaded
            self._load_error = None
            log.info("model ready", load_ms=round(1000 * (time.monotonic() - started), 1))
        except Exception as exc:  # noqa: BLE001 - ModelError, TaxonomyError, or worse: report, retry
            self._load_error = str(exc)
            log.error("classifier could not be loaded; events are kept and retried",
                      error=self._load_error, retry_in_s=self.cfg.retry_after_s)
        return self._classifier

    def _record_crash(self, event_id: str, exc: Exception) -> None:
        """Count a crash as a failed attempt, so the event still becomes final (and is sent)."""
        def change(record: EventRecord) -> None:
            previous = record.get("classification") or {}
            result = failed(f"classifier crashed: {type(exc).__name__}: {exc}", threshold=self.cfg.min_confidence)
            result["attempted_at"] = round(time.time(), 3)
            result["attempts"] = int(previous.get("attempts", 0)) + 1 if previous.get("status") == "failed" else 1
            record["classification"] = result

        try:
            record = self.store.modify(event_id, change)
        except (StoreError, OSError):
            return
        self.failures += 1
        if self.on_classified is not None:
            self.on_classified(record)

    def _classify(self, event_id: str) -> None:
        try:
            record = self.store.load(event_id)
        except StoreError as exc:
            log.warning("cannot classify: unreadable record", id=event_id, error=str(exc))
            return
        if not needs_classification(record, time.time(), 0.0, self.cfg.max_attempts):
            return
        previous = record.get("classification") or {}
        started = time.monotonic()
        frames = record.get("frames")
        if isinstance(frames, list) and not select_frames(frames):
            # Disk full or low when it happened: no picture to look at, now or ever. Final at
            # once, so the feed sends it now ("something moved") rather than after max_attempts.
            result = failed(f"{self.store.event_dir(event_id)}: no stills were saved for this event",
                            threshold=self.cfg.min_confidence)
            result["permanent"] = True
        elif (classifier := self._ensure_classifier()) is None:
            result = failed(f"classifier unavailable: {self._load_error}", threshold=self.cfg.min_confidence)
        else:
            result = classifier.classify_event(record, self.store.event_dir(event_id))
        result["attempted_at"] = round(time.time(), 3)
        result["attempts"] = int(previous.get("attempts", 0)) + 1 if previous.get("status") == "failed" else 1
        result["elapsed_ms"] = round(1000 * (time.monotonic() - started), 1)
        try:
            record = self.store.update(event_id, classification=result)
        except (StoreError, OSError) as exc:
            log.error("cannot write classification", id=event_id, error=str(exc))
            return
        if result.get("status") == "ok":
            self.classified += 1
            log.info("event classified", id=event_id, tag=result["tag"], species=result.get("species"),
                     label=result.get("label"), conf=result.get("confidence"), ms=result["elapsed_ms"])
        else:
            self.failures += 1
            log.warning("classification failed", id=event_id, error=result.get("error"))
        if self.on_classified is not None:
            self.on_classified(record)
