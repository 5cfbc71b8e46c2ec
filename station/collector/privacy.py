"""Location privacy: what the public sees of where leopards and tigers were recorded.

Exact coordinates of a big cat help poachers, and a camera's position helps thieves and
anyone who wants to avoid it. Following GBIF's guidance on sensitive species data
(Chapman 2020, "Current Best Practices for Generalizing Sensitive Species Occurrence
Data": 0.1 degree for taxa of high sensitivity), every public view (the API without a
token, public exports) moves a generalised station to the centre of its grid cell and
widens its uncertainty to the circle that holds the whole cell. Exact values stay in the
database, for restricted views only.

In a camera-trap network every species at a station shares that station's coordinates,
so generalising only the leopard records would leave the same point exact on the roe
deer next to them. The policy therefore works per station:

* ``scope = "all"`` (default): every station is generalised in public views.
* ``scope = "sensitive"``: stations that have recorded a sensitive tag (leopard, tiger by
  default). Cheaper for data users, but a station that turns coarse after its first
  leopard tells anyone who noted its exact position before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from station.config.collector import PrivacySection

METRES_PER_DEGREE = 111_320.0  # along a meridian, and along the equator (WGS84, rounded)


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float | None
    longitude: float | None
    coordinate_uncertainty_m: int | float | None
    generalised: bool


def _decimals(step: float) -> int:
    """Decimal places that show a multiple of ``step`` exactly (0.1 -> 2 for the half-cell centre)."""
    text = f"{step:.10f}".rstrip("0")
    return len(text.split(".")[1]) + 1 if "." in text else 1


def generalise(latitude: float, longitude: float, grid_deg: float,
               uncertainty_m: float | None = None) -> Location:
    """The centre of the ``grid_deg`` cell holding the point, and the radius (whole metres,
    rounded up) of the circle around that centre that holds the whole cell, plus the
    point's own uncertainty."""
    places = _decimals(grid_deg)
    lat_cell = min(math.floor(latitude / grid_deg), math.ceil(90 / grid_deg) - 1)
    lon_cell = math.floor(longitude / grid_deg)
    lat = round(max(-90.0, min(90.0, (lat_cell + 0.5) * grid_deg)), places)
    lon = round((lon_cell + 0.5) * grid_deg, places)
    if lon > 180:
        lon = round(lon - 360, places)
    half_height = grid_deg / 2 * METRES_PER_DEGREE
    # The cell is widest at the edge nearer the equator.
    widest = min(abs(lat_cell * grid_deg), abs((lat_cell + 1) * grid_deg))
    half_width = grid_deg / 2 * METRES_PER_DEGREE * math.cos(math.radians(widest))
    radius = math.hypot(half_height, half_width) + (uncertainty_m or 0)
    return Location(lat, lon, math.ceil(radius), True)


class LocationPolicy:
    """Decides, per station, whether a view shows exact or generalised coordinates."""

    def __init__(self, cfg: PrivacySection):
        self.cfg = cfg

    @property
    def grid_deg(self) -> float:
        return self.cfg.grid_deg

    def sensitive_stations(self, db: Any) -> set[str] | None:
        """Stations to generalise (None: all of them), read from the database when needed."""
        if self.cfg.scope == "all":
            return None
        return db.stations_with_tags(list(self.cfg.sensitive_tags))

    @staticmethod
    def is_generalised(station_id: str, sensitive: set[str] | None) -> bool:
        return sensitive is None or station_id in sensitive

    def location(self, station_id: str, latitude: float | None, longitude: float | None,
                 uncertainty_m: float | None, *, exact: bool, sensitive: set[str] | None) -> Location:
        """The location a view may show: exact when the viewer may see it or the station is not
        sensitive, else generalised."""
        if latitude is None or longitude is None:
            return Location(None, None, None, False)
        if exact or not self.is_generalised(station_id, sensitive):
            return Location(latitude, longitude, uncertainty_m, False)
        return generalise(latitude, longitude, self.cfg.grid_deg, uncertainty_m)

    def coordinate_precision(self, generalised: Iterable[bool]) -> float | None:
        """Camtrap DP ``coordinatePrecision``: the grid when any deployment was generalised."""
        return self.cfg.grid_deg if any(generalised) else None

    def detection_view(self, row: dict[str, Any], *, exact: bool, sensitive: set[str] | None) -> dict[str, Any]:
        """A stored detection row (``Database.query_detections``) with every coordinate in it,
        the columns and the payload's ``location``, as this view may show them."""
        payload = dict(row.get("payload") or {})
        given = payload.get("location") or {}
        loc = self.location(row["station_id"], row.get("latitude"), row.get("longitude"),
                            given.get("coordinate_uncertainty_m"), exact=exact, sensitive=sensitive)
        out = dict(row)
        out["latitude"], out["longitude"] = loc.latitude, loc.longitude
        out["location_generalised"] = loc.generalised
        if "location" in payload:
            payload["location"] = {"latitude": loc.latitude, "longitude": loc.longitude,
                                   "coordinate_uncertainty_m": loc.coordinate_uncertainty_m}
            out["payload"] = payload
        return out

    def station_view(self, row: dict[str, Any], *, exact: bool, sensitive: set[str] | None) -> dict[str, Any]:
        """A ``Database.stations()`` row with its location as this view may show it."""
        loc = self.location(row["station_id"], row.get("latitude"), row.get("longitude"),
                            row.get("coordinate_uncertainty_m"), exact=exact, sensitive=sensitive)
        out = dict(row)
        out["latitude"], out["longitude"] = loc.latitude, loc.longitude
        out["coordinate_uncertainty_m"] = loc.coordinate_uncertainty_m
        out["location_generalised"] = loc.generalised
        return out
