"""Test data and database fixtures shared by the collector's tests.

Test data is contract data: detections are built from closed event records by the
station's own detection_message() and validated like the collector will validate them.
``db_url`` / ``db`` run a test on SQLite and on the PostgreSQL server at PG_URL (trust
auth; each test gets a fresh schema). A test module uses them by importing ``db_url``,
``db`` and ``pytest_generate_tests`` from here.
"""

from __future__ import annotations

import contextlib

import uuid
from urllib.parse import quote

import pytest

from station.collector.db import Database
from station.config import parse_config
from station.events.ids import new_event_id
from station.events.model import iso
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
              label: str | None = None, confidence: float = 0.81, **where) -> dict:
    """detection/1 for a hand-made closed event record (docs/event-store.md); ``label``
    defaults to the species, ``where`` goes to :func:`station` (latitude, longitude, ...)."""
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
