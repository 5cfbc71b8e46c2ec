"""``[storage]``: where events go and how much of the SD card they may use."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from station.config.base import Section


class StorageSection(Section):
    data_dir: Path = Path("/var/lib/station")
    min_free_mb: float = Field(default=500, ge=0)
    """Free-space floor: oldest events are pruned to keep at least this much free."""
    max_size_mb: float = Field(default=0, ge=0)
    """Cap on the event store's size; 0 means no cap beyond the free-space floor."""
    check_interval_s: float = Field(default=30, gt=0, le=3600)
    writer_queue: int = Field(default=64, ge=4, le=4096)
    """Frames waiting for the disk before new ones are dropped (capture never waits)."""
