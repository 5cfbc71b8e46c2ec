"""The local event store: one folder per event, JPEG stills plus one JSON record.

    DATA_DIR/events/<event-id>/event.json
    DATA_DIR/events/<event-id>/000.jpg, 001.jpg, ...

Event ids are UUIDv7, so folder names sort by time and the oldest event is the first.
Every file is written to a temporary name, flushed to the card and renamed, so a power
cut leaves either the old file or the new one, never half of one. The JPEGs carry no
metadata at all (no EXIF, hence no GPS): OpenCV's encoder writes none.

This store is the hand-off point: the classifier and the MQTT feed read records from
here and add their own keys with :meth:`EventStore.update`.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from station.files import atomic_write
from station.record import EventRecord
from station.log import get_logger

log = get_logger("store")

RECORD_NAME = "event.json"


class StoreError(RuntimeError):
    """A record or frame in the store is unreadable; the message names the file."""


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise StoreError(f"JPEG encoding failed for an image of shape {image.shape}")
    return buf.tobytes()


class EventStore:
    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "events"
        self._lock = threading.RLock()
        self._sizes: dict[str, int] | None = None

    # -- layout ---------------------------------------------------------------
    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def event_dir(self, event_id: str) -> Path:
        return self.root / event_id

    def ids(self) -> list[str]:
        """Event ids, oldest first (ids are time-sortable)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    # -- writing --------------------------------------------------------------
    def write_record(self, record: EventRecord) -> None:
        with self._lock:
            folder = self.event_dir(record["id"])
            folder.mkdir(parents=True, exist_ok=True)
            data = json.dumps(record, indent=1, sort_keys=False).encode()
            atomic_write(folder / RECORD_NAME, data)
            self.account(record["id"])

    def write_still(self, event_id: str, name: str, image: np.ndarray, quality: int = 90) -> int:
        data = encode_jpeg(image, quality)
        folder = self.event_dir(event_id)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / name, data)
        self.account(event_id)
        return len(data)

    def update(self, event_id: str, **keys: Any) -> EventRecord:
        """Set top-level keys of a record (read, modify, write atomically)."""
        return self.modify(event_id, lambda record: record.update(keys))

    def modify(self, event_id: str, change: Callable[[EventRecord], bool | None]) -> EventRecord:
        """Apply ``change(record)`` (it edits the dict in place; returning False means
        "nothing to write") under the store's lock, so a decision taken on what the
        record says cannot be overtaken by another thread's write."""
        with self._lock:
            record = self.load(event_id)
            if change(record) is not False:
                self.write_record(record)
            return record

    def drop_clip(self, event_id: str, why: str) -> int:
        """Delete an event's clip and keep everything else; its record's ``clip`` says
        ``why``. The bytes freed (0 when it had no clip)."""
        with self._lock:
            record = self.load(event_id)
            clip = record.get("clip")
            if not isinstance(clip, dict) or not isinstance(clip.get("file"), str):
                return 0
            path = self.event_dir(event_id) / Path(clip["file"]).name
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                size = 0
            path.unlink(missing_ok=True)   # first: on a full card the record needs its room
            record["clip"] = {**clip, "file": None, "mediatype": None, "bytes": 0, "error": why}
            self.write_record(record)
            self.account(event_id)
            return size

    def delete(self, event_id: str) -> None:
        with self._lock:
            shutil.rmtree(self.event_dir(event_id), ignore_errors=True)
            if self._sizes is not None:
                self._sizes.pop(event_id, None)

    # -- reading --------------------------------------------------------------
    def load(self, event_id: str) -> EventRecord:
        path = self.event_dir(event_id) / RECORD_NAME
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StoreError(f"{path}: no event record") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreError(f"{path}: unreadable event record ({exc})") from None
        if not isinstance(record, dict) or record.get("id") != event_id:
            raise StoreError(f"{path}: not an event record for {event_id}")
        return record

    def records(self) -> Iterator[EventRecord]:
        """Every readable record, oldest first; unreadable ones are logged and skipped."""
        for _, record in self.entries():
            if isinstance(record, StoreError):
                log.warning("skipping unreadable event", error=str(record))
            else:
                yield record

    def entries(self) -> Iterator[tuple[str, dict[str, Any] | StoreError]]:
        """(event id, its record or the :class:`StoreError` naming why it cannot be read),
        oldest first: for listings that must show every folder."""
        for event_id in self.ids():
            try:
                yield event_id, self.load(event_id)
            except StoreError as exc:
                yield event_id, exc

    def frame_path(self, event_id: str, name: str) -> Path:
        return self.event_dir(event_id) / name

    # -- sizes ----------------------------------------------------------------
    def _dir_size(self, event_id: str) -> int:
        total = 0
        try:
            for entry in os.scandir(self.event_dir(event_id)):
                if entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            pass
        return total

    def account(self, event_id: str) -> None:
        """Re-measure an event folder after a file was added beside the store's own writes."""
        if self._sizes is not None:
            self._sizes[event_id] = self._dir_size(event_id)

    def size_bytes(self) -> int:
        """Bytes used by all events (measured once, then kept up to date by writes)."""
        with self._lock:
            if self._sizes is None:
                self._sizes = {eid: self._dir_size(eid) for eid in self.ids()}
            return sum(self._sizes.values())

    def event_size(self, event_id: str) -> int:
        with self._lock:
            if self._sizes is not None and event_id in self._sizes:
                return self._sizes[event_id]
            return self._dir_size(event_id)

