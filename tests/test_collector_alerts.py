"""Ranger alerts through real Apprise, over real HTTP, to a server each test runs on a free port.

Apprise's ``json://`` plugin POSTs {"title", "message", "type", ...}; the server records what it
receives. Detections are real detection/1 payloads (tests/collector_data.py's builder); the
rate limit runs on a clock the test moves by hand.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from station.collector.alerts import Alerter, load_targets, send_test_alerts
from station.config import ConfigError
from station.config.collector import parse_collector_config
from tests.collector_data import T0, detection

COORDINATES = re.compile(r"(?<!\d)(43|133)[.,]\d")  # the builder's station sits at 43.2412, 133.8857


class Rangers:
    """An HTTP endpoint recording every notification; ``hang`` holds each reply until released."""

    def __init__(self, hang: bool = False):
        self.bodies: list[bytes] = []
        self.release = threading.Event()
        if not hang:
            self.release.set()
        rangers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                rangers.bodies.append(body)
                rangers.release.wait(10)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def messages(self) -> list[dict]:
        return [json.loads(b) for b in list(self.bodies)]

    @property
    def titles(self) -> list[str]:
        return [m["title"] for m in self.messages]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rangers():
    server = Rangers()
    yield server
    server.close()


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def dead_url() -> str:
    """A json:// URL to a port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"json://127.0.0.1:{port}/secret-token-0000"


def alerter(*urls: str, clock=None, **alerts) -> Alerter:
    section = parse_collector_config({"alerts": {"urls": list(urls), "timeout_s": 5, **alerts}}).alerts
    return Alerter.from_config(section, clock=clock or Clock(T0 + 30), retry_delay_s=0.05, poll_s=0.02,
                               timezone="Asia/Vladivostok")


def wait_for(condition, what: str, within: float = 8.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting for {what}")
        time.sleep(0.01)


def no_coordinates(server: Rangers) -> None:
    for body in server.bodies:
        assert not COORDINATES.search(body.decode()), body


# -- what reaches the rangers ----------------------------------------------------------------

def test_leopard_tiger_human_and_vehicle_reach_the_rangers_prey_and_blank_do_not(rangers):
    alerts = alerter(rangers.url, dashboard_url="https://camtrap.example/events/{event_id}")
    leopard = detection(T0, "leopard", "leopard")
    alerts.submit([leopard, detection(T0, "prey", "wild boar"), detection(T0 + 1, "tiger", "tiger"),
                   detection(T0 + 2, "blank", None), detection(T0 + 3, "human", None),
                   detection(T0 + 4, "vehicle", None)])
    alerts.stop()
    assert sorted(rangers.titles) == ["Human at lazovsky-07", "Leopard at lazovsky-07", "Tiger at lazovsky-07",
                                      "Vehicle at lazovsky-07"]
    body = next(m["message"] for m in rangers.messages if m["title"].startswith("Leopard"))
    assert "confidence 81%" in body
    assert "2026-11-25 18:02:12 UTC (2026-11-26 04:02:12 Asia/Vladivostok)" in body  # the trigger time
    assert leopard["event_id"] in body
    assert f"https://camtrap.example/events/{leopard['event_id']}" in body
    assert "LATE" not in body
    assert alerts.stats()["sent"] == 4 and alerts.stats()["failed"] == 0
    no_coordinates(rangers)


def test_detections_below_min_confidence_stay_quiet(rangers):
    alerts = alerter(rangers.url, min_confidence=0.9)
    sure = {**detection(T0 + 1, "tiger", "tiger", station_id="lazovsky-03"), "confidence": 0.95}
    alerts.submit([detection(T0, "leopard", "leopard"), sure])  # the builder's leopard: 0.81
    alerts.stop()
    assert rangers.titles == ["Tiger at lazovsky-03"]


def test_a_station_that_was_offline_says_its_leopard_is_late(rangers):
    alerts = alerter(rangers.url, clock=Clock(T0 + 1 + 3 * 3600 + 5 * 60))  # after the trigger
    alerts.submit([detection(T0, "leopard", "leopard")])
    alerts.stop()
    assert "LATE: recorded 3 h 05 min before it arrived (the station was offline" in rangers.messages[0]["message"]
    no_coordinates(rangers)


# -- the rate limit ---------------------------------------------------------------------------

def test_second_leopard_within_the_interval_waits_for_a_summary_with_the_count(rangers):
    clock = Clock(T0 + 30)
    alerts = alerter(rangers.url, clock=clock, min_interval_s=600)
    alerts.submit([detection(T0, "leopard", "leopard")])
    wait_for(lambda: len(rangers.bodies) == 1, "the first leopard")
    clock.now += 60
    second = detection(T0 + 60, "leopard", "leopard")
    alerts.submit([second, detection(T0 + 61, "leopard", "leopard", station_id="lazovsky-08"),
                   detection(T0 + 62, "tiger", "tiger")])
    wait_for(lambda: len(rangers.bodies) == 3 and alerts.stats()["suppressed"] == 1, "the other two alerts")
    assert rangers.titles[1:] == ["Leopard at lazovsky-08", "Tiger at lazovsky-07"]

    clock.now = T0 + 30 + 600  # the interval of the first leopard ends: the held one is summarised
    wait_for(lambda: len(rangers.bodies) == 4, "the summary")
    summary = rangers.messages[3]
    assert summary["title"] == "Leopard at lazovsky-07 (+1 more since 18:02 UTC)"
    assert "1 more leopard detection(s) at lazovsky-07 since the alert at 18:02 UTC" in summary["message"]
    assert second["event_id"] in summary["message"]

    clock.now += 120  # the summary opened a new interval: this one is held, and stop() sends it
    alerts.submit([detection(T0 + 700, "leopard", "leopard")])
    wait_for(lambda: alerts.stats()["suppressed"] == 2, "the third leopard to be held")
    assert len(rangers.bodies) == 4
    alerts.stop()
    assert rangers.titles[4] == "Leopard at lazovsky-07 (+1 more since 18:12 UTC)"
    assert alerts.stats() | {"queued": 0} == {"sent": 5, "failed": 0, "retried": 0, "suppressed": 2,
                                               "summaries": 2, "dropped": 0, "queued": 0}
    no_coordinates(rangers)


def test_without_an_interval_every_leopard_goes_out(rangers):
    alerts = alerter(rangers.url, min_interval_s=0)
    alerts.submit([detection(T0, "leopard", "leopard"), detection(T0 + 5, "leopard", "leopard")])
    alerts.stop()
    assert rangers.titles == ["Leopard at lazovsky-07"] * 2


# -- failures never stop the collector --------------------------------------------------------

@pytest.fixture
def station_log():
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("station")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_dead_endpoint_counts_a_failure_and_the_others_still_hear(rangers, station_log):
    dead = dead_url()
    alerts = alerter(dead, rangers.url, min_interval_s=0)
    alerts.submit([detection(T0, "leopard", "leopard")])
    wait_for(lambda: alerts.stats()["failed"] == 1 and len(rangers.bodies) == 1, "the first alert")
    alerts.submit([detection(T0 + 9, "tiger", "tiger")])
    alerts.stop()
    assert rangers.titles == ["Leopard at lazovsky-07", "Tiger at lazovsky-07"]
    assert alerts.stats()["failed"] == 2 and alerts.stats()["retried"] == 2 and alerts.stats()["sent"] == 2
    failures = [r for r in station_log if r.getMessage() == "alert failed after one retry"]
    assert [r.fields["service"] for r in failures] == ["JSON", "JSON"]
    assert [r.fields["key"] for r in failures] == ["alerts.urls[0]"] * 2
    logged = " ".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in station_log)
    assert "secret-token-0000" not in logged


def test_submit_never_waits_for_an_endpoint_that_hangs():
    hanging = Rangers(hang=True)
    try:
        section = parse_collector_config({"alerts": {"urls": [hanging.url], "min_interval_s": 0}}).alerts
        alerts = Alerter.from_config(section, clock=Clock(T0 + 30), queue_size=2, poll_s=0.02)
        alerts.submit([detection(T0, "leopard", "leopard")])
        wait_for(lambda: len(hanging.bodies) == 1, "the worker to be stuck in the first request")
        alerts.submit([detection(T0 + k, "leopard", "leopard", station_id=f"lazovsky-{k:02d}")
                       for k in range(1, 6)])  # two fit the queue; three are dropped, none waits
        assert alerts.stats()["dropped"] == 3 and alerts.stats()["queued"] == 2
        hanging.release.set()
        alerts.stop()
        assert len(hanging.bodies) == 3 and alerts.stats()["sent"] == 3
    finally:
        hanging.close()


# -- configuration ----------------------------------------------------------------------------

def test_config_errors_name_the_key_and_never_the_secret(tmp_path, rangers):
    section = parse_collector_config({"alerts": {"urls": [rangers.url, "nope://bot-secret-42"]}}).alerts
    with pytest.raises(ConfigError) as err:
        Alerter.from_config(section)
    assert err.value.problems == ["alerts.urls[1]: not a URL Apprise understands (scheme 'nope'; "
                                  "see https://github.com/caronc/apprise/wiki)"]
    assert "bot-secret-42" not in str(err.value)

    missing = tmp_path / "missing.txt"
    with pytest.raises(ConfigError, match=r"alerts.urls_file = '.*missing.txt': cannot read it"):
        Alerter.from_config(parse_collector_config({"alerts": {"urls_file": str(missing)}}).alerts)

    listed = tmp_path / "urls.txt"
    listed.write_text(f"# rangers\n{rangers.url}\n\nsecret-without-scheme\n")
    with pytest.raises(ConfigError) as err:
        Alerter.from_config(parse_collector_config({"alerts": {"urls_file": str(listed)}}).alerts)
    assert err.value.problems == [f"alerts.urls_file ({listed}) line 4: not a URL Apprise understands "
                                  "(no scheme://; see https://github.com/caronc/apprise/wiki)"]
    assert "secret-without-scheme" not in str(err.value)


def test_urls_file_targets_and_the_alerts_test_command(tmp_path, rangers, capsys):
    listed = tmp_path / "urls.txt"
    listed.write_text(f"# rangers on duty\n{rangers.url}\n{dead_url()}\n")
    config = tmp_path / "collector.toml"
    config.write_text(f'[alerts]\nurls_file = "{listed}"\ntimeout_s = 5\n')
    assert send_test_alerts(config) == 1
    out = capsys.readouterr().out
    assert f"alerts.urls_file ({listed}) line 2: JSON: OK" in out
    assert f"alerts.urls_file ({listed}) line 3: JSON: FAILED" in out
    assert rangers.titles == ["Test alert"]

    listed.write_text(f"{rangers.url}\n")
    assert send_test_alerts(config) == 0


def test_the_docs_example_configures_telegram_and_e_mail(tmp_path):
    doc = (Path(__file__).resolve().parents[1] / "docs" / "alerts.md").read_text()
    toml = re.search(r"```toml\n(.*?)```", doc, re.S).group(1)
    urls = re.search(r"```text\n(.*?)```", doc, re.S).group(1)
    (tmp_path / "alert-urls").write_text(urls)
    data = tomllib.loads(toml)
    data["alerts"]["urls_file"] = str(tmp_path / "alert-urls")
    section = parse_collector_config(data).alerts
    assert [(t.key.rsplit(" ", 1)[1], t.service) for t in load_targets(section)] == [("2", "Telegram"),
                                                                                     ("4", "E-Mail")]
    assert section.min_interval_s == 900 and section.tags == ["leopard", "tiger", "human", "vehicle"]
