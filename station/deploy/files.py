"""Writing deployment files safely: atomically, keeping mode and owner, under a lock."""

from __future__ import annotations

import contextlib
import fcntl
import grp
import os
import pwd
from pathlib import Path
from typing import Iterator

from station.files import atomic_write


def write_atomic(path: Path, data: str | bytes, *, mode: int = 0o600, group: str | None = None,
                 owner: str | None = None, force_mode: bool = False) -> bool:
    """Write ``data`` to ``path`` through a temporary file and a rename; False if unchanged.

    An existing file keeps its mode, owner and group. A new one gets ``mode`` and, when
    running as root and the group exists, ``group`` (e.g. ``mosquitto``, which must read
    the password file), or ``owner`` and that user's group. ``force_mode``: the file gets
    ``mode`` even if it exists with another (credentials that must not stay readable),
    and an unchanged file with a looser mode is tightened (still returning False).
    """
    raw = data.encode() if isinstance(data, str) else data
    path = Path(path)
    try:
        same = path.read_bytes() == raw
        st = path.stat()
        if force_mode and st.st_mode & 0o7777 != mode:
            os.chmod(path, mode)
        if same:
            return False
        uid, gid = st.st_uid, st.st_gid
        if not force_mode:
            mode = st.st_mode & 0o7777
    except FileNotFoundError:
        uid, gid = -1, -1
        if os.geteuid() == 0:
            with contextlib.suppress(KeyError):
                if owner is not None:
                    user = pwd.getpwnam(owner)
                    uid, gid = user.pw_uid, user.pw_gid
                elif group is not None:
                    uid, gid = 0, grp.getgrnam(group).gr_gid
    path.parent.mkdir(parents=True, exist_ok=True)
    chown = (uid, gid) if (uid, gid) != (-1, -1) and os.geteuid() == 0 else None
    atomic_write(path, raw, mode=mode, owner=chown)
    return True


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder/.provision.lock`` (the folder must exist): one
    provisioning at a time."""
    with open(folder / ".provision.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
