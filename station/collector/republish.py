"""The researchers' feed: each detection this collector stored, republished with the
coordinates its public views show (:mod:`station.collector.privacy`).

    {prefix}/_feed/generalised/{station_id}/detection   every researcher account
    {prefix}/_feed/exact/{station_id}/detection         accounts provisioned --exact-locations

Researchers no longer read the stations' own topics: only collectors do. Each message is a
``feed_detection/1`` (station/feed/schemas/feed_detection.schema.json): the stored
detection/1 payload under ``detection``, its ``location`` as the feed may show it, and who
stored it when. The generalised feed leaves out the detection's ``extra`` (free-form: it
could carry anything a station put there). A :class:`~station.collector.outbound.Stream`,
so delivery is at least once, in the order this collector committed.
"""

from __future__ import annotations

import json
from typing import Any

from station.collector.db import Database
from station.collector.outbound import Batch, Outgoing
from station.collector.privacy import LocationPolicy
from station.config.collector import CollectorConfig
from station.feed.topics import feed_topic

SCHEMA = "feed_detection/1"


def feed_message(row: dict[str, Any], policy: LocationPolicy, *, exact: bool, sensitive: set[str] | None,
                 collector_id: str) -> dict[str, Any]:
    """A stored detection row (:meth:`Database.stored_after`) as a ``feed_detection/1`` payload."""
    original = row["payload"]
    view = policy.detection_view(row, exact=exact, sensitive=sensitive)
    detection = dict(view["payload"])
    if original.get("location") is None:  # the station sent none: nothing to generalise
        detection["location"] = None
        location = None
    else:
        location = {**detection["location"], "generalised": view["location_generalised"]}
    if not exact:
        detection.pop("extra", None)
    return {"schema": SCHEMA, "message_id": original["event_id"], "station_id": original["station_id"],
            "collector_id": collector_id, "stored_at": row["received_at"], "location": location,
            "detection": detection}


class DetectionFeed:
    """The stream of stored detections, for the generalised (and the exact) feed."""

    def __init__(self, cfg: CollectorConfig):
        self.cfg = cfg
        self.writer = cfg.collector.id
        self.name = f"feed:{self.writer}"
        self.policy = LocationPolicy(cfg.privacy)

    def start_position(self, db: Database) -> int:
        return db.last_stored(self.writer)

    def fetch(self, db: Database, after: int, limit: int) -> Batch | None:
        per_row = 2 if self.cfg.feed.exact else 1
        rows = db.stored_after(self.writer, after, max(1, limit // per_row))
        if not rows:
            return None
        sensitive = self.policy.sensitive_stations(db)
        prefix = self.cfg.mqtt.topic_prefix
        out: list[Outgoing] = []
        for row in rows:
            feeds = ("generalised", "exact") if self.cfg.feed.exact else ("generalised",)
            for feed in feeds:
                payload = feed_message(row, self.policy, exact=feed == "exact", sensitive=sensitive,
                                       collector_id=self.writer)
                body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
                out.append(Outgoing(feed_topic(row["station_id"], feed, prefix), body))
        return Batch(int(rows[-1]["seq"]), tuple(out))
