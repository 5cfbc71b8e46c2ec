"""The disk side of events: a thread that writes stills and records off the capture path.

The capture thread hands over work and returns at once. Images wait in a bounded
number of slots; when the disk falls that far behind, a new still is dropped (and
counted in its event's record) rather than stalling capture. Records are never
dropped: a record that cannot be written (disk full) is kept and written again once
there is room. If the station stops first, the records still held go into the space
reserved for them at start (:mod:`station.events.reserve`), and the next start puts
them into their folders.

Event clips (``[events] video``) are made here too, off the capture path: frames from the
station's own ring are encoded as they come (a bounded number wait; one more is dropped
from the clip, and filled in by the frame before it), a camera's own clip is put into an
MP4, and the record that closes the event carries the clip (:mod:`station.events.clip`).
A clip never holds up its event: one that cannot be written leaves the event without
video, and the record's ``clip.error`` says why.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

import cv2
import numpy as np

from station.camera.base import RawClip
from station.events.clip import ClipError, ClipFile, failed_clip, remux_h264
from station.events.model import Event, Still
from station.events.reserve import RecordReserve
from station.events.retention import DiskGuard
from station.events.store import EventStore
from station.log import get_logger

log = get_logger("writer")

_STOP = object()


class EventWriter:
    """An :class:`~station.events.recorder.EventSink` that persists to an :class:`EventStore`."""

    def __init__(self, store: EventStore, guard: DiskGuard | None = None, jpeg_quality: int = 90,
                 max_pending_images: int = 64, check_interval_s: float = 30.0,
                 on_closed: Callable[[dict[str, Any]], None] | None = None,
                 reserve: RecordReserve | None = None, max_pending_clip_frames: int = 30):
        self.store = store
        self.reserve = reserve
        self._owed: set[str] = set()
        """Ids of records the reserve holds that are not yet in their folders."""
        self.guard = guard
        self.jpeg_quality = jpeg_quality
        self.check_interval_s = check_interval_s
        self.on_closed = on_closed
        self._queue: queue.Queue = queue.Queue()
        self._slots = threading.BoundedSemaphore(max_pending_images)
        self._clip_slots = threading.BoundedSemaphore(max_pending_clip_frames)
        self._clips: dict[str, ClipFile] = {}
        """Clips being encoded, by event id (the writer thread's own)."""
        self._clip_info: dict[str, dict[str, Any]] = {}
        """Finished (or failed) clips, by event id, until the closed record carries them."""
        self._clip_drops: dict[str, int] = {}
        self._failed: dict[str, dict[int, str]] = {}
        self._unwritten: dict[str, dict[str, Any]] = {}
        self._open_ids: set[str] = set()
        self._thread: threading.Thread | None = None
        self._last_check = 0.0
        self.stills_written = 0
        self.stills_dropped = 0
        self.clips_written = 0

    # -- EventSink, called on the capture thread --------------------------------
    def opened(self, event: Event) -> None:
        self._open_ids.add(event.id)
        self._queue.put(("record", event.to_record()))

    def still(self, event: Event, still: Still, image: np.ndarray) -> None:
        if not self._slots.acquire(blocking=False):
            still.error = "dropped: disk writer behind"
            event.frames_dropped += 1
            self.stills_dropped += 1
            log.warning("still dropped, disk writer behind", id=event.id, index=still.index,
                        pending=self.pending)
            return
        still.file = f"{still.index:03d}.jpg"
        self._queue.put(("still", event.id, still.index, still.file, image, event.to_record()))

    def closed(self, event: Event) -> None:
        self._queue.put(("closed", event.to_record()))

    # -- ClipSink, called on the capture thread ---------------------------------
    def clip_begin(self, event: Event, fps: float, size: tuple[int, int]) -> None:
        self._queue.put(("clip_begin", event.id, fps, size))

    def clip_frame(self, event: Event, timestamp: float, image: np.ndarray) -> None:
        if not self._clip_slots.acquire(blocking=False):
            self._clip_drops[event.id] = self._clip_drops.get(event.id, 0) + 1
            return  # the encoder is behind: this frame is filled in by the one before it
        self._queue.put(("clip_frame", event.id, timestamp, image))

    def clip_raw(self, event: Event, raw: RawClip) -> None:
        self._queue.put(("clip_raw", event.id, raw))

    # -- lifecycle --------------------------------------------------------------
    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def start(self, keep: list[dict[str, Any]] | tuple = ()) -> "EventWriter":
        """Start the thread. ``keep``: closed records recovery could not write (the card is
        still full); they are written, and handed on as closed, once there is room."""
        self.store.ensure()
        for record in keep:
            self._queue.put(("closed", record))
        if self.reserve is not None:
            # Records from the reserve that recovery could not put home stay in it until they are.
            self._owed = {r["id"] for r in keep} if self.reserve.dirty else set()
            self._tidy_reserve()
            if self.reserve.size > 0 and not self.reserve.make():
                log.warning("no room to reserve space for event records at a stop; trying again later",
                            path=str(self.reserve.path), size_mb=round(self.reserve.size / 2**20, 1))
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("event writer did not finish in time", pending=self.pending)
        self._thread = None

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until everything queued so far is on disk (for tests and shutdown)."""
        done = threading.Event()
        self._queue.put(("sync", done))
        return done.wait(timeout)

    # -- the writer thread --------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                item = None
            if time.monotonic() - self._last_check >= self.check_interval_s:
                self._check_disk()
                if self._unwritten and not (self.guard is not None and self.guard.low):
                    self._retry_unwritten()
            if item is _STOP:
                for clip in self._clips.values():
                    clip.abort()
                self._clips.clear()
                self._retry_unwritten()
                self._keep_in_reserve()
                return
            if item is None:
                continue
            try:
                self._handle(item)
            except Exception:  # noqa: BLE001 - the writer must outlive any one bad item
                log.exception("event writer failed on an item", kind=item[0])

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "still":
            _, event_id, index, name, image, record = item
            try:
                self._write_still(event_id, index, name, image)
            finally:
                self._slots.release()
            self._write_record(record)
        elif kind == "record":
            self._write_record(item[1])
        elif kind.startswith("clip_"):
            self._handle_clip(item)
        elif kind == "closed":
            record = item[1]
            self._open_ids.discard(record["id"])
            self._finish_clip(record["id"], record.get("end_timestamp"))
            if self._write_record(record):
                self._failed.pop(record["id"], None)
                self._clip_info.pop(record["id"], None)
                if self.on_closed is not None:
                    self.on_closed(record)
        elif kind == "sync":
            self._retry_unwritten()
            item[1].set()

    def _write_still(self, event_id: str, index: int, name: str, image: np.ndarray) -> None:
        if self.guard is not None and self.guard.low:
            self._failed.setdefault(event_id, {})[index] = "not saved: disk low"
            return
        try:
            self.store.write_still(event_id, name, image, self.jpeg_quality)
            self.stills_written += 1
        except OSError as exc:
            self._failed.setdefault(event_id, {})[index] = f"not saved: {exc.strerror or exc}"
            log.error("cannot write still", id=event_id, file=name, error=str(exc))
            self._check_disk()

    # -- clips (the writer thread) ------------------------------------------------
    def _handle_clip(self, item: tuple) -> None:
        kind, event_id = item[0], item[1]
        if kind == "clip_frame":
            try:
                clip = self._clips.get(event_id)
                if clip is not None:
                    clip.add(item[2], item[3])
            except (ClipError, OSError, cv2.error) as exc:
                self._clip_failed(event_id, str(exc))
            finally:
                self._clip_slots.release()
        elif kind == "clip_begin":
            if self.guard is not None and self.guard.low:
                self._clip_info[event_id] = failed_clip("not saved: disk low")
                return
            self._clips[event_id] = ClipFile(self.store.event_dir(event_id), fps=item[2], size=item[3])
        elif kind == "clip_raw":
            if self.guard is not None and self.guard.low:
                self._clip_info[event_id] = failed_clip("not saved: disk low")
                return
            try:
                self._clip_info[event_id] = remux_h264(item[2], self.store.event_dir(event_id))
                self.clips_written += 1
                self.store.account(event_id)
            except (ClipError, OSError) as exc:
                self._clip_info[event_id] = failed_clip(_why(exc))
                log.error("clip not saved; the event has no video", id=event_id, error=str(exc))

    def _clip_failed(self, event_id: str, error: str) -> None:
        clip = self._clips.pop(event_id, None)
        if clip is not None:
            clip.abort()
        self._clip_info[event_id] = failed_clip(error)
        log.error("clip not saved; the event has no video", id=event_id, error=error)

    def _finish_clip(self, event_id: str, end: float | None) -> None:
        clip = self._clips.pop(event_id, None)
        if clip is None:
            return
        dropped = self._clip_drops.pop(event_id, 0)
        try:
            info = clip.finish(end)
        except (ClipError, OSError, cv2.error) as exc:
            clip.abort()
            self._clip_info[event_id] = failed_clip(_why(exc))
            log.error("clip not saved; the event has no video", id=event_id, error=str(exc))
            return
        info["frames_dropped"] = dropped
        self._clip_info[event_id] = info
        self.clips_written += 1
        self.store.account(event_id)
        log.info("clip written", id=event_id, frames=info["frames"], codec=info["codec"],
                 kb=info["bytes"] // 1024, repeated=info.get("frames_repeated", 0))

    def _write_record(self, record: dict[str, Any]) -> bool:
        clip = self._clip_info.get(record["id"])
        if clip is not None and record.get("status") == "closed":
            record["clip"] = clip
        failed = self._failed.get(record["id"])
        if failed:
            for frame in record["frames"]:
                if frame["index"] in failed:
                    frame["file"] = None
                    frame["error"] = failed[frame["index"]]
        try:
            self.store.write_record(record)
        except OSError as exc:
            if record["id"] not in self._unwritten:  # once per event, not at every still
                log.error("cannot write event record; kept in memory until there is room",
                          id=record["id"], error=str(exc), held=len(self._unwritten) + 1)
            self._unwritten[record["id"]] = record
            if time.monotonic() - self._last_check >= 1.0:  # not per record: a stop retries them all
                self._check_disk()
            return False
        if self._unwritten.pop(record["id"], None) is not None:
            log.info("event record written after all", id=record["id"], still_held=len(self._unwritten))
        if record["id"] in self._owed:
            self._owed.discard(record["id"])
            self._tidy_reserve()
        return True

    def _retry_unwritten(self) -> None:
        for record in list(self._unwritten.values()):
            if self._write_record(record) and record["status"] == "closed":
                self._failed.pop(record["id"], None)
                self._clip_info.pop(record["id"], None)
                if self.on_closed is not None:
                    self.on_closed(record)

    def _check_disk(self) -> None:
        self._last_check = time.monotonic()
        if self.guard is not None:
            try:
                self.guard.check(protect=set(self._open_ids) | set(self._unwritten))
            except OSError as exc:
                log.error("disk check failed", error=str(exc))
        if self.reserve is not None and self.reserve.size > 0 and not self._unwritten and not self.reserve.held:
            if self.reserve.make():
                log.info("space reserved for event records at a stop", path=str(self.reserve.path),
                         size_mb=round(self.reserve.size / 2**20, 1))

    # -- the reserve ----------------------------------------------------------------------
    def _tidy_reserve(self) -> None:
        """Once every record the reserve held is in its folder, empty it for the next stop."""
        if self.reserve is None or self._owed:
            return
        try:
            self.reserve.clear()
        except OSError as exc:
            log.error("cannot empty the reserve", path=str(self.reserve.path), error=str(exc))

    def _keep_in_reserve(self) -> None:
        """At a stop: the records still held go into the reserved space (no new blocks needed)."""
        if not self._unwritten:
            return
        records = list(self._unwritten.values())
        kept: list[str] = []
        if self.reserve is not None:
            try:
                kept = self.reserve.keep(records)
            except OSError as exc:
                log.error("cannot write into the reserve", path=str(self.reserve.path), error=str(exc))
        if kept:
            log.warning("event records kept in the reserved space; written to their folders at the next start",
                        count=len(kept), path=str(self.reserve.path))
        for record in records:
            if record["id"] not in kept:
                log.error("event record not written at the stop; rebuilt from its stills at the next start "
                          "(raise storage.reserve_mb)", id=record["id"])


def _why(exc: Exception) -> str:
    """The record's words for a clip that was not written."""
    if isinstance(exc, OSError):
        return f"not saved: {exc.strerror or exc}"
    return f"not saved: {exc}"
