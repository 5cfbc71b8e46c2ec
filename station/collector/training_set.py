"""Training data from what researchers verified: the crops in folders named after their tags.

    summary = export_training_set(db, cfg, "site-2026/", progress=bar)
    # site-2026/leopard/<event_id>.jpg, prey_sika deer/..., empty/..., training-set.csv

One picture per verified event, from what the collector holds: the event's thumbnail (the
station's best still, made small), cropped by the machine's ``best_box`` when the event
has one (for a verified blank that is the machine's false alarm, a useful negative), else
whole. The folder is the verified tag, as ``station evaluate`` and ``station train`` read
them (:func:`folder_for`): ``prey_<species>`` for prey with a species, ``empty`` for
blank; events verified ``unknown`` ("cannot tell") teach nothing and are left out.
``training-set.csv`` beside the folders says where each picture came from (no
coordinates).

The set is built in a temporary folder next to ``out_dir`` and moved into place at the
end: a failed run leaves nothing half-written, and a set written earlier is replaced
whole (a verification changed since then moves its picture). A folder that holds
anything else is never overwritten. Pictures of people are personal data: files are
readable by their owner only (0600, folders 0700), like the collector's own thumbnails.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from station.collector.export import ExportError, NothingToExport
from station.collector.stored import detection_problem
from station.config.collector import CollectorConfig
from station.vocabulary import BLANK, BLANK_FOLDER, SPECIES_FOLDER_TAG, TAGS, UNKNOWN

MANIFEST = "training-set.csv"
MANIFEST_FIELDS = ("file", "event_id", "station_id", "deployment_id", "start_utc", "folder", "tag", "species",
                   "machine_tag", "machine_species", "verified_by", "verified_at", "crop_x", "crop_y", "crop_w",
                   "crop_h", "thumbnail_w", "thumbnail_h")
MIN_CROP_PX = 8
"""A box smaller than this (in the thumbnail) holds nothing recognisable: left out, and said so."""
QUALITY = 95
FILE_MODE = 0o600
FOLDER_MODE = 0o700

Progress = Callable[[int, int, str], None]


def folder_for(tag: str, species: str | None) -> str | None:
    """The labelled-picture folder of a verified (tag, species); None for ``unknown``."""
    if tag == UNKNOWN or tag not in TAGS:
        return None
    if tag == BLANK:
        return BLANK_FOLDER
    if tag == SPECIES_FOLDER_TAG and species:
        return f"{tag}_{species}"
    return tag


def _safe_folder(name: str) -> bool:
    """One path component, nothing hidden or odd (species were checked when verified; this
    guards a database written by other hands)."""
    return (0 < len(name) <= 100 and "/" not in name and "\\" not in name and "\x00" not in name
            and not name.startswith(".") and name.strip() == name)


@dataclass
class TrainingSetSummary:
    path: Path
    crops: int = 0
    folders: dict[str, int] = field(default_factory=dict)
    whole: int = 0                                    # pictures with no box: the whole thumbnail
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (event id, why)
    unknown: int = 0                                  # verified "cannot tell": no label to learn

    def warnings(self) -> list[str]:
        lines = [f"left out {event_id}: {why}" for event_id, why in self.left_out[:1000]]
        if len(self.left_out) > 1000:
            lines.append(f"... and {len(self.left_out) - 1000} more left out")
        return lines

    def line(self) -> str:
        folders = ", ".join(f"{name} {n}" for name, n in sorted(self.folders.items()))
        extra = [f"{self.whole} whole (no box)"] if self.whole else []
        if self.unknown:
            extra.append(f"{self.unknown} verified unknown not used")
        if self.left_out:
            extra.append(f"{len(self.left_out)} left out (see the warnings)")
        return (f"{self.path}: {self.crops} pictures in {len(self.folders)} folders ({folders})"
                + (f"; {'; '.join(extra)}" if extra else ""))


def _box(payload: dict[str, Any]) -> list[float] | None:
    if payload.get("classification_status") != "ok" or payload.get("best_frame") is None:
        return None
    box = payload.get("best_box")
    if not box or len(box) != 4 or box[2] <= 0 or box[3] <= 0:
        return None
    return [float(v) for v in box]


def crop(pixels: np.ndarray, box: list[float] | None) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The part of ``pixels`` inside ``box`` (x, y, w, h as fractions of the frame; None:
    all of it) and that part in pixels; ValueError when it is smaller than MIN_CROP_PX."""
    height, width = pixels.shape[:2]
    if box is None:
        return pixels, (0, 0, width, height)
    x, y, w, h = box
    x0, y0 = max(0, math.floor(x * width)), max(0, math.floor(y * height))
    x1, y1 = min(width, math.ceil((x + w) * width)), min(height, math.ceil((y + h) * height))
    if x1 - x0 < MIN_CROP_PX or y1 - y0 < MIN_CROP_PX:
        raise ValueError(f"its box is {max(0, x1 - x0)}x{max(0, y1 - y0)} px in the {width}x{height} thumbnail, "
                         f"under {MIN_CROP_PX} px")
    return pixels[y0:y1, x0:x1], (x0, y0, x1 - x0, y1 - y0)


def _staging(out: Path) -> Path:
    parent = out.absolute().parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ExportError(f"{existing}: is a file, not a folder")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ExportError(f"{out}: the folder holds other files and is not a training set written by this "
                          f"command (no {MANIFEST}); choose a new or empty --out")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = parent / f".{out.name}.part-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=FOLDER_MODE)
    except OSError as exc:
        raise ExportError(f"{parent}: cannot create the output folder ({exc.strerror or exc})") from None
    return staging


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with open(fd, "wb") as fh:
        fh.write(data)


def _move_into_place(staging: Path, out: Path) -> None:
    old = out.absolute().parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def export_training_set(db: Any, cfg: CollectorConfig, out_dir: str | Path, *, station: str | None = None,
                        since: Any = None, until: Any = None, progress: Progress | None = None,
                        page: int = 500) -> TrainingSetSummary:
    """Write the verified crops under ``out_dir`` (see the module docstring). Raises
    :class:`ExportError` (the folder cannot be written, or holds something else) and
    :class:`NothingToExport` (no verified detection gave a picture: nothing written)."""
    out = Path(out_dir)
    total = db.count_detections(station=station, since=since, until=until, verified=True)
    if total == 0:
        where = ", ".join(f"{k}={v}" for k, v in (("station", station), ("since", since), ("until", until)) if v)
        raise NothingToExport(f"no verified detections{f' ({where})' if where else ''}: verify events in the "
                              "dashboard first; nothing written")
    thumbnails = cfg.collector.thumbnails_dir.absolute().resolve()
    staging = _staging(out)
    summary = TrainingSetSummary(out)
    try:
        with (staging / MANIFEST).open("w", encoding="utf-8", newline="") as manifest:
            writer = csv.DictWriter(manifest, MANIFEST_FIELDS, lineterminator="\n")
            writer.writeheader()
            done = 0
            for row in db.iter_detections(station=station, since=since, until=until, verified=True, page=page):
                done += 1
                if progress is not None:
                    progress(done, total, row["event_id"])
                entry = _picture(db, row, thumbnails, staging, summary)
                if entry is not None:
                    writer.writerow({k: "" if v is None else v for k, v in entry.items()})
        if summary.crops == 0:
            raise NothingToExport(f"none of the {total} verified detections gave a picture "
                                  f"({summary.unknown} verified unknown, {len(summary.left_out)} left out: "
                                  + "; ".join(summary.warnings()[:3]) + "); nothing written")
        os.chmod(staging / MANIFEST, FILE_MODE)
        _move_into_place(staging, out)
    except OSError as exc:
        raise ExportError(f"{out}: writing the training set failed ({exc.strerror or exc}); nothing written") \
            from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def _picture(db: Any, row: dict[str, Any], thumbnails: Path, staging: Path,
             summary: TrainingSetSummary) -> dict[str, Any] | None:
    """Write one verified event's picture; its manifest row, or None (and why, in ``summary``)."""
    event_id, v = row["event_id"], row["verification"]
    problem = detection_problem(row)
    if problem is not None:
        summary.left_out.append((event_id, f"stored but breaks the feed's rules ({problem})"))
        return None
    folder = folder_for(v["tag"], v["species"])
    if folder is None:
        summary.unknown += 1
        return None
    if not _safe_folder(folder):
        summary.left_out.append((event_id, f"the species {v['species']!r} cannot be a folder name"))
        return None
    thumb = db.thumbnail(event_id) if row.get("has_thumbnail") else None
    if thumb is None:
        summary.left_out.append((event_id, "no thumbnail reached the collector"))
        return None
    path = (thumbnails / thumb["file"]).resolve()
    if not path.is_relative_to(thumbnails) or not path.is_file():
        summary.left_out.append((event_id, f"its thumbnail file is missing ({thumb['file']})"))
        return None
    pixels = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if pixels is None:
        summary.left_out.append((event_id, f"its thumbnail is not a readable JPEG ({thumb['file']})"))
        return None
    payload = row["payload"]
    box = _box(payload)
    try:
        part, (x, y, w, h) = crop(pixels, box)
    except ValueError as exc:
        summary.left_out.append((event_id, str(exc)))
        return None
    ok, buf = cv2.imencode(".jpg", part, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    if not ok:  # pragma: no cover - OpenCV encodes any 8-bit picture
        summary.left_out.append((event_id, "the crop could not be encoded"))
        return None
    (staging / folder).mkdir(mode=FOLDER_MODE, exist_ok=True)
    name = f"{folder}/{event_id}.jpg"
    _write_file(staging / name, buf.tobytes())
    summary.crops += 1
    summary.whole += box is None
    summary.folders[folder] = summary.folders.get(folder, 0) + 1
    return {"file": name, "event_id": event_id, "station_id": row["station_id"],
            "deployment_id": row["deployment_id"], "start_utc": payload.get("start"), "folder": folder,
            "tag": v["tag"], "species": v["species"], "machine_tag": row["tag"], "machine_species": row["species"],
            "verified_by": v["verified_by"], "verified_at": v["verified_at"], "crop_x": x, "crop_y": y,
            "crop_w": w, "crop_h": h, "thumbnail_w": pixels.shape[1], "thumbnail_h": pixels.shape[0]}
