"""Disk care for months on an SD card: a free-space floor and a size cap.

When either is crossed, the oldest closed events are pruned first. What may be pruned
is decided by a predicate on the record, so the MQTT feed can later restrict pruning
to events it has already delivered. When nothing may be pruned the guard says so in
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
        """Prune oldest prunable events until the floor and cap hold again.

        For the free-space floor, events are pruned only if pruning every prunable
        event would restore it: when something else has filled the card, deleting our
        own newest events would lose data and gain nothing. The size cap concerns only
        our events, so pruning always restores it.
        """
        free, size = self.free_bytes(), self.store.size_bytes()
        pruned = 0
        if self._over(free, size):
            candidates = []
            for event_id in self.store.ids():
                if event_id in protect:
                    continue
                try:
                    record = self.store.load(event_id)
                except StoreError:
                    continue
                if self.prunable(record):
                    candidates.append((event_id, self.store.event_size(event_id)))
            need_free = max(0, self.min_free - free)
            if need_free > sum(sz for _, sz in candidates):
                need_free = 0  # pruning cannot restore the floor: keep the events
            need_size = max(0, size - self.max_size) if self.max_size > 0 else 0
            freed = 0
            for event_id, event_size in candidates:
                if freed >= max(need_free, need_size):
                    break
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
        return DiskReport(free / MB, size / MB, pruned, low)
