"""Clock skew: messages dated ahead of their arrival are flagged, and no longer pin a station's state."""

from __future__ import annotations

from station.collector.migrations import Dialect


def statements(d: Dialect) -> list[str]:
    now = "now()" if d.name == "postgresql" else "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    return [
        # Seconds the message's own latest time was ahead of its arrival, when more than
        # collector.max_clock_skew_s; NULL otherwise.
        "ALTER TABLE detections ADD COLUMN clock_skew_s DOUBLE PRECISION",
        "ALTER TABLE health ADD COLUMN clock_skew_s DOUBLE PRECISION",
        # The station's clock now: ahead by this much in its latest skewed message (NULL once a
        # heartbeat or status arrives on time), and when a skewed message last arrived.
        "ALTER TABLE stations ADD COLUMN clock_skew_s DOUBLE PRECISION",
        f"ALTER TABLE stations ADD COLUMN clock_skew_at {d.timestamp}",
        # "Which stations' clocks ran ahead, and which of their records": from these alone.
        "CREATE INDEX detections_clock_skew ON detections (station_id, start_time) WHERE clock_skew_s IS NOT NULL",
        "CREATE INDEX stations_clock_skew ON stations (clock_skew_at) WHERE clock_skew_at IS NOT NULL",
        # State a message from the future pinned before this version: brought back to now, the
        # latest it can truly be (later messages then replace it, as they always should have).
        f"UPDATE stations SET status_since = {now} WHERE status_since > {now}",
        f"UPDATE stations SET health_at = {now} WHERE health_at > {now}",
        f"UPDATE stations SET last_seen = {now} WHERE last_seen > {now}",
        f"UPDATE stations SET last_detection_at = {now} WHERE last_detection_at > {now}",
    ]
