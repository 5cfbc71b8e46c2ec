"""Disk care for months on an SD card: a free-space floor and a size cap.

When either is crossed, event clips go first (oldest first; the stills and records
stay), then the oldest closed events. What may be pruned whole is decided by a
predicate on the record, so the MQTT feed can restrict pruning to events it has already
delivered; a clip may go from any closed event, since clips never travel over MQTT and
the stills the classifier and the feed use stay. When nothing may be pruned the guard says so in
the log and the writer stops writing stills until room returns; capture goes on.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any, Callable

from station.events.store import EventStore, StoreError
from station.log import get_logger

log = get_logger("disk")

MB = 1024 * 1024


def closed_events(record: dict[str, Any]) -> bool:
    return record.get("status") == "closed"


@dataclass(slots=True)
class DiskReport:
    free_mb: float
    store_mb: float
    pruned: int
    clips_dropped: int
    low: bool
    """The floor or cap is still crossed after pruning (nothing more could go)."""


class DiskGuard:
    def __init__(self, store: EventStore, min_free_mb: float, max_size_mb: float = 0,
                 prunable: Callable[[dict[str, Any]], bool] = closed_events,
                 disk_usage: Callable[[str], Any] = shutil.disk_usage):
        self.store = store
        self.min_free = min_free_mb * MB
        self.max_size = max_size_mb * MB
        self.prunable = prunable
        self._disk_usage = disk_usage
        self.low = False

    def reconfigure(self, min_free_mb: float, max_size_mb: float = 0) -> None:
        """New floor and cap (a config reload); the next check uses them."""
        self.min_free = min_free_mb * MB
        self.max_size = max_size_mb * MB

    def free_bytes(self) -> int:
        return self._disk_usage(str(self.store.data_dir)).free

    def _over(self, free: int, size: int) -> bool:
        return free < self.min_free or (self.max_size > 0 and size > self.max_size)

    def check(self, protect: frozenset[str] | set[str] = frozenset()) -> DiskReport:
        """Drop clips, then prune the oldest prunable events, until the floor and cap hold again.

        For the free-space floor, events are pruned only if pruning every prunable
        event would restore it: when something else has filled the card, deleting our
        own newest events would lose data and gain nothing. The size cap concerns only
        our events, so pruning always restores it.
        """
        free, size = self.free_bytes(), self.store.size_bytes()
        pruned = dropped = 0
        if self._over(free, size):
            candidates, clips = [], []
            clips_only = 0  # clip bytes in events that are not prunable: they can go, the events stay
            for event_id in self.store.ids():
                if event_id in protect:
                    continue
                try:
                    record = self.store.load(event_id)
                except StoreError:
                    continue
                clip_bytes = _clip_bytes(record) if closed_events(record) else 0
                if clip_bytes:
                    clips.append(event_id)
                if self.prunable(record):
                    candidates.append(event_id)
                    clips_only -= clip_bytes
                clips_only += clip_bytes
            need_free = max(0, self.min_free - free)
            if need_free > sum(self.store.event_size(e) for e in candidates) + clips_only:
                need_free = 0  # pruning cannot restore the floor: keep the events
            need_size = max(0, size - self.max_size) if self.max_size > 0 else 0
            need = max(need_free, need_size)
            freed = 0
            for event_id in clips:
                if freed >= need:
                    break
                try:
                    got = self.store.drop_clip(event_id, "dropped: disk low (the stills were kept)")
                except (StoreError, OSError) as exc:
                    log.error("could not drop a clip", id=event_id, error=str(exc))
                    continue
                freed += got
                dropped += bool(got)
                log.info("dropped clip", id=event_id, freed_kb=got // 1024)
            for event_id in candidates:
                if freed >= need:
                    break
                event_size = self.store.event_size(event_id)
                self.store.delete(event_id)
                freed += event_size
                pruned += 1
                log.info("pruned event", id=event_id, freed_kb=event_size // 1024)
            free, size = self.free_bytes(), self.store.size_bytes()
        low = self._over(free, size)
        if low and not self.low:
            log.warning("disk low and nothing left to prune; stills are not being saved",
                        free_mb=round(free / MB, 1), floor_mb=round(self.min_free / MB, 1),
                        store_mb=round(size / MB, 1), cap_mb=round(self.max_size / MB, 1))
        elif self.low and not low:
            log.info("disk space recovered", free_mb=round(free / MB, 1))
        self.low = low
        return DiskReport(free / MB, size / MB, pruned, dropped, low)


def _clip_bytes(record: dict[str, Any]) -> int:
    clip = record.get("clip")
    if isinstance(clip, dict) and isinstance(clip.get("file"), str):
        size = clip.get("bytes")
        return int(size) if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 1
    return 0
