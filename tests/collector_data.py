"""Test data and database fixtures shared by the collector's tests.

Test data is contract data: detections are built from closed event records by the
station's own detection_message() and validated like the collector will validate them.
``db_url`` / ``db`` run a test on SQLite and on the PostgreSQL server at PG_URL (trust
auth; each test gets a fresh schema). A test module uses them by importing ``db_url``,
``db`` and ``pytest_generate_tests`` from here.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from urllib.parse import quote

import pytest

from station.collector.db import Database, Payload
from station.config import parse_config
from station.events.ids import new_event_id
from station.times import iso
from station.feed import messages as m
from station.feed.schema import validate_message

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
T0 = 1_795_629_731.4  # 2026-11-25T18:02:11.400Z
DEPLOYMENT = "lazovsky-07-2026-autumn"
MODEL = {"name": "efficientnet_lite0_imagenet/int8",
         "sha256": "25f3843f227663ded2bcca58c1d98fe103edb8e069ee6a2d8ed3f4c76622399d"}


def station(station_id: str = "lazovsky-07", deployment_id: str = DEPLOYMENT, *, latitude: float = 43.2412,
            longitude: float = 133.8857, **extra):
    """A station's [station] section; ``extra`` sets further keys (coordinate_uncertainty_m, camera_*)."""
    return parse_config({"station": {"id": station_id, "deployment_id": deployment_id, "latitude": latitude,
                                      "longitude": longitude, "camera_height_m": 0.8, **extra}}).station


def detection(start: float, tag: str = "leopard", species: str | None = "leopard", *,
              station_id: str = "lazovsky-07", deployment_id: str = DEPLOYMENT, failed: bool = False,
              label: str | None = None, confidence: float = 0.81, clip: bool = False, **where) -> dict:
    """detection/1 for a hand-made closed event record (docs/event-store.md); ``label``
    defaults to the species, ``where`` goes to :func:`station` (latitude, longitude, ...);
    ``clip``: the station keeps a video of the event."""
    event_id = new_event_id(start)
    frames = [{"index": k, "file": f"{k:03d}.jpg", "time": iso(start + 0.5 * k), "timestamp": start + 0.5 * k,
               "pre_trigger": k < 2, "motion_score": 0.02 * k, "boxes": [[0.1, 0.42, 0.21, 0.18]] if k >= 2 else []}
              for k in range(4)]
    record = {"schema": 1, "id": event_id, "station_id": station_id, "deployment_id": deployment_id,
              "status": "closed", "camera": "picamera2", "trigger_source": "motion",
              "start": iso(start), "trigger": iso(start + 1), "end": iso(start + 1.5),
              "start_timestamp": start, "trigger_timestamp": start + 1, "end_timestamp": start + 1.5,
              "end_reason": "motion_ended", "pre_trigger_s": 1.0, "motion_frames": 2,
              "peak_motion_score": 0.06, "frames_dropped": 0, "frames": frames}
    if clip:
        record["clip"] = {"file": "clip.mp4", "mediatype": "video/mp4", "start": iso(start), "end": iso(start + 1.5),
                          "start_timestamp": start, "end_timestamp": start + 1.5, "duration_s": 1.6, "frames": 16}
    if not failed:
        record["classification"] = {
            "status": "ok", "tag": tag, "species": species, "label": label or species, "confidence": confidence,
            "top_k": [{"label": label or species or "empty", "tag": tag, "p": 0.62}] if tag != "unknown" else [],
            "best_frame": "002.jpg", "best_box": [0.1, 0.42, 0.21, 0.18], "model": MODEL,
            "taxonomy": {"file": "taxonomy.toml", "region": "russian_far_east"}}
    msg = m.detection_message(record, station(station_id, deployment_id, **where), sent_at=start + 5)
    assert validate_message(msg) == "detection"
    return msg


def status(state: str, reason: str, since: float, sent_at: float | None = None,
           station_id: str = "lazovsky-07") -> dict:
    msg = (m.will_message(station_id, since) if reason == "connection_lost"
           else m.status_message(station_id, state, reason, since, sent_at=sent_at))
    assert validate_message(msg) == "status"
    return msg


def health(sent_at: float, temperature: float | None = 48.5, station_id: str = "lazovsky-07") -> dict:
    msg = m.health_message(
        station_id, uptime_s=3600, cpu_temperature_c=temperature, load=(0.5, 0.4, 0.3),
        memory={"total_mb": 3794, "available_mb": 2900.5, "process_rss_mb": 140.2},
        disk={"free_mb": 51000.0, "store_mb": 800.0, "low": False},
        outbox={"depth": 0, "detections": 0, "thumbnails": 0, "oldest_age_s": None, "bytes": 0, "cap_mb": 64.0,
                "full": False, "thumbnails_dropped": 0, "detections_dropped": 0},
        camera={"state": "ok", "uri": "picamera2:0", "fps": 9.8, "failures": 0},
        events={"total": 12, "pending_classification": 0},
        clock={"synchronized": True, "source": "timedatectl", "offset_s": None}, sent_at=sent_at)
    assert validate_message(msg) == "health"
    return msg


# -- the two engines ----------------------------------------------------------------

_pg_problem: list[str] = []  # why PostgreSQL cannot be used, found once per session


def _postgres_admin():
    psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed: no PostgreSQL tests")
    if _pg_problem:
        pytest.skip(_pg_problem[0])
    try:
        return psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _pg_problem.append(f"PostgreSQL at {PG_URL} is unreachable: {str(exc).strip().splitlines()[0]}")
        pytest.skip(_pg_problem[0])


@contextlib.contextmanager
def postgres_schema():
    """The URL of a fresh schema on the real PostgreSQL, dropped afterwards (skips without one)."""
    admin = _postgres_admin()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options={quote(f'-csearch_path={schema}')}"
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture
def db_url(request, tmp_path):
    if request.param == "sqlite":
        (tmp_path / "collector").mkdir(exist_ok=True)
        yield f"sqlite:///{tmp_path}/collector/camtrap.db"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
def pg_url():
    """PostgreSQL only (shared subscriptions, connection loss, what only PostgreSQL refuses)."""
    with postgres_schema() as url:
        yield url


@pytest.fixture
def db(db_url):
    database = Database.open(db_url)
    database.migrate()
    yield database
    database.close()


def pytest_generate_tests(metafunc):
    if "db_url" in metafunc.fixturenames:
        metafunc.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)


# -- rows an older collector stored, that break today's rules ----------------------------

def stored_hostile_detections(engine: str, start: float = T0 + 86400) -> dict[str, tuple[dict, str]]:
    """What a collector before issue 15 let in, by name: (the payload as the database takes it,
    its JSON text). Only what ``engine`` can hold: PostgreSQL's JSONB refuses NaN, Infinity,
    lone surrogates and NUL itself, so those are SQLite's alone; 1e309 it keeps as a
    310-digit number."""
    cases: dict[str, str] = {}

    def add(name: str, msg: dict, *swaps: tuple[str, str]) -> None:
        text = m.encode(msg).decode()
        for old, new in swaps:
            assert old in text, old
            text = text.replace(old, new, 1)
        cases[name] = text

    def make(k: int, **changes) -> dict:
        return detection(start + 60 * k) | changes

    def year_9999(msg: dict) -> dict:
        moved = {k: "9999" + msg[k][4:] for k in ("start", "trigger", "end", "sent_at")}
        return msg | moved | {"frames": [f | {"time": "9999" + f["time"][4:]} for f in msg["frames"]]}

    add("overflowing uncertainty", make(0), ('"coordinate_uncertainty_m":null', '"coordinate_uncertainty_m":1e309'))
    one = make(1)
    add("second 60 in the trigger", one | {"trigger": one["trigger"][:17] + "60.000Z"})
    two = make(2)
    add("31 February in a still", two | {"frames": [two["frames"][0] | {"time": "2026-02-31T00:00:00.000Z"}]
                                         + two["frames"][1:]})
    add("dated 9999", year_9999(make(3)))
    add("a 400 KB extra", make(4, extra={"blob": "x" * 400_000}))
    five = make(5)
    add("the end before the start", five | {"end": five["start"], "start": five["end"], "trigger": five["end"],
                                            "duration_s": 0})
    if engine == "sqlite":
        add("NaN duration", make(6), ('"duration_s":1.5', '"duration_s":NaN'))
        add("infinite camera height", make(7), ('"height_m":0.8', '"height_m":Infinity'))
        add("lone surrogate in the error", detection(start + 480, "unknown", failed=True),
            ('"classification_error":"', '"classification_error":"\\ud800'))
        add("lone surrogate in a top-k label", make(9), ('"label":"leopard","tag"', '"label":"\\udc00","tag"'))
        add("lone surrogate in the region", make(10), ('"region":"russian_far_east"', '"region":"\\ud83d"'))
        add("NUL in the label", make(11), ('"label":"leopard","confidence"', '"label":"leo\\u0000pard","confidence"'))
    return {name: (json.loads(text), text) for name, text in cases.items()}


def store_as_an_old_collector_did(db: Database, payload: dict, text: str) -> None:
    """Straight into the database, past the intake (as before issue 15), the payload's text kept."""
    db.store_batch([Payload(payload, text)], [], [])
