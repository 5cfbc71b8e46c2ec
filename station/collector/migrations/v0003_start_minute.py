"""Minute of the UTC day of each detection's start, indexed with species, for the diel chart."""

from __future__ import annotations

from station.collector.migrations import Dialect


def statements(d: Dialect) -> list[str]:
    if d.name == "postgresql":
        minute = ("CAST(EXTRACT(HOUR FROM start_time AT TIME ZONE 'UTC') * 60"
                  " + EXTRACT(MINUTE FROM start_time AT TIME ZONE 'UTC') AS INTEGER)")
    else:
        minute = "CAST(substr(start_time, 12, 2) AS INTEGER) * 60 + CAST(substr(start_time, 15, 2) AS INTEGER)"
    return [
        "ALTER TABLE detections ADD COLUMN start_minute INTEGER",
        f"UPDATE detections SET start_minute = {minute}",
        # The diel chart groups by (species, local hour): this index alone answers it.
        "CREATE INDEX detections_species_minute ON detections (species, start_minute)",
    ]
