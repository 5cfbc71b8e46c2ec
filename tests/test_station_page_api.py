"""The station page's API over the real HttpServer and a real database (SQLite and
PostgreSQL): one station, its problems, its timeline, effort and figures over a window,
every station's effort, and the picture requests' refusals (the request itself runs end to
end in tests/test_station_page_browser.py)."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from station import times
from station.collector.web import HttpServer, create_app
from tests.collector_data import db_url, pytest_generate_tests  # noqa: F401 (fixtures)
from tests.fieldhealth_data import PLAN, seed_life
from tests.test_collector_api import TOKEN, collector  # noqa: F401 (fixture)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def test_a_station_shows_its_problems_now_and_what_it_reports(collector):  # noqa: F811
    bars = collector.get("/api/stations/bars-03").json()
    assert bars["item"]["station_id"] == "bars-03" and bars["location_generalised"]
    assert bars["item"]["disk_low"] is True
    assert [p["rule"] for p in bars["problems"]] == ["disk"]
    assert "350 MB free" in bars["problems"][0]["detail"]
    assert bars["implausible"] == {"heartbeats": 0, "latest_fields": [], "latest_at": None}
    assert bars["snapshots"] is False                   # this app runs without the ingest
    kedrovaya = collector.get("/api/stations/kedrovaya-01").json()
    assert kedrovaya["item"]["online"] is False  # its will arrived just now: "gone" waits out alerts.gone_after_s
    assert kedrovaya["problems"] == []
    exact = collector.get("/api/stations/lazovsky-07", token=TOKEN).json()
    assert not exact["location_generalised"] and exact["item"]["latitude"] == 43.2412
    missing = collector.get("/api/stations/nowhere-99")
    assert missing.status_code == 404 and "nowhere-99" in missing.json()["error"]


def test_the_health_of_a_window_gives_the_timeline_effort_and_plausible_figures(collector):  # noqa: F811
    minutes = sum(m for _, m in PLAN)
    start = float(int(time.time() - minutes * 60 - 30))  # whole seconds: the window and the feed agree to the µs
    life = seed_life(collector.db, "tigrovaya-05", start)
    body = collector.get("/api/stations/tigrovaya-05/health", since=iso(start), until=iso(life.end)).json()
    assert [(s["state"], s["seconds"]) for s in body["timeline"]] == [(s, round(b - a, 1))
                                                                       for s, a, b in life.segments]
    assert body["interval_s"] == 60.0 and body["heartbeats"] == len(life.temperatures)
    assert body["effort"]["camera_days"] == pytest.approx(life.seconds["online"] / 86400, abs=1e-4)
    assert [d["state"] for d in body["effort"]["downtime"]] == ["camera_failed", "tampered", "silent", "offline"]
    assert [v for _, v in body["series"]["battery_v"]] == [v for _, v in life.batteries]
    assert body["implausible"] == len(life.implausible_at)
    page = collector.get("/api/stations/tigrovaya-05").json()
    assert page["implausible"]["heartbeats"] == len(life.implausible_at)
    assert page["interval_s"] == 60.0 and page["power"]["battery_v"] > 0

    default = collector.get("/api/stations/tigrovaya-05/health").json()   # the last 7 days, to now
    assert default["timeline"][0]["start"] == body["timeline"][0]["start"]
    assert default["timeline"][-1]["state"] == "online" and default["timeline"][-1]["end"] > body["until"]
    effort = collector.get("/api/effort", since=iso(start), until=iso(life.end)).json()
    by_station = {i["station_id"]: i for i in effort["items"]}
    assert set(by_station) == {"lazovsky-07", "kedrovaya-01", "bars-03", "tigrovaya-05"}
    assert by_station["tigrovaya-05"]["camera_days"] == body["effort"]["camera_days"]
    one = collector.get("/api/effort", station="tigrovaya-05", since=iso(start), until=iso(life.end)).json()
    assert [i["station_id"] for i in one["items"]] == ["tigrovaya-05"]


@pytest.mark.parametrize("params, parameter, words", [
    ({"since": "2026-11-25T00:00:00Z", "until": "2026-11-24T00:00:00Z"}, "until", "later than since"),
    ({"since": "2020-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since", "at most 400 days"),
    ({"window": "7"}, "window", "unknown parameter"),
    ({"since": "yesterday"}, "since", "not an RFC 3339 time"),
])
def test_a_bad_window_names_the_parameter(collector, params, parameter, words):  # noqa: F811
    r = collector.get("/api/stations/lazovsky-07/health", **params)
    assert r.status_code == 400 and r.json()["parameter"] == parameter and words in r.json()["error"]


def test_a_picture_needs_a_token_and_a_collector_that_talks_to_the_broker(collector):  # noqa: F811
    asked = collector.client.post("/api/stations/lazovsky-07/snapshots")
    assert asked.status_code == 401 and "needs a token" in asked.json()["error"]
    assert asked.headers["www-authenticate"].startswith("Bearer")
    with_token = collector.client.post("/api/stations/lazovsky-07/snapshots",
                                       headers={"Authorization": f"Bearer {TOKEN}"})
    assert with_token.status_code == 503 and "does not talk to the broker" in with_token.json()["error"]
    wrong = collector.client.post("/api/stations/lazovsky-07/snapshots", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert collector.client.delete("/api/stations/lazovsky-07/snapshots").status_code == 405
    assert collector.client.post("/api/stations").status_code == 405


def test_the_station_page_itself_is_served_like_the_dashboard(collector):  # noqa: F811
    page = collector.client.get("/stations/lazovsky-07")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "station.js" in page.text and page.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_the_page_api_answers_on_a_fixed_clock(tmp_path):
    """``create_app(clock=...)``: a test or a replay sees the page as of that time."""
    from tests.test_collector_api import collector_config
    from station.collector.db import Database
    from tests.collector_data import T0
    cfg = collector_config(f"sqlite:///{tmp_path}/c.db", tmp_path / "data")
    with Database.open(cfg.collector.sqlite_resolved_url()) as db:
        db.migrate()
        life = seed_life(db, "tigrovaya-05", T0)
    server = HttpServer(create_app(cfg, clock=lambda: life.end), port=0)
    server.start()
    try:
        import httpx
        body = httpx.get(f"{server.url}/api/stations/tigrovaya-05/health", timeout=10).json()
        assert body["until"] == times.format(life.end)
        assert sum(s["seconds"] for s in body["timeline"]) == pytest.approx(sum(m for _, m in PLAN) * 60)
    finally:
        server.stop()
