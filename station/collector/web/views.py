"""What the API shows of stored rows: detections and stations, with locations as the
viewer may see them (:mod:`station.collector.privacy`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from station import times
from station.collector.privacy import LocationPolicy


def thumbnail_url(event_id: str) -> str:
    return f"/thumbnails/{quote(event_id, safe='')}.jpg"


def detection_item(row: dict[str, Any], policy: LocationPolicy, *, exact: bool,
                   sensitive: set[str] | None) -> dict[str, Any]:
    """A ``Database.query_detections`` row: its columns, ``payload``, ``location_generalised``
    and ``thumbnail_url`` (None without a thumbnail)."""
    out = policy.detection_view(row, exact=exact, sensitive=sensitive)
    out["thumbnail_url"] = thumbnail_url(row["event_id"]) if row.get("has_thumbnail") else None
    return out


def _seconds_since(when: str | None, now: datetime) -> float | None:
    if not when:
        return None
    try:
        then = times.parse(when)
    except times.TimeError:  # a database written by hand: no figure rather than no answer
        return None
    return round(max(0.0, (now - then).total_seconds()), 1)


def station_item(row: dict[str, Any], policy: LocationPolicy, *, exact: bool,
                 sensitive: set[str] | None, now: datetime) -> dict[str, Any]:
    """A ``Database.stations`` row for the API: the last status (``online`` is None before
    the first status message), when it was last heard, the figures a ranger checks from its
    latest heartbeat (disk, outbox), the whole heartbeat, its location, and whether its clock
    runs ahead (``clock_skew_s``: seconds, while it does; ``clock_skew_at``: when last seen)."""
    v = policy.station_view(row, exact=exact, sensitive=sensitive)
    health = v.get("health") or {}
    disk, outbox = health.get("disk") or {}, health.get("outbox") or {}
    state = v.get("status_state")
    return {
        "station_id": v["station_id"],
        "deployment_id": v.get("deployment_id"),
        "online": None if state is None else state == "online",
        "status": None if state is None else {"state": state, "reason": v.get("status_reason"),
                                              "since": v.get("status_since")},
        "software_version": v.get("software_version"),
        "last_heard": v.get("last_seen"),
        "silent_s": _seconds_since(v.get("last_seen"), now),
        "first_seen": v.get("first_seen"),
        "last_detection_at": v.get("last_detection_at"),
        "disk_free_mb": disk.get("free_mb"),
        "disk_low": disk.get("low"),
        "outbox_depth": outbox.get("depth"),
        "outbox_full": outbox.get("full"),
        "cpu_temperature_c": health.get("cpu_temperature_c"),
        "camera_state": (health.get("camera") or {}).get("state"),
        "health_at": v.get("health_at"),
        "health": health or None,
        "latitude": v["latitude"],
        "longitude": v["longitude"],
        "coordinate_uncertainty_m": v["coordinate_uncertainty_m"],
        "location_generalised": v["location_generalised"],
        "clock_skew_s": v.get("clock_skew_s"),
        "clock_skew_at": v.get("clock_skew_at"),
    }
