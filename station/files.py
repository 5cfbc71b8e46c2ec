"""Writing files so that a power cut never leaves half of one: the one atomic write.

    atomic_write(folder / "event.json", data)                 # fsynced, then renamed into place
    atomic_write(path, text, mode=0o640, owner=(0, gid))      # mode and owner set before the rename

The data goes to a temporary file beside the target (``.NAME.XXXXXX.tmp``; a crash may
leave one, never a torn target), is flushed to the disk, gets its mode and owner, and is
renamed over the target; then the folder itself is fsynced so the rename survives too.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

TMP_SUFFIX = ".tmp"
"""Leftover temporary files end in this (``.NAME.XXXXXX.tmp``): safe to delete at start-up."""


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where the folder cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | str, *, mode: int | None = None,
                 owner: tuple[int, int] | None = None, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically. ``mode`` defaults to 0644 less the umask
    (the temporary file is made 0600, so nothing is readable before its mode is set)."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        if owner is not None:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_dir(path.parent)
