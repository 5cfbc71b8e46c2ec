"""An OpenAPI 3.1 description of the API, served at ``/api/openapi.json``.

Written by hand (a dozen GET routes and one POST), kept beside the handlers; a test checks
that every API route is described and every described route exists.
"""

from __future__ import annotations

from typing import Any

from station.collector.db import MAX_LIMIT
from station.collector.verification import MAX_BODY_BYTES, MAX_SPECIES, NO_SPECIES_TAGS
from station.vocabulary import TAGS


def _param(name: str, description: str, schema: dict[str, Any], where: str = "query") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "description": description, "schema": schema}


_TIME = {"type": "string", "format": "date-time"}
_STATION = _param("station", "Station id.", {"type": "string"})
_SPECIES = _param("species", "Species, as the station's classifier names it (e.g. leopard, sika deer).",
                  {"type": "string"})
_SINCE = _param("since", "Detections starting at or after this RFC 3339 time (or date).", _TIME)
_UNTIL = _param("until", "Detections starting before this RFC 3339 time (or date).", _TIME)
_EVENT = _param("event_id", "The event's id (UUIDv7).", {"type": "string"}, "path")
_STATION_PATH = _param("station_id", "The station's id.", {"type": "string"}, "path")
_REQUEST = _param("request_id", "The snapshot request's id (from the POST).", {"type": "string"}, "path")
_FROM = _param("since", "Window start, RFC 3339 (default: 7 days before `until`; at most 400 days).", _TIME)
_TO = _param("until", "Window end, RFC 3339 (default: now).", _TIME)


def _get(summary: str, parameters: list[dict[str, Any]], content: str = "application/json",
         restricted: bool = True) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "OK", "content": {content: {}}}}
    if parameters:
        responses["400"] = {"description": "A bad parameter; the answer names it (`parameter`)."}
    if restricted:
        responses["401"] = {"description": "A token that is not valid (or none, on a private collector)."}
        responses["503"] = {"description": "The database is unavailable."}
    return {"get": {"summary": summary, "parameters": parameters, "responses": responses}}


def _with(path: dict[str, Any], status: str, description: str) -> dict[str, Any]:
    path["get"]["responses"][status] = {"description": description}
    return path


_VERIFICATION = {
    "type": "object", "required": ["tag"], "additionalProperties": False,
    "properties": {
        "tag": {"enum": list(TAGS), "description": "What the event really shows."},
        "species": {"type": ["string", "null"], "maxLength": MAX_SPECIES,
                    "description": "Common name (e.g. sika deer), stored in lower case; letters, digits, spaces "
                                   f"and ' - . ( ); not with {' or '.join(NO_SPECIES_TAGS)}."}}}


def _post_verification() -> dict[str, Any]:
    return {"post": {
        "summary": "Verify an event: a researcher's tag and species, stored beside the machine's (history kept)",
        "security": [{"bearer": []}], "parameters": [_EVENT],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _VERIFICATION}}},
        "responses": {
            "201": {"description": "Stored: `item` (id, tag, species, verified_by, verified_at) and the "
                                   "machine's `tag` and `species`."},
            "400": {"description": "A bad body; the answer names the field (`field`)."},
            "401": {"description": "No token, or one that is not valid."},
            "403": {"description": "A valid token without a name (`NAME TOKEN` in the token file) may not verify."},
            "404": {"description": "No such event."},
            "413": {"description": f"A body over {MAX_BODY_BYTES} bytes."},
            "415": {"description": "Not `Content-Type: application/json`."},
            "422": {"description": "Stored, but it breaks the feed's rules: it cannot be verified."},
            "503": {"description": "The database is unavailable."}}}}


def openapi(*, public: bool, timezone: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Camera-trap collector API", "version": "1",
                 "description": "Read-only but for verifications (POST, a named token). Without a token, station coordinates are generalised to a grid "
                                "(location privacy); `Authorization: Bearer TOKEN` gives exact ones."
                                + ("" if public else " This collector is private: every request needs a token.")},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": ([{}, {"bearer": []}] if public else [{"bearer": []}]),
        "paths": {
            "/api/detections": _get("Detections, newest first", [
                _STATION, _param("tag", "Tag.", {"enum": list(TAGS)}), _SPECIES, _SINCE, _UNTIL,
                _param("limit", "Page size.", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                               "default": 50}),
                _param("offset", "Rows to skip.", {"type": "integer", "minimum": 0, "default": 0}),
                _param("verified", "Only events a researcher has verified (true) or not (false).",
                       {"type": "boolean"})]),
            "/api/detections/{event_id}": _with(_get("One detection (404 if unknown)", [_EVENT]), "422",
                                                "Stored, but it breaks the feed's rules: left out of the API "
                                                "and exports (`event_id` names it)."),
            "/api/stations": _get("Stations: last status, last heard, disk, outbox, health, location", []),
            "/api/species": _get("Detections per species, most first", [_STATION, _SINCE, _UNTIL]),
            "/api/diel": _get("Detections per hour of day (0-23, local time) per species", [
                _SPECIES, _STATION, _SINCE, _UNTIL,
                _param("tz", f"IANA time zone of the hours (default {timezone}).", {"type": "string"})]),
            "/api/collector": _get("The ingest's counters and refused messages", []),
            "/api/detections/{event_id}/verifications": _get(
                "An event's verifications, oldest first (`current`: the last), and the machine's tag", [_EVENT])
            | _post_verification(),
            "/api/verifications/confusion": _get(
                "Field accuracy: machine tag against verified tag (matrix rows: machine, columns: verified), "
                "overall and per station", [_STATION, _SINCE, _UNTIL]),
            "/api/whoami": _get("What the token sent may do: `exact` coordinates, `name`, `can_verify`", []),
            "/thumbnails/{event_id}.jpg": _get("An event's thumbnail", [_EVENT], "image/jpeg"),
            "/stations/{station_id}": _get("The station page (HTML)", [_STATION_PATH], "text/html",
                                           restricted=False),
            "/api/stations/{station_id}": _with(_get(
                "One station: status, heartbeat, problems now, alert rows, impossible values counted",
                [_STATION_PATH]), "404", "No such station."),
            "/api/stations/{station_id}/health": _with(_get(
                "Timeline (online, sleeping, camera failed, tampered, silent, offline), effort and the "
                "plotted figures (temperature, battery) over a window", [_STATION_PATH, _FROM, _TO]),
                "404", "No such station."),
            "/api/effort": _get("Camera-days and downtime of every station over a window", [_STATION, _FROM, _TO]),
            "/api/stations/{station_id}/snapshots": {"post": {
                "summary": "Ask the station for a picture now (a token is needed); 202 with the request",
                "parameters": [_STATION_PATH],
                "responses": {"202": {"description": "Asked; poll the request."},
                              "401": {"description": "No valid token."},
                              "404": {"description": "No such station."},
                              "503": {"description": "The collector is not connected to the broker, or the "
                                                     "database is unavailable."}}}},
            "/api/stations/{station_id}/snapshots/{request_id}": _with(_get(
                "What became of a snapshot request: pending, taken (event_id, thumbnail_url), failed, expired",
                [_STATION_PATH, _REQUEST]), "404", "No such request."),
            "/healthz": _get("Liveness: the database answers", [], restricted=False),
        },
    }
