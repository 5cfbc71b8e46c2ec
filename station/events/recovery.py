"""Start-up repair of the event store, so that every event that reached the card gets a record.

Run once at start, before capture (:meth:`EventStore.recover`), in this order:

1. **Records kept in the reserve** at the last stop (the card was full,
   :mod:`station.events.reserve`) go into their folders.
2. **A record left ``open``** by a crash or power cut is closed: ``end_reason =
   "interrupted"``, its end the last still that is on the card.
3. **A folder without a record** (never written: the card was full and the record did
   not fit in the reserve, or the station died before writing it) gets one rebuilt from
   its stills: ``end_reason = "rebuilt"``, times estimated from the stills' file times,
   and a top-level ``rebuilt`` key saying so. A complete ``.event.json.tmp`` (a crash
   between writing a record and renaming it) is used as it is instead.

Every restored or rebuilt record is ``closed`` and unclassified, so the classifier and
the feed take it like any other. A record that cannot be written (the card is still
full) is returned in :attr:`Recovery.unwritten` for the writer to keep and write later.
A malformed record is named in the log and left alone.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from station.events.clip import PART_SUFFIX
from station.events.ids import event_id_time
from station.events.model import Event, Still
from station.record import record_problem
from station.times import iso
from station.log import get_logger

if TYPE_CHECKING:
    from station.events.store import EventStore

log = get_logger("store")

REBUILT_NOTE = "the record was never written (a full card at a stop, or a crash); rebuilt from the stills"


@dataclass
class Recovery:
    restored: list[str] = field(default_factory=list)
    """Records kept in the reserve at the last stop, now in their folders."""
    interrupted: list[str] = field(default_factory=list)
    """Open records closed (a crash or a power cut)."""
    rebuilt: list[str] = field(default_factory=list)
    """Folders without a record that got one from their stills (or their finished temp file)."""
    unwritten: list[dict[str, Any]] = field(default_factory=list)
    """Records that could not be written now (the card is still full): keep them."""

    @property
    def ids(self) -> list[str]:
        return self.restored + self.interrupted + self.rebuilt + [r["id"] for r in self.unwritten]


def recover(store: "EventStore", kept: Iterable[dict[str, Any]] = (),
            identity: Mapping[str, str] | None = None) -> Recovery:
    """``kept``: records from the reserve; ``identity``: ``station_id``, ``deployment_id`` and
    ``camera`` for rebuilt records (None: folders without a record are only reported)."""
    from station.events.store import RECORD_NAME, StoreError

    result = Recovery()
    for record in kept:
        _restore(store, record, result)
    if not store.root.is_dir():
        return result
    waiting = {r["id"] for r in result.unwritten}
    for event_id in store.ids():
        folder = store.event_dir(event_id)
        _finish_temp_record(store, event_id, folder)
        for tmp in [*folder.glob(".*.tmp"), *folder.glob(f".*{PART_SUFFIX}")]:
            tmp.unlink(missing_ok=True)  # half-written files (a clip being encoded, too)
        if event_id in waiting:
            continue
        try:
            record = store.load(event_id)
        except StoreError as exc:
            if (folder / RECORD_NAME).exists() or identity is None:
                log.warning("event folder without a readable record; left as it is", error=str(exc))
            else:
                _rebuild(store, event_id, identity, result)
            continue
        problem = record_problem(record)
        if problem is not None:
            log.warning("malformed event record; left as it is", file=str(folder / RECORD_NAME), problem=problem)
            continue
        if record["status"] == "open":
            _close_interrupted(store, record, result)
    return result


def _write(store: "EventStore", record: dict[str, Any], result: Recovery) -> bool:
    try:
        store.write_record(record)
        return True
    except OSError:
        result.unwritten.append(record)  # the writer keeps it (and says so, once per record)
        return False


def _restore(store: "EventStore", record: dict[str, Any], result: Recovery) -> None:
    from station.events.store import StoreError

    problem = record_problem(record)
    if problem is not None:
        log.warning("malformed record in the reserve; skipped", id=record.get("id"), problem=problem)
        return
    try:
        current = store.load(record["id"])
    except StoreError:
        current = None
    if current is not None and current.get("status") == "closed":
        return  # it was written after all (room came back before the stop)
    if _write(store, record, result):
        result.restored.append(record["id"])
        log.info("event record restored from the reserve", id=record["id"])


def _close_interrupted(store: "EventStore", record: dict[str, Any], result: Recovery) -> None:
    folder = store.event_dir(record["id"])
    frames = [f for f in record["frames"] if f.get("file") and (folder / f["file"]).is_file()]
    last = max([f["timestamp"] for f in frames], default=record["start_timestamp"])
    record.update(status="closed", end_reason="interrupted", frames=frames, end_timestamp=last, end=iso(last))
    if _write(store, record, result):
        result.interrupted.append(record["id"])
        log.warning("recovered interrupted event", id=record["id"], stills=len(frames))


def _finish_temp_record(store: "EventStore", event_id: str, folder: Path) -> None:
    """A crash between writing a record and renaming it leaves it whole under its temp name."""
    from station.events.store import RECORD_NAME

    tmp = folder / f".{RECORD_NAME}.tmp"
    if (folder / RECORD_NAME).exists() or not tmp.is_file():
        return
    try:
        record = json.loads(tmp.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return  # cut off mid-write: the stills will do
    if record_problem(record) is None and record["id"] == event_id:
        os.replace(tmp, folder / RECORD_NAME)
        log.warning("event record finished from its temporary file", id=event_id)


def _still_files(folder: Path) -> list[tuple[int, str, float]]:
    """(index, file name, mtime) of the stills in an event folder, in order."""
    out = []
    for path in folder.glob("*.jpg"):
        if path.stem.isdigit() and not path.name.startswith("."):
            try:
                out.append((int(path.stem), path.name, path.stat().st_mtime))
            except OSError:
                continue
    return sorted(out)


def _rebuild(store: "EventStore", event_id: str, identity: Mapping[str, str], result: Recovery) -> None:
    folder = store.event_dir(event_id)
    try:
        if uuid.UUID(event_id).version != 7:
            raise ValueError
        start = event_id_time(event_id)
    except ValueError:
        log.warning("folder in the event store is not an event (its name is no event id); left alone",
                    folder=str(folder))
        return
    stills = _still_files(folder)
    first = min((m for _, _, m in stills), default=0.0)
    # The ids' start is exact (milliseconds); the stills' spacing comes from their file times.
    event = Event(id=event_id, station_id=identity["station_id"], deployment_id=identity["deployment_id"],
                  trigger_time=start, start_time=start, camera=identity.get("camera", ""),
                  stills=[Still(index=i, timestamp=start + max(0.0, m - first), boxes=(), score=0.0,
                                pre_trigger=False, file=name) for i, name, m in stills])
    event.end_time = max([s.timestamp for s in event.stills], default=start)
    event.end_reason = "rebuilt"
    record = event.to_record()
    record["rebuilt"] = {"at": iso(time.time()), "why": REBUILT_NOTE,
                         "times": "start from the event id; stills spaced by their file times"}
    if _write(store, record, result):
        result.rebuilt.append(event_id)
        log.warning("event record rebuilt from its stills", id=event_id, stills=len(stills))
