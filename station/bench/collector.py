"""``station bench collector``: how fast the collector stores what the broker delivers.

Figures, never assertions. A private Mosquitto on a free port; real detection/1
payloads (built by the station's own ``detection_message``, ~2 KB each, from 20
stations); SQLite in a temporary folder and the PostgreSQL at ``--postgres URL`` (a
fresh schema, dropped afterwards).

* **Live ingest**: a publisher sends N detections at QoS 1 as fast as the broker takes
  them. The reference is a plain paho subscriber (QoS 1, automatic acknowledgement,
  the same Receive Maximum) counting what it receives; the collector's figure is the
  same N received, validated, committed and acknowledged. Rate = N / (first message
  published to last one received or committed).
* **Backlog drain**: the collector's persistent session holds N detections queued
  while it was away; the clock runs from its reconnect to the last commit.

The publisher runs in another process, as stations are other machines; the consumer
being measured has this process to itself, and its CPU time per message is reported. The dashboard's query latency at a million
rows is ``station bench dashboard``.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from station.collector.db import Database
from station.collector.ingest import Ingest
from station.config import parse_config
from station.config.collector import parse_collector_config
from station.events.ids import new_event_id
from station.times import iso
from station.feed import messages as m
from station.feed.broker_process import Mosquitto

TAGS = [("leopard", "leopard"), ("tiger", "tiger"), ("prey", "wild boar"), ("prey", "deer"),
        ("human", "person"), ("other_animal", "badger"), ("blank", None)]


def synthetic_detections(n: int, stations: int = 20, start: float = 1_790_000_000.0,
                         spacing_s: float = 37.0, frames: int = 4, name: str = "bench") -> list[dict[str, Any]]:
    """``n`` valid detection/1 payloads from ``stations`` stations (``NAME-00``, ...), one
    every ``spacing_s``."""
    cfgs = [parse_config({"station": {"id": f"{name}-{k:02d}", "deployment_id": f"{name}-{k:02d}-2026",
                                      "latitude": 43.0 + k * 0.013, "longitude": 133.5 + k * 0.021}}).station
            for k in range(stations)]
    out = []
    trigger = min(1.0, 0.5 * (frames - 1))  # the frame motion was confirmed on: never after the last
    for i in range(n):
        t = start + i * spacing_s
        tag, species = TAGS[i % len(TAGS)]
        station = cfgs[i % stations]
        record = {"schema": 1, "id": new_event_id(t), "station_id": station.id, "deployment_id": station.deployment_id,
                  "status": "closed", "camera": "picamera2", "trigger_source": "motion",
                  "start": iso(t), "trigger": iso(t + trigger), "end": iso(t + 0.5 * frames),
                  "start_timestamp": t, "trigger_timestamp": t + trigger, "end_timestamp": t + 0.5 * frames,
                  "end_reason": "motion_ended", "pre_trigger_s": 1.0, "motion_frames": frames,
                  "peak_motion_score": 0.05, "frames_dropped": 0,
                  "frames": [{"index": k, "file": f"{k:03d}.jpg", "time": iso(t + 0.5 * k), "timestamp": t + 0.5 * k,
                              "pre_trigger": 0.5 * k < trigger, "motion_score": 0.01 * k,
                              "boxes": [[0.1, 0.4, 0.2, 0.2]] if k >= 2 else []} for k in range(frames)],
                  "classification": {"status": "ok", "tag": tag, "species": species, "label": species,
                                     "confidence": 0.5 + (i % 50) / 100,
                                     "top_k": [{"label": species or "empty", "tag": tag, "p": 0.6}],
                                     "best_frame": "002.jpg", "best_box": [0.1, 0.4, 0.2, 0.2],
                                     "model": {"name": "efficientnet_lite0_imagenet/int8", "sha256": None},
                                     "taxonomy": {"file": "taxonomy.toml", "region": "russian_far_east"}}}
        out.append(m.detection_message(record, station, sent_at=t + 5))
    return out


def _client(client_id: str, **kwargs) -> mqtt.Client:
    return mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                       protocol=mqtt.MQTTv5, **kwargs)


def _publisher_process(host: str, port: int, items: list[tuple[str, bytes]], started) -> None:
    pub = _client(f"bench-pub-{uuid.uuid4().hex[:6]}")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect(host, port)
    pub.loop_start()
    started.set()
    infos = [pub.publish(t, p, qos=1) for t, p in items]
    for info in infos:
        info.wait_for_publish(120)
    pub.disconnect()
    pub.loop_stop()


def _publish(broker: Mosquitto, items: list[tuple[str, bytes]], wait: bool = True):
    """Publish at QoS 1 as fast as the broker acknowledges, from another process (as the
    stations are other machines: the consumer measured has this process to itself).
    Returns the start time (and the process when not waiting for it)."""
    ctx = multiprocessing.get_context("fork")
    started = ctx.Event()
    proc = ctx.Process(target=_publisher_process, args=(broker.host, broker.port, items, started), daemon=True)
    proc.start()
    started.wait(30)
    t0 = time.perf_counter()
    if wait:
        proc.join(300)
        return t0
    return t0, proc


def _raw_subscriber(broker: Mosquitto, n: int, items: list[tuple[str, bytes]], receive_maximum: int) -> dict:
    done = threading.Event()
    got = {"n": 0, "last": 0.0}
    sub = _client("bench-raw")

    def on_message(client, userdata, msg) -> None:
        got["n"] += 1
        if got["n"] >= n:
            got["last"] = time.perf_counter()
            done.set()

    ready = threading.Event()
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: ready.set()
    sub.on_connect = lambda c, *a: c.subscribe("camtrap/v1/+/detection", qos=1)
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = receive_maximum
    sub.connect(broker.host, broker.port, properties=props)
    sub.loop_start()
    ready.wait(10)
    cpu0 = time.process_time()
    t0, proc = _publish(broker, items, wait=False)
    ok = done.wait(300)
    cpu = time.process_time() - cpu0
    proc.join(60)
    sub.disconnect()
    sub.loop_stop()
    elapsed = got["last"] - t0 if ok else float("nan")
    return {"messages": n, "seconds": round(elapsed, 3), "per_s": round(n / elapsed, 1) if ok else None,
            "cpu_ms_per_message": round(cpu * 1000 / n, 3)}


def _raw_backlog(broker: Mosquitto, items: list[tuple[str, bytes]], receive_maximum: int) -> dict:
    """The same backlog, queued in a plain subscriber's persistent session, drained on reconnect."""
    n = len(items)
    done = threading.Event()
    got = {"n": 0}
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = receive_maximum
    props.SessionExpiryInterval = 3600

    def connect() -> mqtt.Client:
        sub = _client("bench-raw-backlog")
        ready = threading.Event()
        sub.on_subscribe = lambda *a: ready.set()
        sub.on_connect = lambda c, *a: c.subscribe("camtrap/v1/+/detection", qos=1)
        sub.on_message = on_message
        sub.connect(broker.host, broker.port, clean_start=False, properties=props)
        sub.loop_start()
        ready.wait(10)
        return sub

    def on_message(client, userdata, msg) -> None:
        got["n"] += 1
        if got["n"] >= n:
            done.set()

    first = connect()
    first.disconnect()
    first.loop_stop()
    _publish(broker, items)
    got["n"] = 0
    t0 = time.perf_counter()
    sub = connect()
    ok = done.wait(300)
    elapsed = time.perf_counter() - t0
    sub.disconnect()
    sub.loop_stop()
    return {"messages": n, "seconds": round(elapsed, 3), "per_s": round(n / elapsed, 1) if ok else None}


def _collector(broker: Mosquitto, url: str, data_dir: Path, receive_maximum: int, client_id: str) -> Ingest:
    cfg = parse_collector_config({"collector": {"id": client_id, "data_dir": str(data_dir), "database_url": url},
                                  "mqtt": {"host": broker.host, "port": broker.port,
                                           "receive_maximum": receive_maximum},
                                  "http": {"enabled": False}})
    resolved = cfg.collector.sqlite_resolved_url()
    return Ingest(cfg, lambda: Database.open(resolved))


def _wait_stored(ingest: Ingest, n: int, timeout: float = 600) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = ingest.counters
        if c["stored"] + c["duplicates"] >= n:
            return time.perf_counter()
        time.sleep(0.002)
    return None


def _live(broker: Mosquitto, url: str, data_dir: Path, items: list[tuple[str, bytes]],
          receive_maximum: int, name: str) -> dict:
    ingest = _collector(broker, url, data_dir, receive_maximum, f"bench-live-{name}").start()
    ingest.wait_subscribed(10)
    cpu0 = time.process_time()
    t0, proc = _publish(broker, items, wait=False)
    end = _wait_stored(ingest, len(items))
    cpu = time.process_time() - cpu0
    proc.join(60)
    stats = ingest.stats()
    ingest.stop()
    n = len(items)
    elapsed = (end - t0) if end else float("nan")
    return {"messages": n, "seconds": round(elapsed, 3), "per_s": round(n / elapsed, 1) if end else None,
            "batches": stats["counters"].get("batches"), "cpu_ms_per_message": round(cpu * 1000 / n, 3)}


def _backlog(broker: Mosquitto, url: str, data_dir: Path, items: list[tuple[str, bytes]],
             receive_maximum: int, name: str) -> dict:
    first = _collector(broker, url, data_dir, receive_maximum, f"bench-backlog-{name}").start()
    first.wait_subscribed(10)
    first.stop()  # the session stays on the broker; what follows queues there
    _publish(broker, items)
    ingest = _collector(broker, url, data_dir, receive_maximum, f"bench-backlog-{name}")
    t0 = time.perf_counter()
    ingest.start()
    end = _wait_stored(ingest, len(items))
    stats = ingest.stats()
    ingest.stop()
    n = len(items)
    elapsed = (end - t0) if end else float("nan")
    with Database.open(url if not url.startswith("sqlite") else ingest.cfg.collector.sqlite_resolved_url()) as db:
        stored = db.count_detections()
    return {"messages": n, "seconds": round(elapsed, 3), "per_s": round(n / elapsed, 1) if end else None,
            "batches": stats["counters"].get("batches"), "stored_rows": stored}


def _postgres_schema(url: str) -> tuple[str, Callable[[], None]] | None:
    try:
        import psycopg
        admin = psycopg.connect(url, autocommit=True, connect_timeout=3)
    except Exception as exc:  # reported, not fatal: the SQLite figures still stand
        print(f"bench: PostgreSQL at {url} skipped: {str(exc).splitlines()[0]}")
        return None
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"

    def drop() -> None:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()

    return f"{url}{sep}options=-csearch_path%3D{schema}", drop


def add_arguments(p) -> None:
    p.add_argument("--quick", action="store_true", help="2,000 messages instead of 10,000")
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test",
                   help="PostgreSQL to measure on (a temporary schema is made and dropped)")
    p.add_argument("--no-postgres", dest="postgres", action="store_const", const=None,
                   help="SQLite only")


def run(quick: bool = False, postgres: str | None = "postgresql://postgres@127.0.0.1:5432/test",
        receive_maximum: int = 1000) -> dict:
    n = 2000 if quick else 10_000
    payloads = synthetic_detections(n)
    items = [(f"camtrap/v1/{p['station_id']}/detection", m.encode(p)) for p in payloads]
    report: dict[str, Any] = {"messages": n, "payload_bytes_mean": round(sum(len(b) for _, b in items) / n),
                              "receive_maximum": receive_maximum, "load_before": list(os.getloadavg()),
                              "engines": {}}
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as tmp_name:
        tmp = Path(tmp_name)
        broker = Mosquitto(tmp / "broker").start()
        try:
            report["raw_subscriber"] = _raw_subscriber(broker, n, items, receive_maximum)
            report["raw_backlog"] = _raw_backlog(broker, items, receive_maximum)
            engines = [("sqlite", f"sqlite:///{tmp}/live.sqlite3", f"sqlite:///{tmp}/backlog.sqlite3", None)]
            if postgres:
                live = _postgres_schema(postgres)
                backlog = _postgres_schema(postgres)
                if live and backlog:
                    engines.append(("postgresql", live[0], backlog[0], (live[1], backlog[1])))
            for name, live_url, backlog_url, cleanup in engines:
                try:
                    r = {"live": _live(broker, live_url, tmp / f"{name}-live", items, receive_maximum, name),
                         "backlog": _backlog(broker, backlog_url, tmp / f"{name}-backlog", items,
                                             receive_maximum, name)}
                    raw = report["raw_subscriber"]["per_s"]
                    r["live_vs_raw"] = round(r["live"]["per_s"] / raw, 2) if raw and r["live"]["per_s"] else None
                    raw_back = report["raw_backlog"]["per_s"]
                    r["backlog_vs_raw"] = (round(r["backlog"]["per_s"] / raw_back, 2)
                                           if raw_back and r["backlog"]["per_s"] else None)
                    report["engines"][name] = r
                finally:
                    if cleanup:
                        for c in cleanup:
                            c()
        finally:
            broker.stop()
    return report


def print_report(r: dict) -> None:
    load = ", ".join(f"{x:.2f}" for x in r["load_before"])
    raw = r["raw_subscriber"]
    print(f"Collector ingest: {r['messages']} detection/1 messages (~{r['payload_bytes_mean']} B) from 20 stations, "
          f"QoS 1, Receive Maximum {r['receive_maximum']}, private Mosquitto; load average {load}")
    print(f"  plain paho subscriber (reference): live {raw['per_s']} msg/s ({raw['seconds']} s); "
          f"backlog drained at {r['raw_backlog']['per_s']} msg/s ({r['raw_backlog']['seconds']} s)")
    for name, e in r["engines"].items():
        live, back = e["live"], e["backlog"]
        print(f"  {name:10s} live: {live['per_s']} msg/s stored and acknowledged ({live['seconds']} s, "
              f"{live['batches']} transactions) = {e['live_vs_raw']}x the plain subscriber (target >= 0.5x); "
              f"{live['cpu_ms_per_message']} ms CPU/message")
        print(f"  {name:10s} backlog of {back['messages']} after reconnect: drained in {back['seconds']} s "
              f"({back['per_s']} msg/s, {back['batches']} transactions, {back['stored_rows']} rows) "
              f"= {e['backlog_vs_raw']}x the plain subscriber's drain")
