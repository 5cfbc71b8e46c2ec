"""Exports of the collector's detections: a Camera Trap Data Package and a plain CSV.

    summary = export_camtrap_dp(db, cfg, "out/")          # datapackage.json, deployments/media/observations.csv
    summary = export_csv(db, cfg, "detections.csv")       # one row per event, for a spreadsheet

Both are public by default: every coordinate goes through the collector's
:class:`~station.collector.privacy.LocationPolicy` (generalised stations show the centre
of their grid cell, with ``coordinateUncertainty`` covering the whole cell, and the
package's ``coordinatePrecision`` is the grid). ``exact=True`` keeps exact coordinates,
for the restricted copy only. Detections are streamed (``Database.iter_detections``),
so memory stays flat however many there are; files are written under temporary names and
renamed at the end, so a failed export leaves no half-written package.

Camtrap DP mapping (https://camtrap-dp.tdwg.org, version 1.0.2): one event-level
observation per detection (eventID = event_id), plus a media-level observation of the
still that decided the tag, carrying the bounding box (Camtrap DP measures boxes in the
media file named by ``mediaID``, which event-level rows do not have). A verified event's
event-level observation is the researcher's (``classificationMethod`` human,
``classifiedBy`` the verifier: Camtrap DP's fields hold the most recent classification,
and event-level rows must not overlap), with the machine's answer in its
``observationTags``; the machine's media-level observation stays, and a second one of the
same still carries the researcher's classification (media-level observations may
overlap: Camtrap DP allows several classifications of one file). One media row per
still listed in the detection, with ``filePath`` relative to the station's data
directory (``events/<event_id>/NNN.jpg``) and ``filePublic`` false: the stills stay on
the station. A detection that says the station keeps a video of the event (its optional
``clip``) gets one more media row the same way, ``fileMediatype`` ``video/mp4`` and
``filePath`` ``events/<event_id>/clip.mp4``: the clip never travels over MQTT, so the
collector never has it, and the row is a reference to the station's card. Times are whole seconds in UTC (the profile's ``%Y-%m-%dT%H:%M:%S%z``);
event starts are rounded down and ends up, so every still lies inside its event.

Deployments (Camtrap DP's sampling effort): a deployment starts at its station's first
heartbeat or status (or first detection) and ends at its last, within the export's window
and before the station's next deployment; ``deploymentComments`` give the camera-days
and every downtime interval (silent, offline, camera failing, tampered) with the time
the schedule kept the camera asleep (:mod:`station.collector.effort`), and
``timestampIssues`` is true when the station's clock ran ahead (flagged detections or
heartbeats) or behind (heartbeats arriving late), false when its heartbeats vouch for it.

A stored detection that breaks the feed's rules (:mod:`station.collector.stored`: NaN,
a lone surrogate, 31 February, ...) is left out and named in the summary's ``skipped``,
never a half-written export. An ``exact`` export is readable by its owner only (files
0600, a new folder 0700): it holds the restricted coordinates.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, TextIO
from zoneinfo import ZoneInfo

from station import __version__
from station.collector import camtrap_dp
from station import times
from station.collector.effort import Effort, comment
from station.collector.fieldhealth import station_record
from station.collector.station_rules import RuleSettings
from station.collector.privacy import Location, LocationPolicy
from station.collector.stored import Skipped, detection_problem
from station.collector.taxa import Taxon, taxon_for
from station.config.collector import CollectorConfig
from station.vocabulary import ANIMAL_TAGS, BLANK, TAGS, UNKNOWN

OBSERVATION_TYPES = {tag: "animal" if tag in ANIMAL_TAGS else tag for tag in TAGS}
"""Camtrap DP observationType of each tag: the animals are "animal"; human, vehicle, blank
and unknown are Camtrap DP's own words."""

DEPLOYMENT_FIELDS = ("deploymentID", "locationID", "locationName", "latitude", "longitude", "coordinateUncertainty",
                     "deploymentStart", "deploymentEnd", "setupBy", "cameraID", "cameraModel", "cameraDelay",
                     "cameraHeight", "cameraDepth", "cameraTilt", "cameraHeading", "detectionDistance",
                     "timestampIssues", "baitUse", "featureType", "habitat", "deploymentGroups", "deploymentTags",
                     "deploymentComments")
MEDIA_FIELDS = ("mediaID", "deploymentID", "captureMethod", "timestamp", "filePath", "filePublic", "fileName",
                "fileMediatype", "exifData", "favorite", "mediaComments")
OBSERVATION_FIELDS = ("observationID", "deploymentID", "mediaID", "eventID", "eventStart", "eventEnd",
                      "observationLevel", "observationType", "cameraSetupType", "scientificName", "count",
                      "lifeStage", "sex", "behavior", "individualID", "individualPositionRadius",
                      "individualPositionAngle", "individualSpeed", "bboxX", "bboxY", "bboxWidth", "bboxHeight",
                      "classificationMethod", "classifiedBy", "classificationTimestamp",
                      "classificationProbability", "observationTags", "observationComments")
CSV_FIELDS = ("event_id", "station_id", "deployment_id", "start_utc", "end_utc", "start_local", "duration_s",
              "tag", "species", "scientific_name", "label", "confidence", "classification_status",
              "classification_error", "model", "frames", "best_frame", "best_box_x", "best_box_y", "best_box_w",
              "best_box_h", "latitude", "longitude", "coordinate_uncertainty_m", "location_generalised",
              "camera_height_m", "camera_heading_deg", "camera_tilt_deg", "thumbnail", "sent_at", "received_at",
              "verified_tag", "verified_species", "verified_scientific_name", "verified_by", "verified_at")


class ExportError(RuntimeError):
    """The export could not be written; nothing was left half-done."""


class NothingToExport(ExportError):
    """No detection matched: a Camtrap DP package needs at least one deployment."""


@dataclass(frozen=True, slots=True)
class ExportSummary:
    path: Path                   # the package folder, or the CSV file
    files: tuple[Path, ...]
    detections: int
    deployments: int = 0         # Camtrap DP deployments (CSV: distinct stations)
    media: int = 0
    observations: int = 0        # event-level and media-level
    generalised: int = 0         # deployments (CSV: stations) whose coordinates were generalised
    coordinate_precision: float | None = None
    taxa: tuple[str, ...] = ()
    exact: bool = False
    skipped: int = 0             # stored detections left out: they break the feed's rules
    skipped_rows: tuple[tuple[str, str], ...] = ()  # (event id, why), the first 1000 of them
    verified: int = 0            # detections a researcher verified

    def warnings(self) -> list[str]:
        """One line per skipped detection (the first 1000), naming its event id and why."""
        lines = [f"skipped detection {event_id}: {why}" for event_id, why in self.skipped_rows]
        if self.skipped > len(self.skipped_rows):
            lines.append(f"... and {self.skipped - len(self.skipped_rows)} more detections skipped")
        return lines

    def line(self) -> str:
        if self.exact:
            what = "EXACT coordinates (restricted: do not publish)"
        elif self.coordinate_precision:
            what = (f"coordinates of {self.generalised} of {self.deployments} location(s) generalised to a "
                    f"{self.coordinate_precision:g} degree grid")
        else:
            what = "no location needed generalising"
        counts = (f"{self.detections} detections, {self.deployments} deployments, {self.media} media, "
                  f"{self.observations} observations" if self.media or self.observations
                  else f"{self.detections} detections")
        if self.verified:
            counts += f" ({self.verified} verified by researchers)"
        skipped = (f"; {self.skipped} detection(s) skipped: they break the feed's rules (see the warnings)"
                   if self.skipped else "")
        return f"{self.path}: {counts}; {what}{skipped}"


# -- small helpers ----------------------------------------------------------------

def _time(text: str) -> datetime:
    return times.parse(text)


def _second(dt: datetime, up: bool = False) -> datetime:
    whole = dt.replace(microsecond=0)
    return whole + timedelta(seconds=1) if up and whole != dt else whole


def _dp_time(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _metres(value: float | None) -> int | None:
    """An uncertainty in whole metres, rounded up (Camtrap DP wants an integer of at least 1)."""
    return None if value is None else max(1, math.ceil(value))


def _tag_value(text: str) -> str:
    return text.replace("|", "/").strip()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-") or "camtrap-station"


EXACT_FILE_MODE = 0o600
EXACT_FOLDER_MODE = 0o700


class _Files:
    """Output files written under a temporary name and renamed together at the end;
    ``private``: readable by the owner only (an exact export)."""

    def __init__(self, targets: list[Path], private: bool = False):
        self.targets = targets
        self.parts = [t.with_name(f".{t.name}.part") for t in targets]
        self.handles: list[TextIO] = []
        self.private = private

    def _open(self, part: Path) -> TextIO:
        if not self.private:
            return part.open("w", encoding="utf-8", newline="")
        part.unlink(missing_ok=True)  # a leftover would keep its old mode
        return open(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, EXACT_FILE_MODE), "w",
                    encoding="utf-8", newline="")

    def __enter__(self) -> list[TextIO]:
        try:
            for part in self.parts:
                self.handles.append(self._open(part))
        except OSError as exc:
            self._discard()
            raise ExportError(f"{exc.filename or self.parts[0].parent}: cannot write the export "
                              f"({exc.strerror or exc})") from None
        return self.handles

    def _discard(self) -> None:
        for handle in self.handles:
            handle.close()
        for part in self.parts:
            part.unlink(missing_ok=True)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            try:
                for handle in self.handles:
                    handle.close()
                for part, target in zip(self.parts, self.targets):
                    os.replace(part, target)
                return
            except OSError as err:
                exc_type, exc = OSError, err
        self._discard()
        if issubclass(exc_type, OSError):
            raise ExportError(f"{self.targets[0].parent}: writing the export failed ({exc})") from None


def _prepare_dir(folder: Path, private: bool = False) -> Path:
    existing = next((p for p in (folder, *folder.absolute().parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ExportError(f"{existing}: is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True, **({"mode": EXACT_FOLDER_MODE} if private else {}))
    except OSError as exc:
        raise ExportError(f"{folder}: cannot create the output folder ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK):
        raise ExportError(f"{folder}: the output folder is not writable")
    return folder


def _nothing(station: str | None, since: Any, until: Any, skipped: Skipped | None = None) -> NothingToExport:
    where = ", ".join(f"{k}={v}" for k, v in (("station", station), ("since", since), ("until", until)) if v)
    left_out = ""
    if skipped:
        shown = ", ".join(skipped.ids[:5]) + (", ..." if skipped.count > 5 else "")
        left_out = f"; {skipped.count} stored detection(s) skipped, they break the feed's rules: {shown}"
    return NothingToExport(f"no detections to export{f' ({where})' if where else ''}{left_out}; nothing written")


# -- Camtrap DP -----------------------------------------------------------------------

@dataclass(slots=True)
class _Deployment:
    deployment_id: str
    station_id: str
    latitude: float | None
    longitude: float | None
    uncertainty_m: float | None
    camera: dict[str, Any]
    start: datetime
    end: datetime
    events: int = 0
    effort: Effort | None = None
    timestamp_issues: bool | None = None


@dataclass(slots=True)
class _Taxa:
    entries: dict[str, dict] = field(default_factory=dict)

    def add(self, taxon: Taxon | None) -> None:
        if taxon is not None:
            self.entries.setdefault(taxon.scientific_name, taxon.as_camtrap_dp())


def _failed(p: dict[str, Any]) -> str:
    return f"classification failed: {p.get('classification_error') or 'unknown error'}"


def _observation(p: dict[str, Any], deployment_id: str, taxon: Taxon | None, **values: Any) -> dict[str, Any]:
    """The machine's classification part of an observation row, shared by both levels."""
    ok = p.get("classification_status") == "ok"
    tag = p.get("tag")
    tags = [f"tag:{tag}"] + [f"{k}:{_tag_value(p[k])}" for k in ("species", "label") if ok and p.get(k)]
    row = {"deploymentID": deployment_id, "eventID": p.get("event_id"),
           "observationType": OBSERVATION_TYPES.get(tag, "unknown") if ok else "unclassified",
           "scientificName": taxon.scientific_name if taxon else None,
           "observationTags": "|".join(dict.fromkeys(tags))}
    if ok:
        row.update(classificationMethod="machine", classifiedBy=(p.get("model") or {}).get("name"),
                   classificationProbability=p.get("confidence"))
    else:
        row["observationComments"] = _failed(p)
    row.update(values)
    return row


def verified_taxon(v: dict[str, Any]) -> Taxon | None:
    """The taxon of a researcher's verification: by its species, else by its tag (a leopard
    or tiger needs no species named); never by the machine's label."""
    return taxon_for(v.get("tag"), v.get("species"), v.get("tag"))


def confirmed(p: dict[str, Any], v: dict[str, Any]) -> bool:
    """The researcher agreed with the machine: the same tag, and the same species if one was named."""
    if p.get("classification_status") != "ok" or v["tag"] != p.get("tag"):
        return False
    return v.get("species") is None or v["species"] == (p.get("species") or "").lower()


def _human_observation(p: dict[str, Any], v: dict[str, Any], deployment_id: str, taxon: Taxon | None,
                       **values: Any) -> dict[str, Any]:
    """A researcher's classification of an event or of its deciding still: the verified tag and
    species, who and when; the machine's answer in ``observationTags`` (machine_*)."""
    ok = p.get("classification_status") == "ok"
    tags = [f"tag:{v['tag']}"] + ([f"species:{_tag_value(v['species'])}"] if v.get("species") else [])
    tags.append(f"verified:{'confirmed' if confirmed(p, v) else 'corrected'}")
    tags.append(f"machine_tag:{p.get('tag') if ok else 'unclassified'}")
    if ok:
        tags += [f"machine_{k}:{_tag_value(str(p[k]))}" for k in ("species", "label") if p.get(k)]
        if p.get("confidence") is not None:
            tags.append(f"machine_probability:{p['confidence']}")
        model = (p.get("model") or {}).get("name")
        if model:
            tags.append(f"machine_classified_by:{_tag_value(model)}")
    row = {"deploymentID": deployment_id, "eventID": p.get("event_id"),
           "observationType": OBSERVATION_TYPES.get(v["tag"], "unknown"),
           "scientificName": taxon.scientific_name if taxon else None,
           "classificationMethod": "human", "classifiedBy": v["verified_by"],
           "classificationTimestamp": _dp_time(_second(_time(v["verified_at"]))),
           "observationTags": "|".join(dict.fromkeys(tags)),
           "observationComments": None if ok else _failed(p)}
    row.update(values)
    return row


def _rows_of(p: dict[str, Any], deployment_id: str,
             verification: dict[str, Any] | None = None) -> tuple[list[dict], list[dict], list[Taxon]]:
    """Media rows, observation rows and the taxa of one detection/1 payload (and the
    current verification of its event, if any)."""
    event_id = p["event_id"]
    ok = p.get("classification_status") == "ok"
    taxon = taxon_for(p.get("tag"), p.get("species"), p.get("label")) if ok else None
    human = verified_taxon(verification) if verification else None
    start, end = _second(_time(p["start"])), _second(_time(p["end"]), up=True)
    media, by_index = [], {}
    for frame in p.get("frames") or []:
        name = f"{int(frame['index']):03d}.jpg"
        media_id = f"{event_id}-{int(frame['index']):03d}"
        when = _dp_time(_second(_time(frame["time"])))
        by_index[frame["index"]] = (media_id, when)
        media.append({"mediaID": media_id, "deploymentID": deployment_id, "captureMethod": "activityDetection",
                      "timestamp": when, "filePath": f"events/{event_id}/{name}", "filePublic": False,
                      "fileName": name, "fileMediatype": "image/jpeg",
                      "mediaComments": "pre-trigger still" if frame.get("pre_trigger") else None})
    clip = p.get("clip")
    if isinstance(clip, dict) and isinstance(clip.get("file"), str):
        # The video stays on the station, as the stills do: a reference to the station's card.
        media.append({"mediaID": f"{event_id}-clip", "deploymentID": deployment_id,
                      "captureMethod": "activityDetection", "timestamp": _dp_time(max(start, _second(_time(clip["start"])))),
                      "filePath": f"events/{event_id}/{clip['file']}", "filePublic": False,
                      "fileName": clip["file"], "fileMediatype": "video/mp4",
                      "mediaComments": f"event video, {clip.get('duration_s')} s; kept on the station"})
    event = {"observationID": event_id, "eventStart": _dp_time(start), "eventEnd": _dp_time(end),
             "observationLevel": "event"}
    observations = [_human_observation(p, verification, deployment_id, human, **event) if verification
                    else _observation(p, deployment_id, taxon, **event)]
    best = p.get("best_frame")
    if best in by_index:
        media_id, when = by_index[best]
        box = p.get("best_box") or None
        bbox = {}
        if box and len(box) == 4 and box[2] > 0 and box[3] > 0:
            bbox = {"bboxX": box[0], "bboxY": box[1], "bboxWidth": box[2], "bboxHeight": box[3]}
        still = {"mediaID": media_id, "eventStart": when, "eventEnd": when, "observationLevel": "media"}
        if ok:
            observations.append(_observation(p, deployment_id, taxon, observationID=media_id, **still, **bbox))
        if verification:
            # The machine's box, with the researcher's word on what is in it (no box for "nothing").
            boxed = bbox if bbox and verification["tag"] not in (BLANK, UNKNOWN) else {}
            row = _human_observation(p, verification, deployment_id, human, observationID=f"{media_id}-verified",
                                     **still, **boxed)
            if boxed:
                row["observationComments"] = "bounding box by the machine, classification by a researcher"
            observations.append(row)
    return media, observations, [t for t in (taxon, human) if t is not None]


def _write(writer: csv.DictWriter, row: dict[str, Any]) -> None:
    writer.writerow({k: _num(v) for k, v in row.items()})


def _deployment_row(d: _Deployment, loc: Location, grid_deg: float) -> dict[str, Any]:
    tilt, heading = d.camera.get("tilt_deg"), d.camera.get("heading_deg")
    return {"deploymentID": d.deployment_id, "locationID": d.station_id, "locationName": d.station_id,
            "latitude": loc.latitude, "longitude": loc.longitude,
            "coordinateUncertainty": _metres(loc.coordinate_uncertainty_m),
            "deploymentStart": _dp_time(d.start), "deploymentEnd": _dp_time(d.end), "cameraID": d.station_id,
            "cameraHeight": d.camera.get("height_m"),
            "cameraTilt": None if tilt is None else round(tilt),
            "cameraHeading": None if heading is None else round(heading),
            "timestampIssues": d.timestamp_issues,
            "deploymentTags": f"station:{d.station_id}",
            "deploymentComments": " ".join(c for c in (
                f"Coordinates generalised to the centre of a {grid_deg:g} degree grid cell to protect the site; "
                "exact values are kept by the collector." if loc.generalised else "",
                comment(d.effort) if d.effort is not None else "") if c) or None}


def _clock_behind(beats: list[dict[str, Any]], drift_s: float) -> bool:
    """Two heartbeats in a row that arrived more than ``drift_s`` after they say they were sent
    (one alone may be a retained one replayed to a restarted collector)."""
    late = [b["received_at"] is not None and (b["received_at"] - b["sent_at"]).total_seconds() > drift_s
            for b in beats]
    return any(a and b for a, b in zip(late, late[1:]))


def _add_effort(db: Any, cfg: CollectorConfig, deployments: list[_Deployment], since: Any, until: Any,
                now: datetime) -> None:
    """Stretch each deployment over its station's heartbeats and statuses (within the export's
    window, and not into the station's next deployment) and reckon its effort."""
    settings = RuleSettings.from_config(cfg.alerts)
    lo_all = times.EARLIEST if since is None else _utc_param(since)
    hi_all = now if until is None else min(now, _utc_param(until))
    by_station: dict[str, list[_Deployment]] = {}
    for d in deployments:
        by_station.setdefault(d.station_id, []).append(d)
    for station, deps in by_station.items():
        deps.sort(key=lambda d: d.start)
        lo = lo_all
        for i, d in enumerate(deps):
            hi = deps[i + 1].start if i + 1 < len(deps) else hi_all
            record = station_record(db, station, since=lo, until=max(hi, d.end), now=now, settings=settings)
            effort = record.effort
            if effort is not None and effort.start is not None:
                d.start, d.end = min(d.start, _second(effort.start)), max(d.end, _second(effort.end, up=True))
                d.effort = effort
            flagged = db.clock_flagged(station, d.start, d.end + timedelta(seconds=1)) \
                or any(b.get("clock_skew_s") is not None for b in record.beats)
            if flagged or _clock_behind(record.beats, settings.clock_drift_s):
                d.timestamp_issues = True
            elif record.beats:
                d.timestamp_issues = False
            lo = d.end


def _utc_param(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    return times.parse(str(value), date_ok=True)


def _spatial(points: list[tuple[float, float]]) -> dict[str, Any]:
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    if len(set(points)) == 1:
        return {"type": "Point", "coordinates": [lons[0], lats[0]]}
    w, e, s, n = min(lons), max(lons), min(lats), max(lats)
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _descriptor(cfg: CollectorConfig, deployments: list[dict], taxa: _Taxa, media_level: bool,
                precision: float | None, created: datetime, verified: int = 0) -> dict[str, Any]:
    project = cfg.project
    contributors = [c.model_dump(exclude_none=True) for c in project.contributors]
    if project.rights_holder and not any(c.get("role") == "rightsHolder" for c in contributors):
        contributors.append({"title": project.rights_holder, "role": "rightsHolder"})
    points = [(d["longitude"], d["latitude"]) for d in deployments if d["latitude"] is not None]
    starts, ends = sorted(d["deploymentStart"] for d in deployments), sorted(d["deploymentEnd"] for d in deployments)
    stations = sorted({d["locationID"] for d in deployments})
    privacy = (f" Station coordinates are generalised to {precision:g} degree grid cells (coordinatePrecision); "
               "exact values are kept by the collector." if precision else "")
    out: dict[str, Any] = {
        "profile": camtrap_dp.PROFILE_URL,
        "name": _slug(project.acronym or project.id or project.title),
        "id": project.id,
        "created": _dp_time(created),
        "title": project.title,
        "description": (f"Machine-classified camera-trap events from {len(stations)} station(s) "
                        f"({', '.join(stations)}), exported by the camtrap-station collector."
                        + (f" {verified} of them verified by researchers (classificationMethod human; the "
                           "machine's answer is in their observationTags)." if verified else "")
                        + privacy),
        "contributors": contributors,
        "sources": [{"title": "camtrap-station collector", "version": __version__}],
        "licenses": [{"name": project.data_license, "scope": "data"},
                     {"name": project.media_license, "scope": "media"}],
        "bibliographicCitation": project.bibliographic_citation,
        "project": {"id": project.id, "title": project.title, "acronym": project.acronym,
                    "description": project.description, "path": project.path,
                    "samplingDesign": project.sampling_design, "captureMethod": ["activityDetection"],
                    "individualAnimals": project.individual_animals,
                    "observationLevel": ["event", "media"] if media_level else ["event"]},
        "coordinatePrecision": precision,
        "spatial": _spatial(points),
        "temporal": {"start": starts[0][:10], "end": ends[-1][:10]},
        "taxonomic": sorted(taxa.entries.values(), key=lambda t: t["scientificName"]),
        "resources": [{"name": name, "path": f"{name}.csv", "profile": "tabular-data-resource", "format": "csv",
                       "mediatype": "text/csv", "encoding": "utf-8", "schema": camtrap_dp.SCHEMA_URLS[name]}
                      for name in camtrap_dp.TABLES],
    }
    out["project"] = {k: v for k, v in out["project"].items() if v is not None}
    return {k: v for k, v in out.items() if v is not None}


def export_camtrap_dp(db: Any, cfg: CollectorConfig, out_dir: str | Path, *, exact: bool = False,
                      station: str | None = None, since: Any = None, until: Any = None, page: int = 1000,
                      created: datetime | None = None, now: datetime | None = None) -> ExportSummary:
    """Write a Camtrap DP 1.0.2 package of the detections (``since <= start < until``) to
    ``out_dir``: public coordinates unless ``exact``; deployments carry the effort reckoned
    up to ``now`` (default: the wall clock). Raises :class:`ExportError`."""
    out = _prepare_dir(Path(out_dir), private=exact)
    policy = LocationPolicy(cfg.privacy)
    sensitive = None if exact else policy.sensitive_stations(db)
    skipped = Skipped()
    names = ("deployments", "media", "observations")
    targets = [out / f"{n}.csv" for n in names] + [out / "datapackage.json"]
    deployments: dict[str, _Deployment] = {}
    taxa = _Taxa()
    detections = media_count = obs_count = 0
    media_level = False
    verified = 0
    with _Files(targets, private=exact) as (dep_file, media_file, obs_file, package_file):
        media_w = csv.DictWriter(media_file, MEDIA_FIELDS, lineterminator="\n")
        obs_w = csv.DictWriter(obs_file, OBSERVATION_FIELDS, lineterminator="\n")
        media_w.writeheader()
        obs_w.writeheader()
        for row in db.iter_detections(station=station, since=since, until=until, page=page):
            problem = detection_problem(row)
            if problem is not None:
                skipped.add(row["event_id"], problem)
                continue
            p = row["payload"]
            dep_id = row["deployment_id"]
            start, end = _second(_time(p["start"])), _second(_time(p["end"]), up=True)
            d = deployments.get(dep_id)
            if d is None:
                loc = p.get("location") or {}
                d = deployments[dep_id] = _Deployment(dep_id, row["station_id"], row.get("latitude"),
                                                      row.get("longitude"), loc.get("coordinate_uncertainty_m"),
                                                      dict(p.get("camera") or {}), start, end)
            d.start, d.end, d.events = min(d.start, start), max(d.end, end), d.events + 1
            media, observations, found = _rows_of(p, dep_id, row.get("verification"))
            for m in media:
                _write(media_w, m)
            for o in observations:
                _write(obs_w, o)
                media_level = media_level or o["observationLevel"] == "media"
            for taxon in found:
                taxa.add(taxon)
            detections += 1
            verified += row.get("verification") is not None
            media_count += len(media)
            obs_count += len(observations)
        if not detections:
            raise _nothing(station, since, until, skipped)
        _add_effort(db, cfg, list(deployments.values()), since, until, now or datetime.now(timezone.utc))
        dep_rows, generalised = [], []
        for d in sorted(deployments.values(), key=lambda d: d.deployment_id):
            loc = policy.location(d.station_id, d.latitude, d.longitude, d.uncertainty_m,
                                  exact=exact, sensitive=sensitive)
            if loc.latitude is None:
                raise ExportError(f"deployment {d.deployment_id!r} (station {d.station_id!r}) has no location; "
                                  "Camtrap DP requires one")
            dep_rows.append(_deployment_row(d, loc, policy.grid_deg))
            generalised.append(loc.generalised)
        dep_w = csv.DictWriter(dep_file, DEPLOYMENT_FIELDS, lineterminator="\n")
        dep_w.writeheader()
        for r in dep_rows:
            _write(dep_w, r)
        precision = policy.coordinate_precision(generalised)
        descriptor = _descriptor(cfg, dep_rows, taxa, media_level, precision,
                                 created or datetime.now(timezone.utc), verified)
        json.dump(descriptor, package_file, indent=1, ensure_ascii=False)
        package_file.write("\n")
    return ExportSummary(out, tuple(targets), detections, len(dep_rows), media_count, obs_count,
                         sum(generalised), precision, tuple(sorted(taxa.entries)), exact,
                         skipped.count, tuple(skipped.rows), verified)


# -- plain CSV ------------------------------------------------------------------------

def _csv_rows(db: Any, cfg: CollectorConfig, exact: bool, station: str | None, since: Any, until: Any,
              page: int, seen: dict[str, bool], skipped: Skipped) -> Iterator[dict[str, Any]]:
    policy = LocationPolicy(cfg.privacy)
    sensitive = None if exact else policy.sensitive_stations(db)
    zone = ZoneInfo(cfg.http.timezone)
    for row in db.iter_detections(station=station, since=since, until=until, page=page):
        problem = detection_problem(row)
        if problem is not None:
            skipped.add(row["event_id"], problem)
            continue
        view = policy.detection_view(row, exact=exact, sensitive=sensitive)
        p = view["payload"]
        seen[row["station_id"]] = view["location_generalised"]
        ok = p.get("classification_status") == "ok"
        taxon = taxon_for(p.get("tag"), p.get("species"), p.get("label")) if ok else None
        box = p.get("best_box") or [None] * 4
        camera = p.get("camera") or {}
        start = _time(p["start"])
        v = row.get("verification") or {}
        human = verified_taxon(v) if v else None
        yield {"event_id": p["event_id"], "station_id": row["station_id"], "deployment_id": row["deployment_id"],
               "start_utc": p["start"], "end_utc": p["end"],
               "start_local": start.astimezone(zone).isoformat(timespec="milliseconds"),
               "duration_s": p.get("duration_s"), "tag": p.get("tag"), "species": p.get("species"),
               "scientific_name": taxon.scientific_name if taxon else None, "label": p.get("label"),
               "confidence": p.get("confidence"), "classification_status": p.get("classification_status"),
               "classification_error": p.get("classification_error"), "model": (p.get("model") or {}).get("name"),
               "frames": p.get("frame_count"), "best_frame": p.get("best_frame"),
               "best_box_x": box[0], "best_box_y": box[1], "best_box_w": box[2], "best_box_h": box[3],
               "latitude": view["latitude"], "longitude": view["longitude"],
               "coordinate_uncertainty_m": _metres((p.get("location") or {}).get("coordinate_uncertainty_m")),
               "location_generalised": view["location_generalised"],
               "camera_height_m": camera.get("height_m"), "camera_heading_deg": camera.get("heading_deg"),
               "camera_tilt_deg": camera.get("tilt_deg"), "thumbnail": row.get("has_thumbnail"),
               "sent_at": row.get("sent_at"), "received_at": row.get("received_at"),
               "verified_tag": v.get("tag"), "verified_species": v.get("species"),
               "verified_scientific_name": human.scientific_name if human else None,
               "verified_by": v.get("verified_by"), "verified_at": v.get("verified_at")}


def export_csv(db: Any, cfg: CollectorConfig, out_file_or_dir: str | Path, *, exact: bool = False,
               station: str | None = None, since: Any = None, until: Any = None,
               page: int = 1000) -> ExportSummary:
    """Write one CSV row per detection (oldest first) to a file, or to ``detections.csv`` in
    an existing folder; public coordinates unless ``exact``. Raises :class:`ExportError`."""
    target = Path(out_file_or_dir)
    if target.is_dir() or str(out_file_or_dir).endswith(os.sep):
        target = _prepare_dir(target, private=exact) / "detections.csv"
    else:
        _prepare_dir(target.parent if str(target.parent) else Path("."), private=exact)
    seen: dict[str, bool] = {}
    skipped = Skipped()
    count = verified = 0
    with _Files([target], private=exact) as (handle,):
        writer = csv.DictWriter(handle, CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in _csv_rows(db, cfg, exact, station, since, until, page, seen, skipped):
            _write(writer, row)
            count += 1
            verified += row["verified_tag"] is not None
    generalised = sum(seen.values())
    precision = LocationPolicy(cfg.privacy).coordinate_precision(seen.values())
    return ExportSummary(target, (target,), count, deployments=len(seen), generalised=generalised,
                         coordinate_precision=precision, exact=exact, skipped=skipped.count, verified=verified,
                         skipped_rows=tuple(skipped.rows))
