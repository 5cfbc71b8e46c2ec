"""Writing deployment files safely: atomically, keeping mode and owner, under a lock."""

from __future__ import annotations

import contextlib
import fcntl
import grp
import os
from pathlib import Path
from typing import Iterator

from station.files import atomic_write


def write_atomic(path: Path, data: str | bytes, *, mode: int = 0o600, group: str | None = None) -> bool:
    """Write ``data`` to ``path`` through a temporary file and a rename; False if unchanged.

    An existing file keeps its mode, owner and group. A new one gets ``mode`` and, when
    running as root and the group exists, ``group`` (e.g. ``mosquitto``, which must read
    the password file).
    """
    raw = data.encode() if isinstance(data, str) else data
    path = Path(path)
    try:
        if path.read_bytes() == raw:
            return False
        st = path.stat()
        mode, uid, gid = st.st_mode & 0o7777, st.st_uid, st.st_gid
    except FileNotFoundError:
        uid, gid = -1, -1
        if group is not None and os.geteuid() == 0:
            with contextlib.suppress(KeyError):
                uid, gid = 0, grp.getgrnam(group).gr_gid
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = (uid, gid) if (uid, gid) != (-1, -1) and os.geteuid() == 0 else None
    atomic_write(path, raw, mode=mode, owner=owner)
    return True


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder/.provision.lock``: one provisioning at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".provision.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
