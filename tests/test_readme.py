"""The README's two commands and its examples are run here, so they cannot rot."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def commands(block: str) -> list[str]:
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_the_readme_gives_exactly_two_commands_and_ci_runs_the_test_one():
    first = commands(code_blocks(README)[0])
    assert first == ["scripts/demo", "scripts/test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec scripts/test" in ci


@pytest.mark.slow
def test_the_demo_command_shows_classified_detections_and_the_dashboard(tmp_path):
    out = subprocess.run([str(ROOT / "scripts" / "demo"), "--duration", "35", "--speed", "max", "--port", "0",
                          "--data-dir", str(tmp_path / "demo")],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Broker:    Mosquitto" in out.stdout
    assert re.search(r"Dashboard: http://127\.0\.0\.1:\d+/", out.stdout)
    detections = [line for line in out.stdout.splitlines() if line.startswith("  detection ")]
    assert detections and all("->" in line for line in detections), out.stdout
    assert {line.split()[1] for line in detections} == {"demo-01", "demo-02"}, out.stdout
    assert f"Stored {len(detections)} detection(s)" in out.stdout


@pytest.mark.slow
def test_the_demo_runs_on_the_embedded_broker_where_mosquitto_is_missing(tmp_path):
    out = subprocess.run([sys.executable, "-m", "station", "demo", "--broker", "embedded", "--duration", "35",
                          "--speed", "max", "--port", "0", "--data-dir", str(tmp_path / "demo")],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "embedded Python broker" in out.stdout
    assert any(line.startswith("  detection ") for line in out.stdout.splitlines()), out.stdout


class _Hook(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def collector_toml(tmp_path):
    """collector.toml for the README's collector examples: a real broker, a database holding
    one leopard, and an alert URL that a local HTTP server answers."""
    from station.collector.db import Database
    from tests.broker import make_broker
    from tests.collector_data import detection

    broker = make_broker(tmp_path / "broker").start()
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    data = tmp_path / "collector"
    data.mkdir()
    with Database.open(f"sqlite:///{data}/collector.sqlite3") as db:
        db.migrate()
        db.store_batch([detection(1_795_629_731.4)])
    (tmp_path / "collector.toml").write_text(
        f'[collector]\ndata_dir = "{data}"\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
        f'[http]\nport = 0\n[alerts]\nurls = ["json://127.0.0.1:{hook.server_port}/hook"]\n')
    yield tmp_path / "collector.toml"
    hook.shutdown()
    broker.stop()


def test_every_station_example_in_the_readme_runs(tmp_path, collector_toml):
    examples = [c for block in code_blocks(README)[1:] for c in commands(block) if c.startswith("station ")]
    assert len(examples) >= 5
    for example in examples:
        args = shlex.split(example.replace("/tmp/ev", str(tmp_path / "ev")).replace("collector.toml", str(collector_toml))
                           .replace("package/", str(tmp_path / "package")).replace("detections.csv", str(tmp_path / "d.csv")))[1:]
        if args[:1] == ["collector"]:
            args += ["--duration", "3"]
        if args[:2] == ["run", "--config"] and args[2] == "station.toml":
            if "--camera" not in args:
                continue  # needs a Pi camera: the daemon itself is tested elsewhere
            (tmp_path / "station.toml").write_text((ROOT / "deploy" / "station.example.toml").read_text())
            args[2] = str(tmp_path / "station.toml")
            args[args.index("--duration") + 1] = "60"
        if args[:1] == ["bench"]:
            continue  # a benchmark, run by hand: figures, not a test
        out = subprocess.run([sys.executable, "-m", "station", *args], capture_output=True, text=True,
                             timeout=300, cwd=ROOT)
        assert out.returncode == 0, f"README example failed: {example}\n{out.stderr[-2000:]}"
    assert _Hook.received, "station alerts test sent nothing"
    assert (tmp_path / "package" / "datapackage.json").exists() and (tmp_path / "d.csv").exists()


def test_the_config_error_shown_in_the_readme_is_what_users_see(tmp_path):
    shown = re.search(r"\$ station config check bad.toml\n(.*?)```", README, flags=re.S).group(1).strip()
    bad = tmp_path / "bad.toml"
    bad.write_text('[station]\nid = "s1"\ndeployment_id = "d1"\nlatitude = 91\nlongitude = 131\n'
                   "[motion]\ntreshold = 30\n")
    out = subprocess.run([sys.executable, "-m", "station", "config", "check", str(bad)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().replace(str(bad), "bad.toml") == shown


@pytest.mark.slow
def test_ctrl_c_in_the_demo_delivers_and_stores_what_the_stations_saw(tmp_path):
    """Ctrl-C at a terminal reaches the whole process group: the demo must still let the
    stations classify and deliver their events, the collector store them, and the broker
    (started in its own session) stop last."""
    import json
    import signal
    import time

    from station.collector.db import Database

    proc = subprocess.Popen([sys.executable, "-m", "station", "demo", "--port", "0", "--data-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True)
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("  detection "):
            break
    assert any(line.startswith("  detection ") for line in lines), "".join(lines) + proc.stderr.read()[-2000:]
    time.sleep(8)  # another event may be open now
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    records = [json.loads(r.read_text()) for station in ("demo-01", "demo-02")
               for r in (tmp_path / station / "events").glob("*/event.json")]
    final = {r["id"] for r in records if r.get("classification")}
    assert len(final) == len(records), "an event was left unclassified at Ctrl-C"
    with Database.open(f"sqlite:///{tmp_path}/collector/collector.sqlite3") as db:
        stored = {r["event_id"] for r in db.iter_detections()}
    assert final and stored == final
    assert f"Stored {len(stored)} detection(s)" in out
