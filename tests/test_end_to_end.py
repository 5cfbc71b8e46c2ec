"""The daemon on a synthetic forest scene, scored against the scene's ground truth.

A ranger's story: a month of nights compressed into minutes. Every animal that crosses
must yield an event that begins before it entered; wind, light drift, sudden shadows,
snow and the switch to infrared must yield none.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from station.bench.scoring import Interval, score_events
from station.events.store import EventStore
from tests.conftest import minimal_toml

pytestmark = pytest.mark.slow

SCENE_S = 420.0


def run_station(tmp_path: Path, seed: int, duration: float, extra_args=()) -> tuple[Path, subprocess.CompletedProcess]:
    data = tmp_path / f"data-{seed}"
    cfg = tmp_path / f"station-{seed}.toml"
    cfg.write_text(minimal_toml(data, camera=f"synthetic:{seed}").replace(
        "main_size = [320, 180]\nlores_size = [160, 90]", "main_size = [640, 360]\nlores_size = [320, 180]"))
    out = subprocess.run([sys.executable, "-m", "station", "run", "--config", str(cfg),
                          "--speed", "max", "--duration", str(duration), *extra_args],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return data, out


@pytest.mark.parametrize("seed", [1, 2])
def test_every_crossing_yields_an_event_and_quiet_stretches_none(tmp_path, seed):
    data, out = run_station(tmp_path, seed, SCENE_S)
    truth = json.loads((data / "scene_truth.json").read_text())
    records = list(EventStore(data).records())
    crossings = [Interval(c["start_ts"], c["end_ts"], c["kind"]) for c in truth["crossings"]
                 if c["start_s"] < SCENE_S - 5]
    assert len(crossings) >= 5, "the scene should hold several crossings"
    kinds = {d["kind"] for d in truth["disturbances"] if d["start_s"] < SCENE_S}
    assert {"snow", "light_jump"} <= kinds, f"the quiet stretches must be tested: {kinds}"
    events = [Interval(r["start_timestamp"], r["end_timestamp"]) for r in records]
    score = score_events(events, crossings, SCENE_S, triggers=[r["trigger_timestamp"] for r in records])
    assert score.missed == [], f"crossings without an event: {score.missed}"
    assert score.false_events == 0, f"events in quiet stretches at scene times {score.false_at}"
    # The pre-trigger buffer: events begin before the animal was in view, or as it entered.
    assert min(score.leads_s) >= -0.5, score.leads_s
    for r in records:
        assert r["status"] == "closed"
        assert all((data / "events" / r["id"] / f["file"]).is_file() for f in r["frames"] if f["file"])


def test_events_command_lists_what_the_daemon_recorded(tmp_path, station_cmd):
    data, _ = run_station(tmp_path, 3, 120.0)
    out = subprocess.run([*station_cmd, "events", "--data-dir", str(data)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    records = list(EventStore(data).records())
    assert f"{len(records)} event(s)" in out.stdout
    for r in records:
        assert r["id"] in out.stdout
    js = subprocess.run([*station_cmd, "events", "--data-dir", str(data), "--json"], capture_output=True, text=True)
    assert [r["id"] for r in json.loads(js.stdout)] == [r["id"] for r in records]


def test_sigterm_closes_the_open_event_and_exits_cleanly(tmp_path):
    """Real time, so the signal lands mid-event like a ranger's `systemctl stop`."""
    data = tmp_path / "data"
    cfg = tmp_path / "station.toml"
    cfg.write_text(minimal_toml(data, camera="synthetic:1").replace('speed = "max"', 'speed = "realtime"')
                   + "\n[events]\nmax_length_s = 600\npost_motion_s = 30\n")
    first = json.loads(subprocess.run([sys.executable, "-m", "station", "scene", "--seed", "1", "--json",
                                       "--duration", "300"], capture_output=True, text=True).stdout)["crossings"][0]
    # Start the scene's clock so the first crossing comes after a few seconds.
    proc = subprocess.Popen([sys.executable, "-m", "station", "run", "--config", str(cfg)],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + first["start_s"] + 60
        for line in proc.stderr:
            if "event opened" in line:
                break
            assert time.monotonic() < deadline, "no event opened"
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest[-2000:]
    assert "signal received" in rest and "station stopped" in rest
    (r,) = EventStore(data).records()
    assert r["status"] == "closed" and r["end_reason"] == "shutdown"
    assert r["frames"] and all((data / "events" / r["id"] / f["file"]).is_file() for f in r["frames"])
