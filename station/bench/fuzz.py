"""``station bench fuzz``: a storm of hostile messages against a real collector, per engine.

    report = run(per_category=2000)                      # the bench: thousands of cases a category
    report = run(per_category=200, broker=b, engines=[("sqlite", url), ...])   # the tests
    print_report(report)

For each engine (SQLite, and PostgreSQL in a temporary schema): a real ``station collector``
process started from a TOML file, as a ranger runs it (ingest, API, a token file), a
private Mosquitto (or the one given), and the cases of :mod:`station.bench.hostile`
published at QoS 1 by another client. Then the run checks, and the report says:

* the collector process lived through it, and stops cleanly (exit status 0);
* every rejection was counted exactly, by reason, in the ingest's counters and in the
  database's ``rejections`` table, against what each case is owed; what should be stored
  was (detections, statuses, heartbeats, thumbnails);
* every valid message sent after the storm was stored, one of each kind per station, and
  each station's honest "stopping" shows it offline (a clock from the future pinned none);
* the API answered for every station (public and with a token), and both exports (CSV and
  Camtrap DP) for every station, in the library and from the command line.

Any check that fails is a line in the engine's ``problems``; the figures (cases, seconds,
messages a second) are measured, never asserted.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from station.bench import hostile
from station.bench.collector import _postgres_schema
from station.feed import messages as m
from station.feed.broker_process import Mosquitto, free_port

TOKEN = "fuzz-token-3b8d1c0e9f2a4b6c8d0e"
REPO = Path(__file__).resolve().parents[2]


# -- the collector under test ---------------------------------------------------------------

class CollectorProcess:
    """``station collector --config FILE`` with its API on a free port; stderr to a log file."""

    def __init__(self, workdir: Path, name: str, url: str, broker: Mosquitto):
        self.workdir, self.log = workdir, workdir / "collector.log"
        self.port = free_port()
        (workdir / "tokens").write_text(TOKEN + "\n")
        self.config = workdir / "collector.toml"
        self.config.write_text("\n".join([
            "[collector]", f'id = "fuzz-{name}-{os.getpid()}"', f'data_dir = "{workdir / "data"}"',
            f'database_url = "{url}"', "", "[mqtt]", f'host = "{broker.host}"', f"port = {broker.port}", "",
            "[http]", 'host = "127.0.0.1"', f"port = {self.port}", f'token_file = "{workdir / "tokens"}"', "",
            "[logging]", 'level = "warning"', ""]))
        self.proc: subprocess.Popen | None = None
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "station", "collector", "--config", str(self.config),
                                      "--log-level", "info"], cwd=REPO, stdout=subprocess.DEVNULL,
                                     stderr=self.log.open("ab"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the collector exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            if "collector subscribed" in self.log.read_text(errors="replace") and self.get("/healthz")[0] == 200:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the collector did not start in {timeout:.0f} s: {self.log.read_text()[-2000:]}")

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.base + path, headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            return 0, str(exc).encode()

    def json(self, path: str, token: str | None = TOKEN) -> Any:
        status, body = self.get(path, token)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body[:300]!r}")
        return json.loads(body)

    def ingest(self) -> dict[str, Any]:
        return self.json("/api/collector")["stats"]["ingest"]

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                return None
        return self.proc.returncode


class Publisher:
    """Stations, as far as the broker can tell: one client publishing on any topic at QoS 1."""

    def __init__(self, broker: Mosquitto, client_id: str):
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.disconnects = 0
        self.client.on_disconnect = self._on_disconnect
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        self.disconnects += 1

    def publish_all(self, items: list[tuple[str, bytes]], timeout: float = 600.0) -> None:
        """Publish and wait for every acknowledgement; a dropped connection is an error at once
        (the broker drops a client for a packet it calls malformed: a case it never delivers)."""
        infos = [self.client.publish(t, p, qos=1) for t, p in items]
        deadline = time.monotonic() + timeout
        for info in infos:
            while not info.is_published():
                if self.disconnects:
                    raise RuntimeError("the broker dropped the publishing client (see its log)")
                if time.monotonic() > deadline:
                    raise RuntimeError("the broker did not acknowledge a publish")
                info.wait_for_publish(0.5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait_handled(collector: CollectorProcess, n: int, timeout: float = 900.0) -> float:
    """Until the collector has acknowledged ``n`` messages (every case is QoS 1); the time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not collector.alive:
            raise RuntimeError(f"the collector died: {collector.log.read_text(errors='replace')[-2000:]}")
        counters = collector.ingest()["counters"]
        if counters.get("acked", 0) >= n:
            return time.perf_counter()
        time.sleep(0.05)
    raise RuntimeError(f"the collector acknowledged {counters.get('acked', 0)} of {n} messages in {timeout:.0f} s")


# -- the checks -----------------------------------------------------------------------------

def _expected(all_cases: list[hostile.Case]) -> tuple[dict[str, int], dict[str, int]]:
    rejections = collections.Counter(c.expect for c in all_cases if c.expect != "stored")
    stored = collections.Counter(c.kind for c in all_cases if c.expect == "stored")
    return dict(rejections), {"stored": stored["detection"], "statuses": stored["status"],
                              "healths": stored["health"], "thumbnails": stored["thumbnail"]}


def _check_api(collector: CollectorProcess, stations: list[str]) -> dict[str, Any]:
    paths = ["/api/detections?limit=24", "/api/detections?limit=1000", "/api/stations", "/api/species", "/api/diel",
             "/api/collector", "/healthz"]
    for s in stations:
        q = quote(s, safe="")
        paths += [f"/api/detections?station={q}&limit=1000", f"/api/species?station={q}", f"/api/diel?station={q}"]
    failed, skipped = [], set()
    for path in paths:
        for token in (None, TOKEN):
            status, body = collector.get(path, token)
            if status != 200:
                failed.append(f"GET {path}{' (token)' if token else ''}: {status} {body[:200]!r}")
            elif path.startswith("/api/detections"):
                skipped.update(json.loads(body).get("skipped", []))
    return {"requests": 2 * len(paths), "failed": failed, "skipped_rows": sorted(skipped)}


def _check_exports(config: Path, workdir: Path, stations: list[str]) -> dict[str, Any]:
    from station.collector.db import Database
    from station.collector.export import NothingToExport, export_camtrap_dp, export_csv
    from station.config.collector import load_collector_config

    cfg = load_collector_config(config)
    out: dict[str, Any] = {"ok": 0, "nothing": 0, "skipped_rows": 0, "failed": [], "cli": {}}
    with Database.open(cfg.collector.sqlite_resolved_url()) as db:
        for s in stations:
            for name, export, target in (("csv", export_csv, workdir / "exports" / f"{s}.csv"),
                                         ("camtrap-dp", export_camtrap_dp, workdir / "exports" / s)):
                try:
                    summary = export(db, cfg, target, station=s)
                    out["ok"] += 1
                    out["skipped_rows"] += summary.skipped
                except NothingToExport:
                    out["nothing"] += 1
                except Exception as exc:  # noqa: BLE001 - what the fuzz is looking for: reported
                    out["failed"].append(f"{name} --station {s}: {exc!r}")
    for name in ("csv", "camtrap-dp"):
        target = workdir / "exports" / ("all.csv" if name == "csv" else "all")
        run = subprocess.run([sys.executable, "-m", "station", "export", name, "--config", str(config),
                              "--out", str(target)], cwd=REPO, capture_output=True, text=True, timeout=600)
        out["cli"][name] = {"exit": run.returncode, "out": run.stdout.strip()[-300:],
                            "traceback": "Traceback" in run.stderr, "warnings": run.stderr.count("warning:")}
        if run.returncode != 0 or "Traceback" in run.stderr:
            out["failed"].append(f"station export {name}: exit {run.returncode}: {run.stderr[-500:]}")
    return out


def _check_after(collector: CollectorProcess, after: list[dict[str, Any]], sent_at: float) -> dict[str, Any]:
    from station.feed.messages import ThumbnailError, jpeg_size

    problems, stored = [], 0
    for msg in after:
        if msg["schema"] == "detection/1":
            status, _ = collector.get(f"/api/detections/{msg['event_id']}", TOKEN)
            stored += status == 200
            if status != 200:
                problems.append(f"valid detection {msg['event_id']} after the storm: {status}")
        elif msg["schema"] == "thumbnail/1":
            status, body = collector.get(f"/thumbnails/{msg['event_id']}.jpg", TOKEN)
            try:
                jpeg_size(body)
                clean = status == 200
            except ThumbnailError:
                clean = False
            stored += clean
            if not clean:
                problems.append(f"valid thumbnail {msg['event_id']} after the storm: {status}")
    stations = {s["station_id"]: s for s in collector.json("/api/stations")["items"]}
    expected_stations = sorted({msg["station_id"] for msg in after})
    latest = m.timestamp(time.time() + 1)
    offline = 0
    for s in expected_stations:
        row = stations.get(s)
        if row is None:
            problems.append(f"station {s} is missing from /api/stations")
            continue
        if row["online"] is False and (row["status"] or {}).get("reason") == "stopping":
            offline += 1
        else:
            problems.append(f"station {s} shows {row['status']} after it stopped (pinned?)")
        for key in ("last_heard", "health_at", "last_detection_at"):
            if row[key] is not None and row[key] > latest:
                problems.append(f"station {s}: {key} {row[key]} is in the future")
        if row["health"] is None or row["health"]["sent_at"] != m.timestamp(sent_at):
            problems.append(f"station {s}: its latest heartbeat is not the honest one")
    clock = [s for s in hostile.CLOCK_STATIONS if s in stations]
    flagged = [s for s in clock if stations[s]["clock_skew_at"] is not None]
    still_ahead = [s for s in stations if stations[s]["clock_skew_s"] is not None]
    if still_ahead:
        problems.append(f"stations still flagged ahead after an on-time heartbeat: {still_ahead}")
    return {"sent": sum(msg["schema"] in ("detection/1", "thumbnail/1") for msg in after), "stored": stored,
            "stations": len(expected_stations), "offline": offline, "clock_stations": len(clock),
            "clock_flagged": len(flagged), "problems": problems}


def _engine(name: str, url: str, broker: Mosquitto, workdir: Path, all_cases: list[hostile.Case],
            seed: int) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    collector = CollectorProcess(workdir, name, url, broker)
    collector.start()
    report: dict[str, Any] = {"url": url if name == "sqlite" else url.split("?")[0], "problems": []}
    problems = report["problems"]
    publisher = Publisher(broker, f"fuzz-stations-{name}-{os.getpid()}")
    try:
        items = [(c.topic, c.payload) for c in all_cases]
        t0 = time.perf_counter()
        publisher.publish_all(items)
        t1 = _wait_handled(collector, len(items))
        report["seconds"] = round(t1 - t0, 2)
        report["per_s"] = round(len(items) / (t1 - t0), 1)
        ingest = collector.ingest()
        expected_rejections, expected_stored = _expected(all_cases)
        counters = ingest["counters"]
        report["expected_rejections"] = dict(sorted(expected_rejections.items()))
        report["counted_rejections"] = dict(sorted(ingest["rejected"].items()))
        database: dict[str, int] = collections.Counter()
        for r in collector.json("/api/collector")["rejections"]:
            database[r["reason"]] += r["count"]
        report["database_rejections"] = dict(sorted(database.items()))
        report["expected_stored"] = expected_stored
        report["counted_stored"] = {k: counters.get(k, 0) for k in expected_stored}
        for what in ("counted_rejections", "database_rejections"):
            if report[what] != report["expected_rejections"]:
                problems.append(f"{what} {report[what]} != expected {report['expected_rejections']}")
        if report["counted_stored"] != expected_stored:
            problems.append(f"stored {report['counted_stored']} != expected {expected_stored}")
        for key in ("writer_errors", "internal_errors", "database_errors"):
            if counters.get(key):
                problems.append(f"the ingest counted {counters[key]} {key}")
        # After the storm: valid messages from every station, each one stopping honestly.
        now = time.time()
        after = hostile.valid_messages(random.Random(seed + 1), now, hostile.STATIONS + hostile.CLOCK_STATIONS)
        before = counters.get("acked", 0)
        publisher.publish_all([(hostile.topic(msg["station_id"], msg["schema"].split("/")[0]), m.encode(msg))
                               for msg in after])
        _wait_handled(collector, before + len(after))
        report["after"] = _check_after(collector, after, now)
        problems += report["after"].pop("problems")
        stations = sorted(s["station_id"] for s in collector.json("/api/stations")["items"])
        report["api"] = _check_api(collector, stations)
        problems += report["api"]["failed"]
        if report["api"]["skipped_rows"]:
            problems.append(f"rows the intake should have refused were stored: {report['api']['skipped_rows'][:5]}")
        report["exports"] = _check_exports(collector.config, workdir, stations)
        problems += report["exports"]["failed"]
        report["alive"] = collector.alive
        if not report["alive"]:
            problems.append("the collector process died")
    finally:
        publisher.close()
        report["exit_code"] = collector.stop()
    if report["exit_code"] != 0:
        problems.append(f"the collector exited with {report['exit_code']} on SIGTERM")
    tracebacks = collector.log.read_text(errors="replace").count("Traceback")
    if tracebacks:
        problems.append(f"the collector's log holds {tracebacks} traceback(s)")
    return report


def add_arguments(p) -> None:
    p.add_argument("--per-category", type=int, default=2000, help="cases in each of the 9 categories")
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test",
                   help="PostgreSQL to run on as well (a temporary schema is made and dropped)")
    p.add_argument("--no-postgres", dest="postgres", action="store_const", const=None, help="SQLite only")


def run(per_category: int = 2000, *, seed: int = 15, categories: tuple[str, ...] = hostile.CATEGORIES,
        postgres: str | None = "postgresql://postgres@127.0.0.1:5432/test", sqlite: bool = True,
        engines: list[tuple[str, str]] | None = None, broker: Mosquitto | None = None,
        workdir: Path | None = None) -> dict[str, Any]:
    """The storm on each engine: ``engines`` as (name, database URL) pairs, or SQLite in the
    work folder and, when ``postgres`` answers, a temporary schema there (dropped after)."""
    now = time.time()
    rng = random.Random(seed)
    all_cases = [c for cat in categories for c in hostile.cases(cat, per_category, rng, now=now)]
    report: dict[str, Any] = {"per_category": per_category, "seed": seed, "messages": len(all_cases),
                              "cases": dict(collections.Counter(c.category for c in all_cases)),
                              "payload_bytes": sum(len(c.payload) for c in all_cases),
                              "load_before": list(os.getloadavg()), "engines": {}}
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as tmp_name:
        tmp = Path(workdir or tmp_name)
        own_broker = broker is None
        if own_broker:
            broker = Mosquitto(tmp / "broker").start()
        cleanups = []
        try:
            if engines is None:
                engines = [("sqlite", "sqlite:///collector.sqlite3")] if sqlite else []
                if postgres:
                    made = _postgres_schema(postgres)
                    if made:
                        engines.append(("postgresql", made[0]))
                        cleanups.append(made[1])
            for name, url in engines:
                try:
                    report["engines"][name] = _engine(name, url, broker, tmp / name, all_cases, seed)
                except RuntimeError as exc:
                    report["engines"][name] = {"problems": [f"the run could not finish: {exc}"]}
        finally:
            for cleanup in cleanups:
                cleanup()
            if own_broker:
                broker.stop()
    return report


def print_report(r: dict[str, Any]) -> None:
    load = ", ".join(f"{x:.2f}" for x in r["load_before"])
    cases = ", ".join(f"{k} {v}" for k, v in r["cases"].items())
    print(f"Collector fuzz: {r['messages']} hostile messages ({r['payload_bytes'] / 2**20:.1f} MiB), seed {r['seed']}; "
          f"load average {load}")
    print(f"  cases: {cases}")
    for name, e in r["engines"].items():
        if "seconds" not in e:
            print(f"  {name:10s} FAILED: {'; '.join(e['problems'])}")
            continue
        a, api, x = e["after"], e["api"], e["exports"]
        print(f"  {name:10s} {e['seconds']} s ({e['per_s']} msg/s) from first publish to the last acknowledged; "
              f"alive: {'yes' if e['alive'] else 'NO'}, exit status on SIGTERM {e['exit_code']}")
        print(f"  {'':10s} rejections counted {sum(e['counted_rejections'].values())} "
              f"(in the database {sum(e['database_rejections'].values())}) of "
              f"{sum(e['expected_rejections'].values())} owed: {e['counted_rejections']}")
        print(f"  {'':10s} stored {e['counted_stored']} of {e['expected_stored']} owed")
        print(f"  {'':10s} after the storm: {a['stored']} of {a['sent']} valid detections and thumbnails stored; "
              f"{a['offline']} of {a['stations']} stations show their honest stop; "
              f"{a['clock_flagged']} of {a['clock_stations']} fast clocks flagged")
        print(f"  {'':10s} API: {api['requests'] - len(api['failed'])} of {api['requests']} requests answered 200; "
              f"exports: {x['ok']} written, {x['nothing']} with nothing to export, {len(x['failed'])} failed; "
              f"station export csv / camtrap-dp exit {x['cli']['csv']['exit']} / {x['cli']['camtrap-dp']['exit']}")
        verdict = "no problems" if not e["problems"] else f"{len(e['problems'])} PROBLEM(S):"
        print(f"  {'':10s} {verdict}")
        for p in e["problems"][:20]:
            print(f"  {'':12s}- {p}")
