"""The collector's JSON API, served by the real HttpServer over a real database (SQLite
and PostgreSQL): filters, errors that name the parameter, read-only routes, tokens and
location privacy, thumbnails served from the collector's own files.

The night seeded here (``seed_night``) is also what the browser tests show.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import cv2
import httpx
import numpy as np
import pytest

from station.collector.db import Database, Rejection, ThumbnailRow
from station.collector.web import HttpServer, create_app
from station.collector.web.auth import TokenFileError
from station.config.collector import CollectorConfig, parse_collector_config

from tests.collector_data import (db_url, detection, health, pytest_generate_tests, status,  # noqa: F401 (fixture)
                                  store_as_an_old_collector_did, stored_hostile_detections)

ZONE = "Asia/Vladivostok"
TOKEN = "ranger-token-7f3a9c1e55d04b2e"
# Each station's exact position; none of them is near the centre of its 0.1 degree cell.
PLACES = {"lazovsky-07": (43.2412, 133.8857), "kedrovaya-01": (43.0871, 131.5189), "bars-03": (43.3169, 131.6047)}
# (days before today, local hour, minute, station, tag, species, with a thumbnail)
SIGHTINGS = [
    (2, 21, 40, "lazovsky-07", "leopard", "leopard", True),
    (2, 23, 5, "kedrovaya-01", "tiger", "amur tiger", True),
    (1, 1, 12, "lazovsky-07", "leopard", "leopard", True),
    (1, 3, 30, "kedrovaya-01", "leopard", "leopard", False),
    (1, 4, 10, "lazovsky-07", "leopard", "leopard", True),
    (1, 10, 20, "lazovsky-07", "prey", "wild boar", True),
    (1, 14, 45, "bars-03", "prey", "sika deer", True),
    (1, 16, 0, "bars-03", "unknown", None, False),  # classification failed: no species
]
COLOURS = {"leopard": (40, 140, 220), "amur tiger": (30, 90, 200), "wild boar": (60, 70, 90),
           "sika deer": (70, 130, 160)}  # BGR


def thumbnail_jpeg(species: str | None, k: int) -> bytes:
    """A real small JPEG: a forest-green frame with an animal-coloured blob (OpenCV)."""
    img = np.full((120, 160, 3), (40, 70, 45), np.uint8)
    cv2.ellipse(img, (50 + 8 * k, 65), (34, 18), 0, 0, 360, COLOURS.get(species or "", (128, 128, 128)), -1)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return buf.tobytes()


@dataclass
class Night:
    """What was stored, so tests compare the API with it (never with hard-coded answers)."""
    detections: list[dict[str, Any]] = field(default_factory=list)  # in the order they happened
    thumbnails: dict[str, bytes] = field(default_factory=dict)       # event_id -> JPEG
    thumbnail_files: dict[str, Path] = field(default_factory=dict)

    def ids(self, **match: Any) -> list[str]:
        """Event ids of the detections matching ``match`` (payload keys), newest first."""
        return [d["event_id"] for d in reversed(self.detections) if all(d.get(k) == v for k, v in match.items())]

    def diel(self, zone: str) -> dict[str, list[int]]:
        hours: dict[str, list[int]] = {}
        for d in self.detections:
            if d["species"]:
                local = datetime.fromisoformat(d["start"].replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
                hours.setdefault(d["species"], [0] * 24)[local.hour] += 1
        return hours


def sighting(days_ago: int, hour: int, minute: int, station_id: str, tag: str, species: str | None,
             today: datetime) -> dict[str, Any]:
    day = (today - timedelta(days=days_ago)).date()
    start = datetime(day.year, day.month, day.day, hour, minute, 7, tzinfo=ZoneInfo(ZONE)).timestamp()
    lat, lon = PLACES[station_id]
    return detection(start, tag, species, station_id=station_id, deployment_id=f"{station_id}-2026",
                     failed=species is None, latitude=lat, longitude=lon)


def store_with_thumbnail(db: Database, thumbnails_dir: Path, msg: dict[str, Any], night: Night,
                         jpeg: bytes | None) -> None:
    """Stores a detection as the ingest does: the JPEG written under the collector's own name first."""
    thumbs = []
    if jpeg is not None:
        digest = hashlib.sha256(jpeg).hexdigest()
        name = f"{msg['station_id']}/{digest[:20]}.jpg"
        (thumbnails_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (thumbnails_dir / name).write_bytes(jpeg)
        h, w = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape[:2]
        thumbs.append(ThumbnailRow(msg["event_id"], msg["station_id"], name, len(jpeg), w, h, digest))
        night.thumbnails[msg["event_id"]] = jpeg
        night.thumbnail_files[msg["event_id"]] = thumbnails_dir / name
    db.store_batch([msg], [], [], thumbnails=thumbs)
    night.detections.append(msg)


def seed_night(db: Database, thumbnails_dir: Path) -> Night:
    """Two nights at three stations: leopards and a tiger at night, prey by day; lazovsky-07
    online with 7 detections waiting in its outbox, kedrovaya-01 lost its link five hours ago,
    bars-03 online with its disk nearly full."""
    now = datetime.now(timezone.utc)
    today = now.astimezone(ZoneInfo(ZONE))
    night = Night()
    for k, (days_ago, hour, minute, station_id, tag, species, thumb) in enumerate(SIGHTINGS):
        msg = sighting(days_ago, hour, minute, station_id, tag, species, today)
        store_with_thumbnail(db, thumbnails_dir, msg, night, thumbnail_jpeg(species, k) if thumb else None)
    t = now.timestamp()
    lazovsky, kedrovaya, bars = health(t - 20), health(t - 5 * 3600, station_id="kedrovaya-01"), \
        health(t - 40, station_id="bars-03")
    lazovsky["outbox"] |= {"depth": 7, "detections": 7}
    bars["disk"] |= {"free_mb": 350.0, "low": True}
    db.store_batch([], [status("online", "started", t - 86400 * 3, t - 86400 * 3),
                        status("online", "started", t - 86400 * 3, t - 86400 * 3, station_id="kedrovaya-01"),
                        status("offline", "connection_lost", t - 86400 * 3, station_id="kedrovaya-01"),
                        status("online", "started", t - 86400 * 3, t - 86400 * 3, station_id="bars-03")],
                   [lazovsky, kedrovaya, bars],
                   rejections=[Rejection("schema", "lazovsky-07",
                                         f"detection: location.latitude {PLACES['lazovsky-07'][0]} with no longitude")])
    return night


def collector_config(db_url: str, data_dir: Path, http: dict[str, Any] | None = None,
                     privacy: dict[str, Any] | None = None) -> CollectorConfig:
    token_file = data_dir.parent / "tokens.txt"
    token_file.write_text(f"# researchers\n{TOKEN}\n\n")
    return parse_collector_config({"collector": {"data_dir": str(data_dir), "database_url": db_url},
                                   "http": {"port": 0, "token_file": str(token_file), "timezone": ZONE} | (http or {}),
                                   "privacy": privacy or {}})


@dataclass
class Collector:
    cfg: CollectorConfig
    db: Database
    night: Night
    server: HttpServer
    client: httpx.Client

    def get(self, path: str, token: str | None = None, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.get(path, params=params, headers=headers)


STATS = {"received": 11, "stored": 8, "rejected": 1}


@contextmanager
def start_collector(db_url: str, tmp_path: Path, http: dict[str, Any] | None = None,
                    privacy: dict[str, Any] | None = None) -> Iterator[Collector]:
    """A seeded database and the real server over it, on a free port."""
    cfg = collector_config(db_url, tmp_path / "data", http, privacy)
    cfg.collector.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.open(cfg.collector.sqlite_resolved_url())
    db.migrate()
    night = seed_night(db, cfg.collector.thumbnails_dir)
    server = HttpServer(create_app(cfg, stats=lambda: dict(STATS)), host="127.0.0.1", port=0)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            yield Collector(cfg, db, night, server, client)
    finally:
        server.stop()
        db.close()


@pytest.fixture
def collector(db_url, tmp_path) -> Iterator[Collector]:
    with start_collector(db_url, tmp_path) as c:
        yield c


def numbers(value: Any) -> Iterator[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield float(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from numbers(v)


def every_api_path(c: Collector) -> list[str]:
    return (["/api/detections?limit=1000", "/api/stations", "/api/species", "/api/diel", "/api/collector",
             "/api/openapi.json", "/healthz"]
            + [f"/api/detections/{d['event_id']}" for d in c.night.detections]
            + [f"/api/detections?station={s}" for s in PLACES])


# -- detections ---------------------------------------------------------------------

def test_detections_filter_by_station_tag_species_and_time(collector):
    c, night = collector, collector.night
    page = c.get("/api/detections").json()
    assert page["total"] == len(night.detections) and [d["event_id"] for d in page["items"]] == night.ids()
    for params, match in [({"station": "lazovsky-07"}, {"station_id": "lazovsky-07"}),
                          ({"tag": "leopard"}, {"tag": "leopard"}),
                          ({"species": "sika deer"}, {"species": "sika deer"}),
                          ({"station": "kedrovaya-01", "tag": "leopard"},
                           {"station_id": "kedrovaya-01", "tag": "leopard"})]:
        body = c.get("/api/detections", **params).json()
        assert [d["event_id"] for d in body["items"]] == night.ids(**match), params
        assert body["total"] == len(night.ids(**match))
    # since <= start < until, in any offset: the second and third detections
    second, fourth = night.detections[1]["start"], night.detections[3]["start"]
    local = datetime.fromisoformat(second.replace("Z", "+00:00")).astimezone(ZoneInfo(ZONE)).isoformat()
    window = c.get("/api/detections", since=local, until=fourth).json()
    assert [d["event_id"] for d in window["items"]] == [d["event_id"] for d in night.detections[2:0:-1]]
    raw_plus = c.client.get(f"/api/detections?since={local}&until={fourth}")  # '+' unescaped: a space
    assert raw_plus.json()["items"] == window["items"]
    paged = c.get("/api/detections", limit=2, offset=3).json()
    assert [d["event_id"] for d in paged["items"]] == night.ids()[3:5] and paged["total"] == len(night.detections)
    assert c.get("/api/detections", species="").json()["total"] == len(night.detections)  # empty = any


def test_a_detection_carries_its_payload_and_thumbnail_url(collector):
    c, night = collector, collector.night
    with_thumb, without = night.detections[0], night.detections[3]
    item = c.get(f"/api/detections/{with_thumb['event_id']}").json()["item"]
    assert item["species"] == "leopard" and item["payload"]["top_k"] == with_thumb["top_k"]
    assert item["thumbnail_url"] == f"/thumbnails/{with_thumb['event_id']}.jpg"
    assert c.get(f"/api/detections/{without['event_id']}").json()["item"]["thumbnail_url"] is None
    listed = {d["event_id"]: d["thumbnail_url"] for d in c.get("/api/detections").json()["items"]}
    assert {k for k, v in listed.items() if v} == set(night.thumbnails)


def test_an_unknown_event_is_404(collector):
    unknown = detection(1_795_629_731.4)["event_id"]  # well formed, never stored
    for path in (f"/api/detections/{unknown}", "/api/detections/not-an-event", f"/thumbnails/{unknown}.jpg"):
        r = collector.get(path)
        assert r.status_code == 404 and r.headers["content-type"] == "application/json", path
        assert "event_id" in r.json()["error"]
    assert collector.get(f"/thumbnails/{collector.night.detections[3]['event_id']}.jpg").status_code == 404
    assert collector.get("/api/nothing-here").status_code == 404


@pytest.mark.parametrize("path, params, parameter, words", [
    ("/api/detections", {"limit": "abc"}, "limit", "not a whole number"),
    ("/api/detections", {"limit": "0"}, "limit", "out of range (1..1000)"),
    ("/api/detections", {"limit": "5000"}, "limit", "out of range"),
    ("/api/detections", {"offset": "-1"}, "offset", "out of range"),
    ("/api/detections", {"tag": "cat"}, "tag", "not a tag"),
    ("/api/detections", {"since": "yesterday"}, "since", "not an RFC 3339 time"),
    ("/api/detections", {"since": "2026-11-25T25:00:00Z"}, "since", "not a valid date or time"),
    ("/api/detections", {"since": "2026-11-25T00:00:00Z", "until": "2026-11-24"}, "until", "later than since"),
    ("/api/detections", {"specie": "leopard"}, "specie", "unknown parameter"),
    ("/api/detections", [("tag", "leopard"), ("tag", "tiger")], "tag", "more than once"),
    ("/api/species", {"until": "soon"}, "until", "RFC 3339"),
    ("/api/diel", {"tz": "Mars/Olympus_Mons"}, "tz", "not a known IANA time zone"),
    ("/api/diel", {"tz": "Asia/" + "Vladivostok" * 300}, "tz", "not a known IANA time zone"),  # no 500
    ("/api/diel", {"tz": "posixrules"}, "tz", "not a known IANA time zone"),
    ("/api/diel", {"tz": "right/UTC"}, "tz", "not a known IANA time zone"),
    ("/api/diel", {"tz": "../../../etc/localtime"}, "tz", "not a known IANA time zone"),
    ("/api/stations", {"station": "bars-03"}, "station", "unknown parameter (allowed here: none)"),
])
def test_bad_parameters_get_a_400_that_names_them(collector, path, params, parameter, words):
    r = collector.client.get(path, params=params)
    assert r.status_code == 400
    body = r.json()
    assert body["parameter"] == parameter and body["error"].startswith(f"{parameter}: ") and words in body["error"]


def test_the_api_is_read_only(collector):
    event_id = collector.night.detections[0]["event_id"]
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("/api/detections", f"/api/detections/{event_id}", "/api/stations",
                     f"/thumbnails/{event_id}.jpg", "/"):
            r = collector.client.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 405, (method, path)
            assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD"} and "read-only" in r.json()["error"]
    assert collector.get("/api/detections").json()["total"] == len(collector.night.detections)


# -- stations, species, diel, collector ---------------------------------------------

def test_stations_show_status_last_heard_disk_and_outbox(collector):
    items = {s["station_id"]: s for s in collector.get("/api/stations").json()["items"]}
    assert set(items) == set(PLACES)
    laz, ked, bars = items["lazovsky-07"], items["kedrovaya-01"], items["bars-03"]
    assert (laz["online"], laz["outbox_depth"], laz["disk_free_mb"]) == (True, 7, 51000.0)
    assert (ked["online"], ked["status"]["reason"]) == (False, "connection_lost")
    assert (bars["online"], bars["disk_free_mb"], bars["disk_low"]) == (True, 350.0, True)
    assert laz["silent_s"] < 600 and 5 * 3600 - 60 < ked["silent_s"] < 5 * 3600 + 600
    assert laz["health"]["cpu_temperature_c"] == 48.5 and laz["camera_state"] == "ok"
    assert laz["last_detection_at"] == collector.night.detections[5]["start"]


def test_species_are_counted_most_first(collector):
    body = collector.get("/api/species").json()
    expected: dict[str, int] = {}
    for d in collector.night.detections:
        if d["species"]:
            expected[d["species"]] = expected.get(d["species"], 0) + 1
    assert {i["species"]: i["count"] for i in body["items"]} == expected
    assert body["items"][0]["species"] == "leopard" and body["total"] == sum(expected.values())
    only = collector.get("/api/species", station="kedrovaya-01").json()["items"]
    assert {i["species"] for i in only} == {"amur tiger", "leopard"}


def test_leopards_are_active_at_night_in_the_local_time_zone(collector):
    night = collector.night
    body = collector.get("/api/diel").json()
    assert body["timezone"] == ZONE and body["hours"] == list(range(24))
    series = {s["species"]: s["counts"] for s in body["series"]}
    assert series == night.diel(ZONE)
    leopard_hours = {h for h, n in enumerate(series["leopard"]) if n}
    assert leopard_hours and all(h >= 20 or h < 6 for h in leopard_hours)
    utc = {s["species"]: s["counts"] for s in collector.get("/api/diel", tz="UTC").json()["series"]}
    assert utc == night.diel("UTC") and utc["leopard"] != series["leopard"]
    one = collector.get("/api/diel", species="leopard", station="lazovsky-07").json()["series"]
    assert [s["species"] for s in one] == ["leopard"] and sum(one[0]["counts"]) == 3


def test_the_collector_route_shows_live_counters_and_refusals(collector):
    body = collector.get("/api/collector").json()
    assert body["stats"] == STATS and body["database"]["schema_version"] >= 2
    assert [(r["reason"], r["station_id"], r["count"]) for r in body["rejections"]] == [("schema", "lazovsky-07", 1)]
    assert "last_detail" not in body["rejections"][0]  # may quote a payload: restricted
    exact = collector.get("/api/collector", token=TOKEN).json()
    assert "latitude" in exact["rejections"][0]["last_detail"]
    assert collector.get("/healthz").json()["ok"] is True


# -- location privacy and tokens -----------------------------------------------------

def test_without_a_token_no_exact_station_coordinate_appears_anywhere(collector):
    exact = [v for pair in PLACES.values() for v in pair]
    for path in every_api_path(collector):
        r = collector.client.get(path)
        assert r.status_code == 200, path
        for value in exact:
            assert str(value) not in r.text, path
        close = [n for n in numbers(r.json()) for v in exact if abs(n - v) < 0.005]
        assert close == [], (path, close)
    stations = collector.get("/api/stations").json()
    assert stations["location_generalised"] is True and stations["grid_deg"] == 0.1
    laz = next(s for s in stations["items"] if s["station_id"] == "lazovsky-07")
    assert (laz["latitude"], laz["longitude"], laz["location_generalised"]) == (43.25, 133.85, True)
    assert laz["coordinate_uncertainty_m"] > 0.05 * 111_320  # the circle holding the whole cell
    item = collector.get("/api/detections", limit=1).json()["items"][0]
    assert item["location_generalised"] and item["payload"]["location"]["latitude"] == item["latitude"]


def test_a_token_shows_exact_coordinates(collector):
    stations = collector.get("/api/stations", token=TOKEN).json()
    assert stations["location_generalised"] is False
    assert {s["station_id"]: (s["latitude"], s["longitude"]) for s in stations["items"]} == PLACES
    for d in collector.get("/api/detections", token=TOKEN).json()["items"]:
        assert (d["latitude"], d["longitude"]) == PLACES[d["station_id"]] and not d["location_generalised"]
        assert (d["payload"]["location"]["latitude"], d["payload"]["location"]["longitude"]) == PLACES[d["station_id"]]


def test_a_wrong_token_is_refused_rather_than_served_the_public_view(collector):
    for header in (f"Bearer {TOKEN}x", "Bearer", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN[:-1]}"):
        r = collector.client.get("/api/stations", headers={"Authorization": header})
        assert r.status_code == 401, header
        assert r.headers["www-authenticate"].startswith("Bearer") and "latitude" not in r.text


def test_with_scope_sensitive_only_stations_that_recorded_big_cats_are_generalised(db_url, tmp_path):
    with start_collector(db_url, tmp_path, privacy={"scope": "sensitive"}) as c:
        items = {s["station_id"]: s for s in c.get("/api/stations").json()["items"]}
        assert items["bars-03"]["location_generalised"] is False  # deer only
        assert (items["bars-03"]["latitude"], items["bars-03"]["longitude"]) == PLACES["bars-03"]
        assert items["lazovsky-07"]["location_generalised"] and items["kedrovaya-01"]["location_generalised"]


def test_a_private_collector_answers_only_with_a_token(db_url, tmp_path):
    with start_collector(db_url, tmp_path, http={"public": False}) as c:
        for path in every_api_path(c)[:7] + [f"/thumbnails/{next(iter(c.night.thumbnails))}.jpg"]:
            r = c.client.get(path)
            if path in ("/api/openapi.json", "/healthz"):
                assert r.status_code == 200
                continue
            assert r.status_code == 401 and "not public" in r.json()["error"], path
            assert c.get(path, token=TOKEN).status_code == 200, path
        assert c.client.get("/").status_code == 200  # the dashboard page, which asks for the token
        thumb = c.get(f"/thumbnails/{next(iter(c.night.thumbnails))}.jpg", token=TOKEN)
        assert thumb.headers["cache-control"].startswith("private")
        # tokens are re-read when the file changes: a revoked token stops working at once
        c.cfg.http.token_file.write_text("another-token-0123456789abcdef\n")
        assert c.get("/api/stations", token=TOKEN).status_code == 401
        assert c.get("/api/stations", token="another-token-0123456789abcdef").status_code == 200


def test_a_private_collector_without_tokens_or_with_a_weak_one_does_not_start(tmp_path):
    cfg = parse_collector_config({"collector": {"data_dir": str(tmp_path)}, "http": {"public": False}})
    with pytest.raises(ValueError, match="token_file"):
        create_app(cfg)
    weak = tmp_path / "tokens"
    weak.write_text("secret\n")
    with pytest.raises(TokenFileError, match="line 1: .*at least 16"):
        create_app(parse_collector_config({"collector": {"data_dir": str(tmp_path)},
                                           "http": {"token_file": str(weak)}}))


# -- thumbnails ---------------------------------------------------------------------

def test_a_thumbnail_is_served_from_the_collectors_own_file(collector):
    night = collector.night
    for event_id, jpeg in night.thumbnails.items():
        r = collector.get(f"/thumbnails/{event_id}.jpg")
        assert r.status_code == 200 and r.content == jpeg
        assert r.headers["content-type"] == "image/jpeg" and "max-age=" in r.headers["cache-control"]
        assert r.headers["etag"] and r.headers["x-content-type-options"] == "nosniff"
        assert cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)
    event_id, path = next(iter(night.thumbnail_files.items()))
    # the URL names an event, never a file: a path in it finds nothing
    rel = path.relative_to(collector.cfg.collector.thumbnails_dir)
    for probe in (f"/thumbnails/{rel.stem}.jpg", "/thumbnails/..%2F..%2Fdata%2Ftokens.jpg",
                  f"/thumbnails/{rel.parent}%2F{rel.stem}.jpg"):
        assert collector.client.get(probe).status_code == 404, probe
    path.unlink()  # recorded, but its file was lost
    r = collector.get(f"/thumbnails/{event_id}.jpg")
    assert r.status_code == 404 and "file is missing" in r.json()["error"]


def test_a_thumbnail_row_pointing_outside_the_folder_is_not_served(collector):
    secret = collector.cfg.collector.data_dir / "outside.jpg"
    secret.write_bytes(thumbnail_jpeg("leopard", 0))
    msg = detection(datetime.now(timezone.utc).timestamp() - 60, station_id="bars-03", deployment_id="bars-03-2026")
    collector.db.store_batch([msg], [], [], thumbnails=[ThumbnailRow(msg["event_id"], "bars-03", "../outside.jpg",
                                                                     10, 160, 120, "0" * 64)])
    assert collector.get(f"/thumbnails/{msg['event_id']}.jpg").status_code == 404


# -- the page and its headers --------------------------------------------------------

def test_every_answer_carries_the_security_headers(collector):
    for path in ("/", "/static/dashboard.js", "/api/stations", "/nope"):
        r = collector.client.get(path)
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert collector.client.get("/api/stations").headers["cache-control"] == "no-store"
    page = collector.client.get("/")
    assert page.headers["content-type"].startswith("text/html") and "/static/vendor/chart.umd.min.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN


def test_the_openapi_description_matches_the_routes(collector):
    described = set(collector.get("/api/openapi.json").json()["paths"])
    routes = {r.path for r in collector.server.app.routes if getattr(r, "methods", None)} - {"/", "/api/openapi.json"}
    assert described == routes


def test_the_vendored_chart_js_matches_its_provenance():
    vendor = Path(__file__).resolve().parents[1] / "station" / "collector" / "web" / "static" / "vendor"
    provenance = (vendor / "PROVENANCE").read_text()
    digest = hashlib.sha256((vendor / "chart.umd.min.js").read_bytes()).hexdigest()
    assert f"chart.umd.min.js sha256 {digest}" in provenance
    assert (vendor / "chart.js.LICENSE.md").read_text().startswith("The MIT License")


def test_the_server_reports_a_taken_port(collector):
    from station.collector.web import HttpServerError
    with pytest.raises(HttpServerError, match=f"cannot listen on 127.0.0.1:{collector.server.port}"):
        HttpServer(create_app(collector.cfg), port=collector.server.port).start()
    assert json.loads(collector.client.get("/healthz").text)["ok"]  # the running one is unharmed


def test_the_api_survives_its_postgresql_connections_being_cut(db_url, tmp_path):
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite is opened per request")
    import psycopg
    name = f"camtrap-api-{tmp_path.name[-12:]}"
    with start_collector(f"{db_url}&application_name={name}", tmp_path) as c:
        assert c.get("/api/stations").status_code == 200  # leaves a pooled connection
        with psycopg.connect(db_url.split("?")[0], autocommit=True) as admin:  # as a server restart would
            cut = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = %s", (name,)).fetchall()
        assert len(cut) >= 1
        r = c.get("/api/stations")
        assert r.status_code == 200 and len(r.json()["items"]) == len(PLACES)


def test_the_curl_examples_in_the_docs_work(collector, tmp_path):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    doc = (Path(__file__).resolve().parents[1] / "docs" / "collector-api.md").read_text()
    block = doc.split("## Examples", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if line.startswith("curl ")]
    assert len(lines) >= 8
    event_id = next(iter(collector.night.thumbnails))
    env = {"PATH": os.environ["PATH"], "COLLECTOR": collector.server.url, "TOKEN": TOKEN, "EVENT_ID": event_id}
    for line in lines:
        run = subprocess.run(["bash", "-c", f"{line} -w '\\n%{{http_code}}'"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=30)
        body, _, code = run.stdout.rpartition("\n")
        assert (run.returncode, code) == (0, "200"), (line, run.stdout, run.stderr)
        if " -o " not in line:
            answer = json.loads(body)
            if "/api/stations" in line:
                assert answer["location_generalised"] is ("Bearer" not in line)
    assert (tmp_path / "leopard.jpg").read_bytes() == collector.night.thumbnails[event_id]


def test_many_researchers_at_once_each_get_their_answer(collector):
    """Handlers run on worker threads; each request has its own connection (or a pooled one)."""
    from concurrent.futures import ThreadPoolExecutor
    paths = ["/api/stations", "/api/detections", "/api/species", "/api/diel"] * 10
    with ThreadPoolExecutor(8) as pool, httpx.Client(base_url=collector.server.url, timeout=20) as client:
        answers = list(pool.map(client.get, paths))
    assert [a.status_code for a in answers] == [200] * len(paths)
    totals = {a.json()["total"] for a, path in zip(answers, paths) if path == "/api/detections"}
    assert totals == {len(collector.night.detections)}


# -- rows that break today's rules, stored by an older collector -------------------------

def test_rows_an_older_collector_let_in_never_break_an_answer(collector):
    c = collector
    engine = c.db.dialect.name
    recent = datetime.now(timezone.utc).timestamp() - 3600  # newer than the night: on the dashboard's first page
    hostile = stored_hostile_detections(engine, start=recent)
    for payload, text in hostile.values():
        store_as_an_old_collector_did(c.db, payload, text)
    bad_ids = {p["event_id"] for p, _ in hostile.values()}
    good_ids = set(c.night.ids())
    # a station row and a heartbeat no JSON answer could carry
    c.db._exec("UPDATE stations SET coordinate_uncertainty_m = %(inf)s WHERE station_id = 'bars-03'",
               {"inf": float("inf")})
    if engine == "sqlite":
        beat = health(datetime.now(timezone.utc).timestamp(), station_id="kedrovaya-01")
        text = json.dumps(beat).replace('"cpu_temperature_c": 48.5', '"cpu_temperature_c": NaN')
        c.db.store_batch([], [], [__import__("station.collector.db", fromlist=["Payload"]).Payload(
            json.loads(text), text)])
    for token in (None, TOKEN):
        # the dashboard's own call, the default page and the whole list
        for params in ({"limit": "24"}, {}, {"limit": "1000"}):
            r = c.get("/api/detections", token=token, **params)
            assert r.status_code == 200, (params, r.text[:300])
            body = r.json()
            shown = {d["event_id"] for d in body["items"]}
            assert not shown & bad_ids and set(body["skipped"]) <= bad_ids
            if params.get("limit") == "1000":
                assert set(body["skipped"]) == bad_ids and shown == good_ids
            assert ("skipped_problems" in body) is (token is not None)
        for event_id in bad_ids:
            r = c.get(f"/api/detections/{event_id}", token=token)
            assert r.status_code == 422 and r.json()["event_id"] == event_id, r.text[:300]
            assert "breaks the feed's rules" in r.json()["error"]
        stations = c.get("/api/stations", token=token)
        assert stations.status_code == 200, stations.text[:300]
        items = {s["station_id"]: s for s in stations.json()["items"]}
        assert items["bars-03"]["latitude"] is None and "bars-03" in stations.json()["skipped"]
        if engine == "sqlite":
            assert items["kedrovaya-01"]["health"] is None and "kedrovaya-01" in stations.json()["skipped"]
        for path in ("/api/species", "/api/diel", "/api/diel?tz=UTC", "/api/collector"):
            r = c.client.get(path, headers={"Authorization": f"Bearer {token}"} if token else {})
            assert r.status_code == 200, (path, r.text[:300])
        assert c.get("/api/diel", token=token).json()["outside_window"] == 1  # the row dated 9999
    problems = {p["event_id"]: p["problem"] for p in
                c.get("/api/detections", token=TOKEN, limit="1000").json()["skipped_problems"]}
    named = {name: problems[payload["event_id"]] for name, (payload, _) in hostile.items()}
    assert "coordinate_uncertainty_m" in named["overflowing uncertainty"]
    assert "trigger" in named["second 60 in the trigger"] and "extra" in named["a 400 KB extra"]
    assert "frames[0].time" in named["31 February in a still"]
    if engine == "sqlite":
        assert "classification_error" in named["lone surrogate in the error"]
        assert "taxonomy.region" in named["lone surrogate in the region"]


def test_a_station_whose_clock_runs_ahead_is_flagged_in_the_api(collector):
    now = datetime.now(timezone.utc).timestamp()
    ahead = now + 2 * 365 * 86400
    future = detection(ahead, station_id="bars-03", deployment_id="bars-03-2026")
    collector.db.store_batch([future], [status("online", "started", ahead, ahead, station_id="bars-03")], [])
    items = {s["station_id"]: s for s in collector.get("/api/stations").json()["items"]}
    bars = items["bars-03"]
    assert bars["clock_skew_s"] == pytest.approx(2 * 365 * 86400, abs=120) and bars["clock_skew_at"]
    assert bars["status"]["since"] <= datetime.now(timezone.utc).isoformat() and bars["silent_s"] < 60
    assert items["lazovsky-07"]["clock_skew_s"] is None and items["lazovsky-07"]["clock_skew_at"] is None
    item = collector.get(f"/api/detections/{future['event_id']}").json()["item"]
    assert item["clock_skew_s"] == pytest.approx(2 * 365 * 86400 + 5, abs=120)
    assert all(d["clock_skew_s"] is None for d in collector.get("/api/detections").json()["items"]
               if d["event_id"] != future["event_id"])


def test_a_thumbnail_stored_before_re_encoding_reaches_the_browser_without_its_metadata(collector):
    """Files an older collector kept as the station sent them are cleaned as they go out."""
    event_id, path = next(iter(collector.night.thumbnail_files.items()))
    jpeg = collector.night.thumbnails[event_id]
    eoi = len(jpeg) - 2
    path.write_bytes(jpeg[:eoi] + b"\xff\xe1\x00\x1aExif\x00\x00GPS 43.2412N 133.8857E" + jpeg[eoi:]
                     + b"GPS 43.2412N")
    r = collector.get(f"/thumbnails/{event_id}.jpg")
    assert r.status_code == 200 and b"GPS" not in r.content and b"Exif" not in r.content
    from station.feed.messages import jpeg_size
    assert jpeg_size(r.content) == (160, 120)
    again = collector.client.get(f"/thumbnails/{event_id}.jpg", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
