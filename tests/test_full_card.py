"""A ranger's story: the card fills up while animals pass, then the station is stopped
(SIGTERM, or the battery dies). At the next start every event has its record, is
classified and reaches the researchers' subscriber; nothing is left behind as a folder
without a record. Run on a real tmpfs that is filled for real.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from station.classifier.worker import classification_final
from station.record import record_problem
from station.events.store import EventStore
from tests.broker import Subscriber, make_broker
from tests.conftest import fill
from tests.test_feed_station import _toml, detection_ids, station_config

pytestmark = pytest.mark.slow


class Station:
    """``station run`` as a subprocess, its log read as it comes."""

    def __init__(self, cfg_path: Path):
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "station", "run", "--config", str(cfg_path)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def ids(self, message: str) -> set[str]:
        return {line.split(" id=", 1)[1].split()[0] for line in list(self.lines) if message in line}

    def held(self) -> set[str]:
        """Events whose record the full card could not take (and has not taken since)."""
        return self.ids("cannot write event record") - self.ids("event record written after all")

    def stop(self, sig: int) -> str:
        self.proc.send_signal(sig)
        self.proc.wait(60)
        self._reader.join(10)
        return "".join(self.lines)


def _records_on_card(data: Path) -> int:
    return sum(1 for _ in EventStore(data).records())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "power-cut"])
def test_a_station_stopped_on_a_full_card_loses_no_event(tmp_path, tmpfs, sig):
    disk = tmpfs("24m")
    data = disk / "data"
    broker = make_broker(tmp_path / "broker").start()
    sub = Subscriber(broker, ["camtrap/v1/+/detection"])
    cfg_path = tmp_path / "station.toml"
    try:
        cfg = station_config(tmp_path, broker, 100000.0)
        cfg["storage"] = {"data_dir": str(data), "min_free_mb": 1, "reserve_mb": 1, "check_interval_s": 1}
        cfg_path.write_text(_toml(cfg))
        station = Station(cfg_path)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _records_on_card(data) < 3 and station.proc.poll() is None:
            time.sleep(0.2)
        assert _records_on_card(data) >= 3, "".join(station.lines[-20:])
        filler = fill(disk)  # something else takes the rest of the card
        while time.monotonic() < deadline and len(station.held()) < 3 and station.proc.poll() is None:
            time.sleep(0.2)
        held = station.held()
        assert len(held) >= 3, "events came while the card was full"
        log = station.stop(sig)
        held = station.held()

        if sig == signal.SIGTERM:
            assert f"event records kept in the reserved space; written to their folders at the next start\" " \
                   f"count={len(held)}" in log
            assert "Traceback" not in log
            assert station.proc.returncode == 1
            assert "scene_truth.json: the scene's ground truth was not written: No space left on device" in log
        folders = set(EventStore(data).ids())
        assert held <= folders or sig == signal.SIGTERM

        filler.unlink()  # the ranger makes room; the station starts again (a short run)
        cfg["camera"]["scene_duration_s"] = 1.0
        cfg_path.write_text(_toml(cfg))
        out = subprocess.run([sys.executable, "-m", "station", "run", "--config", str(cfg_path)],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        started = next(line for line in out.stderr.splitlines() if "station started" in line)
        if sig == signal.SIGTERM:
            assert f"restored_records={len(held)}" in started
        else:
            assert "rebuilt_records=" in started and "rebuilt_records=0" not in started

        store = EventStore(data)
        entries = list(store.entries())
        assert all(not isinstance(record, Exception) and record_problem(record) is None
                   for _, record in entries), "every folder has a whole record"
        records = [record for _, record in entries]
        assert held <= {r["id"] for r in records}
        assert all(classification_final(r.get("classification"), 3) for r in records), "all classified"
        ids = {r["id"] for r in records}
        assert sub.wait_for(lambda payloads: detection_ids(payloads) >= ids, timeout=60), \
            f"not delivered: {len(ids - detection_ids(sub.payloads()))} of {len(ids)}"
    finally:
        sub.close()
        broker.stop()
