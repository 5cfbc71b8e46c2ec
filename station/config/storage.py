"""``[storage]``: where events go and how much of the SD card they may use."""

from __future__ import annotations

import stat
from pathlib import Path

from pydantic import Field, field_validator

from station.config.base import PathValue, Section

MAX_MB = 4_000_000
"""About 4 TB: more than any card or disk a station writes to; a bigger number is a typo."""


class StorageSection(Section):
    data_dir: PathValue = Path("/var/lib/station")
    """Made absolute when read (a relative path counts from the working directory)."""
    min_free_mb: float = Field(default=500, ge=0, le=MAX_MB)
    """Free-space floor: oldest events are pruned to keep at least this much free."""
    max_size_mb: float = Field(default=0, ge=0, le=MAX_MB)
    """Cap on the event store's size; 0 means no cap beyond the free-space floor."""
    check_interval_s: float = Field(default=30, gt=0, le=3600)
    writer_queue: int = Field(default=64, ge=4, le=4096)
    """Frames waiting for the disk before new ones are dropped (capture never waits): stills,
    and as many again for an event clip (``[events] video``) waiting for its encoder."""
    reserve_mb: float = Field(default=4, ge=0, le=1024)
    """Room set aside at start (DATA_DIR/reserved-space) for the event records a full card
    holds back: they are written into it when the station stops. 0 disables it."""

    @field_validator("data_dir")
    @classmethod
    def _folder(cls, v: Path) -> Path:
        v = v.expanduser().absolute()
        for p in (v, *v.parents):  # the folder may not exist yet; what does must be folders
            try:
                mode = p.stat().st_mode
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError:
                break  # unreadable here (permissions): the start-up check will say
            if not stat.S_ISDIR(mode):
                what = "a file" if stat.S_ISREG(mode) else "a device or special file"
                where = "" if p == v else f": {p} is {what}"
                raise ValueError(f"not a folder{where}" if where else f"not a folder ({what})")
            break
        return v
