"""Stations, detections and health heartbeats."""

from __future__ import annotations

from station.collector.migrations import Dialect


def statements(d: Dialect) -> list[str]:
    return [
        f"""CREATE TABLE stations (
            station_id TEXT PRIMARY KEY,
            deployment_id TEXT,
            first_seen {d.timestamp} NOT NULL,
            last_seen {d.timestamp},
            last_detection_at {d.timestamp},
            status_state TEXT CHECK (status_state IN ('online', 'offline')),
            status_reason TEXT,
            status_since {d.timestamp},
            software_version TEXT,
            health {d.json},
            health_at {d.timestamp}
        )""",
        f"""CREATE TABLE detections (
            event_id TEXT PRIMARY KEY,
            station_id TEXT NOT NULL REFERENCES stations (station_id),
            deployment_id TEXT NOT NULL,
            tag TEXT NOT NULL,
            species TEXT,
            label TEXT,
            confidence DOUBLE PRECISION,
            classification_status TEXT NOT NULL,
            start_time {d.timestamp} NOT NULL,
            end_time {d.timestamp} NOT NULL,
            latitude DOUBLE PRECISION,
            longitude DOUBLE PRECISION,
            model_name TEXT,
            sent_at {d.timestamp},
            received_at {d.timestamp} NOT NULL,
            payload {d.json} NOT NULL
        )""",
        "CREATE INDEX detections_station_start ON detections (station_id, start_time)",
        "CREATE INDEX detections_tag_start ON detections (tag, start_time)",
        "CREATE INDEX detections_species ON detections (species)",
        "CREATE INDEX detections_start ON detections (start_time)",  # the unfiltered newest-first list
        f"""CREATE TABLE health (
            station_id TEXT NOT NULL REFERENCES stations (station_id),
            sent_at {d.timestamp} NOT NULL,
            received_at {d.timestamp} NOT NULL,
            payload {d.json} NOT NULL,
            PRIMARY KEY (station_id, sent_at)
        )""",
    ]
