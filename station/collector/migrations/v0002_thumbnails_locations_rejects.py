"""Thumbnails, station locations, rejection counts and the species/time index."""

from __future__ import annotations

from station.collector.migrations import Dialect


def statements(d: Dialect) -> list[str]:
    return [
        # The station's position as its newest detection gave it (exact: restricted views only).
        "ALTER TABLE stations ADD COLUMN latitude DOUBLE PRECISION",
        "ALTER TABLE stations ADD COLUMN longitude DOUBLE PRECISION",
        "ALTER TABLE stations ADD COLUMN coordinate_uncertainty_m DOUBLE PRECISION",
        # One JPEG per event, stored under a name the collector made (never one from a payload).
        f"""CREATE TABLE thumbnails (
            event_id TEXT PRIMARY KEY,
            station_id TEXT NOT NULL REFERENCES stations (station_id),
            file TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            received_at {d.timestamp} NOT NULL
        )""",
        # What was refused, by reason and by the station its topic named ('' if none): counts only.
        f"""CREATE TABLE rejections (
            reason TEXT NOT NULL,
            station_id TEXT NOT NULL,
            count BIGINT NOT NULL,
            first_at {d.timestamp} NOT NULL,
            last_at {d.timestamp} NOT NULL,
            last_detail TEXT,
            PRIMARY KEY (reason, station_id)
        )""",
        # Per-species counts and the diel chart read (species, start_time) from the index alone.
        "CREATE INDEX detections_species_start ON detections (species, start_time)",
        "DROP INDEX detections_species",
    ]
