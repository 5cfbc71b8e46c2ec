"""``[station]``: who this station is and where it stands (Camtrap DP deployment metadata)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from station.config.base import DateTimeValue, Section
from station.vocabulary import ID_PATTERN

# MQTT topic levels and file names are built from these ids: no '/', '+', '#', spaces.

# Camtrap DP deployments.featureType vocabulary.
FeatureType = Literal[
    "roadPaved", "roadDirt", "trailHiking", "trailGame", "roadUnderpass", "roadOverpass",
    "roadBridge", "culvert", "burrow", "nestSite", "carcass", "waterSource", "fruitingTree",
]


class StationSection(Section):
    id: str = Field(pattern=ID_PATTERN, description="Unique station id; used in MQTT topics")
    deployment_id: str = Field(pattern=ID_PATTERN, description="Camtrap DP deploymentID")
    latitude: float = Field(ge=-90, le=90, description="WGS84 decimal degrees")
    longitude: float = Field(ge=-180, le=180, description="WGS84 decimal degrees")
    coordinate_uncertainty_m: float | None = Field(default=None, gt=0, le=100_000)
    """How far the true position may lie from latitude/longitude (GPS error), in metres:
    Camtrap DP deployments.coordinateUncertainty."""
    location_id: str | None = None
    location_name: str | None = None
    deployment_start: DateTimeValue | None = None
    setup_by: str | None = None
    camera_model: str | None = None
    camera_height_m: float | None = Field(default=None, ge=0, le=30)
    camera_tilt_deg: float | None = Field(default=None, ge=-90, le=90)
    camera_heading_deg: float | None = Field(default=None, ge=0, le=360)
    detection_distance_m: float | None = Field(default=None, ge=0, le=500)
    bait_use: bool = False
    feature_type: FeatureType | None = None
    habitat: str = ""
    notes: str = ""
