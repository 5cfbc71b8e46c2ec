"""``station demo``: the whole system on this machine, in a minute.

    broker (Mosquitto on a free port, or an embedded Python broker)
      ▲ detections, status, health, thumbnails (MQTT)
    two simulated stations (real daemon: synthetic camera, motion, events, TFLite classifier, feed)
      ▼
    collector (SQLite, HTTP API and dashboard) ── prints each detection as it is stored

Everything is the real code the field runs; only the cameras are simulated (the
synthetic forest scene, or real pictures from ``--pictures DIR`` walked across it).
Ctrl-C or ``--duration S`` stops it cleanly: stations close their open events and
deliver what they hold, the collector stores it, then the broker stops.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence
from zoneinfo import ZoneInfo

from station.config import parse_config
from station.feed.broker_process import BrokerError, Mosquitto, find_mosquitto, free_port, port_open
from station import times
from station.log import setup_logging

ZONE = "Asia/Vladivostok"
# Two game trails in Land of the Leopard National Park, Primorsky Krai (simulated).
STATIONS = [("demo-01", 43.105, 131.565, "simulated game trail"),
            ("demo-02", 43.162, 131.481, "simulated ridge path")]


def station_config(index: int, data_dir: Path, broker: Any, protocol: str, seed: int,
                   pictures: Path | None, speed: str) -> dict:
    station_id, lat, lon, place = STATIONS[index]
    camera = {"uri": f"synthetic:{seed + index}", "fps": 10, "speed": speed,
              "main_size": [640, 360], "lores_size": [320, 180]}
    if pictures is not None:
        camera["scene_pictures"] = str(pictures)
    return {
        "station": {"id": station_id, "deployment_id": f"{station_id}-simulated", "latitude": lat,
                    "longitude": lon, "location_name": place, "habitat": "synthetic mixed forest",
                    "camera_height_m": 0.8, "camera_heading_deg": 180, "feature_type": "trailGame"},
        "camera": camera,
        "storage": {"data_dir": str(data_dir / station_id), "min_free_mb": 50},
        "classifier": {"threads": 1},
        "mqtt": {"enabled": True, "host": broker.host, "port": broker.port, "protocol": protocol,
                 "thumbnails": True, "health_interval_s": 10, "reconnect_min_s": 0.5, "reconnect_max_s": 5},
        "logging": {"level": "warning"},
    }


def start_broker(kind: str, workdir: Path) -> tuple[Any, str, str]:
    """(broker, what it is, MQTT protocol to speak): Mosquitto when installed, else embedded."""
    if kind in ("auto", "mosquitto"):
        binary = find_mosquitto()
        if binary is not None:
            broker = Mosquitto(workdir, binary=binary).start()
            return broker, f"Mosquitto ({binary}) on {broker.host}:{broker.port}", "5"
        if kind == "mosquitto":
            raise BrokerError("--broker mosquitto: no mosquitto binary (apt install mosquitto)")
    from station.feed.embedded_broker import PROTOCOL, EmbeddedBroker

    broker = EmbeddedBroker().start()
    return broker, f"embedded Python broker (amqtt, MQTT {PROTOCOL}) on {broker.host}:{broker.port}", PROTOCOL


def http_port(wanted: int) -> int:
    if wanted and not port_open("127.0.0.1", wanted):
        return wanted
    return free_port()


def describe(payload: dict, zone: ZoneInfo) -> str:
    start = times.parse(payload["start"]).astimezone(zone)
    if payload["classification_status"] != "ok":
        what = f"classification failed: {payload.get('classification_error')}"
    else:
        species = payload.get("species")
        extra = f" ({species})" if species and species != payload["tag"] else ""
        what = f"{payload['tag']}{extra} {payload['confidence']:.2f}, model saw '{payload.get('label')}'"
    return (f"  detection  {payload['station_id']}  {start:%H:%M:%S}  {payload['duration_s']:5.1f} s  "
            f"{payload['frame_count']:3d} stills  -> {what}")


def run_demo(duration: float | None, data_dir: Path | None, seed: int, pictures: Path | None,
             speed: str = "realtime", broker_kind: str = "auto", port: int = 8080, out=sys.stdout) -> int:
    from station.collector.service import CollectorService
    from station.config.collector import parse_collector_config
    from station.collector.web.server import HttpServerError
    from station.daemon import StationDaemon

    if pictures is not None and not Path(pictures).is_dir():
        print(f"station demo: --pictures {pictures}: no such folder", file=sys.stderr)
        return 2
    data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="station-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    setup_logging("warning")
    zone = ZoneInfo(ZONE)
    try:
        broker, broker_text, protocol = start_broker(broker_kind, data_dir / "broker")
    except BrokerError as exc:
        print(f"station demo: {exc}", file=sys.stderr)
        return 2
    stored: list[dict] = []
    lock = threading.Lock()

    def on_stored(payloads: Sequence[dict]) -> None:
        with lock:
            for p in payloads:
                stored.append(p)
                print(describe(p, zone), file=out, flush=True)

    daemons: list[Any] = []
    collector = None
    stop = threading.Event()

    def handler(signum, _frame) -> None:
        stop.set()
        for d in daemons:
            d.stop()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        collector = CollectorService.build(parse_collector_config({
            "collector": {"id": "demo", "data_dir": str(data_dir / "collector")},
            "mqtt": {"host": broker.host, "port": broker.port, "protocol": protocol},
            "http": {"host": "127.0.0.1", "port": http_port(port), "timezone": ZONE},
            "logging": {"level": "warning"}}, "station demo"), on_stored=on_stored)
        try:
            collector.start()
        except HttpServerError as exc:
            print(f"station demo: the dashboard cannot start: {exc} (try --port 0 for any free port)",
                  file=sys.stderr)
            return 2
        if not collector.ingest.wait_subscribed(15):
            print("station demo: the collector could not subscribe to the broker", file=sys.stderr)
            return 1
        if stop.is_set():
            return 130
        configs = [parse_config(station_config(k, data_dir, broker, protocol, seed, pictures, speed), "station demo")
                   for k in range(len(STATIONS))]
        for cfg in configs:
            daemon = StationDaemon.build(cfg)
            daemon.finish_on_stop = True  # Ctrl-C: classify and deliver what was seen, then stop
            daemons.append(daemon)
        if stop.is_set():
            return 130
        print(f"Broker:    {broker_text}", file=out)
        print(f"Dashboard: {collector.url}  (open it in a browser; it lives as long as the demo)", file=out)
        print(f"Stations:  {', '.join(c.station.id for c in configs)} watching simulated game trails "
              f"({'until Ctrl-C' if duration is None else f'for {duration:g} s'}); data in {data_dir}", file=out)
        print("Detections arrive below as the collector stores them (times in Vladivostok):", file=out, flush=True)
        threads = [threading.Thread(target=d.run, kwargs={"duration_s": duration}, name=f"demo-{k}")
                   for k, d in enumerate(daemons)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.2)
        # The stations have delivered what they hold (daemon.run waits for it); the
        # collector stores what has reached it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and collector.ingest.stats()["queued"]:
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        for d in daemons:
            d.stop()
        if collector is not None:
            collector.stop()
        broker.stop()
    failures = [d.failure for d in daemons if getattr(d, "failure", None)]
    tags: dict[str, int] = {}
    for p in stored:
        tags[p["tag"]] = tags.get(p["tag"], 0) + 1
    print(f"Stored {len(stored)} detection(s)"
          + (": " + ", ".join(f"{n} {t}" for t, n in sorted(tags.items(), key=lambda kv: -kv[1])) if tags else "")
          + f". The database is {data_dir / 'collector' / 'collector.sqlite3'}"
          f" (station export camtrap-dp works on it with a collector config).", file=out)
    for f in failures:
        print(f"station demo: camera: {f}", file=sys.stderr)
    return 1 if failures else 0
