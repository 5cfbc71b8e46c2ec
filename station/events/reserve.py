"""Room set aside for event records, so that a full card loses none at a stop.

While the card is full, the writer keeps the records it cannot write in memory and
writes them once room returns. If the station is stopped first (SIGTERM, a reboot),
they go into this file: ``DATA_DIR/reserved-space``, allocated at start
(``posix_fallocate``, so its blocks are really taken, not a sparse promise) and written
*in place* at the stop, which needs no new space at all. One compact JSON record per
line; a NUL byte ends the list (the rest of the file is zeros or stale).

At the next start the records are moved into their event folders and the file is
emptied again (one NUL byte, still allocated). A record that still cannot be written
(the card is still full) stays in memory and in the file until it can.

Overwriting in place needs no new blocks on ext4 (Raspberry Pi OS) and tmpfs; a
copy-on-write filesystem (btrfs) may still need some.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from station.log import get_logger

log = get_logger("reserve")

RESERVE_NAME = "reserved-space"


class RecordReserve:
    def __init__(self, path: str | Path, size_bytes: int):
        self.path = Path(path)
        self.size = max(0, int(size_bytes))

    # -- state ------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        """Bytes of the file that are allocated, so writable in place without new space."""
        try:
            st = self.path.stat()
        except OSError:
            return 0
        return min(st.st_size, st.st_blocks * 512)

    @property
    def held(self) -> bool:
        """The file exists with ``size`` bytes allocated."""
        return self.size > 0 and self.capacity >= self.size

    @property
    def dirty(self) -> bool:
        """It holds records not yet back in their folders."""
        try:
            with open(self.path, "rb") as fh:
                first = fh.read(1)
        except OSError:
            return False
        return first not in (b"", b"\0")

    # -- start: make, read, empty -------------------------------------------------------
    def make(self) -> bool:
        """Allocate the file (or the rest of it); False when there is no room or the size
        is 0. The records of one that holds some are kept (it is only extended), and an
        empty one that cannot be made is not left behind half made."""
        if self.size <= 0:
            return False
        dirty = self.dirty
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if not dirty and os.fstat(fd).st_size > self.size:
                    os.ftruncate(fd, self.size)
                os.posix_fallocate(fd, 0, self.size)  # allocates what is missing, keeps the contents
                if not dirty:
                    os.pwrite(fd, b"\0", 0)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            if not dirty:
                self.path.unlink(missing_ok=True)
            log.debug("cannot make the reserve", path=str(self.path), error=str(exc))
            return False
        return self.held

    def records(self) -> list[dict[str, Any]]:
        """The records kept at the last stop (oldest first); [] when there are none."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.error("cannot read the reserve; its records stay in it", path=str(self.path), error=str(exc))
            return []
        out = []
        for n, line in enumerate(data.split(b"\0", 1)[0].splitlines(), 1):
            try:
                record = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                log.warning("unreadable line in the reserve (cut off by a power cut?)", path=str(self.path), line=n)
                continue
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                out.append(record)
        return out

    def clear(self) -> None:
        """Empty it, keeping its blocks (a NUL byte at the start)."""
        if not self.path.exists():
            return
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.pwrite(fd, b"\0", 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- stop: keep records -------------------------------------------------------------
    def keep(self, records: list[dict[str, Any]]) -> list[str]:
        """Write ``records`` into the allocated file, in place; the ids of those that fit.
        Replaces what it held (callers pass every record still not in its folder)."""
        room = self.capacity
        if room <= 0:
            return []
        buf, kept = bytearray(), []
        for record in records:
            line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
            if len(buf) + len(line) + 1 <= room:
                buf += line
                kept.append(record["id"])
        buf += b"\0"
        fd = os.open(self.path, os.O_WRONLY)  # no O_TRUNC, no O_APPEND: over the allocated blocks
        try:
            view, offset = memoryview(bytes(buf)), 0
            while offset < len(view):
                offset += os.pwrite(fd, view[offset:], offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        return kept
