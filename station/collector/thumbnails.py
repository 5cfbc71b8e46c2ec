"""The collector's thumbnail files: names it makes itself, content-addressed.

    store = ThumbnailStore(cfg.collector.thumbnails_dir)
    row = store.save(accepted_thumbnail_payload)   # file written and fsynced; record row in the DB
    store.path(row.file)                           # where it is

A file is named by the SHA-256 of its bytes, ``ab/abcdef....jpg`` (two-letter fan-out),
never by anything a payload says, so a hostile payload cannot choose a path, and the
same JPEG sent twice (QoS 1 resends) is one file. Files are written with the event
store's ``atomic_write`` (a temporary name, fsynced, renamed), so a crash never leaves
half a JPEG under a real name. The bytes are checked to be a JPEG without metadata
segments (no EXIF, hence no GPS) before they are kept. A file whose database row was never committed (a crash between the two) is
harmless: the resend writes the same name again.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from station.collector.db import ThumbnailRow
from station.files import atomic_write
from station.feed.messages import ThumbnailError, jpeg_size


class ThumbnailFileError(OSError):
    """The thumbnails folder cannot be written (full, read-only): a storage problem, retried."""


class ThumbnailStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, file: str) -> Path:
        """The path of a stored file name (as recorded by :meth:`save`), checked to be ours."""
        if not _is_our_name(file):
            raise ValueError(f"{file!r} is not a thumbnail name this collector made")
        return self.root / file

    def decode(self, payload: dict[str, Any]) -> tuple[bytes, int, int]:
        """The JPEG bytes of a validated thumbnail/1 payload and their real size;
        :class:`~station.feed.messages.ThumbnailError` if they are not a clean JPEG."""
        data = base64.b64decode(payload["data"], validate=True)
        width, height = jpeg_size(data)
        if (width, height) != (payload["width"], payload["height"]):
            raise ThumbnailError(f"thumbnail: the JPEG is {width}x{height} but the payload says "
                                 f"{payload['width']}x{payload['height']}")
        return data, width, height

    def save(self, payload: dict[str, Any]) -> ThumbnailRow:
        data, width, height = self.decode(payload)
        digest = hashlib.sha256(data).hexdigest()
        name = f"{digest[:2]}/{digest}.jpg"
        target = self.root / name
        try:
            if not target.exists() or target.stat().st_size != len(data):
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(target, data)
        except OSError as exc:
            raise ThumbnailFileError(exc.errno, f"{self.root}: cannot store a thumbnail: "
                                                f"{exc.strerror or exc}") from None
        return ThumbnailRow(event_id=payload["event_id"], station_id=payload["station_id"], file=name,
                            bytes=len(data), width=width, height=height, sha256=digest)


def _is_our_name(file: str) -> bool:
    head, sep, tail = file.partition("/")
    return (sep == "/" and len(head) == 2 and tail.endswith(".jpg") and len(tail) == 68
            and tail.startswith(head) and all(c in "0123456789abcdef" for c in tail[:64]))
