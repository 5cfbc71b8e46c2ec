"""The station page in a real headless Chromium, served by the real collector service on a
real Mosquitto: the timeline, effort and readings of a station whose life was planned
(tests/fieldhealth_data.py), and "a picture now" from request to picture, answered by a
station on the broker that speaks the feed's own messages.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from station.collector.db import Database
from station.collector.service import CollectorService
from station.config.collector import parse_collector_config
from station.feed import messages as m
from station.feed.topics import Topics
from tests.broker import broker  # noqa: F401 (fixture)
from tests.collector_data import detection
from tests.fieldhealth_data import PLAN, seed_life
from tests.test_collector_api import TOKEN
from tests.test_dashboard_browser import CHROMIUM, Problems, browser  # noqa: F401 (fixture)

STATION = "lazovsky-07"
TIMELINE = """() => [...document.querySelectorAll('#timeline .seg')].map(s => [s.dataset.state,
                    parseFloat(s.style.left), parseFloat(s.style.width)])"""
CHART = """() => Chart.getChart(document.getElementById('health-chart')).data.datasets.map(d => [d.label,
                 d.data.map(p => p.y)])"""
FRAME_LOADED = """() => { const img = document.getElementById('snapshot-image');
                          return !img.hidden && img.complete && img.naturalWidth > 0; }"""


class FieldStation:
    """A station on the broker: answers a snapshot command as the station's feed does (a
    command_result naming the event, then the event's detection and thumbnail)."""

    def __init__(self, broker: Any):  # noqa: F811
        self.topics = Topics(STATION)
        self.asked: list[dict] = []
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=STATION,
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(self.topics.commands, qos=1)
        assert subscribed.wait(10)

    def _on_message(self, client, userdata, message) -> None:
        command = m.parse_command(message.payload, topic_command="snapshot", station_id=STATION)
        self.asked.append({"request_id": command.request_id, "sent_by": command.sent_by})
        event = detection(time.time() - 1, "blank", None)
        frame = np.full((240, 320, 3), (40, 90, 50), np.uint8)
        frame[100:140, 140:200] = (30, 140, 220)
        jpeg = m.make_thumbnail(frame)
        for topic, msg in ((self.topics.command_result, m.command_result(STATION, command.request_id, "snapshot",
                                                                          True, "snapshot taken",
                                                                          event_id=event["event_id"])),
                           (self.topics.detection, event),
                           (self.topics.thumbnail, m.thumbnail_message(event["event_id"], jpeg, station_id=STATION))):
            client.publish(topic, m.encode(msg), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def collector(tmp_path: Path, broker) -> Iterator[tuple[CollectorService, Any]]:  # noqa: F811
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    cfg = parse_collector_config({
        "collector": {"id": "c1", "data_dir": str(tmp_path / "data")},
        "mqtt": {"host": broker.host, "port": broker.port},
        "http": {"port": 0, "token_file": str(tokens), "timezone": "Asia/Vladivostok"}})
    service = CollectorService.build(cfg)
    start = float(int(time.time() - sum(mins for _, mins in PLAN) * 60 - 30))
    with Database.open(cfg.collector.sqlite_resolved_url()) as db:
        life = seed_life(db, STATION, start)
    service.start()
    assert service.ingest.wait_subscribed(10)
    try:
        yield service, life
    finally:
        service.stop()


def test_a_ranger_reads_a_stations_day_and_asks_it_for_a_picture(browser, collector, broker):  # noqa: F811
    service, life = collector
    station = FieldStation(broker)
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.set_default_timeout(15_000)
    problems = Problems(page)
    try:
        # from the dashboard's station table to the station's page
        page.goto(f"{service.url}?refresh=60")
        page.click(f'#stations a[href="/stations/{STATION}"]')
        page.wait_for_url(f"**/stations/{STATION}")
        page.wait_for_selector("body[data-refreshes]")
        page.select_option("#window", "1")                    # the last 24 hours
        page.wait_for_function("() => document.body.dataset.refreshes >= 2")

        # the timeline: the planned states, in order, each as wide as its share of the window
        drawn = page.evaluate(TIMELINE)
        assert [s for s, _, _ in drawn] == [s for s, _, _ in life.segments]
        for (state, left, width), (_, a, b), following in zip(drawn, life.segments, drawn[1:]):
            assert width == pytest.approx(100 * (b - a) / 86400, abs=0.01), state
            assert following[1] == pytest.approx(left + width, abs=0.001)  # no gap, no overlap
        assert drawn[-1][2] >= 100 * (life.segments[-1][2] - life.segments[-1][1]) / 86400  # watching until now
        assert drawn[0][1] == pytest.approx(100 * (1 - (time.time() - life.start) / 86400), abs=0.1)

        # effort and downtime, as the plan says
        shown = {k: float(page.inner_text(f"#{k}").split()[0]) for k in ("camera-days", "sleeping-days", "down-days")}
        planned_down = sum(life.seconds[s] for s in ("camera_failed", "tampered", "silent", "offline"))
        assert shown == pytest.approx({"camera-days": life.seconds["online"] / 86400,
                                       "sleeping-days": life.seconds["sleeping"] / 86400,
                                       "down-days": planned_down / 86400}, abs=0.0051)  # two decimals
        down = page.eval_on_selector_all("#downtime li", "items => items.map(i => i.dataset.state)")
        assert down == ["camera_failed", "tampered", "silent", "offline"]

        # battery and temperature, read back from Chart.js: every plausible reading, no impossible one
        series = dict(page.evaluate(CHART))
        assert series["CPU temperature (°C)"] == [v for _, v in life.temperatures]
        assert series["Battery (V)"] == [v for _, v in life.batteries]
        assert f"{len(life.implausible_at)} heartbeat(s) carried impossible values" in page.inner_text("#implausible")
        assert page.inner_text('[data-fact="status"]') == "online"
        assert page.is_visible("#problems-none")

        # a picture now: first without a token, then with one
        page.click("#snapshot-button")
        page.wait_for_selector('#snapshot-state[data-state="refused"]')
        assert "needs an access token" in page.inner_text("#snapshot-state")
        assert station.asked == []
        page.fill("#token", TOKEN)
        page.click("#token-form button[type=submit]")
        page.wait_for_function("() => !document.getElementById('snapshot-button').disabled")
        page.click("#snapshot-button")
        page.wait_for_selector('#snapshot-state[data-state="taken-picture"]')
        page.wait_for_function(FRAME_LOADED)
        assert page.evaluate("() => document.getElementById('snapshot-image').src.startsWith('blob:')")
        assert page.evaluate("() => document.getElementById('snapshot-image').naturalWidth") == 320
        assert len(station.asked) == 1 and "collector c1" in station.asked[0]["sent_by"]
        assert "Taken at" in page.inner_text("#snapshot-state")
        page.screenshot(path=str(service.cfg.collector.data_dir.parent / "station-page.png"), full_page=True)
        assert [p for p in problems.items if "401" not in p] == []
    finally:
        page.close()
        station.close()
    assert service.stats()["snapshots"]["answered"] == 1
