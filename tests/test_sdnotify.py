"""systemd's notify protocol, heard the way systemd hears it: on a datagram socket the test binds.

The station and the collector run as real subprocesses with NOTIFY_SOCKET and WATCHDOG_USEC
set as systemd sets them (WatchdogSec=2s here, so pings come every second).
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from station.collector.service import WriterWatch
from station.sdnotify import Notifier
from tests.broker import make_broker
from tests.conftest import ROOT, minimal_toml

WATCHDOG_USEC = 2_000_000


class Systemd:
    """The listening end of NOTIFY_SOCKET: every datagram, with the time it arrived."""

    def __init__(self, address: str):
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.1)
        self.heard: list[tuple[float, str]] = []
        self._new: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            for line in data.decode().splitlines():
                self.heard.append((time.monotonic(), line))
                self._new.put(line)

    def wait_for(self, prefix: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._new.get(timeout=0.1)
            except queue.Empty:
                continue
            if line.startswith(prefix):
                return line
        raise AssertionError(f"systemd never heard {prefix!r}; heard: {[m for _, m in self.heard][-12:]}")

    def times(self, message: str, after: float = float("-inf")) -> list[float]:
        return [t for t, m in list(self.heard) if m == message and t >= after]

    def statuses(self) -> list[str]:
        return [m for _, m in list(self.heard) if m.startswith("STATUS=")]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def systemd(tmp_path):
    s = Systemd(str(tmp_path / "notify.sock"))
    yield s
    s.close()


def _env(systemd: Systemd) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_PID", "NOTIFY_SOCKET")}
    env.update(NOTIFY_SOCKET=systemd.address, WATCHDOG_USEC=str(WATCHDOG_USEC), PYTHONPATH=str(ROOT))
    return env


def _station_config(tmp_path: Path, camera: str = "synthetic:3", extra: str = "") -> Path:
    path = tmp_path / "station.toml"
    path.write_text(minimal_toml(tmp_path / "data", camera=camera,
                                 extra="[classifier]\nenabled = false\n" + extra))
    return path


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


# -- the client on its own ------------------------------------------------------------------
def test_messages_reach_an_abstract_socket_and_nothing_is_sent_without_one(tmp_path):
    listener = Systemd(f"@camtrap-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        n = Notifier.from_environment({"NOTIFY_SOCKET": listener.address})
        assert n.ready("capturing") and n.stopping()
        assert listener.wait_for("READY=1") and listener.wait_for("STATUS=capturing")
        assert listener.wait_for("STOPPING=1")
        assert n.reloading()
        assert listener.wait_for("RELOADING=1")
        assert int(listener.wait_for("MONOTONIC_USEC=").split("=")[1]) > 0
    finally:
        listener.close()
    quiet = Notifier.from_environment({})
    assert not quiet.enabled and not quiet.ready() and not quiet.keepalive(lambda: "x")


def test_watchdog_interval_comes_from_watchdog_usec_and_only_for_our_pid(systemd):
    env = {"NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "3000000"}
    assert Notifier.from_environment(env).ping_interval_s == 1.5
    assert Notifier.from_environment({**env, "WATCHDOG_PID": str(os.getpid())}).ping_interval_s == 1.5
    assert Notifier.from_environment({**env, "WATCHDOG_PID": "1"}).watchdog_interval_s is None, \
        "a watchdog meant for our parent is not ours to feed"
    assert Notifier.from_environment({**env, "WATCHDOG_USEC": "soon"}).watchdog_interval_s is None


def test_keepalive_pings_at_half_the_interval_however_often_it_is_called(systemd):
    n = Notifier(systemd.address, 1_000_000)
    sent = [n.keepalive(lambda: "ok", now=t / 10) for t in range(0, 26)]  # 2.5 s, called every 0.1 s
    assert [i for i, s in enumerate(sent) if s] == [0, 5, 10, 15, 20, 25]


def test_a_failed_send_never_raises(tmp_path):
    n = Notifier(str(tmp_path / "nobody-listens.sock"), 2_000_000)
    assert n.enabled and not n.ready() and not n.keepalive(lambda: "x")


# -- the station daemon ------------------------------------------------------------------------
def test_station_is_ready_feeds_the_watchdog_and_says_stopping_on_sigterm(tmp_path, systemd, station_cmd):
    config = _station_config(tmp_path)
    proc = subprocess.Popen([*station_cmd, "run", "--config", str(config), "--speed", "realtime"],
                            env=_env(systemd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        systemd.wait_for("READY=1")
        ready_at = time.monotonic()
        time.sleep(3.3)
        pings = systemd.times("WATCHDOG=1", after=ready_at)
        assert len(pings) >= 3, f"pings at half of WatchdogSec=2s: {len(pings)} in 3.3 s"
        assert max(b - a for a, b in zip(pings, pings[1:])) < WATCHDOG_USEC / 1e6
        assert any("capturing synthetic:3" in s and "last frame" in s for s in systemd.statuses())
        proc.send_signal(signal.SIGTERM)
        systemd.wait_for("STOPPING=1", timeout=15)
        assert proc.wait(30) == 0
    finally:
        _stop(proc)


HANGING_CAMERA = """
import sys, threading, pathlib
from station.camera.synthetic.camera import SyntheticCamera

flag = pathlib.Path(sys.argv[1])
plain_read = SyntheticCamera.read

def read(self, want_main=False):
    if flag.exists():
        threading.Event().wait()   # a driver call that never returns
    return plain_read(self, want_main)

SyntheticCamera.read = read
from station.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_capture_that_hangs_stops_the_pings_so_systemd_restarts_the_station(tmp_path, systemd):
    """No camera source here can hang for good (each has its own timeout), so the synthetic
    camera's read is made to block forever, in a real daemon process, once a flag file appears."""
    config = _station_config(tmp_path)
    flag = tmp_path / "hang-now"
    script = tmp_path / "hanging_station.py"
    script.write_text(HANGING_CAMERA)
    proc = subprocess.Popen([sys.executable, str(script), str(flag), "run", "--config", str(config),
                             "--speed", "realtime"], env=_env(systemd), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        systemd.wait_for("READY=1")
        systemd.wait_for("WATCHDOG=1")
        flag.touch()
        hung_at = time.monotonic()
        time.sleep(3.5)
        assert proc.poll() is None, "the process is alive: only its capture loop is stuck"
        late = systemd.times("WATCHDOG=1", after=hung_at + 0.5)
        assert late == [], "a hung capture must not feed the watchdog"
        assert systemd.times("WATCHDOG=1", after=hung_at - 3), "it was pinging until the hang"
    finally:
        _stop(proc)


def test_an_unplugged_camera_is_retried_inside_the_daemon_and_the_watchdog_stays_fed(tmp_path, systemd,
                                                                                      station_cmd):
    config = _station_config(tmp_path, camera="opencv:9")  # there is no /dev/video9 here
    text = config.read_text().replace('speed = "max"', 'speed = "max"\nretry_initial_s = 0.2\nretry_max_s = 0.8')
    config.write_text(text)
    proc = subprocess.Popen([*station_cmd, "run", "--config", str(config)], env=_env(systemd),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        systemd.wait_for("READY=1")
        ready_at = time.monotonic()
        time.sleep(3.2)
        assert len(systemd.times("WATCHDOG=1", after=ready_at)) >= 2, \
            "a daemon retrying its camera is healthy: restarting it would not plug the camera in"
        assert any("opencv:9 failed" in s and "retrying" in s for s in systemd.statuses())
        proc.send_signal(signal.SIGTERM)
        systemd.wait_for("STOPPING=1", timeout=15)
        assert proc.wait(30) == 0
    finally:
        _stop(proc)


# -- the collector ---------------------------------------------------------------------------
def test_collector_is_ready_feeds_the_watchdog_and_says_stopping(tmp_path, systemd, station_cmd):
    broker = make_broker(tmp_path / "broker").start()
    try:
        config = tmp_path / "collector.toml"
        config.write_text(f'[collector]\ndata_dir = "{tmp_path / "collector"}"\n'
                          f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n')
        proc = subprocess.Popen([*station_cmd, "collector", "--config", str(config), "--no-http"],
                                env=_env(systemd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            systemd.wait_for("READY=1")
            ready_at = time.monotonic()
            time.sleep(2.3)
            assert len(systemd.times("WATCHDOG=1", after=ready_at)) >= 2
            assert any("broker connected" in s for s in systemd.statuses())
            proc.send_signal(signal.SIGTERM)
            systemd.wait_for("STOPPING=1", timeout=15)
            assert proc.wait(30) == 0
        finally:
            _stop(proc)
    finally:
        broker.stop()


def _thread(target) -> threading.Thread:
    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t


def test_collector_writer_waiting_for_messages_is_healthy_and_one_stuck_in_a_call_is_not():
    idle_queue: queue.Queue = queue.Queue()
    idle = _thread(lambda: idle_queue.get(timeout=30))
    stuck = _thread(lambda: time.sleep(30))   # a database call that does not come back
    batches = [0]
    time.sleep(0.1)
    watch_idle = WriterWatch(lambda: idle, lambda: batches[0], stuck_after_s=0.3)
    watch_stuck = WriterWatch(lambda: stuck, lambda: batches[0], stuck_after_s=0.3)
    assert watch_idle.check()[0] and watch_stuck.check()[0]
    time.sleep(0.5)
    assert watch_idle.check() == (True, "ok"), "waiting on an empty queue (or a retry timer) is healthy"
    healthy, why = watch_stuck.check()
    assert not healthy and "stuck" in why
    batches[0] += 1
    assert watch_stuck.check()[0], "a finished batch is progress"
    assert WriterWatch(lambda: None, lambda: 0).check() == (False, "ingest writer thread has ended")
    idle_queue.put(None)
