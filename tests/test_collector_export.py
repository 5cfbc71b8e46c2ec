"""Exports of the collector: a Camera Trap Data Package and a plain CSV, on SQLite and PostgreSQL.

A night and a month of detections from three stations (leopards, a tiger, prey, people,
a snowmobile, a blank, a failed classification) are stored through the real database,
exported, and the package is checked by frictionless against the Camtrap DP 1.0.2
profile and table schemas shipped in station/collector/camtrap_dp (offline: nothing is
fetched). Privacy: a public export must not show any station's exact coordinates
anywhere, in any file.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
from datetime import datetime, timezone
from pathlib import Path

import pytest

from station.cli import main
from station.collector import camtrap_dp
from station.collector.db import Database
from station.collector.export import NothingToExport, export_camtrap_dp, export_csv
from station.collector.privacy import generalise
from station.collector.taxa import taxon_for
from station.config.collector import parse_collector_config
from tests.collector_data import (MODEL, T0, db, db_url, detection, pytest_generate_tests,  # noqa: F401 (fixtures)
                                  store_as_an_old_collector_did, stored_hostile_detections)

pytest.importorskip("frictionless", reason="the collector extra (frictionless) is not installed")

ROOT = Path(__file__).resolve().parents[1]
CREATED = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
LAZOVSKY = {"latitude": 43.2412, "longitude": 133.8857, "coordinate_uncertainty_m": 15,
            "camera_heading_deg": 225, "camera_tilt_deg": -5}
KEDROVAYA = {"latitude": 43.1023, "longitude": 131.5478}
BARS = {"latitude": 42.9871, "longitude": 131.3012}
EXACT = [43.2412, 133.8857, 43.1023, 131.5478, 42.9871, 131.3012]


def _network_messages() -> list[dict]:
    """Twelve events: (station, deployment) and what the classifier said."""
    autumn = {"station_id": "lazovsky-07", "deployment_id": "lazovsky-07-2026-autumn", **LAZOVSKY}
    winter = {"station_id": "lazovsky-07", "deployment_id": "lazovsky-07-2026-winter", **LAZOVSKY}
    kedr = {"station_id": "kedrovaya-01", "deployment_id": "kedrovaya-01-2026", **KEDROVAYA}
    bars = {"station_id": "bars-03", "deployment_id": "bars-03-2026", **BARS}
    step = 600
    return [
        detection(T0, "leopard", "leopard", **autumn),
        detection(T0 + step, "prey", "boar", label="wild boar", **autumn),
        detection(T0 + 2 * step, "human", "firearm", label="rifle", **autumn),
        detection(T0 + 3 * step, "unknown", failed=True, **autumn),
        detection(T0 + 4 * step, "tiger", "tiger", confidence=0.93, **kedr),
        detection(T0 + 5 * step, "prey", "deer", label="deer", **kedr),
        detection(T0 + 6 * step, "vehicle", "snowmobile", label="snowmobile", **kedr),
        detection(T0 + 7 * step, "blank", None, **kedr),
        detection(T0 + 8 * step, "prey", "hare", label="hare", **bars),
        detection(T0 + 9 * step, "unknown", None, confidence=0.31, **bars),
        detection(T0 + 10 * step, "other_animal", "bear", label="brown bear", **bars),
        detection(T0 + 30 * 86400, "leopard", "leopard", **winter),
    ]


def _store(database: Database) -> list[dict]:
    msgs = _network_messages()
    database.store_batch(msgs[:6], [], [])
    database.store_batch(msgs[6:], [], [])
    return msgs


@pytest.fixture
def network(db):
    return db, _store(db)


@pytest.fixture
def sqlite_network(tmp_path):
    """The same data on SQLite only, for tests about files rather than engines."""
    (tmp_path / "collector").mkdir()
    database = Database.open(f"sqlite:///{tmp_path}/collector/camtrap.db")
    database.migrate()
    msgs = _store(database)
    yield database, msgs
    database.close()


def _cfg(**sections) -> object:
    return parse_collector_config({"project": {"title": "Land of the Leopard camera traps", "acronym": "LOTL",
                                               "rights_holder": "Land of the Leopard National Park"},
                                   **sections})


def _table(folder: Path, name: str) -> list[dict]:
    with (folder / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _valid(folder: Path) -> None:
    report = camtrap_dp.validate(folder / "datapackage.json")
    assert report.valid, camtrap_dp.problems(report)


# -- the package ----------------------------------------------------------------------

def test_the_package_is_valid_camtrap_dp_and_holds_every_event(network, tmp_path):
    database, msgs = network
    summary = export_camtrap_dp(database, _cfg(), tmp_path / "pkg", created=CREATED)
    out = tmp_path / "pkg"
    _valid(out)
    assert sorted(p.name for p in out.iterdir()) == ["datapackage.json", "deployments.csv", "media.csv",
                                                    "observations.csv"]
    deployments, media, observations = (_table(out, f"{n}.csv") for n in ("deployments", "media", "observations"))
    assert (summary.detections, summary.deployments, summary.media, summary.observations) == (
        12, 4, 48, len(observations))
    assert sorted(d["deploymentID"] for d in deployments) == [
        "bars-03-2026", "kedrovaya-01-2026", "lazovsky-07-2026-autumn", "lazovsky-07-2026-winter"]
    events = {o["eventID"]: o for o in observations if o["observationLevel"] == "event"}
    assert list(events) == [m["event_id"] for m in msgs]  # oldest first, one each
    assert len(observations) == 12 + 11  # + the deciding still of every classified event
    for m in media:
        event_id, still = m["mediaID"].rsplit("-", 1)
        assert m["filePath"] == f"events/{event_id}/{still}.jpg" and m["fileName"] == f"{still}.jpg"
        assert (m["filePublic"], m["captureMethod"], m["fileMediatype"]) == ("false", "activityDetection",
                                                                             "image/jpeg")
        event = events[event_id]
        assert event["eventStart"] <= m["timestamp"] <= event["eventEnd"]  # same format: text order is time order
        assert m["deploymentID"] == event["deploymentID"]
    autumn = next(d for d in deployments if d["deploymentID"] == "lazovsky-07-2026-autumn")
    assert (autumn["deploymentStart"], autumn["deploymentEnd"]) == ("2026-11-25T18:02:11Z", "2026-11-25T18:32:13Z")
    assert (autumn["cameraHeight"], autumn["cameraHeading"], autumn["cameraTilt"]) == ("0.8", "225", "-5")
    package = json.loads((out / "datapackage.json").read_text())
    assert package["profile"] == "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/camtrap-dp-profile.json"
    assert [r["schema"] for r in package["resources"]] == [camtrap_dp.SCHEMA_URLS[n] for n in camtrap_dp.TABLES]
    assert package["temporal"] == {"start": "2026-11-25", "end": "2026-12-25"}
    assert package["created"] == "2026-12-01T09:00:00Z"
    assert package["project"]["captureMethod"] == ["activityDetection"]
    assert package["project"]["observationLevel"] == ["event", "media"]
    assert {"title": "Land of the Leopard National Park", "role": "rightsHolder"} in package["contributors"]
    assert {lic["scope"] for lic in package["licenses"]} == {"data", "media"}


def test_a_clip_kept_on_the_station_is_listed_as_video_media_that_stays_there(tmp_path):
    (tmp_path / "collector").mkdir()
    database = Database.open(f"sqlite:///{tmp_path}/collector/camtrap.db")
    database.migrate()
    with_clip = detection(T0, "leopard", "leopard", clip=True, **LAZOVSKY)
    database.store_batch([with_clip, detection(T0 + 600, "prey", "boar", **LAZOVSKY)], [], [])
    export_camtrap_dp(database, _cfg(), tmp_path / "pkg", created=CREATED)
    database.close()
    _valid(tmp_path / "pkg")
    media = _table(tmp_path / "pkg", "media.csv")
    videos = [m for m in media if m["fileMediatype"] == "video/mp4"]
    event_id = with_clip["event_id"]
    assert len(videos) == 1 and len(media) == 9
    (video,) = videos
    assert (video["mediaID"], video["filePath"], video["fileName"], video["filePublic"]) == (
        f"{event_id}-clip", f"events/{event_id}/clip.mp4", "clip.mp4", "false")
    assert "kept on the station" in video["mediaComments"]


def test_observations_say_what_the_classifier_saw(network, tmp_path):
    database, msgs = network
    export_camtrap_dp(database, _cfg(), tmp_path, created=CREATED)
    observations = _table(tmp_path, "observations.csv")
    event = {o["eventID"]: o for o in observations if o["observationLevel"] == "event"}
    still = {o["eventID"]: o for o in observations if o["observationLevel"] == "media"}
    by_tag = [(event[m["event_id"]]["observationType"], event[m["event_id"]]["scientificName"]) for m in msgs]
    assert by_tag == [("animal", "Panthera pardus"), ("animal", "Sus scrofa"), ("human", ""),
                      ("unclassified", ""), ("animal", "Panthera tigris"), ("animal", "Cervidae"),
                      ("vehicle", ""), ("blank", ""), ("animal", "Lepus"), ("unknown", ""),
                      ("animal", "Ursidae"), ("animal", "Panthera pardus")]
    tiger = event[msgs[4]["event_id"]]
    assert (tiger["classificationMethod"], tiger["classifiedBy"], tiger["classificationProbability"]) == (
        "machine", MODEL["name"], "0.93")
    assert tiger["mediaID"] == "" and tiger["bboxX"] == ""  # a box belongs to a still, not to the event
    assert event[msgs[2]["event_id"]]["observationTags"] == "tag:human|species:firearm|label:rifle"
    failed = event[msgs[3]["event_id"]]
    assert failed["classificationMethod"] == failed["classificationProbability"] == ""
    assert failed["observationComments"].startswith("classification failed: ")
    assert msgs[3]["event_id"] not in still  # nothing decided it
    box = still[msgs[4]["event_id"]]
    assert box["mediaID"] == f"{msgs[4]['event_id']}-{msgs[4]['best_frame']:03d}"
    assert [float(box[k]) for k in ("bboxX", "bboxY", "bboxWidth", "bboxHeight")] == msgs[4]["best_box"]
    assert box["eventStart"] == box["eventEnd"] and box["scientificName"] == "Panthera tigris"
    package = json.loads((tmp_path / "datapackage.json").read_text())
    named = {o["scientificName"] for o in observations if o["scientificName"]}
    assert [t["scientificName"] for t in package["taxonomic"]] == sorted(named)
    leopard = next(t for t in package["taxonomic"] if t["scientificName"] == "Panthera pardus")
    assert leopard["taxonRank"] == "species" and leopard["vernacularNames"]["rus"] == "леопард"


def test_every_animal_species_the_taxonomy_emits_has_a_scientific_name():
    from station.classifier.taxonomy import load_taxonomy, regions

    toml = ROOT / "models" / "taxonomy_imagenet.toml"
    labels = (ROOT / "models" / "imagenet_labels.txt").read_text(encoding="utf-8").splitlines()
    for region in regions(toml):
        taxonomy = load_taxonomy(toml, labels, region)
        for tag, species in zip(taxonomy.tags, taxonomy.species):
            if tag in ("leopard", "tiger", "prey"):
                assert taxon_for(tag, species) is not None, (region, tag, species)
            if tag in ("human", "vehicle", "blank"):
                assert taxon_for(tag, species) is None, (region, tag, species)
    assert taxon_for("leopard", "leopard").scientific_name == "Panthera pardus"
    assert taxon_for("prey", "boar").scientific_name == "Sus scrofa"
    assert taxon_for("prey", None, "sika deer").scientific_name == "Cervus nippon"


# -- privacy ----------------------------------------------------------------------------

def _all_text(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(folder.iterdir()) if p.is_file())


def _leaks(text: str) -> list[str]:
    """Exact coordinates found in ``text``: as stored, or rounded or cut to three decimals (~100 m)."""
    forms = {form for c in EXACT for form in (repr(c), f"{c:.3f}", f"{c:.4f}"[:-1])}
    return sorted(form for form in forms if form in text)


def test_a_public_package_never_shows_a_station_where_it_really_is(network, tmp_path):
    database, _ = network
    summary = export_camtrap_dp(database, _cfg(), tmp_path, created=CREATED)
    _valid(tmp_path)
    assert _leaks(_all_text(tmp_path)) == []
    deployments = {d["deploymentID"]: d for d in _table(tmp_path, "deployments.csv")}
    for dep, where in (("lazovsky-07-2026-autumn", LAZOVSKY), ("kedrovaya-01-2026", KEDROVAYA),
                       ("bars-03-2026", BARS)):
        cell = generalise(where["latitude"], where["longitude"], 0.1, where.get("coordinate_uncertainty_m"))
        row = deployments[dep]
        assert (float(row["latitude"]), float(row["longitude"])) == (cell.latitude, cell.longitude)
        assert int(row["coordinateUncertainty"]) == cell.coordinate_uncertainty_m > 6000  # the whole cell
        assert "generalised" in row["deploymentComments"]
    package = json.loads((tmp_path / "datapackage.json").read_text())
    assert package["coordinatePrecision"] == 0.1 == summary.coordinate_precision
    assert summary.generalised == 4 and not summary.exact


def test_the_exact_package_keeps_coordinates_for_the_restricted_copy(network, tmp_path):
    database, _ = network
    summary = export_camtrap_dp(database, _cfg(), tmp_path, exact=True, created=CREATED)
    _valid(tmp_path)
    deployments = {d["deploymentID"]: d for d in _table(tmp_path, "deployments.csv")}
    autumn, kedr = deployments["lazovsky-07-2026-autumn"], deployments["kedrovaya-01-2026"]
    assert (autumn["latitude"], autumn["longitude"], autumn["coordinateUncertainty"]) == ("43.2412", "133.8857", "15")
    assert (kedr["latitude"], kedr["longitude"], kedr["coordinateUncertainty"]) == ("43.1023", "131.5478", "")
    assert "coordinatePrecision" not in json.loads((tmp_path / "datapackage.json").read_text())
    assert summary.exact and summary.generalised == 0 and "EXACT" in summary.line()


def test_with_scope_sensitive_only_big_cat_stations_are_generalised(network, tmp_path):
    database, _ = network
    export_camtrap_dp(database, _cfg(privacy={"scope": "sensitive"}), tmp_path, created=CREATED)
    _valid(tmp_path)
    deployments = {d["deploymentID"]: d for d in _table(tmp_path, "deployments.csv")}
    assert (deployments["bars-03-2026"]["latitude"], deployments["bars-03-2026"]["longitude"]) == (
        "42.9871", "131.3012")  # hares and a bear only
    assert deployments["kedrovaya-01-2026"]["latitude"] == "43.15"  # a tiger was there
    assert json.loads((tmp_path / "datapackage.json").read_text())["coordinatePrecision"] == 0.1


def test_the_csv_has_one_row_per_event_and_the_same_privacy(network, tmp_path):
    database, msgs = network
    cfg = _cfg(http={"timezone": "Asia/Vladivostok"})
    public = export_csv(database, cfg, tmp_path / "public.csv")
    restricted = export_csv(database, cfg, tmp_path / "exact.csv", exact=True)
    assert _leaks((tmp_path / "public.csv").read_text(encoding="utf-8")) == []
    rows = _table(tmp_path, "public.csv")
    assert [r["event_id"] for r in rows] == [m["event_id"] for m in msgs] and public.detections == 12
    boar = rows[1]
    assert (boar["tag"], boar["species"], boar["scientific_name"], boar["label"]) == (
        "prey", "boar", "Sus scrofa", "wild boar")
    assert boar["start_utc"] == msgs[1]["start"] and boar["start_local"].endswith("+10:00")
    assert (boar["latitude"], boar["longitude"], boar["location_generalised"]) == ("43.25", "133.85", "true")
    assert int(boar["coordinate_uncertainty_m"]) > 6000
    assert rows[3]["classification_status"] == "failed" and rows[3]["confidence"] == ""
    exact_rows = _table(tmp_path, "exact.csv")
    assert (exact_rows[1]["latitude"], exact_rows[1]["longitude"], exact_rows[1]["coordinate_uncertainty_m"]) == (
        "43.2412", "133.8857", "15")
    assert restricted.exact and public.generalised == 3 == public.deployments


# -- verified events ---------------------------------------------------------------------

VERIFIED_AT = "2026-12-02T08:15:30.250Z"


def _verify(database: Database, msgs: list[dict]) -> dict[str, tuple[str, str | None, str]]:
    """Researchers' verdicts on five events, one changed twice: {event_id: (tag, species, by)} as current."""
    verdicts = [(0, "leopard", "leopard", "anna"),          # confirmed
                (1, "prey", "sika deer", "anna"),           # corrected ...
                (1, "prey", "roe deer", "boris"),           # ... and corrected again: this one counts
                (3, "other_animal", "brown bear", "anna"),  # the classifier failed
                (7, "tiger", None, "anna"),                 # a tiger the machine called blank
                (8, "blank", None, "boris")]                # a hare that was grass
    current = {}
    for k, tag, species, by in verdicts:
        database.add_verification(msgs[k]["event_id"], tag, species, by, at=VERIFIED_AT)
        current[msgs[k]["event_id"]] = (tag, species, by)
    return current


def test_a_verified_event_carries_the_researchers_classification_and_the_machines(network, tmp_path):
    database, msgs = network
    current = _verify(database, msgs)
    summary = export_camtrap_dp(database, _cfg(), tmp_path, created=CREATED)
    _valid(tmp_path)
    assert summary.verified == 5 and "(5 verified by researchers)" in summary.line()
    observations = _table(tmp_path, "observations.csv")
    events = [o for o in observations if o["observationLevel"] == "event"]
    assert [o["eventID"] for o in events] == [m["event_id"] for m in msgs]  # still one per event: counts add up
    event = {o["eventID"]: o for o in events}
    for event_id, (tag, _species, by) in current.items():
        o = event[event_id]
        assert (o["classificationMethod"], o["classifiedBy"], o["classificationTimestamp"]) == (
            "human", by, "2026-12-02T08:15:30Z"), event_id
        assert o["classificationProbability"] == "" and o["observationTags"].startswith(f"tag:{tag}")
    boar, failed, blank, hare = (event[msgs[k]["event_id"]] for k in (1, 3, 7, 8))
    assert (boar["observationType"], boar["scientificName"]) == ("animal", "Capreolus pygargus")
    assert boar["observationTags"] == ("tag:prey|species:roe deer|verified:corrected|machine_tag:prey|"
                                       "machine_species:boar|machine_label:wild boar|machine_probability:0.81|"
                                       f"machine_classified_by:{MODEL['name']}")
    assert "verified:confirmed" in event[msgs[0]["event_id"]]["observationTags"]
    assert (failed["observationType"], failed["scientificName"]) == ("animal", "Ursus arctos")
    assert "machine_tag:unclassified" in failed["observationTags"]
    assert failed["observationComments"].startswith("classification failed")
    assert (blank["observationType"], blank["scientificName"]) == ("animal", "Panthera tigris")
    assert (hare["observationType"], hare["scientificName"]) == ("blank", "")
    unverified = event[msgs[4]["event_id"]]
    assert (unverified["classificationMethod"], unverified["classifiedBy"]) == ("machine", MODEL["name"])

    # the deciding still: the machine's observation stays, the researcher's is beside it
    stills: dict[str, list[dict]] = {}
    for o in observations:
        if o["observationLevel"] == "media":
            stills.setdefault(o["eventID"], []).append(o)
    machine, human = stills[msgs[1]["event_id"]]
    assert machine["mediaID"] == human["mediaID"] and human["observationID"] == machine["mediaID"] + "-verified"
    assert (machine["classificationMethod"], machine["scientificName"]) == ("machine", "Sus scrofa")
    assert (human["classificationMethod"], human["classifiedBy"], human["scientificName"]) == (
        "human", "boris", "Capreolus pygargus")
    assert [human[k] for k in ("bboxX", "bboxY", "bboxWidth", "bboxHeight")] == \
        [machine[k] for k in ("bboxX", "bboxY", "bboxWidth", "bboxHeight")] != ["", "", "", ""]
    assert "box by the machine" in human["observationComments"]
    grass = [o for o in stills[msgs[8]["event_id"]] if o["classificationMethod"] == "human"]
    assert grass[0]["observationType"] == "blank" and grass[0]["bboxX"] == ""  # nothing to box
    assert msgs[3]["event_id"] not in stills  # no still decided the failed event
    assert len(stills[msgs[4]["event_id"]]) == 1  # unverified: the machine's alone

    package = json.loads((tmp_path / "datapackage.json").read_text())
    assert {"Capreolus pygargus", "Ursus arctos", "Sus scrofa"} <= {t["scientificName"] for t in package["taxonomic"]}
    assert "5 of them verified by researchers" in package["description"]
    assert _leaks(_all_text(tmp_path)) == []
    export_camtrap_dp(database, _cfg(), tmp_path / "exact", exact=True, created=CREATED)
    _valid(tmp_path / "exact")


def test_the_csv_gains_the_verified_columns(network, tmp_path):
    database, msgs = network
    current = _verify(database, msgs)
    summary = export_csv(database, _cfg(), tmp_path / "d.csv")
    rows = {r["event_id"]: r for r in _table(tmp_path, "d.csv")}
    assert summary.verified == 5 and _leaks((tmp_path / "d.csv").read_text(encoding="utf-8")) == []
    for m in msgs:
        row = rows[m["event_id"]]
        tag, species, by = current.get(m["event_id"], ("", "", ""))
        assert (row["verified_tag"], row["verified_species"], row["verified_by"]) == (tag, species or "", by)
        assert row["verified_at"] == (VERIFIED_AT if tag else "")
        assert (row["tag"], row["species"]) == (m["tag"], m["species"] or "")  # the machine's, as sent
    boar = rows[msgs[1]["event_id"]]
    assert (boar["scientific_name"], boar["verified_scientific_name"]) == ("Sus scrofa", "Capreolus pygargus")


# -- selection and streaming ----------------------------------------------------------

def test_one_station_and_a_time_window_can_be_exported(network, tmp_path):
    database, msgs = network
    one = export_camtrap_dp(database, _cfg(), tmp_path / "kedr", station="kedrovaya-01", created=CREATED)
    assert (one.detections, one.deployments) == (4, 1)
    _valid(tmp_path / "kedr")
    night = export_camtrap_dp(database, _cfg(), tmp_path / "night", since=msgs[1]["start"], until=T0 + 86400,
                              created=CREATED)
    assert night.detections == 10  # events 1..10; the winter leopard is a month later
    ids = [o["eventID"] for o in _table(tmp_path / "night", "observations.csv") if o["observationLevel"] == "event"]
    assert ids == [m["event_id"] for m in msgs[1:11]]


def test_paging_through_the_database_does_not_change_the_package(sqlite_network, tmp_path):
    database, _ = sqlite_network
    export_camtrap_dp(database, _cfg(), tmp_path / "a", created=CREATED)
    export_camtrap_dp(database, _cfg(), tmp_path / "b", created=CREATED, page=5)
    assert _all_text(tmp_path / "a") == _all_text(tmp_path / "b")


def test_nothing_to_export_writes_nothing_and_keeps_an_earlier_package(sqlite_network, tmp_path):
    database, _ = sqlite_network
    export_camtrap_dp(database, _cfg(), tmp_path, created=CREATED)
    before = _all_text(tmp_path)
    with pytest.raises(NothingToExport, match="station=nowhere"):
        export_camtrap_dp(database, _cfg(), tmp_path, station="nowhere")
    assert _all_text(tmp_path) == before and not list(tmp_path.glob(".*.part"))


# -- the validator catches what is wrong ---------------------------------------------------

def test_the_validator_reports_a_missing_required_field(sqlite_network, tmp_path):
    database, _ = sqlite_network
    export_camtrap_dp(database, _cfg(), tmp_path, created=CREATED)
    _valid(tmp_path)
    observations = tmp_path / "observations.csv"
    good = observations.read_text(encoding="utf-8")
    lines = good.splitlines(keepends=True)
    lines[2] = lines[2].replace(",media,animal,", ",media,,", 1)  # observationType of row 3 gone
    observations.write_text("".join(lines), encoding="utf-8")
    report = camtrap_dp.validate(tmp_path / "datapackage.json")
    assert not report.valid
    assert [p for p in camtrap_dp.problems(report) if "observations.csv row 3, observationType" in p
            and '"required"' in p]
    observations.write_text(good, encoding="utf-8")

    deployments = tmp_path / "deployments.csv"
    table = deployments.read_text(encoding="utf-8").replace(",2026-11-25T18:02:11Z,", ",,", 1)  # a deploymentStart
    deployments.write_text(table, encoding="utf-8")
    assert any("deploymentStart" in p for p in camtrap_dp.problems(camtrap_dp.validate(tmp_path / "datapackage.json")))


def test_the_validator_reports_a_package_descriptor_without_what_camtrap_dp_requires(sqlite_network, tmp_path):
    database, _ = sqlite_network
    export_camtrap_dp(database, _cfg(), tmp_path, created=CREATED)
    path = tmp_path / "datapackage.json"
    package = json.loads(path.read_text())
    del package["taxonomic"]
    package["project"]["samplingDesign"] = "whatever"
    path.write_text(json.dumps(package))
    problems = camtrap_dp.problems(camtrap_dp.validate(path))
    assert any("'taxonomic' is a required property" in p for p in problems)
    assert any("whatever" in p and "samplingDesign" in p for p in problems)


# -- the command line ---------------------------------------------------------------------

def _collector_toml(tmp_path: Path, url: str = "sqlite:///camtrap.db", extra: str = "") -> Path:
    path = tmp_path / "collector.toml"
    path.write_text(f'[collector]\ndata_dir = "{tmp_path / "collector"}"\ndatabase_url = "{url}"\n'
                    f'[project]\ntitle = "Land of the Leopard camera traps"\n{extra}', encoding="utf-8")
    return path


def test_the_command_line_exports_and_validates_a_package(sqlite_network, tmp_path, capsys):
    config = _collector_toml(tmp_path)
    out = tmp_path / "export"
    assert main(["export", "camtrap-dp", "--config", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "12 detections, 4 deployments, 48 media" in printed and "generalised" in printed
    assert _leaks(_all_text(out)) == []
    assert main(["export", "validate", str(out)]) == 0
    assert "valid Camtrap DP 1.0.2" in capsys.readouterr().out
    assert main(["export", "camtrap-dp", "--config", str(config), "--out", str(tmp_path / "exact"), "--exact",
                 "--station", "lazovsky-07", "--since", "2026-11-25T00:00:00Z", "--until", "2026-11-26T00:00:00Z"]) == 0
    assert "4 detections, 1 deployments" in capsys.readouterr().out
    assert "43.2412" in (tmp_path / "exact" / "deployments.csv").read_text()
    assert main(["export", "csv", "--config", str(config), "--out", str(tmp_path / "d.csv")]) == 0
    assert len(_table(tmp_path, "d.csv")) == 12
    (out / "media.csv").write_text("mediaID\nx\n")
    assert main(["export", "validate", str(out / "datapackage.json")]) == 1
    assert "media.csv" in capsys.readouterr().err


@pytest.mark.parametrize("problem", ["bad config", "unknown key", "database down", "out is a file",
                                     "nothing matches", "bad time"])
def test_the_command_line_names_the_problem_in_one_line(sqlite_network, tmp_path, capsys, problem):
    config, out, args = _collector_toml(tmp_path), tmp_path / "out", []
    if problem == "bad config":
        config = tmp_path / "missing.toml"
    elif problem == "unknown key":
        config = _collector_toml(tmp_path, extra="sampling = \"random\"\n")
    elif problem == "database down":
        config = _collector_toml(tmp_path, url="postgresql://postgres@127.0.0.1:1/test")
    elif problem == "out is a file":
        (tmp_path / "taken").write_text("")
        out = tmp_path / "taken" / "pkg"
    elif problem == "nothing matches":
        args = ["--station", "nowhere"]
    else:
        args = ["--since", "yesterday"]
    code = main(["export", "camtrap-dp", "--config", str(config), "--out", str(out), *args])
    err = capsys.readouterr().err.strip()
    assert code == (1 if problem == "nothing matches" else 2)
    assert len(err.splitlines()) == 1 and err.startswith("station export camtrap-dp: ")
    expected = {"bad config": "missing.toml: file not found", "unknown key": "project.sampling",
                "database down": "cannot connect", "out is a file": "taken: is a file, not a folder",
                "nothing matches": "no detections", "bad time": "'yesterday' is not an RFC 3339 time"}[problem]
    assert expected in err


def test_the_commands_in_docs_exports_md_work(sqlite_network, tmp_path, monkeypatch, capsys):
    _collector_toml(tmp_path)
    monkeypatch.chdir(tmp_path)
    doc = (ROOT / "docs" / "exports.md").read_text(encoding="utf-8")
    lines = [line.split("#")[0] for block in re.findall(r"```sh\n(.*?)```", doc, re.S)
             for line in block.splitlines() if line.startswith("station export")
             and not line.startswith("station export training-set")]  # tests/test_collector_training_set.py
    assert len(lines) >= 6
    for line in lines:
        assert main(shlex.split(line)[1:]) == 0, line
    assert _leaks(_all_text(tmp_path / "lotl-public")) == []
    assert _leaks((tmp_path / "detections.csv").read_text(encoding="utf-8")) == []
    assert "43.2412" in (tmp_path / "lotl-restricted" / "deployments.csv").read_text()
    assert {r["station_id"] for r in _table(tmp_path, "kedrovaya.csv")} == {"kedrovaya-01"}


# -- rows that break today's rules, stored by an older collector -------------------------

def test_rows_an_older_collector_let_in_are_skipped_and_named_never_a_traceback(db_url, network, tmp_path, capsys):
    db, msgs = network
    hostile = stored_hostile_detections(db.dialect.name)
    for payload, text in hostile.values():
        store_as_an_old_collector_did(db, payload, text)
    bad = {p["event_id"] for p, _ in hostile.values()}
    config = _collector_toml(tmp_path, url=db_url)
    (tmp_path / "collector").mkdir(exist_ok=True)
    for command, out in (("camtrap-dp", tmp_path / "pkg"), ("csv", tmp_path / "d.csv"),
                         ("camtrap-dp", tmp_path / "exact")):
        extra = ["--exact"] if out.name == "exact" else []
        assert main(["export", command, "--config", str(config), "--out", str(out), *extra]) == 0
        captured = capsys.readouterr()
        warnings = captured.err.strip().splitlines()
        assert len(warnings) == len(bad) and all(w.startswith(f"station export {command}: warning: skipped "
                                                             f"detection ") for w in warnings)
        assert {w.split("skipped detection ", 1)[1].split(":", 1)[0] for w in warnings} == bad
        assert "12 detections" in captured.out and f"{len(bad)} detection(s) skipped" in captured.out
    _valid(tmp_path / "pkg")
    _valid(tmp_path / "exact")
    assert {r["event_id"] for r in _table(tmp_path, "d.csv")} == {m_["event_id"] for m_ in msgs}
    summary = export_csv(db, _cfg(), tmp_path / "again.csv")
    assert summary.skipped == len(bad) and {i for i, _ in summary.skipped_rows} == bad


def test_an_exact_export_is_readable_by_its_owner_only(sqlite_network, tmp_path):
    db, _ = sqlite_network
    export_camtrap_dp(db, _cfg(), tmp_path / "exact", exact=True)
    export_csv(db, _cfg(), tmp_path / "exact.csv", exact=True)
    for path in [*(tmp_path / "exact").iterdir(), tmp_path / "exact.csv"]:
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert (tmp_path / "exact").stat().st_mode & 0o777 == 0o700
