"""``station events``: the store as a table a ranger can read, one line per event folder.

A record that cannot be read, or lacks what capture writes (``frames`` that is not a
list, a missing ``start_timestamp``), is one ``malformed`` line naming the file and the
key; the listing goes on.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from station.record import record_problem
from station.events.store import RECORD_NAME, EventStore, StoreError

HEADER = (f"{'event id':36}  {'start (UTC)':23}  {'length':>7}  {'stills':>6}  {'pre':>5}  {'clip':>6}  "
          f"{'status':7}  end reason")


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-4] + "Z"


def row(record: dict[str, Any]) -> str:
    """One table line for a record that passed :func:`~station.events.model.record_problem`."""
    end = record["end_timestamp"]
    length = f"{end - record['start_timestamp']:.1f}s" if end is not None else "-"
    stills = sum(1 for f in record["frames"] if f["file"])
    pre = record.get("pre_trigger_s")
    pre = f"{pre:>4.1f}s" if isinstance(pre, (int, float)) and not isinstance(pre, bool) else f"{'-':>5}"
    return (f"{record['id']:36}  {fmt_time(record['start_timestamp']):23}  {length:>7}  {stills:>6}  "
            f"{pre}  {_clip(record):>6}  {record['status']:7}  {record.get('end_reason') or '-'}")


def _clip(record: dict[str, Any]) -> str:
    """The clip column: its length, "none" when it could not be kept (the record says why), "-" without."""
    clip = record.get("clip")
    if not isinstance(clip, dict):
        return "-"
    duration = clip.get("duration_s")
    if isinstance(clip.get("file"), str) and isinstance(duration, (int, float)) and not isinstance(duration, bool):
        return f"{duration:.1f}s"
    return "none"


def listing(store: EventStore) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """(table lines, the readable records, one "FILE: problem" per malformed record)."""
    lines, records, malformed = [HEADER], [], []
    for event_id, entry in store.entries():
        path = store.event_dir(event_id) / RECORD_NAME
        if isinstance(entry, StoreError):
            problem = str(entry)
        else:
            records.append(entry)
            found = record_problem(entry)
            if found is None:
                lines.append(row(entry))
                continue
            problem = f"{path}: {found}"
        malformed.append(problem)
        lines.append(f"{event_id:36}  malformed: {problem}")
    lines.append(f"{len(lines) - 1} event(s) in {store.data_dir}"
                 + (f", {len(malformed)} malformed" if malformed else ""))
    return lines, records, malformed
