"""The collector's thumbnail files: re-encoded by the collector, under names it makes itself.

    store = ThumbnailStore(cfg.collector.thumbnails_dir)
    row = store.save(accepted_thumbnail_payload)   # file written and fsynced; record row in the DB
    store.path(row.file)                           # where it is
    served = clean_jpeg(path.read_bytes())         # what a browser may get of a file

What a station sends is checked first (:func:`~station.feed.messages.jpeg_size`: every
segment walked to the end-of-image marker, no metadata anywhere, nothing after the end,
its size what the payload says), then decoded to pixels and encoded again: the stored
file is the collector's own JPEG, and the bytes a browser gets carry nothing the station
sent but the picture (hidden data inside the compressed picture included).

A file is named by the SHA-256 of its (re-encoded) bytes, ``ab/abcdef....jpg`` (two-letter
fan-out), never by anything a payload says, so a hostile payload cannot choose a path,
and the same JPEG sent twice (QoS 1 resends) is one file (the encoder is deterministic).
Files are written with the event store's ``atomic_write`` (a temporary name, fsynced,
renamed), readable by the collector's user only (0600, folders 0700), so a crash never
leaves half a JPEG under a real name. A file whose database row was never committed (a
crash between the two) is harmless: the resend writes the same name again.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from station.collector.db import ThumbnailRow
from station.files import atomic_write
from station.feed.messages import ThumbnailError, jpeg_size

FILE_MODE = 0o600
FOLDER_MODE = 0o700
QUALITY = 90
"""Re-encoding quality: a second generation at 90 keeps what a thumbnail of quality 20-80 showed."""


class ThumbnailFileError(OSError):
    """The thumbnails folder cannot be written (full, read-only): a storage problem, retried."""


def reencode(data: bytes, width: int, height: int) -> bytes:
    """The picture of a checked JPEG (:func:`jpeg_size`), encoded again by the collector."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if pixels is None or pixels.shape[:2] != (height, width):
        raise ThumbnailError("thumbnail: the JPEG's picture data cannot be decoded")
    ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    if not ok:  # pragma: no cover - OpenCV encodes any 8-bit picture
        raise ThumbnailError("thumbnail: the picture could not be encoded again")
    return buf.tobytes()


def clean_jpeg(data: bytes) -> bytes:
    """``data`` if it is a JPEG this collector would have written (nothing but the picture),
    else the picture encoded again; ThumbnailError when it is no readable JPEG at all. For
    files stored before thumbnails were re-encoded."""
    try:
        jpeg_size(data)
        return data
    except ThumbnailError:
        pass
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if pixels is None:
        raise ThumbnailError("thumbnail: the stored file is not a readable JPEG")
    ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    return buf.tobytes()


class ThumbnailStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, file: str) -> Path:
        """The path of a stored file name (as recorded by :meth:`save`), checked to be ours."""
        if not _is_our_name(file):
            raise ValueError(f"{file!r} is not a thumbnail name this collector made")
        return self.root / file

    def decode(self, payload: dict[str, Any]) -> tuple[bytes, int, int]:
        """The collector's own JPEG for a validated thumbnail/1 payload, and its size;
        :class:`~station.feed.messages.ThumbnailError` if the station's is not a clean JPEG
        of the size the payload says."""
        data = base64.b64decode(payload["data"], validate=True)
        width, height = jpeg_size(data)
        if (width, height) != (payload["width"], payload["height"]):
            raise ThumbnailError(f"thumbnail: the JPEG is {width}x{height} but the payload says "
                                 f"{payload['width']}x{payload['height']}")
        return reencode(data, width, height), width, height

    def save(self, payload: dict[str, Any]) -> ThumbnailRow:
        data, width, height = self.decode(payload)
        digest = hashlib.sha256(data).hexdigest()
        name = f"{digest[:2]}/{digest}.jpg"
        target = self.root / name
        try:
            if not target.exists() or target.stat().st_size != len(data):
                target.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
                atomic_write(target, data, mode=FILE_MODE)
        except OSError as exc:
            raise ThumbnailFileError(exc.errno, f"{self.root}: cannot store a thumbnail: "
                                                f"{exc.strerror or exc}") from None
        return ThumbnailRow(event_id=payload["event_id"], station_id=payload["station_id"], file=name,
                            bytes=len(data), width=width, height=height, sha256=digest)


def _is_our_name(file: str) -> bool:
    head, sep, tail = file.partition("/")
    return (sep == "/" and len(head) == 2 and tail.endswith(".jpg") and len(tail) == 68
            and tail.startswith(head) and all(c in "0123456789abcdef" for c in tail[:64]))
