"""``station bench dashboard``: API and dashboard latency with a million detections.

Figures, never assertions. Fills a database (SQLite in ``--dir``, or PostgreSQL in a
fresh schema) with ``--rows`` real detection/1 payloads from 20 stations over about
a year (``store_batch``, 5,000 per transaction; the fill rate is reported too), one in
:data:`VERIFIED_EVERY` of them verified by a researcher, then
starts the collector's real HTTP server and times each request the dashboard makes,
over HTTP from this process: median and p95 of ``--repeat`` calls, after one warm-up
call. A SQLite file is kept in ``--dir`` for the next run (filling takes minutes).
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from station.bench.collector import synthetic_detections
from station.collector.db import Database
from station.config.collector import parse_collector_config

CHUNK = 5000
VERIFIED_EVERY = 100
"""One detection in this many carries a researcher's verification (a tenth of them corrected)."""


def verify_some(db: Database) -> int:
    """Verify one detection in VERIFIED_EVERY (oldest first), unless that was done: the
    verifications the dashboard's field-accuracy panel and ``verified`` filter read."""
    have = int(db._rows("SELECT COUNT(*) AS n FROM verifications")[0]["n"])
    if have:
        return 0
    rows = [{"e": event_id, "t": "blank" if k % 10 == 0 else tag, "a": "2026-12-01T00:00:00.000Z"}
            for k, (event_id, tag) in enumerate(
                (r["event_id"], r["tag"]) for r in db._rows(
                    "SELECT event_id, tag FROM detections ORDER BY start_time")[::VERIFIED_EVERY])]
    with db._transaction():
        db._exec_many("INSERT INTO verifications (event_id, tag, species, verified_by, verified_at)"
                      " VALUES (%(e)s, %(t)s, NULL, 'bench', %(a)s)", rows)
    return len(rows)


def fill(url: str, rows: int) -> dict:
    from station.progress import progress

    with Database.open(url) as db, progress("filling", total=rows, unit="row") as bar:
        db.migrate()
        have = db.count_detections()
        if have >= rows:
            return {"rows": have, "filled": 0, "seconds": 0.0, "verified": verify_some(db)}
        t0 = time.perf_counter()
        spacing = 365 * 86400 / rows
        done = have
        bar(done, rows)
        while done < rows:
            n = min(CHUNK, rows - done)
            db.store_batch(synthetic_detections(n, start=1_767_225_600.0 + done * spacing, spacing_s=spacing))
            done += n
            bar.advance(n)
        seconds = time.perf_counter() - t0
        verified = verify_some(db)
        if db.dialect.name == "postgresql":
            db._exec("VACUUM ANALYZE")  # what autovacuum does soon after a bulk load
        return {"rows": done, "filled": done - have, "seconds": round(seconds, 1),
                "rows_per_s": round((done - have) / seconds), "verified": verified}


REQUESTS = [
    ("dashboard page", "/"),
    ("latest 50 detections", "/api/detections?limit=50"),
    ("latest 50 leopards", "/api/detections?limit=50&species=leopard"),
    ("one station, latest 50", "/api/detections?limit=50&station=bench-07"),
    ("one month of one tag", "/api/detections?limit=50&tag=tiger&since=2026-03-01T00:00:00Z&until=2026-04-01T00:00:00Z"),
    ("stations with status", "/api/stations"),
    ("counts per species", "/api/species"),
    ("diel chart, leopard", "/api/diel?species=leopard"),
    ("diel chart, all species", "/api/diel"),
    ("not yet verified, 24", "/api/detections?limit=24&verified=false"),
    ("verified, 24", "/api/detections?limit=24&verified=true"),
    ("field accuracy", "/api/verifications/confusion"),
    ("one detection", None),
]


def measure(url: str, data_dir: Path, repeat: int) -> list[dict]:
    from station.collector.web.server import HttpServer

    cfg = parse_collector_config({"collector": {"data_dir": str(data_dir), "database_url": url},
                                  "http": {"port": 0, "timezone": "Asia/Vladivostok"}})
    server = HttpServer.from_config(cfg)
    server.start()
    out = []
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            first = client.get("/api/detections?limit=1").json()
            items = first.get("items") or first.get("detections") or []
            event_id = items[0]["event_id"] if items else "none"
            for name, path in REQUESTS:
                path = path or f"/api/detections/{event_id}"
                client.get(path)  # warm-up: caches, query plans
                times = []
                status = None
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    r = client.get(path)
                    times.append((time.perf_counter() - t0) * 1000)
                    status = r.status_code
                times.sort()
                out.append({"request": name, "path": path, "status": status,
                            "median_ms": round(statistics.median(times), 1),
                            "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
                            "bytes": len(r.content)})
    finally:
        server.stop()
    return out


def add_arguments(p) -> None:
    from pathlib import Path

    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--dir", dest="directory", type=Path, default=None,
                   help="where the SQLite file is made and kept (default ~/.cache/camtrap-bench)")
    p.add_argument("--postgres", default=None, help="also fill and measure this PostgreSQL (temporary schema)")


def run(rows: int = 1_000_000, repeat: int = 20, directory: Path | None = None,
        postgres: str | None = None) -> dict:
    directory = Path(directory or Path.home() / ".cache" / "camtrap-bench")
    directory.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"rows": rows, "repeat": repeat, "load_before": list(os.getloadavg()), "engines": {}}
    url = f"sqlite:///{directory}/dashboard-{rows}.sqlite3"
    report["engines"]["sqlite"] = {"fill": fill(url, rows), "requests": measure(url, directory, repeat),
                                   "database_mb": round(os.path.getsize(f"{directory}/dashboard-{rows}.sqlite3") / 2**20)}
    if postgres:
        import psycopg
        admin = psycopg.connect(postgres, autocommit=True)
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            sep = "&" if "?" in postgres else "?"
            pg = f"{postgres}{sep}options=-csearch_path%3D{schema}"
            report["engines"]["postgresql"] = {"fill": fill(pg, rows), "requests": measure(pg, directory, repeat)}
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
            admin.close()
    return report


def print_report(r: dict) -> None:
    load = ", ".join(f"{x:.2f}" for x in r["load_before"])
    print(f"Dashboard and API over HTTP with {r['rows']:,} detections (20 stations, one year); "
          f"median / p95 of {r['repeat']} calls; load average {load}")
    for name, e in r["engines"].items():
        f = e["fill"]
        size = f", {e['database_mb']} MB" if "database_mb" in e else ""
        fill_text = (f"filled {f['filled']:,} rows in {f['seconds']} s ({f.get('rows_per_s', 0):,} rows/s)"
                     if f["filled"] else "reused the filled database")
        print(f"  {name} ({fill_text}{size}):")
        for q in e["requests"]:
            print(f"    {q['request']:26s} {q['median_ms']:8.1f} ms  p95 {q['p95_ms']:8.1f} ms  "
                  f"HTTP {q['status']}  {q['bytes']:,} B")
